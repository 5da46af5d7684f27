/**
 * The window state-store contract, and its in-memory implementation.
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
import type { Aggregator } from './aggregates.js';
import { comparePositions } from './aggregates.js';

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

export interface WindowStore {
  /**
   * True when the windows returned by `apply` are the store's live state (the in-memory store),
   * so a window's accumulators can be read from them when it fires without another `get`.
   */
  readonly live: boolean;
  /** Applies each delta at most once per (shard, position), as described above. Outcomes are in delta order. */
  apply(deltas: readonly WindowDelta[], aggregators: readonly Aggregator[]): Promise<ApplyOutcome[]>;
  /** The stored windows of one key (session merging and sliding windows read them). */
  windowsOf(key: string): Promise<StoredWindow[]>;
  /** Replaces windows of one key by merged ones (session merges). */
  replace(remove: readonly WindowRef[], add: readonly StoredWindow[]): Promise<void>;
  get(ref: WindowRef): Promise<StoredWindow | undefined>;
  /** Frees closed windows. */
  delete(refs: readonly WindowRef[]): Promise<void>;
  close(): Promise<void>;
}

/** Decides what a delta may change, given the position already applied for its shard. */
export function classify(
  stored: string | undefined,
  delta: { minPosition: string; maxPosition: string },
): 'apply' | 'duplicate' | 'overlap' {
  if (stored === undefined || comparePositions(delta.minPosition, stored) > 0) return 'apply';
  if (comparePositions(delta.maxPosition, stored) <= 0) return 'duplicate';
  return 'overlap';
}

/**
 * Window state in process memory: per open window only, freed when the window closes. Indexed
 * key → window start → window (no window has two ends for one key and start), so no id strings
 * are built on the hot path.
 */
export class MemoryWindowStore implements WindowStore {
  readonly live = true;
  private readonly byKey = new Map<string, Map<number, StoredWindow>>();
  private count = 0;
  /** Number of apply calls, for tests and benchmarks. */
  applyCalls = 0;

  get size(): number {
    return this.count;
  }

  async apply(deltas: readonly WindowDelta[], aggregators: readonly Aggregator[]): Promise<ApplyOutcome[]> {
    this.applyCalls++;
    const out = new Array<ApplyOutcome>(deltas.length);
    for (let i = 0; i < deltas.length; i++) out[i] = this.applyOne(deltas[i] as WindowDelta, aggregators);
    return out;
  }

  applyOne(d: WindowDelta, aggregators: readonly Aggregator[]): ApplyOutcome {
    let starts = this.byKey.get(d.key);
    const w = starts?.get(d.start);
    const verdict = classify(w?.positions[d.shardId], d);
    if (verdict === 'duplicate') return { status: 'duplicate' };
    if (verdict === 'overlap')
      return { status: 'overlap', appliedUpTo: (w as StoredWindow).positions[d.shardId] as string };
    if (!w) {
      const created: StoredWindow = {
        key: d.key,
        start: d.start,
        end: d.end,
        keyValue: d.keyValue,
        acc: d.acc,
        positions: { [d.shardId]: d.maxPosition },
      };
      if (!starts) {
        starts = new Map();
        this.byKey.set(d.key, starts);
      }
      starts.set(d.start, created);
      this.count++;
      return { status: 'applied', window: created, created: true };
    }
    for (let i = 0; i < aggregators.length; i++) w.acc[i] = (aggregators[i] as Aggregator).merge(w.acc[i], d.acc[i]);
    w.positions[d.shardId] = d.maxPosition;
    return { status: 'applied', window: w, created: false };
  }

  async windowsOf(key: string): Promise<StoredWindow[]> {
    const starts = this.byKey.get(key);
    return starts ? [...starts.values()] : [];
  }

  async replace(remove: readonly WindowRef[], add: readonly StoredWindow[]): Promise<void> {
    this.deleteNow(remove);
    for (const w of add) {
      let starts = this.byKey.get(w.key);
      if (!starts) {
        starts = new Map();
        this.byKey.set(w.key, starts);
      }
      starts.set(w.start, w);
      this.count++;
    }
  }

  async get(ref: WindowRef): Promise<StoredWindow | undefined> {
    return this.byKey.get(ref.key)?.get(ref.start);
  }

  async delete(refs: readonly WindowRef[]): Promise<void> {
    this.deleteNow(refs);
  }

  private deleteNow(refs: readonly WindowRef[]): void {
    for (const r of refs) {
      const starts = this.byKey.get(r.key);
      if (!starts?.delete(r.start)) continue;
      this.count--;
      if (starts.size === 0) this.byKey.delete(r.key);
    }
  }

  async close(): Promise<void> {}
}
