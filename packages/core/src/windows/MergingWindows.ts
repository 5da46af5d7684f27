/**
 * Session and sliding windows in process memory, through a MemoryWindowStore: per batch, the
 * records are pre-aggregated into deltas and applied to the store (sessions merge with the
 * stored sessions they touch; sliding windows keep one point per record time), and timers fire
 * and free the windows the watermark closes.
 */
import type { BatchContext, CompileContext, NodeInfo, Push } from '../compile/types.js';
import type { RecordEnvelope } from '../envelope.js';
import { comparePositions, positionOf } from '../position.js';
import type { Aggregator } from './aggregates.js';
import { MinHeap, OrderedHeap } from './heap.js';
import {
  type ApplyOutcome,
  classifyDelta,
  MemoryWindowStore,
  type StoredWindow,
  type WindowRef,
  WindowState,
} from './store.js';
import { type Delta, DROPPED, deltaId, grainOf, WindowOperator, type WindowSettings } from './WindowOperator.js';

type Tracked = WindowState;

const windowId = (key: string, start: number, end: number) => `${key}\u0000${start}\u0000${end}`;

export class MergingWindows extends WindowOperator {
  private readonly store = new MemoryWindowStore();
  /** Timers: windows bucketed by the time they fire (or expire), and a heap of those times. */
  private readonly buckets = new Map<number, Tracked[]>();
  private readonly times = new MinHeap<{ at: number }>();
  /** Tracked windows by id: session merges and sliding updates look them up. */
  private readonly byId = new Map<string, Tracked>();
  private tracked = 0;
  /**
   * Tracked windows by the oldest record they hold (see retainedPosition); an entry is stale once
   * its window is dead or merged into another (which has an entry of its own).
   */
  private readonly retained = new OrderedHeap<{ retain: string; tr: Tracked }>(
    (a, b) => comparePositions(a.retain, b.retain) < 0,
  );

  constructor(settings: WindowSettings, node: NodeInfo, ctx: CompileContext) {
    super(settings, node, ctx, 0);
  }

  link(): (next: Push) => Push {
    return (next) =>
      this.ctx.barrier(
        { name: this.name, kind: 'window', path: '' },
        (records, batch, push) => this.run(records, batch, push),
        next,
        (batch, push, final) => this.advance(batch, push, final),
      );
  }

  protected openWindows(): number {
    return this.tracked;
  }

  protected storedWindows(): number {
    return this.store.size;
  }

  /**
   * Position of the oldest record in a window still tracked (of one shard's operator: see
   * PerShardWindows). Sliding points count until they expire: later windows still read them.
   */
  retainedPosition(): string | undefined {
    for (let top = this.retained.peek(); top !== undefined; top = this.retained.peek()) {
      if (!top.tr.dead && top.tr.retain === top.retain) return top.retain;
      this.retained.pop();
    }
    return undefined;
  }

  private async run(records: RecordEnvelope[], batch: BatchContext, next: Push): Promise<void> {
    if (this.kind === 'session') return this.runSessions(records, batch, next);
    const first = this.preAggregate(records, batch, undefined);
    for (const env of first.late) this.sendLate(env, batch);
    let list = first.list;
    const changed: StoredWindow[] = [];
    // Apply; re-aggregate only the newer records of any delta that overlaps what was applied.
    for (let round = 0; list.length > 0 && round < 3; round++) {
      const outcomes = await this.store.apply(list, this.aggregators);
      let floors: Map<string, string> | undefined;
      for (let i = 0; i < outcomes.length; i++) {
        const o = outcomes[i] as ApplyOutcome;
        if (o.status === 'applied') {
          if (o.created) this.track(o.window);
          if (this.updates) changed.push(o.window);
        } else if (o.status === 'overlap') {
          const d = list[i] as Delta;
          floors ??= new Map();
          floors.set(deltaId(d.key, d.start, d.end, d.shardId), o.appliedUpTo);
        }
      }
      if (!floors) break;
      // Re-reading the records must not dead-letter them a second time.
      const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
      const keep = floors;
      list = this.preAggregate(records, quiet, keep).list.filter((d) =>
        keep.has(deltaId(d.key, d.start, d.end, d.shardId)),
      );
    }
    this.markSeen(records, batch);
    if (this.updates) await this.emitChanged(changed, batch, batch.replay === undefined ? next : DROPPED);
  }

  /**
   * Sessions: per key, the batch's gap windows and every stored session they touch are merged in
   * one step, with one exactly-once check over all of the key's records in the batch (a shard's
   * records can fall into sessions out of position order, so sessions are not applied one by one).
   */
  private async runSessions(records: RecordEnvelope[], batch: BatchContext, next: Push): Promise<void> {
    const { list } = this.preAggregate(records, batch, undefined);
    // Per key and grain (with `shard` ordering every delta has the batch's shard as its grain).
    const byKey = new Map<string, Delta[]>();
    for (const d of list) {
      const id = `${d.key}\u0000${d.shardId}`;
      const arr = byKey.get(id);
      if (arr) arr.push(d);
      else byKey.set(id, [d]);
    }
    const changed: StoredWindow[] = [];
    for (const deltas of byKey.values()) {
      await this.mergeSessions((deltas[0] as Delta).key, deltas, records, batch, changed);
    }
    this.markSeen(records, batch);
    if (this.updates) await this.emitChanged(changed, batch, batch.replay === undefined ? next : DROPPED);
  }

  private async mergeSessions(
    key: string,
    deltas: Delta[],
    records: RecordEnvelope[],
    batch: BatchContext,
    changed: StoredWindow[],
  ): Promise<void> {
    const shardId = (deltas[0] as Delta).shardId; // the grain of these deltas
    let minPosition = (deltas[0] as Delta).minPosition;
    let maxPosition = (deltas[0] as Delta).maxPosition;
    for (const d of deltas) {
      if (comparePositions(d.minPosition, minPosition) < 0) minPosition = d.minPosition;
      if (comparePositions(d.maxPosition, maxPosition) > 0) maxPosition = d.maxPosition;
    }
    const touches = (w: WindowRef) => deltas.some((d) => w.start <= d.end && w.end >= d.start);
    const stored = (await this.store.windowsOf(key)).filter(touches);
    let applied: string | undefined;
    for (const w of stored) {
      const p = w.positions[shardId];
      if (p !== undefined && (applied === undefined || comparePositions(p, applied) > 0)) applied = p;
    }
    const verdict = classifyDelta(applied, { minPosition, maxPosition });
    if (verdict === 'duplicate') return;
    if (verdict === 'overlap') {
      // Merge again with only this key's records newer than what was applied.
      const newer = records.filter(
        (env) => grainOf(env, batch) === shardId && comparePositions(positionOf(env), applied as string) > 0,
      );
      const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
      const again = this.preAggregate(newer, quiet, undefined, key).list;
      if (again.length > 0) await this.mergeSessions(key, again, records, batch, changed);
      return;
    }
    // A gap window that has closed and touches no open session is late.
    const live = deltas.filter((d) => {
      if (!this.isClosed(d.end) || stored.some((w) => w.start <= d.end && w.end >= d.start)) return true;
      for (const env of d.records ?? []) if (!this.isRedelivery(env, batch)) this.sendLate(env, batch);
      return false;
    });
    if (live.length === 0) return;
    // Union of the stored sessions and the batch's gap windows; touching intervals merge.
    type Part = { start: number; end: number; acc: unknown[]; positions: Record<string, string>; retain: string };
    const parts: Part[] = [
      ...stored.map((w) => ({
        start: w.start,
        end: w.end,
        acc: w.acc,
        positions: w.positions,
        retain: (w instanceof WindowState ? w.retain : undefined) ?? minPosition,
      })),
      ...live.map((d) => ({ start: d.start, end: d.end, acc: d.acc, positions: {}, retain: d.minPosition })),
    ];
    parts.sort((a, b) => a.start - b.start);
    const keyValue = (deltas[0] as Delta).keyValue;
    const merged: WindowState[] = [];
    for (const p of parts) {
      const last = merged[merged.length - 1];
      if (last && p.start <= last.end) {
        last.end = Math.max(last.end, p.end);
        last.acc = last.acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(a, p.acc[i]));
        if (comparePositions(p.retain, last.retain as string) < 0) last.retain = p.retain;
        for (const [shard, pos] of Object.entries(p.positions)) {
          const cur = last.positionFor(shard);
          if (cur === undefined || comparePositions(pos, cur) > 0) last.setPosition(shard, pos);
        }
      } else {
        const w = new WindowState(key, keyValue, p.start, p.end, [...p.acc], shardId, minPosition, maxPosition);
        w.positions = { ...p.positions };
        w.retain = p.retain;
        merged.push(w);
      }
    }
    for (const w of merged) w.setPosition(shardId, maxPosition);
    for (const w of stored) {
      const id = windowId(w.key, w.start, w.end);
      const tr = this.byId.get(id);
      if (tr && !tr.dead) {
        tr.dead = true;
        this.tracked--;
      }
      this.byId.delete(id);
      const i = changed.findIndex((c) => c.key === w.key && c.start === w.start && c.end === w.end);
      if (i >= 0) changed.splice(i, 1);
    }
    await this.store.replace(stored, merged);
    for (const w of merged) {
      this.track(w);
      changed.push(w);
    }
  }

  /** Sliding: the window of the record at `t` merges the point windows in [t − size, t]. */
  private async slidingAccumulator(key: string, t: number): Promise<unknown[]> {
    const points = (await this.store.windowsOf(key)).filter((w) => w.start >= t - this.size && w.start <= t);
    return points.reduce<unknown[]>(
      (acc, w) => acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(a, w.acc[i])),
      this.aggregators.map((a) => a.init()),
    );
  }

  private async emitChanged(changed: StoredWindow[], batch: BatchContext, next: Push): Promise<void> {
    if (this.kind !== 'sliding') {
      for (const w of changed) this.emit(batch, next, w, w.start, w.end, w.acc);
      return;
    }
    // A changed point at t changes every record window [r − size, r] with r in [t, t + size].
    const affected = new Map<string, Tracked>();
    for (const w of changed) {
      for (const p of await this.store.windowsOf(w.key)) {
        if (p.start < w.start || p.start > w.start + this.size) continue;
        const id = windowId(p.key, p.start, p.end);
        const tr = this.byId.get(id);
        if (tr && !tr.fired) affected.set(id, tr);
      }
    }
    for (const tr of affected.values()) {
      this.emit(batch, next, tr, tr.start - this.size, tr.start + 1, await this.slidingAccumulator(tr.key, tr.start));
    }
  }

  private schedule(tr: Tracked, at: number): void {
    const bucket = this.buckets.get(at);
    if (bucket) bucket.push(tr);
    else {
      this.buckets.set(at, [tr]);
      this.times.push({ at });
    }
  }

  private track(w: StoredWindow): void {
    // With the in-memory store the stored window is the step's own object; otherwise track a copy.
    const tr = w instanceof WindowState ? w : new WindowState(w.key, w.keyValue, w.start, w.end, w.acc, '', '', '');
    const fireAt = w.end + this.lateness;
    tr.fireAt = fireAt;
    // A sliding point at t feeds record windows up to t + size, which fire at t + size + 1 + lateness.
    tr.expireAt = this.kind === 'sliding' ? fireAt + this.size + 1 : fireAt;
    tr.fired = false;
    tr.dead = false;
    tr.retain ??= tr.minPosition || undefined;
    if (tr.retain !== undefined) this.retained.push({ retain: tr.retain, tr });
    this.tracked++;
    this.byId.set(windowId(w.key, w.start, w.end), tr);
    this.schedule(tr, fireAt);
  }

  /** Advances the watermark and fires (and frees) the windows it closes; at the end of input, all. */
  private async advance(batch: BatchContext, push: Push, final: boolean): Promise<void> {
    const mode = this.replayMode(batch, final);
    if (mode === 'skip') return;
    if (mode === 'normal') this.advanceWatermark(batch, final);
    const next = mode === 'replay' ? DROPPED : push;
    const expired: Tracked[] = [];
    const fired: Tracked[] = [];
    for (let top = this.times.peek(); top !== undefined && top.at <= this.wm; top = this.times.peek()) {
      this.times.pop();
      const at = top.at;
      const bucket = this.buckets.get(at) as Tracked[];
      this.buckets.delete(at);
      // Windows firing together share an end (fireAt − lateness), hence one emission.
      const emission = this.emission(at - this.lateness, batch);
      for (const tr of bucket) {
        if (tr.dead) continue;
        if (!tr.fired && at === tr.fireAt) {
          tr.fired = true;
          fired.push(tr);
          if (this.kind === 'sliding') {
            this.emit(
              batch,
              next,
              tr,
              tr.start - this.size,
              tr.start + 1,
              await this.slidingAccumulator(tr.key, tr.start),
            );
          } else {
            const acc = this.store.live ? tr.acc : (await this.store.get(tr))?.acc;
            if (acc) this.emit(batch, next, tr, tr.start, tr.end, acc, emission);
          }
          if (tr.expireAt > tr.fireAt) {
            this.schedule(tr, tr.expireAt);
            continue;
          }
        } else if (at !== tr.expireAt) continue;
        tr.dead = true;
        this.tracked--;
        this.byId.delete(windowId(tr.key, tr.start, tr.end));
        expired.push(tr);
      }
    }
    if (fired.length === 0 && expired.length === 0) return;
    // Freed once the output is durable; if the batch fails, these windows fire again on the retry.
    if (expired.length > 0) batch.afterAck(() => this.store.delete(expired));
    batch.afterFailure(() => {
      const refired = new Set(fired);
      for (const tr of expired) {
        tr.dead = false;
        if (tr.retain !== undefined) this.retained.push({ retain: tr.retain, tr });
        this.tracked++;
        this.byId.set(windowId(tr.key, tr.start, tr.end), tr);
        if (!refired.has(tr)) this.schedule(tr, tr.expireAt);
      }
      for (const tr of fired) {
        tr.fired = false;
        this.schedule(tr, tr.fireAt);
      }
    });
  }
}
