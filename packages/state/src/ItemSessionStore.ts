/**
 * Session windows (`SharedSessionStore` in core) built on a {@link StateBackend}.
 *
 * Layout: every key's sessions live in one of `partitions` items, chosen by a hash of the key
 * (`<ns>|sessions|<n>|0`: each item its own partition key in DynamoDB). An item holds, per key,
 * its open sessions (bounds, accumulators, applied position per grain), the sessions claimed for
 * emission and the tombstones of emitted ones. Every change is a compare-and-set on the item's
 * version: the window step's merge runs inside it, and runs again on the newer state after a
 * conflict — so a key's sessions change atomically whatever shards feed them.
 *
 * Emission scans the items for due sessions, claims them in the same compare-and-set (a late
 * record can then not change them), and after the output is durable turns them into tombstones,
 * which keep the positions applied: a redelivered record is recognised as a duplicate. A claim not
 * completed within `claimTimeout` is taken over (emission is at least once after a crash).
 */
import {
  comparePositions,
  type ProgressOptions,
  type SessionState,
  type SharedSessionStore,
  type StoredShardProgress,
  type StoredWindow,
  type WindowRef,
  type WindowScope,
} from '@tributary/core/spi';
import type { ItemWrite, StateBackend, VersionedItem } from './backend.js';
import { StateStoreError } from './errors.js';
import { textHash } from './hash.js';
import type { WindowStateOptions } from './ItemWindowStore.js';
import { withRetries } from './retry.js';

type Claimed = SessionState['claimed'][number];
/** A key's entry: its value and state. */
type Entry = { keyValue: unknown; state: SessionState };

interface Item {
  version: number;
  keys: Map<string, Entry>;
}

/** Compact JSON: a window as [start, end, acc, positions] (claims add by, at). */
type W = [number, number, unknown[], Record<string, string>];
type C = [number, number, unknown[], Record<string, string>, string, number];

function encode(keys: Map<string, Entry>): string {
  const out: [string, unknown, W[], C[], W[], Record<string, string>?][] = [];
  for (const [key, { keyValue, state }] of keys) {
    const row: [string, unknown, W[], C[], W[], Record<string, string>?] = [
      key,
      keyValue,
      state.open.map((w) => [w.start, w.end, w.acc, w.positions]),
      state.claimed.map((w) => [w.start, w.end, w.acc, w.positions, w.by, w.at]),
      state.emitted.map((w) => [w.start, w.end, w.acc, w.positions]),
    ];
    if (state.handled) row.push(state.handled);
    out.push(row);
  }
  return JSON.stringify({ k: out });
}

function decode(item: VersionedItem): Item {
  const o = JSON.parse(item.body) as { k: [string, unknown, W[], C[], W[], Record<string, string>?][] };
  const keys = new Map<string, Entry>();
  for (const [key, keyValue, open, claimed, emitted, handled] of o.k) {
    const w = ([start, end, acc, positions]: W | C): StoredWindow => ({ key, keyValue, start, end, acc, positions });
    const state: SessionState = {
      open: open.map(w),
      claimed: claimed.map((c) => ({ ...w(c), by: c[4], at: c[5] })),
      emitted: emitted.map(w),
    };
    if (handled) state.handled = handled;
    keys.set(key, { keyValue, state });
  }
  return { version: item.version, keys };
}

const EMPTY: SessionState = Object.freeze({ open: [], claimed: [], emitted: [] }) as unknown as SessionState;

const MAX_CONFLICT_ROUNDS = 50;

/**
 * A key's tombstones without accumulators merged into one: the span of its emitted windows and,
 * per grain, the highest position applied to any of them. A key's records of one grain come in
 * order, so a record at or below that position was handled (a duplicate), and a record touching
 * the span is older than a window already emitted (late) — the same answers the separate
 * tombstones gave, in constant space per key. Tombstones that keep accumulators stay apart.
 */
function compact(tombstones: StoredWindow[]): StoredWindow[] {
  const kept: StoredWindow[] = [];
  let summary: StoredWindow | undefined;
  for (const t of tombstones) {
    if (t.acc.length > 0) {
      kept.push(t);
      continue;
    }
    if (!summary) {
      summary = { ...t, positions: { ...t.positions } };
      continue;
    }
    summary.start = Math.min(summary.start, t.start);
    summary.end = Math.max(summary.end, t.end);
    for (const [g, pos] of Object.entries(t.positions)) {
      const cur = summary.positions[g];
      if (cur === undefined || comparePositions(pos, cur) > 0) summary.positions[g] = pos;
    }
  }
  return summary ? [...kept, summary] : kept;
}
const same = (a: WindowRef, b: WindowRef) => a.key === b.key && a.start === b.start && a.end === b.end;

/** ItemSessionStore: one window step's {@link SharedSessionStore} (session, sliding) on a {@link StateBackend}'s versioned items. */
export class ItemSessionStore implements SharedSessionStore {
  readonly retention: number;
  private readonly ns: string;
  private readonly partitions: number;
  private readonly ttlMs: number;
  private readonly claimTimeout: number;
  /** The last version this process read or wrote, per item. */
  private readonly cache = new Map<string, Item>();

  constructor(
    private readonly backend: StateBackend,
    scope: WindowScope,
    private readonly options: WindowStateOptions = {},
  ) {
    this.ns = scope.namespace;
    this.partitions = options.partitions ?? 16;
    this.ttlMs = (options.ttl ?? 86_400) * 1000;
    this.claimTimeout = options.claimTimeout ?? 300_000;
    this.retention = this.ttlMs;
  }

  private itemId(partition: number): string {
    return `${this.ns}|sessions|${partition}|0`;
  }

  private retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return withRetries(`${what} (${this.backend.summary})`, fn, this.options.retry);
  }

  private async load(ids: readonly string[], fresh: boolean): Promise<void> {
    const missing = fresh ? ids : ids.filter((id) => !this.cache.has(id));
    if (missing.length === 0) return;
    const got = await this.retry('reading session state', () => this.backend.read(missing));
    for (const id of missing) {
      const item = got.get(id);
      this.cache.set(id, item ? decode(item) : { version: 0, keys: new Map() });
    }
  }

  /**
   * Changes items by compare-and-set: `change` returns the new key map of an item, or undefined
   * to leave it; it runs again on the newer version after a conflict.
   */
  private async changeItems(
    ids: readonly string[],
    fresh: boolean,
    change: (id: string, keys: Map<string, Entry>) => Map<string, Entry> | undefined,
    /** Called instead of failing when an item would outgrow the limit: the item is left as it is. */
    tooBig?: (id: string, reason: string) => void,
  ): Promise<void> {
    let pending = [...ids];
    for (let round = 0; pending.length > 0; round++) {
      if (round >= MAX_CONFLICT_ROUNDS) {
        throw new StateStoreError(
          `state store: ${pending.length} session item(s) kept changing under concurrent writers (${this.backend.summary}); the batch will be retried`,
        );
      }
      await this.load(pending, fresh && round === 0);
      const writes: ItemWrite[] = [];
      const next: Map<string, Entry>[] = [];
      for (const id of pending) {
        const item = this.cache.get(id) as Item;
        const keys = change(id, item.keys);
        if (keys === undefined) continue;
        const body = encode(keys);
        const bytes = Buffer.byteLength(body);
        if (bytes > this.backend.maxItemBytes) {
          const reason = `window state of ${keys.size} key(s) would take ${bytes} bytes in one item, over the ${this.backend.maxItemBytes}-byte limit of ${this.backend.summary}; raise \`partitions\` or bound the aggregate (e.g. collect's limit)`;
          if (!tooBig) throw new StateStoreError(`state store: ${reason}`);
          tooBig(id, reason);
          continue;
        }
        writes.push({ id, body, expected: item.version, expiresAt: Date.now() + this.ttlMs });
        next.push(keys);
      }
      const results =
        writes.length > 0 ? await this.retry('writing session state', () => this.backend.write(writes)) : [];
      pending = [];
      for (let i = 0; i < writes.length; i++) {
        const w = writes[i] as ItemWrite;
        if (results[i]) this.cache.set(w.id, { version: w.expected + 1, keys: next[i] as Map<string, Entry> });
        else {
          this.cache.delete(w.id);
          pending.push(w.id);
        }
      }
    }
  }

  async update(
    keys: readonly string[],
    fn: (key: string, current: SessionState) => SessionState,
  ): Promise<Map<string, string>> {
    const rejected = new Map<string, string>();
    const byItem = new Map<string, string[]>();
    for (const key of keys) {
      const id = this.itemId(textHash(key) % this.partitions);
      const list = byItem.get(id);
      if (list) list.push(key);
      else byItem.set(id, [key]);
    }
    await this.changeItems(
      [...byItem.keys()],
      false,
      (id, current) => {
        const out = new Map(current);
        for (const key of byItem.get(id) ?? []) {
          const entry = current.get(key);
          const state = fn(key, entry?.state ?? EMPTY);
          const keyValue = entry?.keyValue ?? state.open[0]?.keyValue ?? state.claimed[0]?.keyValue ?? null;
          if (state.open.length === 0 && state.claimed.length === 0 && state.emitted.length === 0) out.delete(key);
          else out.set(key, { keyValue, state });
        }
        return out;
      },
      (id, reason) => {
        for (const key of byItem.get(id) ?? []) rejected.set(key, reason);
      },
    );
    return rejected;
  }

  async claimDue(
    due: (w: StoredWindow) => boolean,
    claimants: readonly string[],
    now: number,
  ): Promise<{ window: StoredWindow; state: SessionState }[]> {
    const claimant = claimants[0] as string;
    const ids = Array.from({ length: this.partitions }, (_, p) => this.itemId(p));
    const claimed = new Map<string, { window: StoredWindow; state: SessionState }[]>();
    await this.changeItems(ids, true, (id, current) => {
      const mine: { window: StoredWindow; state: SessionState }[] = [];
      const out = new Map(current);
      let changed = false;
      for (const [key, entry] of current) {
        const { open, claimed: held, emitted } = entry.state;
        const taking = open.filter(due);
        // Claims of these claimants (a replayed batch emits again) or abandoned ones are taken over.
        const retake = held.filter((c) => claimants.includes(c.by) || c.at < now - this.claimTimeout);
        if (taking.length === 0 && retake.length === 0) continue;
        changed = true;
        const fresh: Claimed[] = [...taking, ...retake].map((w) => ({ ...w, by: claimant, at: now }));
        const state: SessionState = {
          ...entry.state,
          open: open.filter((w) => !taking.includes(w)),
          claimed: [...held.filter((c) => !retake.includes(c)), ...fresh],
          emitted,
        };
        out.set(key, { keyValue: entry.keyValue, state });
        for (const w of fresh) {
          const window = {
            key: w.key,
            keyValue: w.keyValue,
            start: w.start,
            end: w.end,
            acc: w.acc,
            positions: w.positions,
          };
          mine.push({ window, state });
        }
      }
      claimed.set(id, mine);
      return changed ? out : undefined;
    });
    return [...claimed.values()].flat();
  }

  async emitted(
    sessions: readonly WindowRef[],
    expired: (w: StoredWindow) => boolean,
    keep?: (w: StoredWindow) => boolean,
  ): Promise<void> {
    const byItem = new Map<string, WindowRef[]>();
    for (const s of sessions) {
      const id = this.itemId(textHash(s.key) % this.partitions);
      const list = byItem.get(id);
      if (list) list.push(s);
      else byItem.set(id, [s]);
    }
    // A tombstone keeps its accumulators while `keep` says so (sliding points), else only bounds and positions.
    const tombstone = (w: StoredWindow): StoredWindow =>
      keep?.(w) && w.acc.length > 0 ? w : { ...w, keyValue: null, acc: [] };
    await this.changeItems([...byItem.keys()], false, (id, current) => {
      const out = new Map(current);
      for (const ref of byItem.get(id) ?? []) {
        const entry = out.get(ref.key);
        if (!entry) continue;
        const done = entry.state.claimed.filter((c) => same(c, ref));
        if (done.length === 0) continue;
        const emitted = compact([
          ...entry.state.emitted.filter((t) => !expired(t)).map(tombstone),
          ...done.map((c) =>
            tombstone({
              key: c.key,
              keyValue: c.keyValue,
              start: c.start,
              end: c.end,
              acc: c.acc,
              positions: c.positions,
            }),
          ),
        ]);
        out.set(ref.key, {
          keyValue: entry.keyValue,
          state: { ...entry.state, claimed: entry.state.claimed.filter((c) => !same(c, ref)), emitted },
        });
      }
      return out;
    });
  }

  progress(updates: readonly StoredShardProgress[], options?: ProgressOptions): Promise<StoredShardProgress[]> {
    return this.retry('recording shard progress', () => this.backend.progress(this.ns, updates, options));
  }
}
