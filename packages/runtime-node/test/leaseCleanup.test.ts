/**
 * The cleanup of ended shards' leases (as KCL's LeaseCleanupManager) and the shuffled order free
 * leases are taken in, on LeaseCoordinator: shards from kinesalite (real splits and merges), the
 * lease table in memory (test/support/memoryLeaseTable.ts) and in dynalite, time virtual, passes
 * stepped explicitly.
 */
import { DeleteItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Shard } from '@aws-sdk/client-kinesis';
import { ListShardsCommand, MergeShardsCommand, SplitShardCommand } from '@aws-sdk/client-kinesis';
import { describe, expect, it } from 'vitest';
import {
  createStream,
  dynamoDbClient,
  kinesisClient,
  startDynalite,
  startKinesalite,
  streamShards,
  useServers,
} from '../../../test-support/emulators.js';
import { LeaseCoordinator } from '../src/leaseCoordinator.js';
import { DynamoDbLeaseTable } from '../src/leaseTable.js';
import type { CheckpointPosition, Lease, LeaseTable } from '../src/leaseTypes.js';
import { seeded } from './fleet/cluster.js';
import { MemoryTableOfLeases } from './support/memoryLeaseTable.js';

const servers = useServers(async () => {
  const [kin, dyn] = await Promise.all([startKinesalite(), startDynalite()]);
  const kinesis = kinesisClient(kin.endpoint);
  const dynamo = dynamoDbClient(dyn.endpoint);
  return {
    kinesis,
    dynamo,
    close: async () => {
      kinesis.destroy();
      dynamo.destroy();
      await Promise.all([kin.close(), dyn.close()]);
    },
  };
});

const CLEANUP = 5000;
const END: CheckpointPosition = { sequenceNumber: 'SHARD_END', subSequenceNumber: 0 };
const at = (n: number): CheckpointPosition => ({
  sequenceNumber: `4959000000000000000000000000000000000000000000000000${String(n).padStart(4, '0')}`,
  subSequenceNumber: 0,
});

type Kind = 'memory' | 'dynalite';

/** One test's world: a stream of `shards` shards, a fresh lease table of `kind`, a virtual clock. */
async function world(kind: Kind, shards: number) {
  const id = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const streamName = `c-${id}`;
  const shardIds = (await createStream(servers.kinesis, streamName, shards)).map((s) => s.shardId).sort();
  const table: LeaseTable =
    kind === 'memory'
      ? new MemoryTableOfLeases()
      : new DynamoDbLeaseTable(servers.dynamo, `leases-${id}`, { pollIntervalMs: 5 });
  await table.ensure();
  const clock = { t: 1_000_000 };
  const coordinator = (
    workerId: string,
    extra: { random?: () => number; initialPosition?: 'TRIM_HORIZON' | 'LATEST'; table?: LeaseTable } = {},
  ) =>
    new LeaseCoordinator({
      table: extra.table ?? table,
      kinesis: servers.kinesis,
      streamName,
      workerId,
      settings: { failoverTimeMs: 10_000, leaseCleanupIntervalMs: CLEANUP },
      now: () => clock.t,
      ...(extra.random ? { random: extra.random } : {}),
      ...(extra.initialPosition ? { initialPosition: extra.initialPosition } : {}),
    });
  const listShards = async (): Promise<Shard[]> =>
    (await servers.kinesis.send(new ListShardsCommand({ StreamName: streamName }))).Shards ?? [];
  const keys = async () => (await table.list()).map((l) => l.leaseKey).sort();
  const split = async (shardId: string) => {
    const shard = (await listShards()).find((s) => s.ShardId === shardId) as Shard;
    const lo = BigInt(shard.HashKeyRange?.StartingHashKey as string);
    const hi = BigInt(shard.HashKeyRange?.EndingHashKey as string);
    await servers.kinesis.send(
      new SplitShardCommand({
        StreamName: streamName,
        ShardToSplit: shardId,
        NewStartingHashKey: String((lo + hi + 1n) / 2n),
      }),
    );
    await streamShards(servers.kinesis, streamName);
    return (await listShards())
      .filter((s) => s.ParentShardId === shardId)
      .map((s) => s.ShardId as string)
      .sort();
  };
  const merge = async (a: string, b: string) => {
    await servers.kinesis.send(
      new MergeShardsCommand({ StreamName: streamName, ShardToMerge: a, AdjacentShardToMerge: b }),
    );
    await streamShards(servers.kinesis, streamName);
    return (await listShards()).find((s) => s.ParentShardId === a)?.ShardId as string;
  };
  return { streamName, shardIds, table, clock, coordinator, keys, split, merge, listShards };
}

const heldKeys = (c: LeaseCoordinator) => c.held().map((l) => l.leaseKey);

for (const kind of ['memory', 'dynalite'] as const) {
  describe(`lease cleanup (${kind} lease table)`, () => {
    it('an ended shard’s lease is deleted only once every child has checkpointed past its start, on the cleanup interval, and never created again', async () => {
      const w = await world(kind, 2);
      const [p0, p1] = w.shardIds as [string, string];
      const a = w.coordinator('a');
      await a.runOnce();
      expect(heldKeys(a)).toEqual([p0, p1]);
      const [c0, c1] = (await w.split(p0)) as [string, string];
      await a.syncShards();
      expect(await a.checkpoint(p0, at(1))).toBe(true);
      expect(await a.checkpoint(p0, END)).toBe(true);
      await a.runOnce();
      expect(heldKeys(a)).toEqual([p1, c0, c1].sort());
      // Children not started (TRIM_HORIZON): kept, however long.
      for (let i = 0; i < 3; i++) {
        w.clock.t += CLEANUP;
        await a.runOnce();
      }
      expect(await w.keys()).toEqual([p0, p1, c0, c1].sort());
      // One child started: kept.
      expect(await a.checkpoint(c0, at(2))).toBe(true);
      w.clock.t += CLEANUP;
      await a.runOnce();
      expect(await w.keys()).toContain(p0);
      // Both started: deleted by the next pass on the interval, not before.
      expect(await a.checkpoint(c1, at(3))).toBe(true);
      w.clock.t += CLEANUP - 1;
      await a.runOnce();
      expect(await w.keys()).toContain(p0);
      w.clock.t += 1;
      await a.runOnce();
      expect(await w.keys()).toEqual([p1, c0, c1].sort());
      // The shard is still listed; the shard sync leaves it alone (its descendants hold leases).
      expect((await w.listShards()).map((s) => s.ShardId)).toContain(p0);
      await a.syncShards();
      await w.coordinator('fresh').syncShards();
      expect(await w.keys()).toEqual([p1, c0, c1].sort());
      // The children's leases still say their parent; the parent's lease being gone counts as done.
      expect(a.held().find((l) => l.leaseKey === c0)?.parentShardIds).toEqual([p0]);
      expect(a.parentsDone(a.held().find((l) => l.leaseKey === c0) as Lease)).toBe(true);
      expect(heldKeys(a)).toEqual([p1, c0, c1].sort());
    });

    it('parents go before their children, a merged child must have started for both parents to go, and any worker may delete', async () => {
      const w = await world(kind, 2);
      const [p0, p1] = w.shardIds as [string, string];
      const a = w.coordinator('a');
      /** A coordinator that holds nothing: it only cleans up. */
      const b = w.coordinator('b');
      await a.runOnce();
      const [c0, c1] = (await w.split(p0)) as [string, string];
      const m = await w.merge(c0, c1);
      await a.syncShards();
      expect(await a.checkpoint(p0, END)).toBe(true);
      await a.runOnce();
      expect(heldKeys(a)).toEqual([p1, c0, c1].sort());
      expect(await a.checkpoint(c0, at(1))).toBe(true);
      expect(await a.checkpoint(c1, at(2))).toBe(true);
      expect(await a.checkpoint(c0, END)).toBe(true);
      // p0's children started; c0 ended but its (merged) child has not started.
      expect(await b.cleanupLeases()).toEqual([p0]);
      expect(await b.cleanupLeases()).toEqual([]);
      expect(await a.checkpoint(c1, END)).toBe(true);
      await a.runOnce();
      expect(heldKeys(a)).toEqual([m, p1].sort());
      expect(await b.cleanupLeases()).toEqual([]); // m at TRIM_HORIZON
      expect(await a.checkpoint(m, at(3))).toBe(true);
      expect((await b.cleanupLeases()).sort()).toEqual([c0, c1].sort());
      expect(await w.keys()).toEqual([m, p1].sort());

      // Three generations: p1 → d0, d1; d0 → e0, e1. d0's children started, but p1's lease stays
      // (d1 has not started), so d0's stays too: the parent goes first.
      const [d0, d1] = (await w.split(p1)) as [string, string];
      await a.syncShards();
      expect(await a.checkpoint(p1, END)).toBe(true);
      await a.runOnce();
      const [e0, e1] = (await w.split(d0)) as [string, string];
      await a.syncShards();
      expect(await a.checkpoint(d0, at(4))).toBe(true);
      expect(await a.checkpoint(d0, END)).toBe(true);
      await a.runOnce();
      expect(heldKeys(a)).toEqual([m, d1, e0, e1].sort());
      expect(await a.checkpoint(e0, at(5))).toBe(true);
      expect(await a.checkpoint(e1, at(6))).toBe(true);
      expect(await b.cleanupLeases()).toEqual([]);
      expect(await a.checkpoint(d1, at(7))).toBe(true);
      expect(await b.cleanupLeases()).toEqual([p1]);
      expect(await b.cleanupLeases()).toEqual([d0]);
      expect(await w.keys()).toEqual([m, d1, e0, e1].sort());
      await b.syncShards();
      expect(await w.keys()).toEqual([m, d1, e0, e1].sort());
    });

    it('a delete is conditional: not a lease short of SHARD_END, not one whose counter moved, and only once', async () => {
      const w = await world(kind, 1);
      const [p0] = w.shardIds as [string];
      const a = w.coordinator('a');
      await a.runOnce();
      const [lease] = await w.table.list();
      expect(await w.table.delete(lease as Lease)).toBe(false); // TRIM_HORIZON
      expect(await a.checkpoint(p0, END)).toBe(true);
      expect(await w.table.delete(lease as Lease)).toBe(false); // counter moved since
      const [ended] = await w.table.list();
      expect(ended?.checkpoint).toBe('SHARD_END');
      expect(await w.table.delete(ended as Lease)).toBe(true);
      expect(await w.table.delete(ended as Lease)).toBe(false);
      expect(await w.keys()).toEqual([]);
    });
  });
}

describe('lease cleanup: a delete whose answer is lost', () => {
  it('the delete landed and the connection dropped: retried, the condition fails, the item is gone: deleted', async () => {
    const w = await world('dynalite', 1);
    const [p0] = w.shardIds as [string];
    const a = w.coordinator('a');
    await a.runOnce();
    expect(await a.checkpoint(p0, END)).toBe(true);
    let drops = 1;
    const client = {
      send: async (command: unknown) => {
        const out = await servers.dynamo.send(command as DeleteItemCommand);
        if (command instanceof DeleteItemCommand && drops > 0) {
          drops--;
          throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        }
        return out;
      },
    } as unknown as DynamoDBClient;
    const base = w.table as DynamoDbLeaseTable;
    const table = new DynamoDbLeaseTable(client, base.tableName, {
      retry: { maxAttempts: 3, baseDelay: 1, maxDelay: 1 },
    });
    const [ended] = await table.list();
    expect(await table.delete(ended as Lease)).toBe(true);
    expect(drops).toBe(0);
    expect(await w.keys()).toEqual([]);
    // Without a lost answer, a failed condition is a refusal.
    expect(await table.delete(ended as Lease)).toBe(false);
  });
});

describe('lease cleanup: initial position LATEST', () => {
  it('a closed shard at SHARD_END on a fresh table stays while its children are at LATEST, and goes once they processed a record', async () => {
    const w = await world('dynalite', 2);
    const [p0, p1] = w.shardIds as [string, string];
    const [c0, c1] = (await w.split(p0)) as [string, string];
    const a = w.coordinator('a', { initialPosition: 'LATEST' });
    await a.runOnce();
    expect((await w.table.list()).find((l) => l.leaseKey === p0)?.checkpoint).toBe('SHARD_END');
    expect(heldKeys(a)).toEqual([p1, c0, c1].sort());
    expect(await a.cleanupLeases()).toEqual([]);
    expect(await a.checkpoint(c0, at(1))).toBe(true);
    expect(await a.checkpoint(c1, at(2))).toBe(true);
    expect(await a.cleanupLeases()).toEqual([p0]);
  });
});

describe('taking free leases: a shuffled order', () => {
  /** A lease table that records the shard of every take attempted (and whether it won). */
  const recording = (inner: LeaseTable, takes: { by: string; shardId: string; won: boolean }[]): LeaseTable => ({
    ensure: () => inner.ensure(),
    list: () => inner.list(),
    create: (l) => inner.create(l),
    renew: (l) => inner.renew(l),
    async take(l, owner) {
      const out = await inner.take(l, owner);
      takes.push({ by: owner, shardId: l.leaseKey, won: out !== undefined });
      return out;
    },
    release: (l) => inner.release(l),
    checkpoint: (l, p) => inner.checkpoint(l, p),
    setChildren: (l, c) => inner.setChildren(l, c),
    delete: (l) => inner.delete(l),
  });

  it('workers that each want one of several free leases at the same moment try different ones; each lease is taken once', async () => {
    const w = await world('memory', 8);
    const takes: { by: string; shardId: string; won: boolean }[] = [];
    const table = recording(w.table, takes);
    // 4 workers each hold 1 lease; 4 leases are free (their worker stopped): each wants one more.
    const cs = [0, 1, 2, 3].map((n) => w.coordinator(`w${n}`, { random: seeded(1000 + n), table }));
    await cs[0]?.syncShards();
    const leases = await w.table.list();
    for (const [n, c] of cs.entries()) await w.table.take(leases[n] as Lease, c.workerId);
    takes.length = 0;
    await Promise.all(cs.map((c) => c.takeLeases()));
    // Each tried exactly one of the free leases; each tried lease was won by exactly one worker.
    expect(takes).toHaveLength(4);
    const free = leases.slice(4).map((l) => l.leaseKey);
    for (const t of takes) expect(free).toContain(t.shardId);
    const tried = new Set(takes.map((t) => t.shardId));
    expect(takes.filter((t) => t.won)).toHaveLength(tried.size);
    // Spread over the free leases (the first in key order, as before, would have all four on one).
    expect(tried.size).toBeGreaterThan(1);
    const owners = new Map((await w.table.list()).map((l) => [l.leaseKey, l.leaseOwner]));
    for (const t of takes.filter((x) => x.won)) expect(owners.get(t.shardId)).toBe(t.by);
  });

  it('the order is random()’s Fisher–Yates shuffle of the free leases: a worker wanting 2 of 6 takes the first 2 of it', async () => {
    const w = await world('memory', 6);
    const takes: { by: string; shardId: string; won: boolean }[] = [];
    const table = recording(w.table, takes);
    const a = w.coordinator('a', { random: seeded(7), table });
    await a.syncShards();
    // Two other workers (b, c) hold a lease each; a's target is ceil(6 / 3) = 2 of the 4 free ones.
    const leases = await w.table.list();
    await w.table.take(leases[0] as Lease, 'b');
    await w.table.take(leases[1] as Lease, 'c');
    takes.length = 0;
    await a.takeLeases();
    // The oracle: the same generator, Fisher–Yates over the free leases in key order.
    const free = leases.slice(2).map((l) => l.leaseKey);
    const rand = seeded(7);
    for (let i = free.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [free[i], free[j]] = [free[j] as string, free[i] as string];
    }
    expect(takes.map((t) => t.shardId)).toEqual(free.slice(0, 2));
    expect(heldKeys(a)).toEqual(free.slice(0, 2).sort());
  });
});
