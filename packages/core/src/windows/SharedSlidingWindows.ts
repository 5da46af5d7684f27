/**
 * Sliding windows in a shared store (DynamoDB, Redis). A sliding window is one per record time t
 * of a key, looking back: `[t − size, t]`. The key's state (one item of the keyed store, as for
 * sessions) holds a *point* per record time: the accumulators of the key's records at exactly t
 * and, per grain, the highest position applied. A point's window is due when the watermark passes
 * t + 1 + allowed lateness; it is claimed inside the key's item, emitted with the accumulators of
 * every point in `[t − size, t]`, and kept — accumulators included — until every window over it
 * has fired (t + size + 1 + lateness), then as a tombstone (positions) for `retention`.
 *
 * A record for a time at or before a fired point of its key is late (the window over it was
 * emitted without it); a redelivered record is a duplicate of its point.
 */
import type { BatchContext, Push } from '../compile/types.js';
import { keyText, type RecordEnvelope } from '../envelope.js';
import { comparePositions, positionOf } from '../position.js';
import type { Aggregator } from './aggregates.js';
import { SharedKeyedWindows } from './SharedKeyedWindows.js';
import type { SessionState } from './shared.js';
import { classifyDelta, type StoredWindow } from './store.js';
import { type Delta, FAILED, grainOf } from './WindowOperator.js';

export class SharedSlidingWindows extends SharedKeyedWindows {
  /** A key's points of this batch, one at a time; with `emit: updates`, the open windows they change. */
  protected mergeKey(
    state: SessionState,
    deltas: Delta[],
    records: RecordEnvelope[],
    batch: BatchContext,
    late: RecordEnvelope[],
    changed: StoredWindow[],
  ): SessionState {
    const points: StoredWindow[] = [];
    let next = state;
    for (const d of deltas) next = this.mergePoint(next, d, records, batch, late, points);
    if (this.updates) changed.push(...this.affected(next, points));
    return next;
  }

  /** Adds one delta (the records of a key at one time, of one grain) to its point. */
  private mergePoint(
    state: SessionState,
    d: Delta,
    records: RecordEnvelope[],
    batch: BatchContext,
    late: RecordEnvelope[],
    changed: StoredWindow[],
  ): SessionState {
    const grain = d.shardId;
    const t = d.start;
    const at = (w: StoredWindow) => w.start === t;
    const open = state.open.find(at);
    const done = state.claimed.find(at) ?? state.emitted.find(at);
    let applied = (open ?? done)?.positions[grain];
    // Fired points whose accumulators were dropped are merged into one tombstone per key (its
    // positions the highest applied): a grain's records come in order, so one at or below it is
    // a redelivery. (Records of this batch are all above it: it holds earlier batches only.)
    for (const w of state.emitted) {
      const p = w.acc.length === 0 ? w.positions[grain] : undefined;
      if (p !== undefined && (applied === undefined || comparePositions(p, applied) > 0)) applied = p;
    }
    const verdict = classifyDelta(this.orHandled(applied, state, grain), d);
    if (verdict === 'duplicate') return state;
    if (verdict === 'overlap') {
      const floor = applied as string;
      const newer = records.filter(
        (env) => env.eventTime === t && grainOf(env, batch) === grain && comparePositions(positionOf(env), floor) > 0,
      );
      const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
      const again = this.preAggregate(newer, quiet, undefined, d.key).list.filter(
        (x) => x.shardId === grain && x.start === t,
      );
      return again.length > 0 ? this.mergePoint(state, again[0] as Delta, records, batch, late, changed) : state;
    }
    // Late when the window of a point at or after t has fired (it was emitted without this
    // record), or when this record's own look-back reaches a point whose accumulators were
    // dropped (its window could not be computed): both decided by the store, whatever this
    // process's view of the watermark.
    const fired = [...state.claimed, ...state.emitted].some((w) => w.end > t);
    const dropped = state.emitted.some((w) => w.acc.length === 0 && w.end > t - this.size);
    if (fired || dropped || done !== undefined) {
      late.push(...(d.records ?? this.recordsOf(records, d, batch)));
      return state;
    }
    const point: StoredWindow = open
      ? {
          ...open,
          acc: open.acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(a, d.acc[i])),
          positions: { ...open.positions, [grain]: d.maxPosition },
        }
      : {
          key: d.key,
          keyValue: d.keyValue,
          start: t,
          end: t + 1,
          acc: [...d.acc],
          positions: { [grain]: d.maxPosition },
        };
    changed.push(point);
    return { ...state, open: [...state.open.filter((w) => !at(w)), point] };
  }

  private keyTextOf(env: RecordEnvelope, batch: BatchContext): string | undefined {
    const key = this.readKey(env, batch);
    return key === FAILED ? undefined : keyText(key);
  }

  /** The records a delta holds (deltas of non-session kinds do not keep them). */
  private recordsOf(records: RecordEnvelope[], d: Delta, batch: BatchContext): RecordEnvelope[] {
    const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
    return records.filter(
      (env) =>
        env.eventTime === d.start &&
        grainOf(env, batch) === d.shardId &&
        this.keyTextOf(env, quiet) === d.key &&
        comparePositions(positionOf(env), d.minPosition) >= 0 &&
        comparePositions(positionOf(env), d.maxPosition) <= 0,
    );
  }

  /** emit: updates — the open windows whose look-back covers a changed point, with their values now. */
  private affected(state: SessionState, changed: StoredWindow[]): StoredWindow[] {
    const out = new Map<number, StoredWindow>();
    for (const c of changed) {
      for (const p of state.open) {
        if (p.start < c.start || p.start > c.start + this.size || out.has(p.start)) continue;
        out.set(p.start, { ...p, start: p.start - this.size, end: p.start + 1, acc: this.lookBack(state, p.start) });
      }
    }
    return [...out.values()];
  }

  /** The accumulators of the window of point t: every point of the key in [t − size, t]. */
  private lookBack(state: SessionState, t: number): unknown[] {
    let acc = this.aggregators.map((a) => a.init());
    for (const w of [...state.open, ...state.claimed, ...state.emitted]) {
      if (w.start < t - this.size || w.start > t || w.acc.length === 0) continue;
      acc = acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(a, w.acc[i]));
    }
    return acc;
  }

  protected async emitDue(
    batch: BatchContext,
    next: Push,
    claimant: string,
    mine: readonly string[],
    now: number,
  ): Promise<void> {
    const store = this.keyed;
    const due = await store.claimDue((w) => w.end + this.lateness <= this.dueWm, [claimant, ...mine], now);
    if (due.length === 0) return;
    for (const { window: p, state } of due) {
      const w = { ...p, start: p.start - this.size, end: p.start + 1 };
      this.emit(batch, next, w, w.start, w.end, this.lookBack(state, p.start));
    }
    const wm = this.finiteWm;
    const reach = this.size + 1 + this.lateness;
    batch.afterAck(() =>
      store.emitted(
        due.map((c) => c.window),
        (t) => t.start + reach + this.retention <= wm,
        // A fired point is read by every window up to size after it.
        (t) => t.start + reach > wm,
      ),
    );
  }
}
