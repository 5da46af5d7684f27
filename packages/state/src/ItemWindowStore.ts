/**
 * The shared window contract (`SharedWindowStore` in core) built on a {@link StateBackend}.
 *
 * Layout: each shard writes its own partial state of a window range `[start, end)`, spread over
 * `partitions` items by a hash of the key (`<ns>|<start>|<end>|<shard>|<n>`: in DynamoDB the
 * partition key spreads with the shards; above 16 partitions, 16 items per partition key,
 * `<shard>~<n div 16>`). An item holds, for its keys, the partial accumulators,
 * and per grain (the shard, or a partition key when only a key's records are in order) the
 * highest position applied. A batch costs one conditional write per item it touches — not one
 * per record, nor one per key — and, since only the shard's own consumer writes its items, the
 * write needs no read first and does not conflict with other shards' writers.
 *
 * Every write is a compare-and-set on the item's version: merge in memory with the window step's
 * own aggregators (so every aggregate, including count_distinct, collect and custom ones, merges
 * exactly as in memory), write if the version has not moved; on a conflict (an emitter sealed
 * it, or a second consumer of the shard wrote) read again and redo. A write whose response was
 * lost and that is retried comes back as a conflict, is read again and is then seen as already
 * applied: nothing is added twice.
 *
 * Emission: the emitter claims the range, lists the shards (a writer lists its shard before it
 * writes, and asks whether the range is claimed before it creates state for it), seals every
 * shard's items (creating empty sealed ones), and merges the partial windows of each key.
 */
import type { PipelineSpec, StoreSpec } from '@tributary/core';
import {
  type Aggregator,
  classifyDelta,
  comparePositions,
  type LateRecord,
  type ProgressOptions,
  type SharedApplyOutcome,
  type SharedWindowStore,
  type StateStore,
  type StoredShardProgress,
  type StoredWindow,
  type WindowDelta,
  type WindowRange,
  type WindowScope,
  walkComponents,
} from '@tributary/core/spi';
import Type from 'typebox';
import type { ItemWrite, StateBackend, VersionedItem } from './backend.js';
import { StateConfigError, StateStoreError } from './errors.js';
import { textHash } from './hash.js';
import { ItemSessionStore } from './ItemSessionStore.js';
import { type RetryOptions, withRetries } from './retry.js';

/** Options every shared store takes. */
export interface WindowStateOptions {
  /** Items per window range and shard (keys are spread over them by hash). Default 4 (sessions: items in all, default 16). */
  partitions?: number;
  /** Seconds state is kept after its window closes (sealed state and claims: after their last write), via TTL. Default 86400. */
  ttl?: number;
  /** Milliseconds after which an emission claim that was never completed may be taken over. Default 300000. */
  claimTimeout?: number;
  retry?: RetryOptions;
}

interface ItemBody {
  /** Key text → [key value, accumulators]. */
  w: Map<string, [unknown, unknown[]]>;
  /** Shard → highest applied position. */
  p: Map<string, string>;
  /** Sealed for emission: takes no more deltas. */
  s: boolean;
}

interface CachedItem {
  version: number;
  body: ItemBody;
}

const EMPTY = (): CachedItem => ({ version: 0, body: { w: new Map(), p: new Map(), s: false } });

function encode(b: ItemBody): string {
  const w: [string, unknown, unknown[]][] = [];
  for (const [k, [kv, acc]] of b.w) w.push([k, kv, acc]);
  return JSON.stringify({ w, p: [...b.p], s: b.s });
}

function decode(item: VersionedItem): CachedItem {
  const o = JSON.parse(item.body) as { w: [string, unknown, unknown[]][]; p: [string, string][]; s: boolean };
  const w = new Map<string, [unknown, unknown[]]>();
  for (const [k, kv, acc] of o.w) w.set(k, [kv, acc]);
  return { version: item.version, body: { w, p: new Map(o.p), s: o.s === true } };
}

const rangeId = (r: WindowRange) => `${r.start}:${r.end}`;

function parseRangeId(id: string): WindowRange {
  const [start, end] = id.split(':').map(Number);
  return { start: start as number, end: end as number };
}

/** The YAML schema of the options every shared store takes (see {@link WindowStateOptions}). */
export const windowStateFields = {
  ttl: Type.Optional(
    Type.Integer({ minimum: 1, description: 'seconds state is kept after its window closes, by TTL (default 86400)' }),
  ),
  partitions: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 1000,
      description: 'items per window range and shard (sessions: items in all; default 4 and 16)',
    }),
  ),
  claimTimeout: Type.Optional(
    Type.Integer({
      minimum: 1,
      description: 'ms after which an emission claim never completed may be taken over (default 300000)',
    }),
  ),
};

/** Checks the common options; throws with an exact message. */
export function checkWindowStateOptions(o: WindowStateOptions): void {
  const int = (name: string, v: unknown, min: number, max: number) => {
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= min && (v as number) <= max)) {
      throw new StateConfigError(`Expected \`${name}\` to be an integer from ${min} to ${max}, got ${String(v)}`);
    }
  };
  int('partitions', o.partitions, 1, 1000);
  int('ttl', o.ttl, 1, 366 * 86400);
  int('claimTimeout', o.claimTimeout, 1, 86_400_000);
}

/** The deltas of one grain (shard, or shard and partition key) for one item. */
interface Part {
  shardId: string;
  deltas: { d: WindowDelta; i: number }[];
  min: string;
  max: string;
}

/** The deltas of a batch that land in one item, by grain. */
interface Group {
  id: string;
  range: WindowRange;
  parts: Map<string, Part>;
}

/** Items of one shard's partial of a range under one DynamoDB partition key (see itemId). */
const ITEMS_PER_KEY = 16;

/** How many compare-and-set rounds an item may lose to other writers before the batch fails. */
const MAX_CONFLICT_ROUNDS = 50;

/** ItemWindowStore: one window step's {@link SharedWindowStore} (tumbling, hopping) on a {@link StateBackend}'s versioned items. */
export class ItemWindowStore implements SharedWindowStore {
  private readonly ns: string;
  private readonly aggregators: readonly Aggregator[];
  private readonly partitions: number;
  private readonly ttlMs: number;
  private readonly claimTimeout: number;
  readonly retention: number;
  private readonly lateness: number;
  /** The last version this process read or wrote, per item: a write needs no read first. */
  private readonly cache = new Map<string, CachedItem>();
  /** Ranges this process has already recorded as open. */
  private readonly knownRanges = new Set<string>();
  /** The highest end of an emitted range, as last read (loaded before the first apply). */
  private emittedUpTo: number | undefined;
  /** Writers (shards) this process has put in the store's shard list. */
  private readonly listed = new Set<string>();
  /** Ranges found unclaimed before this process first wrote state for them. */
  private readonly writable = new Set<string>();

  constructor(
    private readonly backend: StateBackend,
    scope: WindowScope,
    private readonly options: WindowStateOptions = {},
  ) {
    checkWindowStateOptions(options);
    this.ns = scope.namespace;
    this.aggregators = scope.aggregators;
    this.partitions = options.partitions ?? 4;
    this.ttlMs = (options.ttl ?? 86_400) * 1000;
    this.claimTimeout = options.claimTimeout ?? 300_000;
    this.retention = this.ttlMs;
    this.lateness = scope.lateness;
  }

  /** Item `partition` of `writer`'s (a shard's) partial state of a range. */
  private itemId(range: WindowRange, writer: string, partition: number): string {
    // In DynamoDB the id's last `|` splits partition key and sort key: with more than
    // ITEMS_PER_KEY items per shard and range, they are grouped under several partition keys
    // (`<shard>~<group>`), so a shard's writes (and its seal) spread instead of heating one key.
    const group = this.partitions > ITEMS_PER_KEY ? `~${Math.floor(partition / ITEMS_PER_KEY)}` : '';
    return `${this.ns}|${range.start}|${range.end}|${writer}${group}|${partition}`;
  }

  /** The id prefix of every item of a range. */
  private rangePrefix(range: WindowRange): string {
    return `${this.ns}|${range.start}|${range.end}|`;
  }

  /**
   * When an item written now may expire (the database expires by its own wall clock). An open
   * window's items live until `ttl` after the later of now and the window's close (end +
   * lateness), so a window is never lost while it can still be filled — event time tracks wall
   * clock in a live stream; in a replay of old data, `ttl` must outlast any pause. Sealed items
   * (and claims) live `ttl` after their last write.
   */
  private expiresAt(range: WindowRange, sealed: boolean): number {
    const now = Date.now();
    return (sealed ? now : Math.max(now, range.end + this.lateness)) + this.ttlMs;
  }

  private retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return withRetries(`${what} (${this.backend.summary})`, fn, this.options.retry);
  }

  async apply(
    deltas: readonly WindowDelta[],
    writer: string,
    watermark = Number.NEGATIVE_INFINITY,
  ): Promise<SharedApplyOutcome[]> {
    const outcomes = new Array<SharedApplyOutcome>(deltas.length);
    if (deltas.length === 0) return outcomes;
    if (this.emittedUpTo === undefined) await this.openRanges();
    const shard = writer;
    // The writer's shard is in the store's shard list before any of its state is: an emitter
    // lists the shards after claiming a range, and seals every listed shard's items.
    if (!this.listed.has(shard)) {
      await this.progress([
        {
          shardId: shard,
          maxEventTime: Number.NEGATIVE_INFINITY,
          sourceWatermark: Number.NEGATIVE_INFINITY,
          lastActivity: Number.NEGATIVE_INFINITY,
          closed: false,
        },
      ]);
      this.listed.add(shard);
    }
    const groups = new Map<string, Group>();
    for (let i = 0; i < deltas.length; i++) {
      const d = deltas[i] as WindowDelta;
      const range = { start: d.start, end: d.end };
      const id = this.itemId(range, shard, textHash(d.key) % this.partitions);
      let g = groups.get(id);
      if (!g) {
        g = { id, range, parts: new Map() };
        groups.set(id, g);
      }
      let part = g.parts.get(d.shardId);
      if (!part) {
        part = { shardId: d.shardId, deltas: [], min: d.minPosition, max: d.maxPosition };
        g.parts.set(d.shardId, part);
      }
      part.deltas.push({ d, i });
      if (comparePositions(d.minPosition, part.min) < 0) part.min = d.minPosition;
      if (comparePositions(d.maxPosition, part.max) > 0) part.max = d.maxPosition;
    }
    // Ranges are recorded as open before any of their state is written, so state never exists
    // that no consumer would emit.
    const fresh = new Set<string>();
    for (const g of groups.values()) {
      const r = rangeId(g.range);
      if (!this.knownRanges.has(r)) fresh.add(r);
    }
    if (fresh.size > 0) {
      await this.retry('recording open windows', () => this.backend.addRanges(this.ns, [...fresh]));
      for (const r of fresh) this.knownRanges.add(r);
    }
    let pending = [...groups.values()];
    for (let round = 0; pending.length > 0; round++) {
      if (round >= MAX_CONFLICT_ROUNDS) {
        throw new StateStoreError(
          `state store: ${pending.length} window item(s) kept changing under concurrent writers (${this.backend.summary}); the batch will be retried`,
        );
      }
      await this.load(pending.map((g) => g.id));
      // A range with no state of this writer yet may have been claimed (and sealed) without it:
      // ask before creating any (its items would be read by nobody).
      const fresh = new Set<string>();
      for (const g of pending) {
        const item = this.cache.get(g.id);
        if (item && item.version === 0 && !this.writable.has(rangeId(g.range))) fresh.add(rangeId(g.range));
      }
      const claimed = new Set<string>();
      for (const r of fresh) {
        if (await this.retry('reading a window claim', () => this.backend.claimed(this.ns, r))) claimed.add(r);
        else this.writable.add(r);
      }
      const writes: ItemWrite[] = [];
      const bodies: ItemBody[] = [];
      const writing: { g: Group; parts: Part[] }[] = [];
      /** Items dropped from the cache while they were read: read again next round. */
      const reread: Group[] = [];
      for (const g of pending) {
        const item = this.cache.get(g.id);
        if (item === undefined) {
          reread.push(g);
          continue;
        }
        // A range emitted before whose state has expired (TTL) must not be filled again: it would
        // be emitted a second time, with only the new records.
        const gone =
          item.version === 0 &&
          (g.range.end <= (this.emittedUpTo ?? Number.NEGATIVE_INFINITY) || claimed.has(rangeId(g.range)));
        // Closed by the watermark: what is not applied already is late, whether or not the range
        // has state (a redelivery of what was applied is found a duplicate first).
        const closed = g.range.end + this.lateness <= watermark;
        const w = new Map(item.body.w);
        const p = new Map(item.body.p);
        const applying: Part[] = [];
        for (const part of g.parts.values()) {
          const applied = item.body.p.get(part.shardId);
          const verdict = classifyDelta(applied, { minPosition: part.min, maxPosition: part.max });
          // A redelivery is a duplicate even after the window was emitted: it was counted.
          if (verdict === 'duplicate') {
            for (const { i } of part.deltas) outcomes[i] = DUPLICATE;
          } else if ((item.body.s || gone || closed) && verdict === 'apply') {
            for (const { i } of part.deltas) outcomes[i] = CLOSED;
          } else if (verdict === 'overlap') {
            for (const { i } of part.deltas) outcomes[i] = { status: 'overlap', appliedUpTo: applied as string };
          } else {
            for (const { d } of part.deltas) {
              const prev = w.get(d.key);
              const acc = prev
                ? prev[1].map((a, k) => (this.aggregators[k] as Aggregator).merge(a, d.acc[k]))
                : d.acc.slice();
              w.set(d.key, [d.keyValue, acc]);
            }
            p.set(part.shardId, part.max);
            applying.push(part);
          }
        }
        if (applying.length === 0) continue;
        const body: ItemBody = { w, p, s: false };
        const text = encode(body);
        const bytes = Buffer.byteLength(text);
        if (bytes > this.backend.maxItemBytes) {
          const reason = `window state for ${w.size} key(s) and ${p.size} applied position(s) of window [${g.range.start}, ${g.range.end}) would take ${bytes} bytes, over the ${this.backend.maxItemBytes}-byte item limit of ${this.backend.summary}; raise \`partitions\` (more keys), bound the aggregate (e.g. collect's limit), or — with partition-key ordering, where every partition key keeps its own position — use the window key as the partition key`;
          for (const part of applying) for (const { i } of part.deltas) outcomes[i] = { status: 'rejected', reason };
          continue;
        }
        writes.push({ id: g.id, body: text, expected: item.version, expiresAt: this.expiresAt(g.range, false) });
        bodies.push(body);
        writing.push({ g, parts: applying });
      }
      const results =
        writes.length > 0 ? await this.retry('writing window state', () => this.backend.write(writes)) : [];
      pending = reread;
      for (let k = 0; k < writing.length; k++) {
        const { g, parts } = writing[k] as { g: Group; parts: Part[] };
        const wr = writes[k] as ItemWrite;
        if (!results[k]) {
          this.cache.delete(g.id); // someone else wrote it: read again
          // Only the parts that were being applied are tried again; the others have their outcome.
          pending.push({ ...g, parts: new Map(parts.map((part) => [part.shardId, part])) });
          continue;
        }
        const body = bodies[k] as ItemBody;
        this.cache.set(g.id, { version: wr.expected + 1, body });
        const positions = Object.fromEntries(body.p);
        for (const part of parts) {
          for (const { d, i } of part.deltas) {
            const [keyValue, acc] = body.w.get(d.key) as [unknown, unknown[]];
            outcomes[i] = {
              status: 'applied',
              window: { key: d.key, keyValue, start: d.start, end: d.end, acc, positions },
            };
          }
        }
      }
    }
    return outcomes;
  }

  /** Makes sure the cache holds these items (reading those it lacks). */
  private async load(ids: readonly string[]): Promise<void> {
    const missing = ids.filter((id) => !this.cache.has(id));
    if (missing.length === 0) return;
    const got = await this.retry('reading window state', () => this.backend.read(missing));
    for (const id of missing) {
      const item = got.get(id);
      this.cache.set(id, item ? decode(item) : EMPTY());
    }
  }

  async progress(updates: readonly StoredShardProgress[], options?: ProgressOptions): Promise<StoredShardProgress[]> {
    const all = await this.retry('recording shard progress', () => this.backend.progress(this.ns, updates, options));
    for (const p of all) this.listed.add(p.shardId);
    return all;
  }

  async openRanges(): Promise<WindowRange[]> {
    const { ids, emittedUpTo } = await this.retry('listing open windows', () => this.backend.openRanges(this.ns));
    this.emittedUpTo = Math.max(this.emittedUpTo ?? Number.NEGATIVE_INFINITY, emittedUpTo);
    // Forget what this process keeps of ranges emitted since (by any consumer).
    for (const id of this.cache.keys()) {
      const parts = id.slice(this.ns.length + 1).split('|');
      if (Number(parts[1]) <= this.emittedUpTo) this.cache.delete(id);
    }
    for (const r of this.knownRanges) if (parseRangeId(r).end <= this.emittedUpTo) this.knownRanges.delete(r);
    return ids.map(parseRangeId);
  }

  async claim(range: WindowRange, claimant: string, now: number): Promise<StoredWindow[] | undefined> {
    const id = rangeId(range);
    const verdict = await this.retry('claiming a window emission', () =>
      this.backend.claim(this.ns, id, claimant, now, now - this.claimTimeout, this.expiresAt(range, true)),
    );
    if (verdict === 'done') {
      // Emitted and completed before (a late record re-opened it): nothing more to emit.
      await this.retry('forgetting an emitted window', () => this.backend.finishRange(this.ns, id, range.end));
      this.forget(range);
      return undefined;
    }
    if (verdict === 'held') return undefined;
    // Every shard that may hold state of the range is listed by now (writers list themselves
    // before writing, and ask for the claim before creating state): seal all their items.
    const writers = (await this.progress([])).map((p) => p.shardId);
    const bodies = await this.seal(range, writers);
    // A key fed by several shards has a partial window in each: merge them.
    const byKey = new Map<string, StoredWindow>();
    for (const body of bodies) {
      for (const [key, [keyValue, acc]] of body.w) {
        const cur = byKey.get(key);
        if (!cur) {
          byKey.set(key, {
            key,
            keyValue,
            start: range.start,
            end: range.end,
            acc: acc.slice(),
            positions: Object.fromEntries(body.p),
          });
          continue;
        }
        cur.acc = cur.acc.map((a, k) => (this.aggregators[k] as Aggregator).merge(a, acc[k]));
        for (const [g, pos] of body.p) cur.positions[g] = pos;
      }
    }
    return [...byKey.values()];
  }

  /**
   * Seals every item of a range of every writer (creating empty sealed ones), so no delta lands
   * after emission.
   */
  private async seal(range: WindowRange, writers: readonly string[]): Promise<ItemBody[]> {
    const ids = writers.flatMap((w) => Array.from({ length: this.partitions }, (_, p) => this.itemId(range, w, p)));
    const sealed = new Map<string, ItemBody>();
    const written = await this.rewrite(
      ids,
      'sealing a window for emission',
      () => `state store: could not seal window [${range.start}, ${range.end}) for emission`,
      (id, item) => {
        if (item.body.s) {
          sealed.set(id, item.body);
          return undefined;
        }
        const body: ItemBody = { ...item.body, s: true };
        return { body, text: encode(body), expiresAt: this.expiresAt(range, true) };
      },
    );
    return ids.map((id) => (sealed.get(id) ?? written.get(id)) as ItemBody);
  }

  /**
   * Rewrites items by compare-and-set, in rounds: each round reads the pending items afresh,
   * `next` gives an item's new body (encoded as `text`) and expiry, or nothing to write, and an
   * item another writer changed meanwhile goes to the next round; after MAX_CONFLICT_ROUNDS the
   * batch fails with the message `tooMany` gives for the items still pending. Returns the bodies
   * written, by item id.
   */
  private async rewrite(
    ids: readonly string[],
    what: string,
    tooMany: (pending: number) => string,
    next: (id: string, item: CachedItem) => { body: ItemBody; text: string; expiresAt: number } | undefined,
  ): Promise<Map<string, ItemBody>> {
    const written = new Map<string, ItemBody>();
    let pending = [...ids];
    for (let round = 0; pending.length > 0; round++) {
      if (round >= MAX_CONFLICT_ROUNDS) throw new StateStoreError(tooMany(pending.length));
      for (const id of pending) this.cache.delete(id);
      await this.load(pending);
      const writes: ItemWrite[] = [];
      const bodies: ItemBody[] = [];
      for (const id of pending) {
        const item = this.cache.get(id) as CachedItem;
        const change = next(id, item);
        if (!change) continue;
        writes.push({ id, body: change.text, expected: item.version, expiresAt: change.expiresAt });
        bodies.push(change.body);
      }
      const results = writes.length > 0 ? await this.retry(what, () => this.backend.write(writes)) : [];
      pending = [];
      for (let k = 0; k < writes.length; k++) {
        const w = writes[k] as ItemWrite;
        if (results[k]) {
          written.set(w.id, bodies[k] as ItemBody);
          this.cache.set(w.id, { version: w.expected + 1, body: bodies[k] as ItemBody });
        } else pending.push(w.id);
      }
    }
    return written;
  }

  /**
   * Notes late records' positions in the items they would have gone to (see
   * SharedWindowStore.noteLate): each grain's applied position in the item moves up to the
   * record's, so a redelivery is a duplicate there (an item this writer had not made is made,
   * sealed and without windows). Items the positions would take over the item limit are left as
   * they are: their redeliveries are reported late again.
   */
  async noteLate(records: readonly LateRecord[], writer: string): Promise<void> {
    const byItem = new Map<string, { range: WindowRange; grains: Map<string, string> }>();
    for (const r of records) {
      const range = { start: r.start, end: r.end };
      const id = this.itemId(range, writer, textHash(r.key) % this.partitions);
      let entry = byItem.get(id);
      if (!entry) {
        entry = { range, grains: new Map() };
        byItem.set(id, entry);
      }
      const at = entry.grains.get(r.grain);
      if (at === undefined || comparePositions(r.position, at) > 0) entry.grains.set(r.grain, r.position);
    }
    await this.rewrite(
      [...byItem.keys()],
      'noting late records',
      (pending) => `state store: late records could not be noted in ${pending} window item(s)`,
      (id, item) => {
        const { range, grains } = byItem.get(id) as { range: WindowRange; grains: Map<string, string> };
        // (A range closed by the watermark may have no item of this writer, or an open one: the
        // positions go there too; an item made for them holds no window, sealed.)
        const p = new Map(item.body.p);
        let moved = false;
        for (const [grain, position] of grains) {
          const at = p.get(grain);
          if (at === undefined || comparePositions(position, at) > 0) {
            p.set(grain, position);
            moved = true;
          }
        }
        if (!moved) return undefined;
        const body: ItemBody = item.version === 0 ? { w: new Map(), p, s: true } : { ...item.body, p };
        const text = encode(body);
        if (Buffer.byteLength(text) > this.backend.maxItemBytes) return undefined;
        return { body, text, expiresAt: this.expiresAt(range, true) };
      },
    );
  }

  async emitted(range: WindowRange): Promise<void> {
    const id = rangeId(range);
    await this.retry('completing a window emission', () =>
      this.backend.completeClaim(this.ns, id, this.expiresAt(range, true)),
    );
    await this.retry('forgetting an emitted window', () => this.backend.finishRange(this.ns, id, range.end));
    this.forget(range);
  }

  /**
   * Drops what this process keeps of a range that is done. A record that still reaches it (late)
   * records the range again, finds its items sealed and is reported late; the range's completed
   * claim then removes it again.
   */
  private forget(range: WindowRange): void {
    const prefix = this.rangePrefix(range);
    for (const id of this.cache.keys()) if (id.startsWith(prefix)) this.cache.delete(id);
    this.knownRanges.delete(rangeId(range));
    this.writable.delete(rangeId(range));
  }

  /** Number of items cached (for tests). */
  get cachedItems(): number {
    return this.cache.size;
  }
}

const CLOSED: SharedApplyOutcome = Object.freeze({ status: 'closed' as const });
const DUPLICATE: SharedApplyOutcome = Object.freeze({ status: 'duplicate' as const });

/**
 * ItemStateStore: the {@link StateStore} over one {@link StateBackend} (a table, a Redis server);
 * each window step gets its own namespace, with an {@link ItemWindowStore} and an {@link ItemSessionStore}.
 */
export class ItemStateStore<B extends StateBackend> implements StateStore {
  readonly kind = 'tributary.state-store' as const;
  readonly summary: string;
  constructor(
    readonly backend: B,
    private readonly options: WindowStateOptions,
  ) {
    checkWindowStateOptions(options);
    this.summary = backend.summary;
  }
  forWindows(scope: WindowScope): ItemWindowStore {
    return new ItemWindowStore(this.backend, scope, this.options);
  }
  forSessions(scope: WindowScope): ItemSessionStore {
    return new ItemSessionStore(this.backend, scope, this.options);
  }
  close(): Promise<void> {
    return this.backend.close();
  }
}

/** Every window step's state store in a pipeline (branch routes included), with its path. */
export function stateStoresOf(spec: PipelineSpec): { path: string; store: StoreSpec }[] {
  const out: { path: string; store: StoreSpec }[] = [];
  for (const c of walkComponents(spec))
    if (c.category === 'store') out.push({ path: c.path, store: { [c.kind]: c.spec } as StoreSpec });
  return out;
}
