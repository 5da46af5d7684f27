/**
 * Tumbling and hopping windows in process memory: every record is added straight into the
 * buckets of its window starts, inline in the fused chain (no per-batch buffer), and a bucket
 * fires as a whole when the watermark passes its end + allowedLateness. `addToBuckets` is the
 * hottest loop of the project (bench/windows.mjs): keep extra calls and allocations out of it.
 */
import type { BatchContext, CompileContext, NodeInfo, Push } from '../compile/types.js';
import { type Emission, emitted, type RecordEnvelope } from '../envelope.js';
import { comparePositions, positionOf } from '../position.js';
import type { Aggregator, Stamp } from './aggregates.js';
import { MinHeap } from './heap.js';
import { DROPPED, FAILED, grainOf, WindowOperator, type WindowSettings } from './WindowOperator.js';

/**
 * In-memory state of one tumbling or hopping window start: the accumulators of every key, and
 * per shard the highest position applied to it. Records of a shard are applied in order, so one
 * position per (window, shard) gives the same exactly-once guarantee as one per (key, window),
 * without an object per key.
 */
class Bucket {
  /**
   * Key → its slot in `keys`/`accs`. A record costs one lookup (the accumulator is then updated
   * in place in the array), where a Map of accumulators would need a get and a set.
   */
  readonly index = new Map<unknown, number>();
  readonly keys: unknown[] = [];
  /** Per slot: the accumulator (a single aggregate), or the array of them. */
  readonly accs: unknown[] = [];
  readonly positions = new Map<string, string>();
  /** Slots changed by the current batch (emit: updates). */
  readonly changed = new Set<number>();
  /** The batch that last touched this bucket, and the position applied before it. */
  batch = 0;
  floor: string | undefined = undefined;
  /** Position of the first record applied (the oldest: a shard's records come in order). */
  first: string | undefined = undefined;
  constructor(
    readonly start: number,
    readonly end: number,
    /** When it fires (end + allowedLateness). */
    readonly at: number,
  ) {}
}

export class BucketedWindows extends WindowOperator {
  private tracked = 0;
  /** Tumbling and hopping windows in memory: per window start (see Bucket). */
  private readonly bucketsByStart = new Map<number, Bucket>();
  private readonly bucketTimes = new MinHeap<Bucket>();
  private batches = 0;
  private lastBucket: Bucket | undefined;
  /** Per-batch progress of the inline bucket path, keyed by the batch it belongs to. */
  private readonly pendingBatches = new Map<
    BatchContext,
    { id: number; touched: Bucket[]; last: RecordEnvelope | undefined }
  >();
  /** The batch the last record came from and its state (saves a lookup per record). */
  private currentBatch: BatchContext | undefined;
  private currentState: { id: number; touched: Bucket[]; last: RecordEnvelope | undefined } | undefined;
  private readonly stamp: Stamp = { time: 0, shardId: '', position: '' };

  constructor(settings: WindowSettings, node: NodeInfo, ctx: CompileContext) {
    super(settings, node, ctx, 0);
  }

  link(): (next: Push) => Push {
    // Aggregation into buckets is synchronous: records are consumed inline in the fused chain
    // (no per-batch buffer); the barrier only finishes the batch and fires windows.
    return (next) => {
      this.ctx.barrier(
        { name: this.name, kind: 'window', path: '' },
        async () => {},
        next,
        (batch, push, final) => this.advance(batch, push, final),
      );
      return (env, batch) => this.addToBuckets(env, batch);
    };
  }

  protected openWindows(): number {
    return this.tracked;
  }

  protected storedWindows(): number {
    return this.tracked;
  }

  /** Position of the oldest record in an open window (of one shard's operator: see PerShardWindows). */
  retainedPosition(): string | undefined {
    let oldest: string | undefined;
    for (const b of this.bucketsByStart.values()) {
      if (b.first !== undefined && (oldest === undefined || comparePositions(b.first, oldest) < 0)) oldest = b.first;
    }
    return oldest;
  }

  /** Tumbling/hopping in memory: adds one record straight into its window buckets, exactly once per (window, shard). */
  private addToBuckets(env: RecordEnvelope, batch: BatchContext): void {
    let state = this.currentBatch === batch ? this.currentState : this.pendingBatches.get(batch);
    if (state === undefined) {
      state = { id: ++this.batches, touched: [], last: undefined };
      this.pendingBatches.set(batch, state);
      const mine = state;
      // Records added to buckets are applied, even if the batch fails later: a retry must skip them.
      batch.afterFailure(() => {
        if (this.pendingBatches.get(batch) !== mine) return;
        this.pendingBatches.delete(batch);
        if (this.currentBatch === batch) {
          this.currentBatch = undefined;
          this.currentState = undefined;
        }
        const last = mine.last;
        if (last && batch.ordering !== 'partitionKey') {
          for (const b of mine.touched) b.positions.set(last.shardId, positionOf(last));
        }
      });
    }
    this.currentBatch = batch;
    this.currentState = state;
    state.last = env;
    const key = this.readKey(env, batch);
    if (key === FAILED) return;
    if (!this.readInputs(env, batch)) return;
    const position = positionOf(env);
    const t = env.eventTime;
    const aggs = this.aggregators;
    const n = aggs.length;
    const values = this.values;
    const stamp = this.stamp;
    const size = this.size;
    const every = this.every;
    const byKey = batch.ordering === 'partitionKey';
    let placed = false;
    // The windows of `t`: starts aligned to `every`, from the latest down to the first that covers t
    // (tumbling: every = size, one window). No array per record: this is the hottest loop.
    for (let start = t - (((t % every) + every) % every); start > t - size; start -= every) {
      const end = start + size;
      if (this.isClosed(end)) continue;
      placed = true;
      let bucket =
        this.lastBucket !== undefined && this.lastBucket.start === start
          ? this.lastBucket
          : this.bucketsByStart.get(start);
      if (bucket === undefined) {
        bucket = new Bucket(start, end, end + this.lateness);
        this.bucketsByStart.set(start, bucket);
        this.bucketTimes.push(bucket);
      }
      this.lastBucket = bucket;
      if (byKey) {
        // Only a partition key's records are in order: one position per (bucket, grain), per record.
        const grain = grainOf(env, batch);
        const floor = bucket.positions.get(grain);
        if (floor !== undefined && comparePositions(position, floor) <= 0) continue; // applied before
        bucket.positions.set(grain, position);
        if (bucket.batch !== state.id) {
          bucket.batch = state.id;
          state.touched.push(bucket);
        }
      } else if (bucket.batch !== state.id) {
        bucket.batch = state.id;
        const floor = bucket.positions.get(env.shardId);
        // A batch's records come in position order: once one is above the floor, all later ones are.
        bucket.floor = floor !== undefined && comparePositions(position, floor) <= 0 ? floor : undefined;
        state.touched.push(bucket);
      }
      if (bucket.floor !== undefined) {
        if (comparePositions(position, bucket.floor) <= 0) continue; // applied before
        bucket.floor = undefined;
      }
      if (bucket.first === undefined) bucket.first = position;
      stamp.time = env.eventTime;
      stamp.shardId = env.shardId;
      stamp.position = position;
      let slot = bucket.index.get(key);
      if (slot === undefined) {
        slot = bucket.keys.length;
        bucket.index.set(key, slot);
        bucket.keys.push(key);
        if (n === 1) bucket.accs.push((aggs[0] as Aggregator).init());
        else {
          const acc = new Array<unknown>(n);
          for (let i = 0; i < n; i++) acc[i] = (aggs[i] as Aggregator).init();
          bucket.accs.push(acc);
        }
        this.tracked++;
      }
      const accs = bucket.accs;
      if (n === 1) accs[slot] = (aggs[0] as Aggregator).add(accs[slot], values[0], stamp);
      else {
        const acc = accs[slot] as unknown[];
        for (let i = 0; i < n; i++) acc[i] = (aggs[i] as Aggregator).add(acc[i], values[i], stamp);
      }
      if (this.updates) bucket.changed.add(slot);
    }
    if (!placed && !this.isRedelivery(env, batch)) this.sendLate(env, batch);
  }

  /** End of a batch on the bucket path: record the positions applied, emit updates. */
  private finishBuckets(batch: BatchContext, next: Push): void {
    const state = this.pendingBatches.get(batch);
    if (state === undefined) return;
    this.pendingBatches.delete(batch);
    if (this.currentBatch === batch) {
      this.currentBatch = undefined;
      this.currentState = undefined;
    }
    const last = state.last as RecordEnvelope;
    const maxPosition = positionOf(last);
    if (batch.ordering !== 'partitionKey') for (const b of state.touched) b.positions.set(last.shardId, maxPosition);
    this.markSeen([last], batch);
    if (this.updates) {
      for (const b of state.touched) {
        const emission = this.emission(b.end, batch);
        for (const slot of b.changed) this.emitBucket(batch, next, b, b.keys[slot], b.accs[slot], emission);
        b.changed.clear();
      }
    }
  }

  private emitBucket(batch: BatchContext, next: Push, b: Bucket, key: unknown, acc: unknown, emission: Emission): void {
    next(emitted(emission, this.record(key, b.start, b.end, acc), key), batch);
  }

  /** Fires the buckets the watermark has closed, and frees them. */
  private fireBuckets(batch: BatchContext, next: Push): void {
    let fired: Bucket[] | undefined;
    for (let b = this.bucketTimes.peek(); b !== undefined && b.at <= this.wm; b = this.bucketTimes.peek()) {
      this.bucketTimes.pop();
      this.bucketsByStart.delete(b.start);
      if (this.lastBucket === b) this.lastBucket = undefined;
      const emission = this.emission(b.end, batch);
      const { keys, accs } = b;
      for (let i = 0; i < keys.length; i++) this.emitBucket(batch, next, b, keys[i], accs[i], emission);
      this.tracked -= keys.length;
      if (fired === undefined) fired = [b];
      else fired.push(b);
    }
    if (fired === undefined) return;
    const again = fired;
    // The output of these windows was not acknowledged: keep them, to fire again on the retry.
    batch.afterFailure(() => {
      for (const b of again) {
        this.bucketsByStart.set(b.start, b);
        this.bucketTimes.push(b);
        this.tracked += b.keys.length;
      }
    });
  }

  /** Advances the watermark and fires (and frees) the windows it closes; at the end of input, all. */
  private async advance(batch: BatchContext, next: Push, final: boolean): Promise<void> {
    const mode = this.replayMode(batch, final);
    if (mode === 'skip') return;
    if (mode === 'normal') this.advanceWatermark(batch, final);
    const out = mode === 'replay' ? DROPPED : next;
    this.finishBuckets(batch, out);
    this.fireBuckets(batch, out);
  }
}
