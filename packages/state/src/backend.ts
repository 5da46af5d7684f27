/**
 * What a window state store needs from a database: a handful of primitives that DynamoDB and
 * Redis both provide atomically. {@link ItemStateStore}, {@link ItemWindowStore} and
 * {@link ItemSessionStore} build the state-store contracts of core on them.
 */
import { comparePositions, type ProgressOptions, type StoredShardProgress } from '@tributary/core/spi';

/** A stored item: a version (1 for a new item, +1 per write) and its body. */
export interface VersionedItem {
  version: number;
  body: string;
}

/** A conditional write: succeeds only if the item's version is still `expected` (0: it must not exist). */
export interface ItemWrite {
  id: string;
  body: string;
  expected: number;
  /** Epoch ms after which the item may be removed (TTL). */
  expiresAt: number;
}

/** StateBackend: the database adapter a shared state store is built on (DynamoDbBackend, RedisBackend). */
export interface StateBackend {
  /** What it is, for messages: `dynamodb table t` or `redis 127.0.0.1:6379`. */
  readonly summary: string;
  /** Largest item body it takes, in bytes (DynamoDB: 400 KB per item). */
  readonly maxItemBytes: number;
  /** Calls made to the database so far (each request or pipelined round trip counts once). */
  readonly calls: number;
  /** Reads items by id (strongly consistent); missing items are absent from the result. */
  read(ids: readonly string[]): Promise<Map<string, VersionedItem>>;
  /** Applies conditional writes; per write, true if written, false if its version had moved. */
  write(writes: readonly ItemWrite[]): Promise<boolean[]>;
  /** Adds range ids to a namespace's set of open ranges (idempotent). */
  addRanges(namespace: string, ids: readonly string[]): Promise<void>;
  /** The open ranges, and the highest end of a range emitted so far (−∞ if none). */
  openRanges(namespace: string): Promise<{ ids: string[]; emittedUpTo: number }>;
  /** Removes an emitted range from the open set and raises the emitted-up-to mark to its end. */
  finishRange(namespace: string, id: string, end: number): Promise<void>;
  /**
   * Merges shard progress into the namespace's (each field only moves forward; closed stays
   * closed) atomically per shard, and returns every shard's progress (with `read: false` it may
   * return nothing: only the write is wanted).
   */
  progress(
    namespace: string,
    updates: readonly StoredShardProgress[],
    options?: ProgressOptions,
  ): Promise<StoredShardProgress[]>;
  /**
   * Claims a range for `claimant`: `won` if nobody holds it, `claimant` already does, or the
   * holder's claim is older than `expiredBefore` (epoch ms); `held` if another claimant holds it;
   * `done` if the range has been emitted and completed.
   */
  claim(
    namespace: string,
    rangeId: string,
    claimant: string,
    now: number,
    expiredBefore: number,
    expiresAt: number,
  ): Promise<'won' | 'held' | 'done'>;
  /**
   * Whether a range has been claimed for emission (held, taken over or done): a writer asks before
   * it creates new state for a range, since an emitter reads only the state that exists when it
   * seals the range.
   */
  claimed(namespace: string, rangeId: string): Promise<boolean>;
  /** Marks a claimed range as emitted for good: it can never be claimed again. */
  completeClaim(namespace: string, rangeId: string, expiresAt: number): Promise<void>;
  close(): Promise<void>;
}

/** Merges stored and new progress of one shard: every field forward only. */
export function mergeProgress(a: StoredShardProgress | undefined, b: StoredShardProgress): StoredShardProgress {
  if (!a) return { ...b };
  const out: StoredShardProgress = {
    shardId: b.shardId,
    maxEventTime: Math.max(a.maxEventTime, b.maxEventTime),
    sourceWatermark: Math.max(a.sourceWatermark, b.sourceWatermark),
    lastActivity: Math.max(a.lastActivity, b.lastActivity),
    closed: a.closed || b.closed,
  };
  const applied =
    a.applied === undefined
      ? b.applied
      : b.applied === undefined || comparePositions(a.applied, b.applied) >= 0
        ? a.applied
        : b.applied;
  if (applied !== undefined) out.applied = applied;
  // Ended by a flush; live again once a consumer registers it or reads from it again.
  const ended = b.ended === true || (a.ended === true && !(b.lastActivity > a.lastActivity));
  if (ended) out.ended = true;
  return out;
}

/** Progress as JSON (−∞ has no JSON form: it is written as null). */
export function progressToJson(p: StoredShardProgress): string {
  const n = (x: number) => (Number.isFinite(x) ? x : null);
  const o: Record<string, unknown> = {
    m: n(p.maxEventTime),
    w: n(p.sourceWatermark),
    a: n(p.lastActivity),
    c: p.closed,
  };
  if (p.applied !== undefined) o.p = p.applied;
  if (p.ended) o.e = true;
  return JSON.stringify(o);
}

export function progressFromJson(shardId: string, text: string): StoredShardProgress {
  const o = JSON.parse(text) as {
    m: number | null;
    w: number | null;
    a: number | null;
    c: boolean;
    p?: unknown;
    e?: unknown;
  };
  const n = (x: number | null) => (x === null ? Number.NEGATIVE_INFINITY : x);
  const out: StoredShardProgress = {
    shardId,
    maxEventTime: n(o.m),
    sourceWatermark: n(o.w),
    lastActivity: n(o.a),
    closed: o.c === true,
  };
  if (typeof o.p === 'string') out.applied = o.p;
  if (o.e === true) out.ended = true;
  return out;
}
