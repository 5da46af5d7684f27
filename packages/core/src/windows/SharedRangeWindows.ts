/**
 * Tumbling and hopping windows in a shared store (DynamoDB, Redis): every key's window of one
 * range `[start, end)` is stored under that range, and a range is claimed and emitted as a whole
 * (see `shared.ts`).
 */
import type { BatchContext, CompileContext, NodeInfo, Push } from '../compile/types.js';
import { keyText, type RecordEnvelope } from '../envelope.js';
import { DeliveryError } from '../errors.js';
import { comparePositions, positionOf } from '../position.js';
import { SharedStoreWindows } from './SharedStoreWindows.js';
import type { LateRecord, SharedApplyOutcome, SharedWindowStore } from './shared.js';
import type { StoredWindow } from './store.js';
import { type Delta, deltaId, FAILED, grainOf, type WindowSettings } from './WindowOperator.js';

/** How often a batch re-aggregates around state that other writers keep moving before it fails. */
const MAX_OVERLAP_ROUNDS = 8;

export class SharedRangeWindows extends SharedStoreWindows {
  /** Window state shared by processes. */
  private readonly shared: SharedWindowStore;

  constructor(settings: WindowSettings, node: NodeInfo, ctx: CompileContext, shared: SharedWindowStore) {
    super(settings, node, ctx, shared.retention);
    this.shared = shared;
  }

  link(): (next: Push) => Push {
    const shared = this.shared;
    return (next) =>
      this.ctx.barrier(
        { name: this.name, kind: 'window', path: '' },
        (records, batch, push) => this.runShared(shared, records, batch, push),
        next,
        (batch, push, final) => this.advanceShared(shared, batch, push, final),
      );
  }

  /**
   * Shared store: applies the batch's deltas (re-aggregating only newer records where a replay
   * overlaps what was applied); records whose every window was sealed for emission meanwhile go
   * to the late output.
   */
  private async runShared(
    shared: SharedWindowStore,
    records: RecordEnvelope[],
    batch: BatchContext,
    next: Push,
  ): Promise<void> {
    if (!this.synced) {
      // A new process judges its first records against the watermark in the store, not −∞.
      await this.refreshWatermark(shared, [], this.ctx.scheduler.now(), false, false);
      this.synced = true;
    }
    const first = this.preAggregate(records, batch, undefined);
    for (const env of first.late) this.sendLate(env, batch);
    let list = first.list;
    const sealed = new Set<string>();
    const rejected = new Map<string, string>();
    const changed: StoredWindow[] = [];
    const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
    /** Per window, the position up to which this shard's records were already applied. */
    const applied = new Map<string, string>();
    for (let round = 0; list.length > 0; round++) {
      if (round >= MAX_OVERLAP_ROUNDS) {
        // Only a second consumer writing the same shard at the same time keeps this going.
        throw new DeliveryError(
          `${this.name}: window state kept moving under this batch of ${batch.shardId} (another consumer of the shard?); the batch will be retried`,
        );
      }
      const outcomes = await shared.apply(list, batch.shardId, this.wm);
      let floors: Map<string, string> | undefined;
      for (let i = 0; i < outcomes.length; i++) {
        const o = outcomes[i] as SharedApplyOutcome;
        const d = list[i] as Delta;
        if (o.status === 'applied') {
          if (this.updates) changed.push(o.window);
        } else if (o.status === 'overlap') {
          floors ??= new Map();
          floors.set(deltaId(d.key, d.start, d.end, d.shardId), o.appliedUpTo);
        } else if (o.status === 'closed') sealed.add(deltaId(d.key, d.start, d.end, d.shardId));
        else if (o.status === 'rejected') rejected.set(deltaId(d.key, d.start, d.end, d.shardId), o.reason);
      }
      if (!floors) break;
      const keep = floors;
      for (const [id, floor] of keep) applied.set(id, floor);
      list = this.preAggregate(records, quiet, keep).list.filter((d) =>
        keep.has(deltaId(d.key, d.start, d.end, d.shardId)),
      );
    }
    if (sealed.size > 0 || rejected.size > 0) this.notApplied(records, quiet, batch, sealed, rejected, applied);
    this.markSeen(records, batch);
    if (this.updates) for (const w of changed) this.emit(batch, next, w, w.start, w.end, w.acc);
  }

  /**
   * Records the store did not apply: those whose every window is closed or was sealed for
   * emission go to the late output; those with a window the store rejected, to the dead-letter
   * output with the store's reason.
   */
  private notApplied(
    records: RecordEnvelope[],
    quiet: BatchContext,
    batch: BatchContext,
    sealed: Set<string>,
    rejected: Map<string, string>,
    applied: Map<string, string>,
  ): void {
    const bounds: number[] = [];
    /** Under partition-key ordering, late records to note in the sealed state (see noteLate). */
    const noted: LateRecord[] = [];
    const byKey = batch.ordering === 'partitionKey' && this.shared.noteLate !== undefined;
    for (const env of records) {
      const key = this.readKey(env, quiet);
      if (key === FAILED) continue;
      const n = this.assign(env.eventTime, bounds);
      const position = positionOf(env);
      const text = keyText(key);
      const grain = grainOf(env, batch);
      let open = false;
      let hit = false;
      let reason: string | undefined;
      for (let b = 0; b < n; b += 2) {
        const id = deltaId(text, bounds[b] as number, bounds[b + 1] as number, grain);
        const floor = applied.get(id);
        // Applied by an earlier delivery (before the window was sealed): counted, not late.
        if (floor !== undefined && comparePositions(position, floor) <= 0) open = true;
        else if (sealed.has(id)) hit = true;
        else if (rejected.has(id)) reason ??= rejected.get(id);
        else if (!this.isClosed(bounds[b + 1] as number)) open = true;
      }
      if (reason !== undefined) batch.deadLetter(env, this.name, 'state', reason);
      else if (hit && !open && !this.isRedelivery(env, batch)) {
        this.sendLate(env, batch);
        if (byKey) {
          for (let b = 0; b < n; b += 2) {
            const start = bounds[b] as number;
            const end = bounds[b + 1] as number;
            if (sealed.has(deltaId(text, start, end, grain))) noted.push({ key: text, start, end, grain, position });
          }
        }
      }
    }
    if (noted.length > 0) {
      const shardId = batch.shardId;
      batch.afterAck(() => this.shared.noteLate?.(noted, shardId) ?? Promise.resolve());
    }
  }

  /** Claims and emits each due range as a whole; it is forgotten once its output is durable. */
  protected async emitDue(
    batch: BatchContext,
    next: Push,
    claimant: string,
    mine: readonly string[],
    now: number,
  ): Promise<void> {
    const shared = this.shared;
    const due = (await shared.openRanges())
      .filter((r) => r.end + this.lateness <= this.dueWm)
      .sort((a, b) => a.end - b.end || a.start - b.start);
    for (const range of due) {
      let windows = await shared.claim(range, claimant, now);
      for (let i = 0; windows === undefined && i < mine.length; i++)
        windows = await shared.claim(range, mine[i] as string, now);
      if (windows === undefined) continue; // another consumer emits it
      const emission = this.emission(range.end, batch);
      for (const w of windows) this.emit(batch, next, w, w.start, w.end, w.acc, emission);
      batch.afterAck(() => shared.emitted(range));
    }
  }
}
