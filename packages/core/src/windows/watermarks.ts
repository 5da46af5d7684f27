/**
 * Per-shard event-time progress, kept by the compiled pipeline from every decoded record (before
 * any filter, as a source-side watermark would be). A window step derives its watermark from it:
 *
 *   shard watermark = max event time seen on the shard − outOfOrderness
 *                     (or the source's own watermark for the shard, if higher),
 *                     + processing time spent idle beyond `idleTimeout`
 *   watermark       = the lowest shard watermark over the live shards
 *
 * so an idle shard does not hold windows open forever, and a closed shard (after resharding)
 * stops holding the watermark back.
 */
export interface ShardProgress {
  maxEventTime: number;
  /** Watermark announced by the source itself (e.g. a test stream), if any. */
  sourceWatermark: number;
  /** Processing time of the last batch with records. */
  lastActivity: number;
}

/** What a window step reads of the shards' progress (see CompileContext.watermarks). */
export interface WatermarkView {
  readonly shardIds: string[];
  /** Shards whose input ended in this process, with their progress at the end. */
  readonly ended: ReadonlyMap<string, ShardProgress | undefined>;
  /** Shards closed in this process. */
  readonly closed: ReadonlySet<string>;
  progress(shardId: string): Readonly<ShardProgress> | undefined;
  watermark(outOfOrderness: number, idleTimeout: number, now: number): number;
}

/**
 * One shard's part of `marks`: a window step whose key is the partition key runs one operator
 * per shard, each closing windows on its own shard's watermark (per-partition stream time).
 */
export function shardWatermarks(marks: WatermarkView, shardId: string): WatermarkView {
  return {
    get shardIds() {
      return marks.progress(shardId) ? [shardId] : [];
    },
    get ended() {
      return marks.ended.has(shardId) ? new Map([[shardId, marks.ended.get(shardId)]]) : new Map();
    },
    get closed() {
      return marks.closed.has(shardId) ? new Set([shardId]) : new Set<string>();
    },
    progress: (id) => (id === shardId ? marks.progress(id) : undefined),
    watermark(outOfOrderness, idleTimeout, now) {
      const p = marks.progress(shardId);
      // A closed shard delivers nothing more: every window of its keys is complete.
      if (!p && marks.closed.has(shardId)) return Number.POSITIVE_INFINITY;
      return lowestWatermark(p ? [p] : [], outOfOrderness, idleTimeout, now);
    },
  };
}

export class Watermarks implements WatermarkView {
  private readonly shards = new Map<string, ShardProgress>();

  observe(shardId: string, maxEventTime: number, now: number, sourceWatermark?: number): void {
    let p = this.shards.get(shardId);
    if (!p) {
      p = { maxEventTime: Number.NEGATIVE_INFINITY, sourceWatermark: Number.NEGATIVE_INFINITY, lastActivity: now };
      this.shards.set(shardId, p);
    }
    if (maxEventTime > Number.NEGATIVE_INFINITY) {
      if (this.ended.size > 0) this.ended.delete(shardId); // records again after the end of an input
      if (maxEventTime > p.maxEventTime) p.maxEventTime = maxEventTime;
      p.lastActivity = now;
    }
    if (sourceWatermark !== undefined && sourceWatermark > p.sourceWatermark) {
      p.sourceWatermark = sourceWatermark;
      p.lastActivity = now;
    }
  }

  /** A copy of one shard's progress, to put back with `restore` if its batch fails. */
  snapshot(shardId: string): ShardProgress | undefined {
    const p = this.shards.get(shardId);
    return p && { ...p };
  }

  /** Puts a shard's progress back as `snapshot` found it (a failed batch must not move the watermark). */
  restore(shardId: string, snapshot: ShardProgress | undefined): void {
    if (snapshot) this.shards.set(shardId, snapshot);
    else this.shards.delete(shardId);
  }

  /** A shard that has ended (closed by resharding) no longer holds the watermark back. */
  closeShard(shardId: string): void {
    this.shards.delete(shardId);
    this.closed.add(shardId);
  }

  /** Shards closed in this process (shared state stores record them). */
  readonly closed = new Set<string>();

  /**
   * The end of a finite input on these shards (the end-of-input flush): they stop holding the
   * watermark back here, but unlike a closed shard the shard itself goes on — a shared store
   * keeps its progress, not an end, so a later run over more of the stream continues from it.
   */
  endInput(shardId: string): void {
    const p = this.shards.get(shardId);
    this.shards.delete(shardId);
    if (p || !this.ended.has(shardId)) this.ended.set(shardId, p);
  }

  /** Shards whose input ended in this process (see endInput), with their progress at the end. */
  readonly ended = new Map<string, ShardProgress | undefined>();

  get shardIds(): string[] {
    return [...this.shards.keys()];
  }

  /** One shard's progress, if it has been seen. */
  progress(shardId: string): Readonly<ShardProgress> | undefined {
    return this.shards.get(shardId);
  }

  /** The watermark for a window with this out-of-orderness and idle timeout, at processing time `now`. */
  watermark(outOfOrderness: number, idleTimeout: number, now: number): number {
    return lowestWatermark(this.shards.values(), outOfOrderness, idleTimeout, now);
  }
}

/** The watermark over these shards' progress (see the top of this file). */
export function lowestWatermark(
  shards: Iterable<ShardProgress>,
  outOfOrderness: number,
  idleTimeout: number,
  now: number,
): number {
  let wm = Number.POSITIVE_INFINITY;
  for (const p of shards) {
    let w = Math.max(p.maxEventTime - outOfOrderness, p.sourceWatermark);
    const idle = now - p.lastActivity - idleTimeout;
    if (idle > 0) {
      if (w === Number.NEGATIVE_INFINITY) continue; // idle and never saw an event: does not hold back
      w += idle;
    }
    if (w < wm) wm = w;
  }
  return wm === Number.POSITIVE_INFINITY ? Number.NEGATIVE_INFINITY : wm;
}
