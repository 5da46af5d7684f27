/**
 * The contract of window state kept outside the process (DynamoDB, Redis), shared by every
 * process and Lambda invocation that runs the same pipeline. Implementations live in
 * `@tributary/state`; core only defines what a window step asks of them.
 *
 * Scope: tumbling and hopping windows (aligned window ranges; sessions: SharedSessionStore below). Every key's window of one range
 * `[start, end)` is stored under that range, so a range is emitted as a whole.
 *
 * Exactly-once effect (see `store.ts` for the delta model): a delta is applied at most once per
 * (shard, position) with an atomic check-and-apply, so a replayed or re-cut batch adds nothing
 * twice. On top of that:
 *
 * - Watermarks: each shard's progress (max event time, the source's own watermark, last
 *   activity, closed) is written to the store; the watermark is computed over every live shard
 *   of every process, so a window fed by several shards fires only when all of them have passed
 *   it (a closed shard stops holding it back).
 * - Emission: a range whose end + allowed lateness the watermark has passed is *claimed* with a
 *   conditional write; only the claimant emits it. The claimant is the shard and position of the
 *   batch that emits, so a crashed and replayed batch claims (and emits) again, while any other
 *   consumer is refused. A claim nobody completes expires after `claimTimeout`, so a claimant
 *   that crashed for good does not hold a window forever: emission is at least once after a
 *   crash (with the same key, window bounds and sequence number, to de-duplicate downstream)
 *   and exactly once otherwise.
 * - Sealing: the claimant seals the range before reading it; a delta that reaches a sealed
 *   range (a record judged on time against an older view of the watermark) is refused with
 *   `closed` and its records go to the late output: counted, never silently lost.
 */
import type { Aggregator } from './aggregates.js';
import type { StoredWindow, WindowDelta, WindowRef } from './store.js';

/** A window range: every key's window with these bounds. */
export interface WindowRange {
  start: number;
  end: number;
}

export type SharedApplyOutcome =
  | { status: 'applied'; window: StoredWindow }
  | { status: 'duplicate' }
  | { status: 'overlap'; appliedUpTo: string }
  /** The range was sealed for emission: the delta was not applied. */
  | { status: 'closed' }
  /** The store cannot take the delta (e.g. the window's state would outgrow an item): not applied. */
  | { status: 'rejected'; reason: string };

/** One shard's progress as the store keeps it (see `Watermarks`). */
export interface StoredShardProgress {
  shardId: string;
  maxEventTime: number;
  sourceWatermark: number;
  lastActivity: number;
  closed: boolean;
  /**
   * The position (sequence number, `seq:sub` for KPL records) of the last record of the shard's
   * last acknowledged batch for this window step. Kept as long as the shard's progress, beyond
   * the lifetime of any window: a redelivered record at or below it was handled before, so it is
   * a duplicate — not applied again and not reported late.
   */
  applied?: string;
  /**
   * The input on this shard ended (the end-of-input flush of a finite run, e.g. `lambda-local` at
   * the end of a stream): it holds no window back. Unlike `closed` this is not for good: a later
   * batch with newer events on the shard makes it live again.
   */
  ended?: boolean;
}

/**
 * SharedWindowStore: one window step's state of tumbling and hopping windows (aligned ranges) in
 * a {@link StateStore}, shared by every process.
 */
export interface SharedWindowStore {
  /**
   * How long (ms) after a window closes its state is kept. Until then a record for it is sent to
   * the store, which knows whether it was emitted (late) or is a redelivery (a duplicate).
   */
  readonly retention: number;
  /**
   * Applies one batch's deltas (all read from one shard, `writer`), each at most once per (grain,
   * position). A range the `watermark` has closed (end + allowed lateness <= it) takes no delta
   * that is not applied already: it is `closed` (its records are late), as a sealed range is.
   * Resolves when every applied delta is durable; outcomes are in delta order.
   */
  apply(deltas: readonly WindowDelta[], writer: string, watermark?: number): Promise<SharedApplyOutcome[]>;
  /**
   * Writes the given shards' progress (monotonic: never moves back) and returns every shard's
   * (with `read: false`, only writes: the result may then be empty).
   */
  progress(updates: readonly StoredShardProgress[], options?: ProgressOptions): Promise<StoredShardProgress[]>;
  /** Ranges with state that have not been emitted yet. */
  openRanges(): Promise<WindowRange[]>;
  /**
   * Claims a range for `claimant` and, if the claim is this caller's, seals it and returns its
   * windows (every key); `undefined` if another claimant holds it.
   */
  claim(range: WindowRange, claimant: string, now: number): Promise<StoredWindow[] | undefined>;
  /**
   * Where only a partition key's records are in order (no shard position says what was handled),
   * records reported late from sealed windows are noted once the late output has them: each
   * one's position becomes its grain's applied position in the sealed state of `writer`, so a
   * redelivery is a duplicate, not late again. Best effort: state that is gone is skipped.
   */
  noteLate?(records: readonly LateRecord[], writer: string): Promise<void>;
  /** Forgets an emitted range (called once its output is durable). */
  emitted(range: WindowRange): Promise<void>;
}

/**
 * Session windows in a shared store. Sessions have no fixed bounds (they grow and merge), so they
 * are kept per key, not per range: one key's sessions live in one item, changed atomically (a
 * compare-and-set that the step's merge function runs inside). Each session remembers, per grain
 * (shard, or partition key), the highest position applied to it, as ranges do.
 *
 * Emission: a session due (its end + allowed lateness passed by the watermark) is claimed inside
 * the same item, emitted by the claimant, and once its output is durable turned into a tombstone
 * (its bounds and positions, kept `retention` ms of event time): a redelivered record for it is a
 * duplicate, a new one late. A claim nobody completes can be taken over after `claimTimeout`.
 */
export interface SessionState {
  /** Open sessions of the key. */
  open: StoredWindow[];
  /** Sessions claimed for emission (they take no more records): who claimed them and when. */
  claimed: (StoredWindow & { by: string; at: number })[];
  /** Tombstones of emitted sessions (bounds and positions; accumulators dropped). */
  emitted: StoredWindow[];
  /**
   * Per grain, the highest position of a record reported late (noted once the late output had
   * it, under partition-key ordering): the grain's records at or below it were all handled.
   */
  handled?: Record<string, string>;
}

/** SharedSessionStore: one window step's state of session and sliding windows (per key) in a {@link StateStore}, shared by every process. */
export interface SharedSessionStore {
  readonly retention: number;
  /**
   * Replaces each key's state by `fn(key, current)` atomically per key. `fn` must be pure: after
   * a conflict with another writer it is called again with the newer state. Resolves with the
   * keys whose change the store could not take (their item would outgrow its limit), each with
   * the reason; those keys are left as they were.
   */
  update(
    keys: readonly string[],
    fn: (key: string, current: SessionState) => SessionState,
  ): Promise<ReadonlyMap<string, string>>;
  /**
   * Claims every open session for which `due` holds, for `claimants[0]`, and takes over the
   * claims held by any of `claimants` or older than the claim timeout; returns them all.
   */
  claimDue(
    due: (w: StoredWindow) => boolean,
    claimants: readonly string[],
    now: number,
  ): Promise<{ window: StoredWindow; state: SessionState }[]>;
  /**
   * Turns claimed windows into tombstones (their output is durable); drops tombstones `expired`
   * says are old. Tombstones keep their accumulators while `keep` holds (sliding windows read
   * fired points until every window over them has fired), else only bounds and positions.
   */
  emitted(
    windows: readonly WindowRef[],
    expired: (w: StoredWindow) => boolean,
    keep?: (w: StoredWindow) => boolean,
  ): Promise<void>;
  /** Shard progress, as SharedWindowStore.progress. */
  progress(updates: readonly StoredShardProgress[], options?: ProgressOptions): Promise<StoredShardProgress[]>;
}

/** A record reported late from a sealed window (see SharedWindowStore.noteLate). */
export interface LateRecord {
  /** The window key's text. */
  key: string;
  start: number;
  end: number;
  grain: string;
  position: string;
}

/** How a progress write is made. */
export interface ProgressOptions {
  /** Read every shard's progress back (default true); false: only write (one shard's acknowledged position). */
  read?: boolean;
}

/** What a window step tells a state store about itself. */
export interface WindowScope {
  /** Stable name of the window step's state: `<pipeline>/<node>`. */
  namespace: string;
  aggregators: readonly Aggregator[];
  /** Allowed lateness (ms): state of a range is kept at least until end + lateness (+ TTL). */
  lateness: number;
}

/**
 * StateStore: a configured store of window state outside the process (a DynamoDB table, a Redis
 * server), what a window step's `state` names. One may serve several window steps; each gets its
 * own namespace, as a {@link SharedWindowStore} and a {@link SharedSessionStore}.
 */
export interface StateStore {
  readonly kind: 'tributary.state-store';
  /** Describes the store for `describe()`, e.g. `dynamodb table tributary-state`. */
  readonly summary: string;
  forWindows(scope: WindowScope): SharedWindowStore;
  /** Session and sliding windows (see SharedSessionStore); a store without it holds only tumbling and hopping windows. */
  forSessions?(scope: WindowScope): SharedSessionStore;
  /** Closes connections the store opened itself (injected clients stay open). */
  close(): Promise<void>;
}

export function isStateStore(x: unknown): x is StateStore {
  return typeof x === 'object' && x !== null && (x as StateStore).kind === 'tributary.state-store';
}
