/**
 * The base of the operators whose window state lives in a shared store (DynamoDB, Redis; see
 * `shared.ts`): the watermark is computed over every shard's progress in the store, written by
 * every process, and what it closes is emitted by whoever claims it.
 */
import { randomUUID } from 'node:crypto';
import type { BatchContext, CompileContext, NodeInfo, Push } from '../compile/types.js';
import { keyText, type RecordEnvelope } from '../envelope.js';
import type { SharedWindowStore, StoredShardProgress } from './shared.js';
import { FAILED, WindowOperator, type WindowSettings } from './WindowOperator.js';
import { lowestWatermark } from './watermarks.js';

export abstract class SharedStoreWindows extends WindowOperator {
  /** Claims emissions made by ticks and the end-of-input flush (no batch position to name them). */
  private readonly instance = randomUUID();
  /** Shard progress as last written to the shared store, per shard. */
  private readonly written = new Map<string, StoredShardProgress>();
  /** Whether the watermark has been read from the shared store since this process started. */
  protected synced = false;

  protected constructor(settings: WindowSettings, node: NodeInfo, ctx: CompileContext, retention: number) {
    super(settings, node, ctx, retention);
  }

  /** Nothing is kept in this process's memory. */
  protected openWindows(): number {
    return 0;
  }

  protected storedWindows(): number {
    return 0;
  }

  /**
   * Claims and emits what the watermark (`dueWm`) has closed, in the name of `claimant`, or of
   * one of `mine` (claims left by this process's shards that ended).
   */
  protected abstract emitDue(
    batch: BatchContext,
    next: Push,
    claimant: string,
    mine: readonly string[],
    now: number,
  ): Promise<void>;

  /**
   * Writes this process's shard progress (`updates`) and moves the watermark to the lowest over
   * every live shard in the store. Progress is written before emission is decided, so of two
   * consumers deciding at once the later sees both; it is written after the batch's state, so a
   * batch that fails later has its window contributions applied already (its retry finds them).
   */
  protected async refreshWatermark(
    shared: Pick<SharedWindowStore, 'progress'>,
    updates: StoredShardProgress[],
    now: number,
    final: boolean,
    decide = true,
  ): Promise<void> {
    const all = await shared.progress(updates);
    for (const u of updates) this.written.set(u.shardId, u);
    this.stored = new Map(all.map((p) => [p.shardId, p]));
    // What any consumer acknowledged on a shard is handled: a redelivery of it is a duplicate.
    for (const p of all) if (p.applied !== undefined) this.noteSeen(p.shardId, p.applied);
    const ended = this.ctx.watermarks.ended;
    const open = all.filter((p) => !p.closed);
    let live = open.filter((p) => !p.ended && !ended.has(p.shardId));
    // At the end of a finite input, shards nobody has delivered anything from do not hold back.
    if (final) live = live.filter((p) => p.maxEventTime !== Number.NEGATIVE_INFINITY);
    // Emission: shards whose input ended hold nothing back; if every shard has ended or closed,
    // nothing more can come and every window is due.
    const due =
      all.length > 0 && live.length === 0 ? Number.POSITIVE_INFINITY : lowestWatermark(live, this.ooo, this.idle, now);
    // (Not on the first read of a new process, before its own shards are in the store: after a
    // run that ended every shard, that read would make every range due.)
    if (decide && due > this.dueWm) this.dueWm = due;
    // Lateness: a shard whose input ended may go on in a later run, so records are judged by
    // its progress, not as if it were over (the store then tells late from on time exactly).
    const judged = final
      ? due
      : open.length === 0
        ? due
        : lowestWatermark(
            open.filter((p) => !ended.has(p.shardId) || !p.ended),
            this.ooo,
            this.idle,
            now,
          );
    if (judged > this.wm) this.wm = judged;
    if (Number.isFinite(this.wm) && this.wm > this.finiteWm) this.finiteWm = this.wm;
  }

  /** Every shard's progress as last read from the shared store. */
  private stored = new Map<string, StoredShardProgress>();

  /** The highest finite watermark seen (the end-of-input flush moves `wm` to +∞). */
  protected finiteWm = Number.NEGATIVE_INFINITY;

  /** Shared store: the watermark that decides which ranges are due for emission (see refreshWatermark). */
  protected dueWm = Number.NEGATIVE_INFINITY;

  /**
   * Shared store: records this process's shard progress, computes the watermark over every live
   * shard in the store, and emits what it closes that this step can claim (see emitDue).
   */
  protected async advanceShared(
    shared: Pick<SharedWindowStore, 'progress'>,
    batch: BatchContext,
    next: Push,
    final: boolean,
  ): Promise<void> {
    const now = this.ctx.scheduler.now();
    const before = this.wm;
    const dueBefore = this.dueWm;
    batch.afterFailure(() => {
      this.wm = before;
      this.dueWm = dueBefore;
    });
    const marks = this.ctx.watermarks;
    const updates: StoredShardProgress[] = [];
    for (const shardId of new Set([...marks.shardIds, ...marks.ended.keys()])) {
      const p = marks.progress(shardId) ?? marks.ended.get(shardId) ?? this.written.get(shardId);
      if (!p) continue;
      const last = this.written.get(shardId);
      const applied = this.acked.get(shardId);
      const known = this.stored.get(shardId);
      if (
        last === undefined &&
        known !== undefined &&
        !known.ended &&
        !known.closed &&
        p.maxEventTime === Number.NEGATIVE_INFINITY &&
        p.sourceWatermark === Number.NEGATIVE_INFINITY
      ) {
        // Registered here, nothing read from it yet, and already in the store: nothing to add
        // (every process registers every shard; writing them all would cost shards² writes).
        // Recorded as written with this process's view of it, so later batches do not write the
        // registration either (it would race the shard's own consumer for its item).
        this.written.set(shardId, { ...known, lastActivity: p.lastActivity });
        continue;
      }
      if (
        last === undefined ||
        last.maxEventTime !== p.maxEventTime ||
        last.sourceWatermark !== p.sourceWatermark ||
        last.lastActivity !== p.lastActivity ||
        (marks.ended.has(shardId) && !last.ended)
      ) {
        const u: StoredShardProgress = {
          shardId,
          maxEventTime: p.maxEventTime,
          sourceWatermark: p.sourceWatermark,
          lastActivity: p.lastActivity,
          closed: false,
        };
        if (applied !== undefined) u.applied = applied;
        if (marks.ended.has(shardId)) u.ended = true;
        updates.push(u);
      }
    }
    for (const shardId of marks.closed) {
      if (this.written.get(shardId)?.closed) continue;
      updates.push({
        shardId,
        maxEventTime: Number.NEGATIVE_INFINITY,
        sourceWatermark: Number.NEGATIVE_INFINITY,
        lastActivity: now,
        closed: true,
      });
    }
    await this.refreshWatermark(shared, updates, now, final);
    this.synced = true;
    // The position a batch acknowledged is written once the batch is durable (its late records
    // have reached the late output): a redelivery of it is then a duplicate for every consumer,
    // and a container that dies right after its last batch has written it already.
    const own = batch.shardId;
    if (own !== '') {
      batch.afterAck(async () => {
        const applied = this.acked.get(own);
        const last = this.written.get(own);
        if (applied === undefined || last === undefined || last.applied === applied) return;
        const u = { ...last, applied };
        await shared.progress([u], { read: false });
        this.written.set(own, u);
      });
    }
    // A batch claims in its shard's name: the shard's next batch (its retry, or the one after a
    // batch whose retries ran out) takes over an emission it left unfinished. Where a shard's
    // batches run at once (partition-key ordering), each batch claims in its own name.
    const claimant =
      batch.shardId === ''
        ? `${final ? 'flush' : 'tick'}@${this.instance}`
        : batch.ordering === 'partitionKey' && batch.checkpoint !== undefined
          ? `${batch.shardId}@${batch.checkpoint}`
          : `shard:${batch.shardId}`;
    // At the end of the input, the shards that ended here are this process's: it finishes what
    // their batches claimed and left.
    const mine = final ? [...marks.ended.keys()].map((id) => `shard:${id}`) : [];
    return this.emitDue(batch, next, claimant, mine, now);
  }

  /** Records of keys whose state the store could not take go to the dead-letter output with its reason. */
  protected deadLetterKeys(
    records: RecordEnvelope[],
    batch: BatchContext,
    rejected: ReadonlyMap<string, string>,
  ): void {
    if (rejected.size === 0) return;
    const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
    for (const env of records) {
      const key = this.readKey(env, quiet);
      if (key === FAILED) continue;
      const reason = rejected.get(keyText(key));
      if (reason !== undefined && !this.isRedelivery(env, batch)) batch.deadLetter(env, this.name, 'state', reason);
    }
  }
}
