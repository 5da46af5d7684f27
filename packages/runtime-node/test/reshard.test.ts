// Resharding under load (issue 15): two workers in this process (the real LeaseCoordinator over
// the lease table in dynalite, window state in dynalite) read a stream in kinesalite that goes
// from 2 shards to 4 (both split) and back to 2 (the children merged pairwise) while a producer
// keeps putting records with random partition keys, and the workers are never restarted. Checked
// against the oracle recomputed from what was put: the windows (count and sum per key, each
// emitted once), every record processed, per partition key the processing order following the
// put order, every record of a parent processed before the first of its children, every parent's
// lease ended at SHARD_END and the children's leases created by the running workers — and the
// leases of the ended shards cleaned up, parents before children, never before their children
// made progress, and never created again.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ListShardsCommand, MergeShardsCommand, type Shard, SplitShardCommand } from '@aws-sdk/client-kinesis';
import { count, MemorySink, type Pipeline, pipeline, sum, type TypedSource } from '@tributary/core';
import { dynamoDbState } from '@tributary/state';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createStream,
  dynamoDbClient,
  putJson,
  startStreamServers,
  streamShards,
  useServers,
} from '../../../test-support/emulators.js';
import { LeaseCoordinator } from '../src/leaseCoordinator.js';
import { DynamoDbLeaseTable } from '../src/leaseTable.js';
import type { CheckpointPosition, Lease } from '../src/leaseTypes.js';
import { createWorker, type Worker } from '../src/worker.js';
import { type Ev, makeEvents, seeded, T0, until, WINDOW_MS, windowOracle } from './fleet/cluster.js';

const STATE = 'reshard-state';
const servers = useServers(() => startStreamServers(STATE));

const created: Worker[] = [];
const clients: DynamoDBClient[] = [];
afterEach(async () => {
  for (const w of created.splice(0)) {
    void w.stop('test ended').catch(() => {});
    await w.stop('test ended').catch(() => {});
  }
  for (const c of clients.splice(0)) c.destroy();
});

/** An event with its partition key and its position among the records put with that key (from 1). */
type Rec = Ev & { p: string; ps: number };
type Win = { key: string; windowStart: number; windowEnd: number; n: number; total: number };

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const STARTS = new Set(['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP']);

/** What the workers' coordinators wrote to the lease table, in the order the writes were answered. */
type LeaseWrite =
  | { op: 'create'; by: string; shardId: string }
  | { op: 'checkpoint'; by: string; shardId: string; checkpoint: string }
  | { op: 'delete'; by: string; shardId: string; children: Lease[] | undefined; parentsLeft: string[] };

/** The DynamoDB lease table, recording its successful writes; before a delete, it reads the table (the check's own view). */
class RecordedLeaseTable extends DynamoDbLeaseTable {
  constructor(
    client: DynamoDBClient,
    name: string,
    private readonly writes: LeaseWrite[],
    private readonly by: string,
  ) {
    super(client, name, { pollIntervalMs: 5 });
  }
  override async create(lease: Lease): Promise<boolean> {
    const ok = await super.create(lease);
    if (ok) this.writes.push({ op: 'create', by: this.by, shardId: lease.leaseKey });
    return ok;
  }
  override async checkpoint(lease: Lease, position: CheckpointPosition): Promise<Lease | undefined> {
    const out = await super.checkpoint(lease, position);
    if (out) this.writes.push({ op: 'checkpoint', by: this.by, shardId: lease.leaseKey, checkpoint: out.checkpoint });
    return out;
  }
  override async delete(lease: Lease): Promise<boolean> {
    const before = new Map((await this.list()).map((l) => [l.leaseKey, l]));
    const ok = await super.delete(lease);
    if (ok) {
      this.writes.push({
        op: 'delete',
        by: this.by,
        shardId: lease.leaseKey,
        children: lease.childShardIds.length > 0 ? lease.childShardIds.map((c) => before.get(c) as Lease) : undefined,
        parentsLeft: lease.parentShardIds.filter((p) => before.has(p)),
      });
    }
    return ok;
  }
}

/** Every record seen by either worker's pipeline, in processing order (one log: both run in this process). */
interface Seen {
  worker: number;
  id: string;
  p: string;
  ps: number;
}

function reshardPipeline(name: string, stream: string, sink: MemorySink<Win>, worker: number, log: Seen[]): Pipeline {
  const source = { spec: { kinesis: { stream, endpoint: servers.kinesis.endpoint } } } as TypedSource<Rec>;
  return pipeline(name)
    .source(source)
    .eventTime((e) => e.t)
    .filter((e) => {
      log.push({ worker, id: e.id, p: e.p, ps: e.ps });
      return true;
    })
    .window({
      key: (e) => e.k,
      tumbling: WINDOW_MS,
      aggregate: { n: count(), total: sum((e: Rec) => e.s) },
      state: dynamoDbState({ table: STATE, endpoint: servers.dynamo.endpoint }),
    })
    .sink(sink)
    .build() as Pipeline;
}

/** The windows emitted by every sink, each at most once. */
function emitted(sinks: MemorySink<Win>[]): Map<string, { n: number; total: number }> {
  const m = new Map<string, { n: number; total: number }>();
  for (const sink of sinks) {
    for (const w of sink.values) {
      if (w.key === 'close') continue;
      const id = `${w.key}@${w.windowStart}`;
      expect(m.has(id), `window ${id} emitted twice`).toBe(false);
      m.set(id, { n: w.n, total: w.total });
    }
  }
  return m;
}

const parentsOf = (s: Shard) => [s.ParentShardId, s.AdjacentParentShardId].filter((p): p is string => !!p).sort();

describe('resharding under load', () => {
  it('2 → 4 → 2 shards while records flow and two workers run: windows exact, per-key order kept, parents at SHARD_END before children start, ended leases cleaned up', async () => {
    const rand = seeded(15);
    const stream = `reshard-${process.pid}-${Math.floor(rand() * 1e6)}`;
    const app = `app-${stream}`;
    const initial = (await createStream(servers.client, stream, 2)).map((s) => s.shardId).sort();

    // ---- the workers ----
    const writes: LeaseWrite[] = [];
    const log: Seen[] = [];
    const sinks = [new MemorySink<Win>(), new MemorySink<Win>()];
    const settings = {
      failoverTimeMs: 1500,
      renewIntervalMs: 300,
      fencingMarginMs: 300,
      shardSyncIntervalMs: 1000,
      leaseCleanupIntervalMs: 1000,
    };
    const workers = [0, 1].map((n) => {
      const client = dynamoDbClient(servers.dynamo.endpoint);
      clients.push(client);
      const w = createWorker(reshardPipeline(`reshard-${stream}`, stream, sinks[n] as MemorySink<Win>, n, log), {
        app,
        workerId: `w${n}`,
        settings,
        idleTimeBetweenReadsMs: 20,
        maxRecords: 200,
        tickIntervalMs: 100,
        log: quiet,
        leases: (ctx) =>
          new LeaseCoordinator({
            table: new RecordedLeaseTable(client, ctx.table, writes, ctx.workerId),
            kinesis: ctx.kinesis,
            streamName: ctx.stream,
            workerId: ctx.workerId,
            settings: ctx.settings,
            initialPosition: ctx.initialPosition,
            metrics: ctx.metrics,
            takeIntervalMs: 300,
            random: seeded(100 + n),
          }),
      });
      created.push(w);
      return w;
    });
    await Promise.all(workers.map((w) => w.start()));
    const startedAt = writes.length;

    // ---- the producer: records with random partition keys (a pool of 120), put continuously ----
    const put: Rec[] = [];
    const shardOf = new Map<string, string>();
    const last = new Map<string, string>();
    const keySeqs = new Map<string, number>();
    const pkSeqs = new Map<string, number>();
    const TOTAL = 18_000;
    const produce = async () => {
      while (put.length < TOTAL) {
        const evs = makeEvents(rand, put.length, 200, keySeqs).map((e) => {
          const p = `pk${Math.floor(rand() * 120)}`;
          const ps = (pkSeqs.get(p) ?? 0) + 1;
          pkSeqs.set(p, ps);
          return { ...e, p, ps };
        });
        const placed = await putJson(servers.client, stream, evs, (e) => ({ partitionKey: e.p }));
        placed.forEach((pl, j) => {
          const e = evs[j] as Rec;
          shardOf.set(e.id, pl.shardId);
          last.set(pl.shardId, pl.sequenceNumber);
          put.push(e);
        });
        await new Promise((r) => setTimeout(r, 15));
      }
    };
    const producing = produce();
    producing.catch(() => {}); // awaited below; a test failing before then must not leave it unhandled

    // ---- the reshards, while records flow ----
    const listShards = async () =>
      (await servers.client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
    const split = async (shardId: string) => {
      const shard = (await listShards()).find((s) => s.ShardId === shardId) as Shard;
      const lo = BigInt(shard.HashKeyRange?.StartingHashKey as string);
      const hi = BigInt(shard.HashKeyRange?.EndingHashKey as string);
      await servers.client.send(
        new SplitShardCommand({
          StreamName: stream,
          ShardToSplit: shardId,
          NewStartingHashKey: String((lo + hi + 1n) / 2n),
        }),
      );
      await streamShards(servers.client, stream); // ACTIVE again
      return (await listShards())
        .filter((s) => s.ParentShardId === shardId)
        .map((s) => s.ShardId as string)
        .sort();
    };
    await until('records put before the split', async () => put.length >= 4000);
    const children = [...(await split(initial[0] as string)), ...(await split(initial[1] as string))];
    expect(children).toHaveLength(4);
    expect((await listShards()).filter((s) => !s.SequenceNumberRange?.EndingSequenceNumber)).toHaveLength(4);
    await until('records put on the 4 shards', async () => put.length >= 10_000);
    const merged: string[] = [];
    for (const [a, b] of [
      [children[0], children[1]],
      [children[2], children[3]],
    ] as [string, string][]) {
      await servers.client.send(
        new MergeShardsCommand({ StreamName: stream, ShardToMerge: a, AdjacentShardToMerge: b }),
      );
      await streamShards(servers.client, stream);
      merged.push((await listShards()).find((s) => s.ParentShardId === a)?.ShardId as string);
    }
    await producing;
    const shards = await listShards();
    const open = shards.filter((s) => !s.SequenceNumberRange?.EndingSequenceNumber).map((s) => s.ShardId as string);
    expect(open.sort()).toEqual([...merged].sort());
    expect(shards).toHaveLength(8);
    // Every shard of the history got records (each reshard happened under load).
    const perShard = new Map<string, string[]>();
    for (const e of put)
      perShard.set(shardOf.get(e.id) as string, [...(perShard.get(shardOf.get(e.id) as string) ?? []), e.id]);
    for (const s of shards) expect((perShard.get(s.ShardId as string) ?? []).length, s.ShardId).toBeGreaterThan(0);

    // One record far ahead in time on each open shard: every window of the data closes.
    for (const s of shards.filter((x) => open.includes(x.ShardId as string))) {
      const close: Rec = { id: `close-${s.ShardId}`, k: 'close', s: 0, t: T0 + 10_000_000, p: 'close', ps: 0 };
      const [pl] = await putJson(servers.client, stream, [close], () => ({
        partitionKey: 'close',
        explicitHashKey: s.HashKeyRange?.StartingHashKey as string,
      }));
      expect(pl?.shardId).toBe(s.ShardId);
      last.set(s.ShardId as string, pl?.sequenceNumber as string);
    }

    // ---- wait for the windows, the open shards' checkpoints and the cleanup ----
    const expected = windowOracle(put);
    await until('every window', async () => emitted(sinks).size >= expected.size, 450);
    const table = new DynamoDbLeaseTable(clients[0] as DynamoDBClient, app);
    await until(
      'the open shards checkpointed at their last records, the ended shards’ leases cleaned up',
      async () => {
        const leases = await table.list();
        return (
          leases.length === open.length &&
          open.every((id) => leases.find((l) => l.leaseKey === id)?.checkpoint === last.get(id))
        );
      },
      300,
    );
    // A shard sync after the cleanup creates no lease for a shard read to its end.
    await new Promise((r) => setTimeout(r, settings.shardSyncIntervalMs + 500));
    const leases = await table.list();
    await Promise.all(workers.map((w) => w.stop('test')));

    // ---- windows: each once, equal to the oracle ----
    expect(emitted(sinks)).toEqual(expected);

    // ---- every record processed; per partition key in put order ----
    const seenIds = new Set(log.map((s) => s.id));
    for (const e of put) expect(seenIds.has(e.id), e.id).toBe(true);
    // A record is processed only after every earlier record of its key (a replay after a lease
    // moved may go back, never ahead).
    const upTo = new Map<string, number>();
    let replays = 0;
    for (const s of log) {
      if (s.p === 'close') continue;
      const before = upTo.get(s.p) ?? 0;
      expect(s.ps, `${s.p} #${s.ps} processed after only #${before}`).toBeLessThanOrEqual(before + 1);
      if (s.ps <= before) replays++;
      upTo.set(s.p, Math.max(before, s.ps));
    }
    for (const [p, n] of pkSeqs) expect(upTo.get(p), p).toBe(n);

    // ---- every record of a parent processed before the first of its children ----
    const firstAt = new Map<string, number>();
    const lastAt = new Map<string, number>();
    log.forEach((s, i) => {
      const shard = shardOf.get(s.id) ?? `close:${s.id}`;
      if (!firstAt.has(shard)) firstAt.set(shard, i);
      lastAt.set(shard, i);
    });
    for (const child of shards.filter((s) => parentsOf(s).length > 0)) {
      for (const parent of parentsOf(child)) {
        expect(lastAt.get(parent) as number, `${parent} before ${child.ShardId}`).toBeLessThan(
          firstAt.get(child.ShardId as string) as number,
        );
      }
    }

    // ---- leases: parents ended at SHARD_END; children created by the running workers ----
    const parents = shards.filter((s) => s.SequenceNumberRange?.EndingSequenceNumber).map((s) => s.ShardId as string);
    expect(parents.sort()).toEqual([...initial, ...children].sort());
    for (const parent of parents) {
      const cps = writes.filter((w) => w.op === 'checkpoint' && w.shardId === parent);
      expect(cps.at(-1), parent).toMatchObject({ checkpoint: 'SHARD_END' });
      expect(
        cps.filter((w) => w.op === 'checkpoint' && w.checkpoint === 'SHARD_END'),
        parent,
      ).toHaveLength(1);
    }
    for (const child of [...children, ...merged]) {
      const creates = writes.filter((w) => w.op === 'create' && w.shardId === child);
      expect(creates, child).toHaveLength(1);
      expect(writes.indexOf(creates[0] as LeaseWrite)).toBeGreaterThanOrEqual(startedAt);
    }
    for (const id of open) expect(leases.find((l) => l.leaseKey === id)?.checkpoint).toBe(last.get(id));

    // ---- cleanup: every ended shard's lease deleted once, its parents' first, its children started ----
    const deletes = writes.filter((w): w is Extract<LeaseWrite, { op: 'delete' }> => w.op === 'delete');
    expect(deletes.map((d) => d.shardId).sort()).toEqual([...parents].sort());
    for (const d of deletes) {
      expect(d.parentsLeft, d.shardId).toEqual([]);
      const kids = shards.filter((s) => parentsOf(s).includes(d.shardId)).map((s) => s.ShardId as string);
      expect(d.children?.map((c) => c?.leaseKey).sort(), d.shardId).toEqual(kids.sort());
      for (const c of d.children ?? [])
        expect(STARTS.has(c.checkpoint), `${d.shardId}: child ${c.leaseKey}`).toBe(false);
    }
    // Not created again by the shard syncs since (the ended shards are still listed).
    expect(leases.map((l) => l.leaseKey).sort()).toEqual([...open].sort());
    for (const parent of parents)
      expect(writes.filter((w) => w.op === 'create' && w.shardId === parent)).toHaveLength(1);

    console.info(
      `reshard under load: ${put.length} records over ${shards.length} shards, ${log.length} processed (${replays} replayed), ` +
        `${emitted(sinks).size} windows, by worker: ${[0, 1].map((n) => log.filter((s) => s.worker === n).length).join('/')}`,
    );
  }, 90_000);
});
