/**
 * LeaseCoordinator through the real SDK on kinesalite (ListShards, 4 shards) and dynalite (the
 * lease table). Several coordinators share one process and a virtual clock, and are stepped
 * explicitly (`runOnce()` and its parts), so the interleavings are fixed while every read and
 * write still goes to the emulators.
 */
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { ListShardsCommand, MergeShardsCommand, type Shard, SplitShardCommand } from '@aws-sdk/client-kinesis';
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
import { LeaseCoordinator, leaseSettings } from '../src/leaseCoordinator.js';
import { DynamoDbLeaseTable } from '../src/leaseTable.js';
import type { Lease } from '../src/leaseTypes.js';

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

const FAILOVER = 10_000;
const SETTINGS = leaseSettings({ failoverTimeMs: FAILOVER });
const { renewIntervalMs: RENEW, fencingMarginMs: MARGIN } = SETTINGS;

/** One test's world: a 4-shard stream, a fresh lease table, a virtual clock. */
async function world(shards = 4) {
  const id = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const streamName = `s-${id}`;
  const shardIds = shards > 0 ? (await createStream(servers.kinesis, streamName, shards)).map((s) => s.shardId) : [];
  const table = new DynamoDbLeaseTable(servers.dynamo, `leases-${id}`, { pollIntervalMs: 5 });
  await table.ensure();
  const clock = { t: 1_000_000 };
  const events: string[] = [];
  const coordinator = (
    workerId: string,
    now: () => number = () => clock.t,
    initialPosition: 'TRIM_HORIZON' | 'LATEST' = 'TRIM_HORIZON',
  ) => {
    const c = new LeaseCoordinator({
      table,
      kinesis: servers.kinesis,
      streamName,
      workerId,
      settings: { failoverTimeMs: FAILOVER },
      initialPosition,
      now,
    });
    c.onAcquired((l) => events.push(`${workerId} +${l.leaseKey}`));
    c.onLost((s, why) => events.push(`${workerId} -${s} ${why}`));
    return c;
  };
  const item = async (key: string) =>
    (
      await servers.dynamo.send(
        new GetItemCommand({ TableName: table.tableName, Key: { leaseKey: { S: key } }, ConsistentRead: true }),
      )
    ).Item;
  const listShards = async (): Promise<Shard[]> =>
    (await servers.kinesis.send(new ListShardsCommand({ StreamName: streamName }))).Shards ?? [];
  return { streamName, shardIds, table, clock, events, coordinator, item, listShards };
}

/** Who holds what, by the coordinators' own account; every shard held at most once. */
function holdings(cs: LeaseCoordinator[]): Map<string, string> {
  const byShard = new Map<string, string>();
  for (const c of cs) {
    for (const l of c.held()) {
      expect(byShard.has(l.leaseKey), `${l.leaseKey} held twice`).toBe(false);
      byShard.set(l.leaseKey, c.workerId);
    }
  }
  return byShard;
}

describe('LeaseCoordinator: shard sync', () => {
  it('creates one lease per listed shard with its hash range, at the initial position, and nothing twice', async () => {
    const w = await world(4);
    const a = w.coordinator('a');
    await a.syncShards();
    await w.coordinator('b').syncShards();
    const listed = (await servers.kinesis.send(new ListShardsCommand({ StreamName: w.streamName }))).Shards ?? [];
    const leases = await w.table.list();
    expect(leases).toEqual(
      listed
        .map((s) => ({
          leaseKey: s.ShardId,
          leaseCounter: 0,
          checkpoint: 'TRIM_HORIZON',
          checkpointSubSequenceNumber: 0,
          ownerSwitchesSinceCheckpoint: 0,
          parentShardIds: [],
          childShardIds: [],
          startingHashKey: s.HashKeyRange?.StartingHashKey,
          endingHashKey: s.HashKeyRange?.EndingHashKey,
        }))
        .sort((x, y) => ((x.leaseKey as string) < (y.leaseKey as string) ? -1 : 1)),
    );
    expect(leases.map((l) => l.leaseKey)).toEqual([...w.shardIds].sort());
  });

  it('AT_TIMESTAMP: new leases say so (the reader takes the timestamp from the source)', async () => {
    const w = await world(4);
    const c = new LeaseCoordinator({
      table: w.table,
      kinesis: servers.kinesis,
      streamName: w.streamName,
      workerId: 'a',
      initialPosition: 'AT_TIMESTAMP',
      now: () => w.clock.t,
    });
    await c.runOnce();
    expect((await w.table.list()).map((l) => l.checkpoint)).toEqual(Array(4).fill('AT_TIMESTAMP'));
    expect(c.held().map((l) => l.checkpoint)).toEqual(Array(4).fill('AT_TIMESTAMP'));
  });
});

describe('LeaseCoordinator: balancing', () => {
  for (const workers of [1, 2, 3]) {
    it(`${workers} coordinator(s) over 4 shards: every shard held once, counts within 1, within a bounded number of passes`, async () => {
      const w = await world(4);
      const cs = Array.from({ length: workers }, (_, i) => w.coordinator(`w${i}`));
      // A stolen lease becomes writable failoverTime after the take: allow that on top of one
      // steal per worker per pass.
      const bound = workers * 2 + Math.ceil(FAILOVER / RENEW) + 1;
      let passes = 0;
      let balanced = false;
      while (passes < 30 && !balanced) {
        passes++;
        for (const c of cs) await c.runOnce();
        w.clock.t += RENEW;
        const h = holdings(cs);
        const counts = cs.map((c) => c.held().length);
        balanced = h.size === 4 && Math.max(...counts) - Math.min(...counts) <= 1;
      }
      expect(balanced).toBe(true);
      expect(passes).toBeLessThanOrEqual(bound);
      // Stable: further passes move nothing; the table agrees with the coordinators.
      const before = holdings(cs);
      for (let i = 0; i < 5; i++) {
        for (const c of cs) await c.runOnce();
        w.clock.t += RENEW;
      }
      expect(holdings(cs)).toEqual(before);
      const owners = new Map((await w.table.list()).map((l) => [l.leaseKey, l.leaseOwner]));
      expect(owners).toEqual(before);
    });
  }
});

describe('LeaseCoordinator: racing passes', () => {
  it('3 coordinators whose passes run at the same moment still hold every shard once, balanced, within the bound', async () => {
    const w = await world(4);
    const cs = ['x', 'y', 'z'].map((id) => w.coordinator(id));
    const bound = 3 * 2 + Math.ceil(FAILOVER / RENEW) + 1;
    let passes = 0;
    let balanced = false;
    while (passes < 30 && !balanced) {
      passes++;
      await Promise.all(cs.map((c) => c.runOnce()));
      w.clock.t += RENEW;
      const counts = cs.map((c) => c.held().length);
      balanced = holdings(cs).size === 4 && Math.max(...counts) - Math.min(...counts) <= 1;
    }
    expect(balanced).toBe(true);
    expect(passes).toBeLessThanOrEqual(bound);
    const owners = new Map((await w.table.list()).map((l) => [l.leaseKey, l.leaseOwner]));
    expect(owners).toEqual(holdings(cs));
  });
});

describe('LeaseCoordinator: a worker joining a balanced fleet', () => {
  it('a third coordinator joining two that hold 2 and 2 gets a lease (2/1/1, not 2/2/0)', async () => {
    const w = await world(4);
    const a = w.coordinator('a');
    const b = w.coordinator('b');
    for (let i = 0; i < 8; i++) {
      await a.runOnce();
      await b.runOnce();
      w.clock.t += RENEW;
    }
    expect([a.held().length, b.held().length]).toEqual([2, 2]);
    const c = w.coordinator('c');
    for (let i = 0; i < 8; i++) {
      await a.runOnce();
      await b.runOnce();
      await c.runOnce();
      w.clock.t += RENEW;
    }
    expect(holdings([a, b, c]).size).toBe(4);
    expect([a, b, c].map((x) => x.held().length).sort()).toEqual([1, 1, 2]);
  });
});

describe('LeaseCoordinator: failover and fencing', () => {
  it('a killed coordinator stops writing before its leases can be taken; they are taken after failoverTime and not before', async () => {
    const w = await world(4);
    const a = w.coordinator('a');
    const b = w.coordinator('b');
    for (let i = 0; i < 8; i++) {
      await a.runOnce();
      await b.runOnce();
      w.clock.t += RENEW;
    }
    const aShards = a.held().map((l) => l.leaseKey);
    expect(aShards).toHaveLength(2);
    expect(b.held()).toHaveLength(2);
    // a is killed after its last pass, at this time:
    await a.runOnce();
    const killedAt = w.clock.t;
    await b.runOnce();
    let aStopped: number | undefined;
    let bTook: number | undefined;
    for (let step = 0; step < 100 && bTook === undefined; step++) {
      w.clock.t += 250;
      if (aStopped === undefined && aShards.every((s) => !a.mayWrite(s))) aStopped = w.clock.t;
      // Before a's fencing horizon a still may write (it does not know it is dead).
      if (w.clock.t - killedAt <= FAILOVER - MARGIN) expect(aShards.every((s) => a.mayWrite(s))).toBe(true);
      await b.runOnce();
      if (aShards.some((s) => b.held().some((l) => l.leaseKey === s))) bTook = w.clock.t;
    }
    expect(aStopped).toBeDefined();
    expect(bTook).toBeDefined();
    expect(aStopped as number).toBeLessThan(bTook as number);
    // The first step past failoverTime − margin since a's last renewal (steps of 250 ms).
    expect((aStopped as number) - killedAt).toBe(FAILOVER - MARGIN + 250);
    expect((bTook as number) - killedAt).toBeGreaterThanOrEqual(FAILOVER);
    expect((bTook as number) - killedAt).toBeLessThanOrEqual(FAILOVER + 250);
    expect(
      b
        .held()
        .map((l) => l.leaseKey)
        .sort(),
    ).toEqual([...w.shardIds].sort());
  });

  it('a restarted worker with the same id waits failoverTime for the leases its previous process held', async () => {
    const w = await world(4);
    const first = w.coordinator('a');
    await first.runOnce();
    expect(first.held()).toHaveLength(4);
    const killedAt = w.clock.t;
    const second = w.coordinator('a'); // the same worker id, a new process
    await second.runOnce();
    while (w.clock.t - killedAt < FAILOVER) {
      expect(second.held()).toEqual([]);
      w.clock.t += 1000;
      await second.runOnce();
    }
    expect(
      second
        .held()
        .map((l) => l.leaseKey)
        .sort(),
    ).toEqual([...w.shardIds].sort());
  });

  it('zombie: paused past failoverTime, its lease taken: its checkpoint is refused and the item unchanged', async () => {
    const w = await world(4);
    // The zombie's clock can be held back (as if it believed no time had passed).
    let zombieLag = 0;
    const a = w.coordinator('a', () => w.clock.t - zombieLag);
    const b = w.coordinator('b');
    await a.runOnce(); // a takes all 4
    expect(a.held()).toHaveLength(4);
    const shard = a.held()[0]?.leaseKey as string;
    // a pauses; b takes everything once a's counters have stood still for failoverTime.
    for (let i = 0; i < 6; i++) {
      w.clock.t += RENEW;
      await b.runOnce();
    }
    expect(b.held()).toHaveLength(4);
    const before = await w.item(shard);
    expect(before?.leaseOwner).toEqual({ S: 'b' });
    // a wakes: by its own clock its lease is stale, so it may not write and does not checkpoint.
    expect(a.mayWrite(shard)).toBe(false);
    expect(
      await a.checkpoint(shard, {
        sequenceNumber: '49000000000000000000000000000000000000000000000000000001',
        subSequenceNumber: 0,
      }),
    ).toBe(false);
    expect(await w.item(shard)).toEqual(before);
    // A zombie whose clock lies (it thinks it renewed just now) reaches the table, which refuses it.
    const other = a.held()[0]?.leaseKey as string;
    zombieLag = w.clock.t - 1_000_000;
    expect(a.mayWrite(other)).toBe(true);
    const otherBefore = await w.item(other);
    expect(
      await a.checkpoint(other, {
        sequenceNumber: '49000000000000000000000000000000000000000000000000000002',
        subSequenceNumber: 0,
      }),
    ).toBe(false);
    expect(await w.item(other)).toEqual(otherBefore);
    expect(w.events).toContain(`a -${shard} expired`);
    expect(w.events).toContain(`a -${other} taken`);
    expect(a.mayWrite(other)).toBe(false);
    // b's checkpoint of the same shard goes through.
    expect(
      await b.checkpoint(other, {
        sequenceNumber: '49000000000000000000000000000000000000000000000000000003',
        subSequenceNumber: 2,
      }),
    ).toBe(true);
    expect((await w.item(other))?.checkpoint).toEqual({
      S: '49000000000000000000000000000000000000000000000000000003',
    });
  });

  it('a stolen lease becomes writable for the thief only after the previous owner has fenced itself', async () => {
    const w = await world(4);
    const a = w.coordinator('a');
    const b = w.coordinator('b');
    await a.runOnce(); // all 4 to a
    const takenAt = w.clock.t;
    await b.runOnce(); // b steals one
    const stolen = (await w.table.list()).find((l) => l.leaseOwner === 'b')?.leaseKey as string;
    expect(stolen).toBeDefined();
    expect(b.mayWrite(stolen)).toBe(false);
    expect(b.held()).toHaveLength(0);
    // a still believes it holds it until its next renew fails; its fencing horizon is earlier
    // than the moment b may write.
    let aLast = takenAt;
    // b keeps renewing its lease while it waits; a never learns of the steal (it does not renew).
    for (let t = takenAt; t <= takenAt + FAILOVER; t += 250) {
      w.clock.t = t;
      if ((t - takenAt) % 2500 === 0) await b.renewLeases();
      if (a.mayWrite(stolen)) aLast = t;
      expect(b.mayWrite(stolen)).toBe(t >= takenAt + FAILOVER);
    }
    expect(aLast).toBe(takenAt + FAILOVER - MARGIN);
    expect(aLast).toBeLessThan(takenAt + FAILOVER);
    await a.renewLeases();
    expect(w.events).toContain(`a -${stolen} expired`);
    await b.runOnce();
    expect(b.held().map((l) => l.leaseKey)).toContain(stolen);
    expect(w.events).toContain(`b +${stolen}`);
  });
});

describe('LeaseCoordinator: resharding on kinesalite', () => {
  const split = async (w: Awaited<ReturnType<typeof world>>, shardId: string) => {
    const shard = (await w.listShards()).find((s) => s.ShardId === shardId) as Shard;
    const lo = BigInt(shard.HashKeyRange?.StartingHashKey as string);
    const hi = BigInt(shard.HashKeyRange?.EndingHashKey as string);
    await servers.kinesis.send(
      new SplitShardCommand({
        StreamName: w.streamName,
        ShardToSplit: shardId,
        NewStartingHashKey: String((lo + hi + 1n) / 2n),
      }),
    );
    await streamShards(servers.kinesis, w.streamName); // ACTIVE again
    return (await w.listShards()).filter((s) => s.ParentShardId === shardId).map((s) => s.ShardId as string);
  };

  it('split then merge: children get leases with their parents at TRIM_HORIZON, start only after SHARD_END, and the parent records them', async () => {
    const w = await world(2);
    const [p0, p1] = [...w.shardIds].sort() as [string, string];
    const a = w.coordinator('a');
    await a.runOnce();
    expect(a.held().map((l) => l.leaseKey)).toEqual([p0, p1]);
    const children = (await split(w, p0)).sort();
    expect(children).toHaveLength(2);
    await a.syncShards();
    const listed = await w.listShards();
    for (const child of children) {
      const l = (await w.table.list()).find((x) => x.leaseKey === child) as Lease;
      const s = listed.find((x) => x.ShardId === child) as Shard;
      expect(l).toMatchObject({
        checkpoint: 'TRIM_HORIZON',
        parentShardIds: [p0],
        startingHashKey: s.HashKeyRange?.StartingHashKey,
        endingHashKey: s.HashKeyRange?.EndingHashKey,
      });
    }
    await a.takeLeases();
    expect(a.held().map((l) => l.leaseKey)).toEqual([p0, p1]); // children wait for p0
    expect(await a.checkpoint(p0, { sequenceNumber: 'SHARD_END', subSequenceNumber: 0 })).toBe(true);
    expect((await w.table.list()).find((l) => l.leaseKey === p0)?.childShardIds).toEqual(children);
    await a.runOnce();
    expect(
      a
        .held()
        .map((l) => l.leaseKey)
        .sort(),
    ).toEqual([...children, p1].sort());
    // Merge the two children back: the merged shard has both as parents.
    await servers.kinesis.send(
      new MergeShardsCommand({
        StreamName: w.streamName,
        ShardToMerge: children[0] as string,
        AdjacentShardToMerge: children[1] as string,
      }),
    );
    await streamShards(servers.kinesis, w.streamName);
    const merged = (await w.listShards()).find((s) => s.ParentShardId === children[0])?.ShardId as string;
    expect(merged).toBeDefined();
    await a.syncShards();
    expect((await w.table.list()).find((l) => l.leaseKey === merged)).toMatchObject({
      checkpoint: 'TRIM_HORIZON',
      parentShardIds: [...children].sort(),
    });
    expect(await a.checkpoint(children[0] as string, { sequenceNumber: 'SHARD_END', subSequenceNumber: 0 })).toBe(true);
    await a.runOnce();
    expect(a.held().map((l) => l.leaseKey)).not.toContain(merged); // one parent still open
    expect(await a.checkpoint(children[1] as string, { sequenceNumber: 'SHARD_END', subSequenceNumber: 0 })).toBe(true);
    await a.runOnce();
    expect(
      a
        .held()
        .map((l) => l.leaseKey)
        .sort(),
    ).toEqual([merged, p1].sort());
  });

  it('with LATEST on a fresh table, a closed shard starts at SHARD_END and its children at LATEST', async () => {
    const w = await world(2);
    const [p0, p1] = [...w.shardIds].sort() as [string, string];
    const children = await split(w, p0);
    const a = w.coordinator('a', undefined, 'LATEST');
    await a.runOnce();
    const leases = new Map((await w.table.list()).map((l) => [l.leaseKey, l]));
    expect(leases.get(p0)?.checkpoint).toBe('SHARD_END');
    expect(leases.get(p1)?.checkpoint).toBe('LATEST');
    for (const c of children) expect(leases.get(c)).toMatchObject({ checkpoint: 'LATEST', parentShardIds: [p0] });
    // The closed shard is not taken; its children are, at once.
    expect(
      a
        .held()
        .map((l) => l.leaseKey)
        .sort(),
    ).toEqual([p1, ...children].sort());
    // A reshard seen later: children of a shard that had a lease start at TRIM_HORIZON (their
    // records follow the parent's), whatever the initial position.
    const later = await split(w, p1);
    await a.syncShards();
    const after = new Map((await w.table.list()).map((l) => [l.leaseKey, l]));
    for (const c of later) expect(after.get(c)).toMatchObject({ checkpoint: 'TRIM_HORIZON', parentShardIds: [p1] });
  });
});

describe('LeaseCoordinator: KCL tables, resharding, shutdown', () => {
  it('adopts a lease table a KCL application wrote: free leases at once, a dead KCL worker’s after failoverTime, at their checkpoints', async () => {
    const w = await world(4);
    const [s0, s1, s2, s3] = [...w.shardIds].sort() as [string, string, string, string];
    const kcl = (key: string, attrs: Record<string, unknown>) =>
      servers.dynamo.send(
        new PutItemCommand({
          TableName: w.table.tableName,
          Item: { leaseKey: { S: key }, ...(attrs as Record<string, { S: string }>) },
        }),
      );
    // As KCL 2.x writes them (a KCL worker id is host plus a UUID).
    await kcl(s0, {
      leaseOwner: { S: 'ip-10-0-0-12:6a8e2f0c-0d4b-4a58-9ac5-2f6b8f2c1e11' },
      leaseCounter: { N: '1523' },
      checkpoint: { S: '49590338271490256608559692538361571095921575989136588898' },
      checkpointSubSequenceNumber: { N: '0' },
      ownerSwitchesSinceCheckpoint: { N: '0' },
    });
    await kcl(s1, {
      leaseOwner: { S: 'ip-10-0-0-12:6a8e2f0c-0d4b-4a58-9ac5-2f6b8f2c1e11' },
      leaseCounter: { N: '1519' },
      checkpoint: { S: '49590338271512557353758223161503106814194224350642569234' },
      checkpointSubSequenceNumber: { N: '7' },
      ownerSwitchesSinceCheckpoint: { N: '1' },
      pendingCheckpoint: { S: '49590338271512557353758223161503106814194224350642569299' },
      pendingCheckpointSubSequenceNumber: { N: '0' },
    });
    await kcl(s2, {
      leaseCounter: { N: '88' },
      checkpoint: { S: '49590338271534858098956753784644642532466872712148549650' },
      checkpointSubSequenceNumber: { N: '0' },
      ownerSwitchesSinceCheckpoint: { N: '0' },
    });
    // A KCL 1.x item: no sub-sequence number.
    await kcl(s3, {
      leaseCounter: { N: '4' },
      checkpoint: { S: 'TRIM_HORIZON' },
      ownerSwitchesSinceCheckpoint: { N: '0' },
    });
    const acquired = new Map<string, Lease>();
    const c = w.coordinator('tributary-1');
    c.onAcquired((l) => acquired.set(l.leaseKey, l));
    await c.runOnce();
    expect([...acquired.keys()].sort()).toEqual([s2, s3]);
    for (let i = 0; i < 3; i++) {
      w.clock.t += RENEW;
      await c.runOnce();
    }
    expect(acquired.has(s0)).toBe(false); // not before failoverTime
    w.clock.t += RENEW;
    await c.runOnce();
    expect([...acquired.keys()].sort()).toEqual([s0, s1, s2, s3]);
    expect(acquired.get(s0)).toMatchObject({
      checkpoint: '49590338271490256608559692538361571095921575989136588898',
      checkpointSubSequenceNumber: 0,
      ownerSwitchesSinceCheckpoint: 1,
    });
    expect(acquired.get(s1)).toMatchObject({
      checkpoint: '49590338271512557353758223161503106814194224350642569234',
      checkpointSubSequenceNumber: 7,
      ownerSwitchesSinceCheckpoint: 2,
    });
    expect(acquired.get(s2)).toMatchObject({ checkpoint: '49590338271534858098956753784644642532466872712148549650' });
    expect(acquired.get(s3)).toMatchObject({ checkpoint: 'TRIM_HORIZON', checkpointSubSequenceNumber: 0 });
    // KCL's own attribute is kept through the take and the renewals.
    expect((await w.item(s1))?.pendingCheckpoint).toEqual({
      S: '49590338271512557353758223161503106814194224350642569299',
    });
    expect((await w.table.list()).every((l) => l.leaseOwner === 'tributary-1')).toBe(true);
  });

  it('a child lease is taken only after every parent checkpointed SHARD_END (a parent with no lease counts as done)', async () => {
    const w = await world(0);
    const base = { checkpointSubSequenceNumber: 0, ownerSwitchesSinceCheckpoint: 0, childShardIds: [] as string[] };
    const parentLease = {
      ...base,
      leaseKey: 'shardId-000000000000',
      leaseCounter: 0,
      checkpoint: 'TRIM_HORIZON',
      parentShardIds: [],
    };
    await w.table.create(parentLease);
    await w.table.create({
      ...base,
      leaseKey: 'shardId-000000000001',
      leaseCounter: 0,
      checkpoint: 'TRIM_HORIZON',
      parentShardIds: ['shardId-000000000000'],
    });
    // A merge of the parent and a shard whose lease is gone (trimmed).
    await w.table.create({
      ...base,
      leaseKey: 'shardId-000000000003',
      leaseCounter: 0,
      checkpoint: 'TRIM_HORIZON',
      parentShardIds: ['shardId-000000000000', 'shardId-000000000099'],
    });
    const a = w.coordinator('a');
    const b = w.coordinator('b');
    await a.takeLeases();
    expect(a.held().map((l) => l.leaseKey)).toEqual(['shardId-000000000000']);
    for (let i = 0; i < 6; i++) {
      w.clock.t += RENEW;
      await a.renewLeases();
      await b.takeLeases();
      await a.takeLeases();
      expect(b.held()).toEqual([]);
      expect(a.held().map((l) => l.leaseKey)).toEqual(['shardId-000000000000']);
    }
    const sequence = await a.checkpoint('shardId-000000000000', {
      sequenceNumber: '49000000000000000000000000000000000000000000000000000010',
      subSequenceNumber: 0,
    });
    expect(sequence).toBe(true);
    await b.takeLeases();
    expect(b.held()).toEqual([]);
    expect(await a.checkpoint('shardId-000000000000', { sequenceNumber: 'SHARD_END', subSequenceNumber: 0 })).toBe(
      true,
    );
    expect(a.held()).toEqual([]);
    await b.takeLeases();
    expect(
      b
        .held()
        .map((l) => l.leaseKey)
        .sort(),
    ).toEqual(['shardId-000000000001', 'shardId-000000000003']);
    expect(a.parentsDone(b.held()[0] as Lease)).toBe(true);
  });

  it('released on stop: another coordinator takes the leases on its next pass, without waiting failoverTime', async () => {
    const w = await world(4);
    const a = w.coordinator('a');
    const b = w.coordinator('b');
    await a.runOnce();
    expect(a.held()).toHaveLength(4);
    const counters = new Map((await w.table.list()).map((l) => [l.leaseKey, l.leaseCounter]));
    await a.stop({ release: true });
    expect(a.held()).toEqual([]);
    for (const s of w.shardIds) expect(w.events).toContain(`a -${s} released`);
    for (const l of await w.table.list()) {
      expect(l.leaseOwner).toBeUndefined();
      expect(l.leaseCounter).toBe((counters.get(l.leaseKey) as number) + 1);
    }
    w.clock.t += 1; // far less than failoverTime
    await b.runOnce();
    expect(
      b
        .held()
        .map((l) => l.leaseKey)
        .sort(),
    ).toEqual([...w.shardIds].sort());
    for (const s of w.shardIds) expect(b.mayWrite(s)).toBe(true);
    // A checkpoint of a released lease is refused.
    expect(
      await a.checkpoint(w.shardIds[0] as string, {
        sequenceNumber: '49000000000000000000000000000000000000000000000000000011',
        subSequenceNumber: 0,
      }),
    ).toBe(false);
  });

  it('a take pass under way when stop() is called takes nothing after it (nothing is left owned)', async () => {
    const w = await world(4);
    const a = w.coordinator('a');
    await a.syncShards();
    const pass = a.takeLeases(); // lists, then takes
    await a.stop({ release: true });
    await pass;
    expect(a.held()).toEqual([]);
    expect((await w.table.list()).every((l) => l.leaseOwner === undefined)).toBe(true);
  });

  it('a failing ListShards does not hold back renewals: the error is reported and the sync tried again', async () => {
    const w = await world(4);
    let failing = false;
    const errors: unknown[] = [];
    const kinesis = {
      send: (command: unknown) =>
        failing
          ? Promise.reject(Object.assign(new Error('Rate exceeded'), { name: 'LimitExceededException' }))
          : servers.kinesis.send(command as ListShardsCommand),
    } as unknown as typeof servers.kinesis;
    const a = new LeaseCoordinator({
      table: w.table,
      kinesis,
      streamName: w.streamName,
      workerId: 'a',
      settings: { failoverTimeMs: FAILOVER, shardSyncIntervalMs: 1000 },
      now: () => w.clock.t,
      onError: (e) => errors.push(e),
    });
    await a.runOnce();
    expect(a.held()).toHaveLength(4);
    const before = new Map((await w.table.list()).map((l) => [l.leaseKey, l.leaseCounter]));
    failing = true;
    for (let i = 0; i < 2; i++) {
      w.clock.t += RENEW; // a shard sync is due at every pass
      await a.runOnce();
    }
    expect(errors.map((e) => (e as Error).name)).toEqual(['LimitExceededException', 'LimitExceededException']);
    for (const l of await w.table.list()) expect(l.leaseCounter).toBeGreaterThan(before.get(l.leaseKey) as number);
    expect(a.held()).toHaveLength(4);
  });

  it('validates its settings with exact messages', () => {
    expect(() => leaseSettings({ failoverTimeMs: 0 })).toThrow(
      'Expected `failoverTimeMs` to be an integer of at least 1, got 0',
    );
    expect(() => leaseSettings({ failoverTimeMs: 1000, renewIntervalMs: 900 })).toThrow(
      'Expected `renewIntervalMs` (900) to be below failoverTimeMs − fencingMarginMs (800): leases would lapse between renewals',
    );
    expect(leaseSettings()).toEqual({
      failoverTimeMs: 10_000,
      renewIntervalMs: 3333,
      fencingMarginMs: 2000,
      maxLeasesToStealAtOneTime: 1,
      shardSyncIntervalMs: 60_000,
      leaseCleanupIntervalMs: 60_000,
    });
    expect(() => leaseSettings({ leaseCleanupIntervalMs: 0 })).toThrow(
      'Expected `leaseCleanupIntervalMs` to be an integer of at least 1, got 0',
    );
  });
});

describe('LeaseCoordinator: start() and stop() on its timers', () => {
  it('start() creates the table, syncs and takes; its timers renew, take and sync; stop() clears them and releases', async () => {
    const w = await world(4);
    const pending = new Map<number, { fn: () => void; ms: number }>();
    let next = 0;
    const timers = {
      setTimeout: (fn: () => void, ms: number) => {
        pending.set(++next, { fn, ms });
        return next;
      },
      clearTimeout: (h: unknown) => {
        pending.delete(h as number);
      },
    };
    /** Runs the due timer of interval `ms` and waits until it has rescheduled itself. */
    const fire = async (ms: number) => {
      const entry = [...pending.entries()].find(([, t]) => t.ms === ms);
      expect(entry, `a timer of ${ms} ms`).toBeDefined();
      const [handle, t] = entry as [number, { fn: () => void; ms: number }];
      pending.delete(handle);
      t.fn();
      for (let i = 0; i < 200 && ![...pending.values()].some((x) => x.ms === ms); i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const table = new DynamoDbLeaseTable(servers.dynamo, `${w.table.tableName}-own`, { pollIntervalMs: 5 });
    const errors: unknown[] = [];
    const c = new LeaseCoordinator({
      table,
      kinesis: servers.kinesis,
      streamName: w.streamName,
      workerId: 'solo',
      settings: { failoverTimeMs: FAILOVER },
      now: () => w.clock.t,
      timers,
      onError: (e) => errors.push(e),
    });
    await c.start();
    expect(
      c
        .held()
        .map((l) => l.leaseKey)
        .sort(),
    ).toEqual([...w.shardIds].sort());
    expect([...pending.values()].map((t) => t.ms).sort((x, y) => x - y)).toEqual([RENEW, FAILOVER / 2, 60_000]);
    const counters = async () => new Map((await table.list()).map((l) => [l.leaseKey, l.leaseCounter]));
    const before = await counters();
    w.clock.t += RENEW;
    await fire(RENEW);
    for (const [k, n] of await counters()) expect(n).toBe((before.get(k) as number) + 1);
    await fire(FAILOVER / 2);
    await fire(60_000);
    expect(errors).toEqual([]);
    await c.stop({ release: true });
    expect(pending.size).toBe(0);
    expect((await table.list()).every((l) => l.leaseOwner === undefined)).toBe(true);
  });
});

describe('LeaseCoordinator: metrics', () => {
  it('counts takes, steals, losses and releases, and reports the leases held', async () => {
    const w = await world(4);
    const record = () => {
      const events: string[] = [];
      const held: number[] = [];
      const metrics = {
        recordsIn() {},
        recordsOut() {},
        deadLettered() {},
        late() {},
        iteratorAge() {},
        checkpointLag() {},
        call() {},
        leasesHeld: (n: number) => held.push(n),
        leaseEvent: (kind: string) => events.push(kind),
      };
      return { events, held, metrics };
    };
    const ma = record();
    const mb = record();
    const make = (workerId: string, metrics: ReturnType<typeof record>['metrics']) =>
      new LeaseCoordinator({
        table: w.table,
        kinesis: servers.kinesis,
        streamName: w.streamName,
        workerId,
        settings: { failoverTimeMs: FAILOVER },
        now: () => w.clock.t,
        metrics,
      });
    const a = make('a', ma.metrics);
    const b = make('b', mb.metrics);
    await a.runOnce();
    await b.runOnce(); // steals one
    w.clock.t += RENEW;
    await a.runOnce(); // its renew of the stolen lease fails
    expect(ma.events).toEqual(['taken', 'taken', 'taken', 'taken', 'lost']);
    expect(mb.events).toEqual(['stolen']);
    expect(ma.held.at(-1)).toBe(3);
    await a.stop({ release: true });
    expect(ma.events.slice(5)).toEqual(['released', 'released', 'released']);
    expect(ma.held.at(-1)).toBe(0);
    expect(mb.held.at(-1)).toBe(1);
  });
});

describe('LeaseCoordinator: stop with a table that does not answer', () => {
  it('resolves once the bound has passed on its timers, dropping every held lease', async () => {
    const w = await world(4);
    let hang = false;
    const never = new Promise<never>(() => {});
    const table = new Proxy(w.table, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => (hang ? never : v.apply(target, args));
      },
    });
    const pending = new Map<number, { fn: () => void; ms: number }>();
    let next = 0;
    const timers = {
      setTimeout: (fn: () => void, ms: number) => {
        pending.set(++next, { fn, ms });
        return next;
      },
      clearTimeout: (h: unknown) => void pending.delete(h as number),
    };
    const lost: string[] = [];
    const c = new LeaseCoordinator({
      table,
      kinesis: servers.kinesis,
      streamName: w.streamName,
      workerId: 'w',
      settings: { failoverTimeMs: FAILOVER },
      now: () => w.clock.t,
      timers,
    });
    c.onLost((s, why) => lost.push(`${s} ${why}`));
    await c.runOnce();
    expect(c.held()).toHaveLength(w.shardIds.length);
    hang = true;
    void c.renewLeases(); // hangs in flight
    let done = false;
    const stopped = c.stop({ release: true }).then(() => {
      done = true;
    });
    const bound = Math.min(FAILOVER, 5_000);
    const fireBound = async () => {
      for (let i = 0; i < 200 && ![...pending.values()].some((t) => t.ms === bound); i++) {
        await new Promise((r) => setTimeout(r, 2));
      }
      const entry = [...pending.entries()].find(([, t]) => t.ms === bound);
      expect(entry, 'a stop bound timer').toBeDefined();
      const [h, t] = entry as [number, { fn: () => void; ms: number }];
      pending.delete(h);
      t.fn();
    };
    await fireBound(); // the in-flight renewals
    expect(done).toBe(false);
    await fireBound(); // the releases
    await stopped;
    expect(done).toBe(true);
    expect(c.held()).toEqual([]);
    expect(lost.sort()).toEqual(w.shardIds.map((s) => `${s} released`).sort());
  });
});
