/**
 * The delta model every window state store follows (in memory or shared, see `shared.ts`), and
 * the in-memory store of session and sliding windows.
 *
 * Delivery is at least once; the store turns it into an exactly-once *effect*. Per batch the
 * window step pre-aggregates its records into one delta per (key, window) and hands the store
 * the deltas with the batch's shard id and the lowest and highest position (sequence number,
 * `sequence:subSequence` for KPL records) of the records in each delta. For every (key, window)
 * the store remembers, per shard, the highest position it has applied, and applies a delta only
 * to what is newer:
 *
 * - every record newer than the stored position (`minPosition` > stored): applied whole;
 * - nothing newer (`maxPosition` <= stored): a duplicate, skipped — not an error;
 * - an overlap (a replay cut differently, e.g. a bisected Lambda batch): the store applies
 *   nothing and reports the stored position; the step re-aggregates only the newer records and
 *   applies again.
 *
 * Records of one shard are applied in order, so "position <= stored" means "already applied".
 * Each delta is checked and applied atomically on its own; no multi-item transaction is needed
 * (DynamoDB: one conditional UpdateItem; Redis: one Lua script).
 */
import type { RecordEnvelope } from '../envelope.js';
import { comparePositions } from '../position.js';
import type { Aggregator } from './aggregates.js';

/** Identity of a window: canonical key text and bounds (end exclusive, epoch ms). */
export interface WindowRef {
  key: string;
  start: number;
  end: number;
}

/** One batch's contribution to one window. */
export interface WindowDelta extends WindowRef {
  /** The key as a value (string, number, boolean or null), for output records. */
  keyValue: unknown;
  /** One partial accumulator per aggregate, in the window step's aggregate order. */
  acc: unknown[];
  shardId: string;
  minPosition: string;
  maxPosition: string;
}

/** A window as the store holds it. */
export interface StoredWindow extends WindowRef {
  keyValue: unknown;
  acc: unknown[];
  /** Highest applied position per shard. */
  positions: Record<string, string>;
}

export type ApplyOutcome =
  | { status: 'applied'; window: StoredWindow; created: boolean }
  | { status: 'duplicate' }
  | { status: 'overlap'; appliedUpTo: string };

/**
 * The delta rule every window state store follows: what a delta (its lowest and highest
 * position) may change, given the position already applied for its shard or grain.
 */
export function classifyDelta(
  stored: string | undefined,
  delta: { minPosition: string; maxPosition: string },
): 'apply' | 'duplicate' | 'overlap' {
  if (stored === undefined || comparePositions(delta.minPosition, stored) > 0) return 'apply';
  if (comparePositions(delta.maxPosition, stored) <= 0) return 'duplicate';
  return 'overlap';
}

/**
 * One window's state. The window step uses one object per window through its whole life: the
 * batch's delta, the stored window (the in-memory store keeps the object it is given), and the
 * step's timer entry — so a new window costs one object, not a dozen.
 */
export class WindowState implements WindowDelta, StoredWindow {
  /** Applied positions: one shard's in two fields (the common case), more in an object. */
  private soleShard: string | undefined = undefined;
  private solePosition = '';
  private more: Record<string, string> | undefined = undefined;
  /** Sessions: the batch records merged into this delta. */
  records: RecordEnvelope[] | undefined = undefined;
  /** Next window of the same key in a batch's delta table. */
  nextInBatch: WindowState | undefined = undefined;
  /** Next window of the same key in the in-memory store. */
  nextInStore: WindowState | undefined = undefined;
  fireAt = 0;
  expireAt = 0;
  fired = false;
  /** Freed, or merged into another session: ignore its timers. */
  dead = false;
  /** In memory: position of the oldest record in the window (merged sessions: of any part). */
  retain: string | undefined = undefined;
  constructor(
    public key: string,
    public keyValue: unknown,
    public start: number,
    public end: number,
    public acc: unknown[],
    public shardId: string,
    public minPosition: string,
    public maxPosition: string,
  ) {}

  positionFor(shardId: string): string | undefined {
    if (this.more !== undefined) return this.more[shardId];
    return shardId === this.soleShard ? this.solePosition : undefined;
  }

  setPosition(shardId: string, position: string): void {
    if (this.more !== undefined) this.more[shardId] = position;
    else if (this.soleShard === undefined || this.soleShard === shardId) {
      this.soleShard = shardId;
      this.solePosition = position;
    } else this.more = { [this.soleShard]: this.solePosition, [shardId]: position };
  }

  /** Highest applied position per shard (a copy). */
  get positions(): Record<string, string> {
    if (this.more !== undefined) return { ...this.more };
    return this.soleShard === undefined ? {} : { [this.soleShard]: this.solePosition };
  }
  set positions(p: Record<string, string>) {
    this.soleShard = undefined;
    this.more = undefined;
    for (const [shard, position] of Object.entries(p)) this.setPosition(shard, position);
  }
}

/**
 * The window state of session and sliding windows kept in process memory (no shared store): per
 * open window only, freed when the window closes. Indexed by key, with the windows of one key
 * chained (a key rarely has more than a few open windows), so no id strings or per-key maps are
 * built on the hot path. It keeps the delta objects it is given as the stored windows.
 */
export class MemoryWindowStore {
  /**
   * The windows returned by `apply` are the store's live state, so a window's accumulators can be
   * read from them when it fires without another `get`.
   */
  readonly live = true;
  private readonly heads = new Map<string, WindowState>();
  private count = 0;
  /** Number of apply calls, for tests and benchmarks. */
  applyCalls = 0;

  get size(): number {
    return this.count;
  }

  private find(key: string, start: number): WindowState | undefined {
    let w = this.heads.get(key);
    while (w !== undefined && w.start !== start) w = w.nextInStore;
    return w;
  }

  private insert(w: WindowState): void {
    w.nextInStore = this.heads.get(w.key);
    this.heads.set(w.key, w);
    this.count++;
  }

  /** Applies each delta at most once per (shard, position), as described above. Outcomes are in delta order. */
  async apply(deltas: readonly WindowDelta[], aggregators: readonly Aggregator[]): Promise<ApplyOutcome[]> {
    this.applyCalls++;
    const out = new Array<ApplyOutcome>(deltas.length);
    for (let i = 0; i < deltas.length; i++) out[i] = this.applyOne(deltas[i] as WindowDelta, aggregators);
    return out;
  }

  applyOne(d: WindowDelta, aggregators: readonly Aggregator[]): ApplyOutcome {
    const w = this.find(d.key, d.start);
    const applied = w?.positionFor(d.shardId);
    const verdict = classifyDelta(applied, d);
    if (verdict === 'duplicate') return DUPLICATE;
    if (verdict === 'overlap') return { status: 'overlap', appliedUpTo: applied as string };
    if (!w) {
      const created =
        d instanceof WindowState
          ? d
          : new WindowState(d.key, d.keyValue, d.start, d.end, d.acc, d.shardId, d.minPosition, d.maxPosition);
      created.setPosition(d.shardId, d.maxPosition);
      this.insert(created);
      return { status: 'applied', window: created, created: true };
    }
    for (let i = 0; i < aggregators.length; i++) w.acc[i] = (aggregators[i] as Aggregator).merge(w.acc[i], d.acc[i]);
    w.setPosition(d.shardId, d.maxPosition);
    return { status: 'applied', window: w, created: false };
  }

  /** The stored windows of one key (session merging and sliding windows read them). */
  async windowsOf(key: string): Promise<StoredWindow[]> {
    const out: StoredWindow[] = [];
    for (let w = this.heads.get(key); w !== undefined; w = w.nextInStore) out.push(w);
    return out;
  }

  /** Replaces windows of one key by merged ones (session merges). */
  async replace(remove: readonly WindowRef[], add: readonly StoredWindow[]): Promise<void> {
    this.deleteNow(remove);
    for (const a of add) {
      const w = a instanceof WindowState ? a : new WindowState(a.key, a.keyValue, a.start, a.end, a.acc, '', '', '');
      if (w !== a) w.positions = a.positions;
      this.insert(w);
    }
  }

  async get(ref: WindowRef): Promise<StoredWindow | undefined> {
    return this.find(ref.key, ref.start);
  }

  /** Frees closed windows. */
  async delete(refs: readonly WindowRef[]): Promise<void> {
    this.deleteNow(refs);
  }

  private deleteNow(refs: readonly WindowRef[]): void {
    for (const r of refs) {
      let prev: WindowState | undefined;
      let w = this.heads.get(r.key);
      while (w !== undefined && w.start !== r.start) {
        prev = w;
        w = w.nextInStore;
      }
      if (w === undefined) continue;
      if (prev) prev.nextInStore = w.nextInStore;
      else if (w.nextInStore) this.heads.set(r.key, w.nextInStore);
      else this.heads.delete(r.key);
      w.nextInStore = undefined;
      this.count--;
    }
  }

  async close(): Promise<void> {}
}

const DUPLICATE: ApplyOutcome = Object.freeze({ status: 'duplicate' as const });
