/**
 * Lease coordination for one worker, as the Kinesis Client Library coordinates its own: the
 * stream's shards each get a lease in the lease table (shard sync), held leases are renewed,
 * expired and free leases are taken, and the leases are balanced to an even share among the
 * workers that hold any — without a coordinator of its own: the table's conditional writes decide.
 *
 * - **Shard sync** (at start, every `shardSyncIntervalMs`, and at once when a shard reaches
 *   SHARD_END): `ListShards`, every page; a shard without a lease gets one with its parents and hash
 *   range. Its checkpoint is TRIM_HORIZON when a parent already had a lease (a reshard: the child's
 *   records follow its parents'); otherwise the initial position — except that with LATEST a closed
 *   shard starts at SHARD_END (nothing will arrive on it), so its children start at LATEST too. A
 *   shard with a descendant that has a lease gets none: it was read to its end and its lease
 *   cleaned up (see below), as KCL's non-empty lease table sync leaves such shards alone.
 * - **Renew** (every `renewIntervalMs`): each held lease, conditional on owner and counter; a failed
 *   condition means another worker took it (`onLost(shard, 'taken')`). The time a renewal was *sent*
 *   is kept: `mayWrite(shard)` holds only while now − that time ≤ failoverTime − fencingMargin (this
 *   worker's clock), and past that the lease is dropped locally (`'expired'`) — another worker can
 *   take it only failoverTime after it *saw* the counter change, which is after the write was sent.
 * - **Take** (every `takeIntervalMs`): KCL's rule — a lease is expired when its counter has not
 *   changed for failoverTime since this worker first saw that value (a lease that names this
 *   worker's id but is not held — a previous process's — too: that process may only be paused).
 *   Free and expired leases are taken up to the target, ceil(leases / workers), in a shuffled order
 *   (so workers starting together do not all race for the same lease; `random` is injectable), where workers
 *   are the distinct owners of unexpired leases and this one. With none to take and fewer than the
 *   target, up to `maxLeasesToStealAtOneTime` are stolen from the most loaded worker, when it holds
 *   more than the target (or the target while this one is two or more below it, so that 4 leases
 *   over 3 workers never stay 2/2/0). A **stolen** lease is held and renewed at once but becomes
 *   writable (and `onAcquired` is told) only failoverTime after the take was sent: by then the
 *   previous owner's own fencing has stopped its writes, whatever it believes. Leases whose shard
 *   is done (SHARD_END) and children whose parents are not (`parentsDone`) are neither taken nor
 *   counted.
 * - **Checkpoint**: conditional on owner and counter (it bumps the counter, as KCL's does, and
 *   counts as a renewal). SHARD_END also records the shard's children on the lease, after which the
 *   lease is no longer held (its shard is done) and a shard sync runs.
 * - **Cleanup** (with the take pass, every `leaseCleanupIntervalMs`), as KCL's LeaseCleanupManager: a
 *   lease checkpointed at SHARD_END is deleted (conditional on its counter and checkpoint) once the
 *   leases of its parents are gone and the leases of all its children exist and have checkpointed
 *   past TRIM_HORIZON/LATEST/AT_TIMESTAMP (they made progress, so nothing needs the parent's lease to
 *   wait on any more). Any worker may delete it; a lease whose children have not started never is,
 *   and parents go before their children, so none is left behind.
 * - **Stop**: no more takes; with `release`, each held lease has its owner cleared (counter + 1) so
 *   another worker takes it on its next pass, and `onLost(shard, 'released')` is told.
 *
 * Writes of one lease are serialized (a renew and a checkpoint never race each other's counter).
 * Time and timers are injectable; `runOnce()` is one renew pass and one take pass, for tests.
 */
import { type KinesisClient, ListShardsCommand, type Shard } from '@aws-sdk/client-kinesis';
import { ConfigError } from '@tributary/core/spi';
import type {
  CheckpointPosition,
  Lease,
  LeaseHolder,
  LeaseSettings,
  LeaseTable,
  SpecialCheckpoint,
  WorkerMetrics,
} from './leaseTypes.js';

export type InitialPosition = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';

/** KCL's defaults: failover 10 s, renew a third of it, fencing margin a fifth, steal 1, shard sync and lease cleanup 60 s. */
export function leaseSettings(given: Partial<LeaseSettings> = {}): LeaseSettings {
  const failoverTimeMs = given.failoverTimeMs ?? 10_000;
  const settings: LeaseSettings = {
    failoverTimeMs,
    renewIntervalMs: given.renewIntervalMs ?? Math.floor(failoverTimeMs / 3),
    fencingMarginMs: given.fencingMarginMs ?? Math.floor(failoverTimeMs / 5),
    maxLeasesToStealAtOneTime: given.maxLeasesToStealAtOneTime ?? 1,
    shardSyncIntervalMs: given.shardSyncIntervalMs ?? 60_000,
    leaseCleanupIntervalMs: given.leaseCleanupIntervalMs ?? 60_000,
  };
  const positive = (name: keyof LeaseSettings, min: number) => {
    const v = settings[name];
    if (!Number.isInteger(v) || v < min) {
      throw new ConfigError(`Expected \`${name}\` to be an integer of at least ${min}, got ${v}`);
    }
  };
  positive('failoverTimeMs', 1);
  positive('renewIntervalMs', 1);
  positive('fencingMarginMs', 0);
  positive('maxLeasesToStealAtOneTime', 1);
  positive('shardSyncIntervalMs', 1);
  positive('leaseCleanupIntervalMs', 1);
  if (settings.renewIntervalMs >= settings.failoverTimeMs - settings.fencingMarginMs) {
    throw new ConfigError(
      `Expected \`renewIntervalMs\` (${settings.renewIntervalMs}) to be below failoverTimeMs − fencingMarginMs (${settings.failoverTimeMs - settings.fencingMarginMs}): leases would lapse between renewals`,
    );
  }
  return settings;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface LeaseCoordinatorOptions {
  table: LeaseTable;
  kinesis: KinesisClient;
  streamName: string;
  /** The stream's ARN, sent with the name when given (AWS takes either; emulators know names). */
  streamArn?: string;
  workerId: string;
  settings?: Partial<LeaseSettings>;
  /** Where a new lease's shard is read from (default TRIM_HORIZON). */
  initialPosition?: InitialPosition;
  /** How often free and expired leases are looked for (default failoverTimeMs / 2). */
  takeIntervalMs?: number;
  /** The clock (default Date.now). */
  now?: () => number;
  /** Numbers in [0, 1) that shuffle the order free leases are taken in (default Math.random; seeded in tests). */
  random?: () => number;
  timers?: Timers;
  metrics?: WorkerMetrics;
  /** A pass that failed (the table or Kinesis unreachable): it is tried again on its interval. */
  onError?: (err: unknown) => void;
}

interface Held {
  lease: Lease;
  /** When the last successful renew, take or checkpoint of it was sent. */
  renewedAt: number;
  /** Processing may begin then (later than the take for a stolen lease). */
  writableAt: number;
  announced: boolean;
}

interface Sighting {
  counter: number;
  since: number;
}

const SHARD_END: SpecialCheckpoint = 'SHARD_END';
/** The checkpoints of a lease that has processed nothing yet. */
const STARTS = new Set<string>(['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP']);

const parentsOf = (shard: Shard): string[] =>
  [shard.ParentShardId, shard.AdjacentParentShardId].filter((p): p is string => !!p).sort();

export class LeaseCoordinator implements LeaseHolder {
  readonly workerId: string;
  readonly settings: LeaseSettings;
  private readonly table: LeaseTable;
  private readonly now: () => number;
  private readonly timers: Timers;
  private readonly takeIntervalMs: number;
  private readonly held_ = new Map<string, Held>();
  private readonly sightings = new Map<string, Sighting>();
  /** The leases as last listed (parentsDone reads them). */
  private known = new Map<string, Lease>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly acquired: ((lease: Lease) => void)[] = [];
  private readonly lost: ((shardId: string, why: 'taken' | 'expired' | 'released') => void)[] = [];
  private taking = true;
  private running = false;
  private handles: unknown[] = [];
  private lastSync = Number.NEGATIVE_INFINITY;
  private syncWanted = false;
  /** When the last cleanup pass ran (the first is due leaseCleanupIntervalMs after construction). */
  private lastCleanup: number;
  private readonly random: () => number;

  constructor(private readonly options: LeaseCoordinatorOptions) {
    if (!options.workerId) throw new ConfigError('Expected `workerId` to be a non-empty string, got ""');
    this.workerId = options.workerId;
    this.table = options.table;
    this.settings = leaseSettings(options.settings);
    this.now = options.now ?? Date.now;
    this.timers = options.timers ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    };
    this.takeIntervalMs = options.takeIntervalMs ?? Math.max(1, Math.floor(this.settings.failoverTimeMs / 2));
    this.random = options.random ?? Math.random;
    this.lastCleanup = this.now();
  }

  // ---- LeaseHolder --------------------------------------------------------------------------

  onAcquired(listener: (lease: Lease) => void): void {
    this.acquired.push(listener);
  }

  onLost(listener: (shardId: string, why: 'taken' | 'expired' | 'released') => void): void {
    this.lost.push(listener);
  }

  /** The leases held and announced, by shard id. */
  held(): Lease[] {
    return [...this.held_.values()]
      .filter((h) => h.announced)
      .map((h) => h.lease)
      .sort((a, b) => (a.leaseKey < b.leaseKey ? -1 : a.leaseKey > b.leaseKey ? 1 : 0));
  }

  mayWrite(shardId: string): boolean {
    const h = this.held_.get(shardId);
    if (!h) return false;
    const now = this.now();
    return now >= h.writableAt && now - h.renewedAt <= this.settings.failoverTimeMs - this.settings.fencingMarginMs;
  }

  checkpoint(shardId: string, position: CheckpointPosition): Promise<boolean> {
    return this.serial(shardId, async () => {
      const h = this.held_.get(shardId);
      if (!h || !this.mayWrite(shardId)) {
        if (h) this.drop(shardId, 'expired');
        return false;
      }
      const sentAt = this.now();
      const written = await this.guard('leases', () => this.table.checkpoint(h.lease, position));
      if (!written) {
        this.drop(shardId, 'taken');
        return false;
      }
      h.lease = written;
      h.renewedAt = sentAt;
      this.known.set(shardId, written);
      if (position.sequenceNumber === SHARD_END) {
        // The checkpoint is written; recording the children is a courtesy (KCL reads it for
        // cleanup), so a failure to list or write them is reported, not thrown.
        try {
          const children = await this.childrenOf(shardId);
          const withChildren = children.length > 0 ? await this.table.setChildren(written, children) : written;
          this.known.set(shardId, withChildren ?? written);
        } catch (err) {
          this.options.onError?.(err);
        }
        // The shard is done: not held any more (nothing left to renew or write), children are due.
        this.held_.delete(shardId);
        this.options.metrics?.leasesHeld(this.held_.size);
        this.syncWanted = true;
        // On timers, the children's leases are created now rather than at the next sync.
        if (this.running) {
          void this.syncShards().catch((err: unknown) => {
            this.syncWanted = true;
            this.options.onError?.(err);
          });
        }
      }
      return true;
    });
  }

  parentsDone(lease: Lease): boolean {
    return lease.parentShardIds.every((p) => {
      const parent = this.known.get(p);
      return parent === undefined || parent.checkpoint === SHARD_END;
    });
  }

  // ---- running ------------------------------------------------------------------------------

  /** Creates the table if absent, syncs shards, runs one pass and keeps renewing, taking and syncing on timers. */
  async start(): Promise<void> {
    await this.table.ensure();
    this.running = true;
    this.taking = true;
    await this.syncShards();
    await this.runOnce();
    this.loop(() => this.renewLeases(), this.settings.renewIntervalMs);
    this.loop(async () => {
      await this.takeLeases();
      await this.cleanupIfDue();
    }, this.takeIntervalMs);
    this.loop(() => this.syncShards(), this.settings.shardSyncIntervalMs);
  }

  /** One renew pass and one take pass (and a shard sync first when one is due). */
  async runOnce(): Promise<void> {
    if (this.syncWanted || this.now() - this.lastSync >= this.settings.shardSyncIntervalMs) {
      // Renewals must not wait on Kinesis: a failed listing is reported and tried again later.
      await this.syncShards().catch((err: unknown) => {
        this.syncWanted = true;
        this.options.onError?.(err);
      });
    }
    await this.renewLeases();
    await this.takeLeases();
    await this.cleanupIfDue();
  }

  /** No more leases are taken (a graceful shutdown's first step); held ones are still renewed. */
  stopTaking(): void {
    this.taking = false;
  }

  /**
   * Stops every timer; with `release`, clears this worker as owner of every held lease. Bounded
   * when the table does not answer: in-flight renewals and takes are waited for at most
   * min(failoverTime, 5 s), and the releases as long again; a lease not released expires after
   * failoverTime anyway. Every held lease is dropped locally ('released') either way.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.taking = false;
    this.running = false;
    for (const h of this.handles) this.timers.clearTimeout(h);
    this.handles = [];
    const bound = Math.min(this.settings.failoverTimeMs, 5_000);
    await this.bounded(Promise.allSettled([...this.chains.values()]), bound);
    if (!options.release) return;
    const releases = [...this.held_.values()].map(async (h) => {
      try {
        await this.guard('leases', () => this.table.release(h.lease));
      } catch (err) {
        this.options.onError?.(err); // it expires instead
      }
    });
    await this.bounded(Promise.allSettled(releases), bound);
    for (const shardId of [...this.held_.keys()]) this.drop(shardId, 'released');
  }

  /** `work`, or a wait of `ms` on the timers if that ends first. */
  private bounded(work: Promise<unknown>, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const handle = this.timers.setTimeout(resolve, ms);
      void work.then(() => {
        this.timers.clearTimeout(handle);
        resolve();
      });
    });
  }

  /** Lists the stream's shards and creates a lease for every shard that has none. */
  async syncShards(): Promise<void> {
    this.syncWanted = false;
    this.lastSync = this.now();
    const shards = await this.listShards();
    const leases = await this.guard('leases', () => this.table.list());
    this.remember(leases);
    const had = new Set(leases.map((l) => l.leaseKey));
    // Ancestors of shards with a lease: read to their end already (their leases may be cleaned up).
    const byId = new Map(shards.map((s) => [s.ShardId as string, s]));
    const ancestors = new Set<string>();
    const climb = (shardId: string) => {
      const shard = byId.get(shardId);
      if (!shard) return;
      for (const p of parentsOf(shard)) {
        if (ancestors.has(p)) continue;
        ancestors.add(p);
        climb(p);
      }
    };
    for (const shardId of had) climb(shardId);
    const initial = this.options.initialPosition ?? 'TRIM_HORIZON';
    for (const shard of shards) {
      const shardId = shard.ShardId as string;
      if (had.has(shardId) || ancestors.has(shardId)) continue;
      const parents = parentsOf(shard);
      const closed = !!shard.SequenceNumberRange?.EndingSequenceNumber;
      const checkpoint = parents.some((p) => had.has(p))
        ? 'TRIM_HORIZON'
        : initial === 'LATEST' && closed
          ? SHARD_END
          : initial;
      const lease: Lease = {
        leaseKey: shardId,
        leaseCounter: 0,
        checkpoint,
        checkpointSubSequenceNumber: 0,
        ownerSwitchesSinceCheckpoint: 0,
        parentShardIds: parents,
        childShardIds: [],
      };
      if (shard.HashKeyRange?.StartingHashKey !== undefined && shard.HashKeyRange.EndingHashKey !== undefined) {
        lease.startingHashKey = shard.HashKeyRange.StartingHashKey;
        lease.endingHashKey = shard.HashKeyRange.EndingHashKey;
      }
      if (await this.guard('leases', () => this.table.create(lease))) this.known.set(shardId, lease);
    }
  }

  /** Renews every held lease; drops those past the fencing horizon ('expired') or taken by another ('taken'). */
  async renewLeases(): Promise<void> {
    await Promise.all(
      [...this.held_.keys()].map((shardId) =>
        this.serial(shardId, async () => {
          const h = this.held_.get(shardId);
          if (!h) return;
          if (this.now() - h.renewedAt > this.settings.failoverTimeMs - this.settings.fencingMarginMs) {
            this.drop(shardId, 'expired');
            return;
          }
          const sentAt = this.now();
          let renewed: Lease | undefined;
          try {
            renewed = await this.guard('leases', () => this.table.renew(h.lease));
          } catch (err) {
            this.options.metrics?.leaseEvent('renewFailed');
            this.options.onError?.(err);
            return; // kept until the fencing horizon; the next pass tries again
          }
          if (!renewed) {
            this.drop(shardId, 'taken');
            return;
          }
          h.lease = renewed;
          h.renewedAt = sentAt;
          this.known.set(shardId, renewed);
        }),
      ),
    );
    this.announce();
  }

  /** One pass of KCL's lease taker: free and expired leases up to the target, else a steal. */
  async takeLeases(): Promise<void> {
    const scanAt = this.now();
    const leases = await this.guard('leases', () => this.table.list());
    this.remember(leases, scanAt);
    this.announce();
    if (!this.taking) return;
    const candidates = leases.filter((l) => l.checkpoint !== SHARD_END && this.parentsDone(l));
    const expired = (l: Lease) => {
      if (l.leaseOwner === undefined) return true;
      if (this.held_.has(l.leaseKey)) return false;
      // Another worker's lease — or one with this worker's id that it does not hold (an earlier
      // process with the same id, perhaps only paused): the same rule for both.
      const seen = this.sightings.get(l.leaseKey);
      return seen !== undefined && scanAt - seen.since >= this.settings.failoverTimeMs;
    };
    const counts = new Map<string, number>([[this.workerId, 0]]);
    for (const l of candidates) {
      if (expired(l) || l.leaseOwner === undefined) continue;
      counts.set(l.leaseOwner, (counts.get(l.leaseOwner) ?? 0) + 1);
    }
    const target = Math.ceil(candidates.length / counts.size);
    const mine = counts.get(this.workerId) ?? 0;
    let wanted = target - mine;
    if (wanted <= 0) return;
    const free = this.shuffled(candidates.filter(expired));
    const toTake: { lease: Lease; stolen: boolean }[] = free
      .slice(0, wanted)
      .map((lease) => ({ lease, stolen: false }));
    if (toTake.length === 0) {
      let most: [string, number] | undefined;
      for (const [owner, n] of counts) {
        if (owner !== this.workerId && (!most || n > most[1] || (n === most[1] && owner < most[0]))) most = [owner, n];
      }
      if (most && (most[1] > target || (most[1] === target && mine < target - 1))) {
        // Never so many that the victim falls below the target and steals back.
        wanted = Math.min(wanted, this.settings.maxLeasesToStealAtOneTime, Math.max(1, most[1] - target));
        const theirs = candidates.filter((l) => l.leaseOwner === most?.[0] && !expired(l)).reverse();
        for (const lease of theirs.slice(0, wanted)) toTake.push({ lease, stolen: true });
      }
    }
    const results = await Promise.all(toTake.map(({ lease, stolen }) => this.takeOne(lease, stolen)));
    // A steal races the owner's renewals (its condition is the counter this pass listed): when it
    // lost only to a renewal — the victim still owns the lease — it is tried once more on a fresh listing.
    const raced = toTake.filter((t, i) => t.stolen && !results[i]);
    if (raced.length > 0) {
      const fresh = await this.guard('leases', () => this.table.list());
      this.remember(fresh);
      const byKey = new Map(fresh.map((l) => [l.leaseKey, l]));
      await Promise.all(
        raced.map(({ lease }) => {
          const now = byKey.get(lease.leaseKey);
          if (!now || now.leaseOwner !== lease.leaseOwner || now.checkpoint === SHARD_END) return false;
          return this.takeOne(now, true);
        }),
      );
    }
    this.announce();
  }

  /**
   * One cleanup pass: deletes the lease of every ended shard whose parents' leases are gone and
   * whose children's leases all exist and have checkpointed past their start (see the module
   * comment). Returns the shards whose leases it deleted.
   */
  async cleanupLeases(): Promise<string[]> {
    this.lastCleanup = this.now();
    const leases = await this.guard('leases', () => this.table.list());
    const byKey = new Map(leases.map((l) => [l.leaseKey, l]));
    const started = (shardId: string) => {
      const child = byKey.get(shardId);
      return child !== undefined && !STARTS.has(child.checkpoint);
    };
    let shards: Shard[] | undefined;
    const deleted: string[] = [];
    for (const lease of leases) {
      if (lease.checkpoint !== SHARD_END || this.held_.has(lease.leaseKey)) continue;
      // Parents first: a child's lease stays while its parent's does (the parent's cleanup reads it).
      if (lease.parentShardIds.some((p) => byKey.has(p))) continue;
      let children = lease.childShardIds;
      if (children.length === 0) {
        // Not recorded at SHARD_END (that write is a courtesy): the stream says.
        shards ??= await this.listShards();
        children = shards
          .filter((s) => parentsOf(s).includes(lease.leaseKey))
          .map((s) => s.ShardId as string)
          .sort();
      }
      if (children.length === 0 || !children.every(started)) continue;
      if (await this.guard('leases', () => this.table.delete(lease))) {
        deleted.push(lease.leaseKey);
        this.known.delete(lease.leaseKey);
        this.sightings.delete(lease.leaseKey);
      }
    }
    return deleted;
  }

  // ---- internals ----------------------------------------------------------------------------

  /** A cleanup pass when one is due; a failed one is reported (and tried again on the next interval). */
  private async cleanupIfDue(): Promise<void> {
    if (this.now() - this.lastCleanup < this.settings.leaseCleanupIntervalMs) return;
    await this.cleanupLeases().catch((err: unknown) => this.options.onError?.(err));
  }

  /** `items` in a random order (Fisher–Yates over `random`). */
  private shuffled<T>(items: T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(this.random() * (i + 1)));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }

  /** Whether `lease` was taken. */
  private takeOne(lease: Lease, stolen: boolean): Promise<boolean> {
    return this.serial(lease.leaseKey, async () => {
      // A pass that listed before stopTaking()/stop() takes nothing after it.
      if (!this.taking || this.held_.has(lease.leaseKey)) return false;
      const sentAt = this.now();
      let taken: Lease | undefined;
      try {
        taken = await this.guard('leases', () => this.table.take(lease, this.workerId));
      } catch (err) {
        this.options.onError?.(err);
        return false;
      }
      if (!taken) return false; // someone else was quicker
      this.known.set(lease.leaseKey, taken);
      this.held_.set(lease.leaseKey, {
        lease: taken,
        renewedAt: sentAt,
        writableAt: stolen ? sentAt + this.settings.failoverTimeMs : sentAt,
        announced: false,
      });
      this.options.metrics?.leaseEvent(stolen ? 'stolen' : 'taken');
      this.options.metrics?.leasesHeld(this.held_.size);
      return true;
    });
  }

  /** Tells `onAcquired` of held leases that became writable. */
  private announce(): void {
    const now = this.now();
    for (const h of this.held_.values()) {
      if (h.announced || now < h.writableAt) continue;
      h.announced = true;
      for (const listener of this.acquired) listener(h.lease);
    }
  }

  private drop(shardId: string, why: 'taken' | 'expired' | 'released'): void {
    const h = this.held_.get(shardId);
    if (!h) return;
    this.held_.delete(shardId);
    this.options.metrics?.leaseEvent(why === 'released' ? 'released' : 'lost');
    this.options.metrics?.leasesHeld(this.held_.size);
    if (h.announced) for (const listener of this.lost) listener(shardId, why);
  }

  /** Keeps the listed leases and when each counter value was first seen (KCL's expiry clock). */
  private remember(leases: Lease[], at = this.now()): void {
    this.known = new Map(leases.map((l) => [l.leaseKey, l]));
    for (const l of leases) {
      const seen = this.sightings.get(l.leaseKey);
      if (!seen || seen.counter !== l.leaseCounter)
        this.sightings.set(l.leaseKey, { counter: l.leaseCounter, since: at });
    }
    for (const key of this.sightings.keys()) if (!this.known.has(key)) this.sightings.delete(key);
    // Held leases as this worker last wrote them are newer than any listing taken before the write.
    for (const h of this.held_.values()) {
      const listed = this.known.get(h.lease.leaseKey);
      if (!listed || listed.leaseCounter <= h.lease.leaseCounter) this.known.set(h.lease.leaseKey, h.lease);
    }
  }

  private async listShards(): Promise<Shard[]> {
    const shards: Shard[] = [];
    let token: string | undefined;
    const first = {
      StreamName: this.options.streamName,
      ...(this.options.streamArn ? { StreamARN: this.options.streamArn } : {}),
    };
    do {
      const input = token ? { NextToken: token } : first;
      const res = await this.guard('kinesis', () => this.options.kinesis.send(new ListShardsCommand(input)));
      shards.push(...(res.Shards ?? []).filter((s) => !!s.ShardId));
      token = res.NextToken;
    } while (token);
    return shards;
  }

  private async childrenOf(shardId: string): Promise<string[]> {
    const shards = await this.listShards();
    return shards
      .filter((s) => parentsOf(s).includes(shardId))
      .map((s) => s.ShardId as string)
      .sort();
  }

  /** Runs `fn` after every earlier write of the same lease has finished. */
  private serial<T>(shardId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.chains.get(shardId) ?? Promise.resolve();
    const next = before.then(fn, fn);
    const settled = next.catch(() => {});
    this.chains.set(shardId, settled);
    settled.then(() => {
      if (this.chains.get(shardId) === settled) this.chains.delete(shardId);
    });
    return next;
  }

  private async guard<T>(target: 'kinesis' | 'leases', fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      this.options.metrics?.call(target, 'ok');
      return out;
    } catch (err) {
      this.options.metrics?.call(target, 'error');
      throw err;
    }
  }

  /** Runs `pass` every `ms` while running (the next after the last finished); failures go to onError. */
  private loop(pass: () => Promise<void>, ms: number): void {
    const schedule = () => {
      if (!this.running) return;
      const handle = this.timers.setTimeout(async () => {
        this.handles = this.handles.filter((h) => h !== handle);
        try {
          await pass();
          if (this.syncWanted) await this.syncShards();
        } catch (err) {
          this.options.onError?.(err);
        }
        schedule();
      }, ms);
      this.handles.push(handle);
    };
    schedule();
  }
}
