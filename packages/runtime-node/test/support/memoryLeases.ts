// In-memory lease coordination for the worker's tests: one MemoryLeaseTable shared by the
// workers of a test (in one process), each with its own MemoryLeases. It follows the lease
// protocol in outline — leases created for the stream's shards (children wait for their parents'
// SHARD_END), renewals every pass, a lease not renewed within failoverMs taken, an even share
// with one lease stolen per pass from the most loaded worker, checkpoints conditional on the
// owner, fencing by the holder's own clock, release on a graceful stop — without DynamoDB.
import { type KinesisClient, ListShardsCommand, type Shard } from '@aws-sdk/client-kinesis';
import type { CheckpointPosition, Lease } from '../../src/leaseTypes.js';
import type { LeaseCoordination } from '../../src/worker.js';

export class MemoryLeaseTable {
  readonly leases = new Map<string, Lease>();
  /** When each lease was last renewed or taken (ms, the table's clock). */
  readonly renewedAt = new Map<string, number>();
  /** Every checkpoint written, in order (for tests). */
  readonly checkpoints: { shardId: string; owner: string; position: CheckpointPosition }[] = [];
}

export interface MemoryLeasesOptions {
  table: MemoryLeaseTable;
  kinesis: KinesisClient;
  stream: string;
  workerId: string;
  initialPosition?: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  failoverMs?: number;
  passMs?: number;
  now?: () => number;
}

export class MemoryLeases implements LeaseCoordination {
  readonly workerId: string;
  private readonly acquired: ((lease: Lease) => void)[] = [];
  private readonly lost: ((shardId: string, why: 'taken' | 'expired' | 'released') => void)[] = [];
  /** When this worker last renewed each lease it holds, by its own clock. */
  private readonly renewed = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly failoverMs: number;
  private readonly now: () => number;
  /** Renewals paused (a zombie: the process keeps running but its renewals stop). */
  paused = false;
  takes = 0;
  steals = 0;

  constructor(private readonly options: MemoryLeasesOptions) {
    this.workerId = options.workerId;
    this.failoverMs = options.failoverMs ?? 1000;
    this.now = options.now ?? Date.now;
  }

  onAcquired(listener: (lease: Lease) => void): void {
    this.acquired.push(listener);
  }
  onLost(listener: (shardId: string, why: 'taken' | 'expired' | 'released') => void): void {
    this.lost.push(listener);
  }

  held(): Lease[] {
    return [...this.options.table.leases.values()].filter((l) => l.leaseOwner === this.workerId).map((l) => ({ ...l }));
  }

  mayWrite(shardId: string): boolean {
    const lease = this.options.table.leases.get(shardId);
    const at = this.renewed.get(shardId);
    if (lease?.leaseOwner !== this.workerId || at === undefined) return false;
    return this.now() - at < this.failoverMs - this.failoverMs / 5;
  }

  async checkpoint(shardId: string, position: CheckpointPosition): Promise<boolean> {
    const lease = this.options.table.leases.get(shardId);
    if (lease?.leaseOwner !== this.workerId) return false;
    lease.checkpoint = position.sequenceNumber;
    lease.checkpointSubSequenceNumber = position.subSequenceNumber;
    lease.ownerSwitchesSinceCheckpoint = 0;
    this.options.table.checkpoints.push({ shardId, owner: this.workerId, position });
    return true;
  }

  parentsDone(lease: Lease): boolean {
    return lease.parentShardIds.every((p) => {
      const parent = this.options.table.leases.get(p);
      return parent === undefined || parent.checkpoint === 'SHARD_END';
    });
  }

  async start(): Promise<void> {
    await this.syncShards();
    this.pass();
    this.timer = setInterval(() => {
      this.syncShards()
        .then(() => this.pass())
        .catch(() => {});
    }, this.options.passMs ?? 50);
  }

  async stop({ release }: { release: boolean }): Promise<void> {
    clearInterval(this.timer);
    if (!release) return;
    for (const lease of this.options.table.leases.values()) {
      if (lease.leaseOwner !== this.workerId) continue;
      delete lease.leaseOwner;
      lease.leaseCounter++;
      this.renewed.delete(lease.leaseKey);
      for (const l of this.lost) l(lease.leaseKey, 'released');
    }
  }

  /** Leases for shards that have none. */
  private async syncShards(): Promise<void> {
    const shards: Shard[] = [];
    let next: string | undefined;
    do {
      const res = await this.options.kinesis.send(
        new ListShardsCommand(next ? { NextToken: next } : { StreamName: this.options.stream }),
      );
      shards.push(...(res.Shards ?? []));
      next = res.NextToken;
    } while (next);
    const table = this.options.table;
    for (const s of shards) {
      const id = s.ShardId as string;
      if (table.leases.has(id)) continue;
      const parents = [s.ParentShardId, s.AdjacentParentShardId].filter((p): p is string => p !== undefined);
      table.leases.set(id, {
        leaseKey: id,
        leaseCounter: 0,
        checkpoint: this.options.initialPosition ?? 'TRIM_HORIZON',
        checkpointSubSequenceNumber: 0,
        ownerSwitchesSinceCheckpoint: 0,
        parentShardIds: parents,
        childShardIds: [],
        ...(s.HashKeyRange?.StartingHashKey ? { startingHashKey: s.HashKeyRange.StartingHashKey } : {}),
        ...(s.HashKeyRange?.EndingHashKey ? { endingHashKey: s.HashKeyRange.EndingHashKey } : {}),
      });
    }
  }

  private take(lease: Lease, stolen: boolean): void {
    const table = this.options.table;
    const previous = lease.leaseOwner;
    lease.leaseOwner = this.workerId;
    lease.leaseCounter++;
    if (previous !== undefined) lease.ownerSwitchesSinceCheckpoint++;
    table.renewedAt.set(lease.leaseKey, this.now());
    this.renewed.set(lease.leaseKey, this.now());
    if (stolen) this.steals++;
    else this.takes++;
    for (const l of this.acquired) l({ ...lease });
  }

  /** One pass: renew, notice losses, take free and expired leases, steal toward an even share. */
  private pass(): void {
    const table = this.options.table;
    const now = this.now();
    for (const [id] of this.renewed) {
      const lease = table.leases.get(id);
      if (lease?.leaseOwner !== this.workerId) {
        this.renewed.delete(id);
        for (const l of this.lost) l(id, 'taken');
      }
    }
    if (this.paused) return;
    for (const lease of table.leases.values()) {
      if (lease.leaseOwner !== this.workerId) continue;
      lease.leaseCounter++;
      table.renewedAt.set(lease.leaseKey, now);
      this.renewed.set(lease.leaseKey, now);
    }
    const live = [...table.leases.values()].filter((l) => l.checkpoint !== 'SHARD_END');
    const expired = (l: Lease) => now - (table.renewedAt.get(l.leaseKey) ?? 0) > this.failoverMs;
    const owners = new Map<string, Lease[]>();
    for (const l of live) {
      if (l.leaseOwner !== undefined && !expired(l)) owners.set(l.leaseOwner, [...(owners.get(l.leaseOwner) ?? []), l]);
    }
    if (!owners.has(this.workerId)) owners.set(this.workerId, []);
    const target = Math.ceil(live.length / owners.size);
    let mine = owners.get(this.workerId)?.length ?? 0;
    for (const l of live) {
      if (mine >= target) break;
      if (l.leaseOwner === undefined || (l.leaseOwner !== this.workerId && expired(l))) {
        this.take(l, false);
        mine++;
      }
    }
    if (mine < target) {
      let most: Lease[] = [];
      for (const [owner, ls] of owners) if (owner !== this.workerId && ls.length > most.length) most = ls;
      const victim = most.length > target ? most[0] : undefined;
      if (victim !== undefined) this.take(victim, true);
    }
  }
}
