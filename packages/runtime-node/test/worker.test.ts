// The worker end to end in this process: kinesalite (the stream, 4 shards, random partition
// keys), dynalite (window state and, with the real LeaseCoordinator, the lease table). Every
// check is against an oracle recomputed from the input: per key and window, the count of the
// events put; per shard, the records in put order and its last sequence number.
import { randomBytes } from 'node:crypto';
import {
  ExpiredIteratorException,
  GetRecordsCommand,
  type KinesisClient,
  ProvisionedThroughputExceededException,
  PutRecordCommand,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import { count, MemorySink, type Pipeline, PipelineValidationError, pipeline, type TypedSource } from '@tributary/core';
import { aggregateUserRecords } from '@tributary/core/spi';
import { dynamoDbState } from '@tributary/state';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createStream,
  dynamoDbClient,
  type Placed,
  putJson,
  startStreamServers,
  streamShards,
  useServers,
} from '../../../test-support/emulators.js';
import { DynamoDbLeaseTable } from '../src/leaseTable.js';
import { createWorker, type Worker, type WorkerOptions } from '../src/worker.js';
import { MemoryLeases, MemoryLeaseTable } from './support/memoryLeases.js';

const STATE = 'worker-state';
const servers = useServers(() => startStreamServers(STATE));

/** Every worker a test created: one left running by a failed test is stopped at once after it. */
const created: Worker[] = [];
afterEach(async () => {
  for (const w of created.splice(0)) {
    void w.stop('test ended').catch(() => {});
    await w.stop('test ended').catch(() => {}); // a worker whose start failed rejects its done
  }
});
function tracked(w: Worker): Worker {
  created.push(w);
  return w;
}

type Ev = { i: number; k: string; t: number };
type Win = { key: string; windowStart: number; windowEnd: number; n: number };

const T0 = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;
const WINDOW = 1000;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
let names = 0;

/** `n` events from index `from`: 40 window keys at random, event times rising by 1 ms (1000 events a window). */
function events(from: number, n: number): Ev[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    return { i, k: `k${(randomBytes(1)[0] as number) % 40}`, t: T0 + i };
  });
}

interface TestStream {
  stream: string;
  shardIds: string[];
  /** Shard of each event index. */
  shardOf: Map<number, string>;
  /** Event indexes of each shard, in put order. */
  order: Map<string, number[]>;
  /** The last sequence number put on each shard. */
  last: Map<string, string>;
  put(evs: Ev[]): Promise<void>;
  /** One event per open shard far ahead in time (key `close`): every window of the data closes. */
  close(): Promise<void>;
}

async function testStream(): Promise<TestStream> {
  const stream = `work-${++names}`;
  const shards = await createStream(servers.client, stream, 4);
  const s: TestStream = {
    stream,
    shardIds: shards.map((x) => x.shardId),
    shardOf: new Map(),
    order: new Map(),
    last: new Map(),
    async put(evs) {
      const placed = await putJson(servers.client, stream, evs, () => ({
        partitionKey: randomBytes(8).toString('hex'),
      }));
      placed.forEach((p: Placed, j) => {
        const e = evs[j] as Ev;
        s.shardOf.set(e.i, p.shardId);
        s.order.set(p.shardId, [...(s.order.get(p.shardId) ?? []), e.i]);
        s.last.set(p.shardId, p.sequenceNumber);
      });
    },
    async close() {
      for (const sh of (await streamShards(servers.client, stream)).filter((x) => x.open)) {
        const placed = await putJson(servers.client, stream, [{ i: -1, k: 'close', t: T0 + 10_000_000 }], () => ({
          partitionKey: 'close',
          explicitHashKey: sh.hashKey,
        }));
        expect(placed[0]?.shardId).toBe(sh.shardId);
        s.last.set(sh.shardId, placed[0]?.sequenceNumber as string);
      }
    },
  };
  return s;
}

/** The oracle: count per key and window of the events put. */
function oracle(evs: Ev[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of evs) {
    const id = `${e.k}@${Math.floor((e.t - T0) / WINDOW) * WINDOW + T0}`;
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

/** The windows emitted (every sink), each at most once (a second emission is an error). */
function emitted(sinks: MemorySink<Win>[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const sink of sinks) {
    for (const w of sink.values) {
      if (w.key === 'close') continue;
      const id = `${w.key}@${w.windowStart}`;
      if (m.has(id)) throw new Error(`window ${id} emitted twice`);
      m.set(id, w.n);
    }
  }
  return m;
}

async function until(what: string, cond: () => boolean, timeoutMs = 180_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The pipeline: every event seen is logged (in processing order) by `seen`; a tumbling count per key in DynamoDB state. */
function countPipeline(name: string, stream: string, sink: MemorySink<Win>, seen: number[]): Pipeline {
  const source = { spec: { kinesis: { stream, endpoint: servers.kinesis.endpoint } } } as TypedSource<Ev>;
  return pipeline(name)
    .source(source)
    .eventTime((e) => e.t)
    .filter((e) => {
      seen.push(e.i);
      return true;
    })
    .window({
      key: (e) => e.k,
      tumbling: WINDOW,
      aggregate: { n: count() },
      state: dynamoDbState({ table: STATE, endpoint: servers.dynamo.endpoint }),
    })
    .sink(sink)
    .build() as Pipeline;
}

/**
 * Each worker processed each shard's records in order: its log of a shard is runs of consecutive
 * records of the shard. A run may start again at or before where the last ended (a replay from a
 * checkpoint after a failed batch or a lease that came back), or ahead of it only over records
 * another worker processed (the lease was held elsewhere meanwhile). Returns the replays.
 */
function checkOrder(s: TestStream, seen: number[], others: number[][] = []): number {
  let replays = 0;
  const elsewhere = new Set(others.flat());
  const at = new Map<string, number>();
  for (const i of seen) {
    if (i < 0) continue;
    const shard = s.shardOf.get(i) as string;
    const order = s.order.get(shard) as number[];
    const pos = order.indexOf(i);
    expect(pos).toBeGreaterThanOrEqual(0);
    const prev = at.get(shard);
    if (prev !== undefined && pos !== prev + 1) {
      if (pos <= prev) replays++;
      else for (const skipped of order.slice(prev + 1, pos)) expect(elsewhere.has(skipped)).toBe(true);
    }
    at.set(shard, pos);
  }
  return replays;
}

const settings = { failoverTimeMs: 1500, renewIntervalMs: 300, fencingMarginMs: 300, shardSyncIntervalMs: 1000 };

function realWorker(
  p: Pipeline,
  app: string,
  workerId: string,
  extra: Partial<WorkerOptions> = {},
): { worker: Worker; close(): void } {
  const dynamodb = dynamoDbClient(servers.dynamo.endpoint);
  const worker = tracked(
    createWorker(p, {
      app,
      workerId,
      dynamodb,
      settings,
      idleTimeBetweenReadsMs: 20,
      maxRecords: 500,
      tickIntervalMs: 100,
      log: quiet,
      ...extra,
    }),
  );
  return { worker, close: () => dynamodb.destroy() };
}

/** A Kinesis client whose GetRecords calls sometimes fail: throttled every 4th, iterator expired every 7th. */
function flakyKinesis() {
  let calls = 0;
  let failures = 0;
  const client = {
    send(command: unknown) {
      if (command instanceof GetRecordsCommand) {
        calls++;
        if (calls % 4 === 0) {
          failures++;
          return Promise.reject(
            new ProvisionedThroughputExceededException({ message: 'Rate exceeded', $metadata: {} }),
          );
        }
        if (calls % 7 === 0) {
          failures++;
          return Promise.reject(new ExpiredIteratorException({ message: 'Iterator expired', $metadata: {} }));
        }
      }
      return servers.client.send(command as never);
    },
    destroy() {},
    get failures() {
      return failures;
    },
  };
  return client;
}

describe('createWorker', () => {
  it('one worker over 4 shards: 20k records, tumbling count in DynamoDB state equal to the oracle; throttling and expired iterators absorbed; each shard checkpointed at its last record', async () => {
    const s = await testStream();
    const evs = events(0, 20_000);
    await s.put(evs);
    await s.close();
    const sink = new MemorySink<Win>();
    const seen: number[] = [];
    const table = new MemoryLeaseTable();
    const flaky = flakyKinesis();
    const worker = tracked(
      createWorker(countPipeline(`one-${s.stream}`, s.stream, sink, seen), {
        workerId: 'w1',
        kinesis: flaky as unknown as KinesisClient,
        idleTimeBetweenReadsMs: 20,
        maxRecords: 1000,
        tickIntervalMs: 100,
        log: quiet,
        leases: (ctx) =>
          new MemoryLeases({ table, kinesis: servers.client, stream: ctx.stream, workerId: ctx.workerId }),
      }),
    );
    await worker.start();
    const expected = oracle(evs);
    await until('every window', () => emitted([sink]).size >= expected.size);
    await until('every checkpoint', () =>
      s.shardIds.every((id) => table.leases.get(id)?.checkpoint === s.last.get(id)),
    );
    await worker.stop('test');
    expect(emitted([sink])).toEqual(expected);
    expect(flaky.failures).toBeGreaterThan(0);
    expect(checkOrder(s, seen)).toBe(0);
    expect(new Set(seen).size).toBe(20_001);
    for (const id of s.shardIds) expect(table.leases.get(id)?.checkpoint).toBe(s.last.get(id));
    // Released on the graceful stop.
    for (const id of s.shardIds) expect(table.leases.get(id)?.leaseOwner).toBeUndefined();
    expect(worker.status().state).toBe('stopped');
    expect(worker.status().recordsIn).toBeGreaterThanOrEqual(20_004);
  });

  it('a sink that fails some writes: the batch is processed again, each window emitted once, totals exact', async () => {
    const s = await testStream();
    const evs = events(0, 8000);
    await s.put(evs);
    await s.close();
    /** Fails every third write (nothing of it kept), as a sink whose destination refused the call. */
    class FlakySink extends MemorySink<Win> {
      writes = 0;
      failed = 0;
      override async write(records: Parameters<MemorySink<Win>['write']>[0]): Promise<void> {
        if (++this.writes % 3 === 0) {
          this.failed++;
          throw Object.assign(new Error('service unavailable'), { name: 'ServiceUnavailable' });
        }
        return super.write(records);
      }
    }
    const sink = new FlakySink();
    const seen: number[] = [];
    const table = new MemoryLeaseTable();
    const worker = tracked(
      createWorker(countPipeline(`flaky-sink-${s.stream}`, s.stream, sink, seen), {
        workerId: 'w',
        kinesis: servers.client,
        idleTimeBetweenReadsMs: 20,
        maxRecords: 500,
        tickIntervalMs: 100,
        retry: { baseDelay: 5, maxDelay: 20 },
        log: quiet,
        leases: (ctx) =>
          new MemoryLeases({ table, kinesis: servers.client, stream: ctx.stream, workerId: ctx.workerId }),
      }),
    );
    await worker.start();
    const expected = oracle(evs);
    await until('every window', () => emitted([sink]).size >= expected.size);
    await until('every checkpoint', () =>
      s.shardIds.every((id) => table.leases.get(id)?.checkpoint === s.last.get(id)),
    );
    await worker.stop('test');
    expect(emitted([sink])).toEqual(expected);
    expect(sink.failed).toBeGreaterThan(0);
    expect(worker.status().retries).toBeGreaterThanOrEqual(1);
    // A failed batch was processed again from its first record: replays, each in order.
    checkOrder(s, seen);
    expect(new Set(seen).size).toBe(8001);
  });

  it('a shard whose reading fails (not a transient failure) is started again after a backoff, from its checkpoint', async () => {
    const s = await testStream();
    const evs = events(0, 4000);
    await s.put(evs);
    await s.close();
    let calls = 0;
    const denying = {
      send(command: unknown) {
        if (command instanceof GetRecordsCommand && ++calls <= 3)
          return Promise.reject(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
        return servers.client.send(command as never);
      },
      destroy() {},
    };
    const errors: string[] = [];
    const sink = new MemorySink<Win>();
    const seen: number[] = [];
    const table = new MemoryLeaseTable();
    const worker = tracked(
      createWorker(countPipeline(`denied-${s.stream}`, s.stream, sink, seen), {
        workerId: 'w',
        kinesis: denying as unknown as KinesisClient,
        idleTimeBetweenReadsMs: 20,
        tickIntervalMs: 100,
        retry: { baseDelay: 5, maxDelay: 20 },
        log: { ...quiet, error: (msg) => errors.push(msg) },
        leases: (ctx) =>
          new MemoryLeases({ table, kinesis: servers.client, stream: ctx.stream, workerId: ctx.workerId }),
      }),
    );
    await worker.start();
    const expected = oracle(evs);
    await until('every window', () => emitted([sink]).size >= expected.size);
    await worker.stop('test');
    expect(emitted([sink])).toEqual(expected);
    expect(errors.filter((e) => e.startsWith('shard reading failed'))).toHaveLength(3);
    expect(checkOrder(s, seen)).toBe(0);
    expect(new Set(seen).size).toBe(4001);
  });

  it('two workers share the stream through the real LeaseCoordinator: leases split 2/2, totals exact, each shard in order', async () => {
    const s = await testStream();
    const evs = events(0, 20_000);
    await s.put(evs);
    const sinks = [new MemorySink<Win>(), new MemorySink<Win>()];
    const seen: number[][] = [[], []];
    const name = `two-${s.stream}`;
    const app = `app-${s.stream}`;
    const workers = [0, 1].map((n) =>
      realWorker(countPipeline(name, s.stream, sinks[n] as MemorySink<Win>, seen[n] as number[]), app, `w${n}`),
    );
    await Promise.all(workers.map((w) => w.worker.start()));
    await until('an even split', () =>
      workers.every((w) => w.worker.status().shards.filter((sh) => sh.state === 'reading').length === 2),
    );
    await s.close();
    const expected = oracle(evs);
    await until('every window', () => emitted(sinks).size >= expected.size);
    await Promise.all(workers.map((w) => w.worker.stop('test')));
    for (const w of workers) w.close();
    expect(emitted(sinks)).toEqual(expected);
    checkOrder(s, seen[0] as number[], [seen[1] as number[]]);
    checkOrder(s, seen[1] as number[], [seen[0] as number[]]);
    expect(new Set([...(seen[0] as number[]), ...(seen[1] as number[])]).size).toBe(20_001);
    // Both worked.
    expect((seen[0] as number[]).length).toBeGreaterThan(0);
    expect((seen[1] as number[]).length).toBeGreaterThan(0);
  });

  for (const how of ['graceful', 'at once'] as const) {
    it(`one of two workers stops mid-run (${how}): the other takes its shards and totals stay exact`, async () => {
      const s = await testStream();
      const evs = events(0, 20_000);
      await s.put(evs.slice(0, 10_000));
      const sinks = [new MemorySink<Win>(), new MemorySink<Win>()];
      const seen: number[][] = [[], []];
      const name = `stop-${s.stream}`;
      const app = `app-${s.stream}`;
      const workers = [0, 1].map((n) =>
        realWorker(countPipeline(name, s.stream, sinks[n] as MemorySink<Win>, seen[n] as number[]), app, `w${n}`, {
          maxRecords: 100,
        }),
      );
      await Promise.all(workers.map((w) => w.worker.start()));
      const [a, b] = workers as [(typeof workers)[0], (typeof workers)[0]];
      await until('both reading', () => a.worker.status().shards.some((sh) => sh.state === 'reading'));
      await until('some progress', () => (seen[0] as number[]).length > 1000);
      if (how === 'graceful') await a.worker.stop('test');
      else {
        void a.worker.stop('test');
        await a.worker.stop('again'); // the second stop: nothing more checkpointed, leases left to expire
      }
      await s.put(evs.slice(10_000));
      await until(
        'b reading every shard',
        () => b.worker.status().shards.filter((sh) => sh.state === 'reading').length === 4,
      );
      await s.close();
      const expected = oracle(evs);
      await until('every window', () => emitted(sinks).size >= expected.size);
      await b.worker.stop('test');
      await a.worker.done;
      for (const w of workers) w.close();
      expect(emitted(sinks)).toEqual(expected);
      checkOrder(s, seen[0] as number[], [seen[1] as number[]]);
      checkOrder(s, seen[1] as number[], [seen[0] as number[]]);
      const all = new Set([...(seen[0] as number[]), ...(seen[1] as number[])]);
      expect(all.size).toBe(20_001);
    });
  }

  it('a worker whose renewals stop (a zombie) stops its shards before they are taken: it processes nothing more, totals exact', async () => {
    const s = await testStream();
    const evs = events(0, 20_000);
    await s.put(evs.slice(0, 4000));
    const sinks = [new MemorySink<Win>(), new MemorySink<Win>()];
    const seen: number[][] = [[], []];
    const name = `zombie-${s.stream}`;
    const table = new MemoryLeaseTable();
    const coordinators: MemoryLeases[] = [];
    const workers = [0, 1].map((n) =>
      tracked(
        createWorker(countPipeline(name, s.stream, sinks[n] as MemorySink<Win>, seen[n] as number[]), {
          workerId: `w${n}`,
          kinesis: servers.client,
          idleTimeBetweenReadsMs: 20,
          maxRecords: 50,
          tickIntervalMs: 100,
          log: quiet,
          leases: (ctx) => {
            const c = new MemoryLeases({ table, kinesis: servers.client, stream: ctx.stream, workerId: ctx.workerId });
            coordinators.push(c);
            return c;
          },
        }),
      ),
    );
    const [a, b] = workers as [Worker, Worker];
    await a.start();
    await b.start();
    await until('an even split', () =>
      workers.every((w) => w.status().shards.filter((sh) => sh.state === 'reading').length === 2),
    );
    const aShards = a
      .status()
      .shards.filter((sh) => sh.state === 'reading')
      .map((sh) => sh.shardId);
    (coordinators[0] as MemoryLeases).paused = true;
    await until('a fenced', () => a.status().shards.every((sh) => sh.state !== 'reading'));
    expect(
      a
        .status()
        .shards.filter((sh) => aShards.includes(sh.shardId))
        .map((sh) => sh.state),
      // Fenced by its own clock, or told the lease is lost when the other takes it first (a loaded
      // machine may delay the fenced shard's loop past the take): stopped either way; what it
      // wrote after is checked below.
    ).toEqual([expect.stringMatching(/^(fenced|lost)$/), expect.stringMatching(/^(fenced|lost)$/)]);
    const processedByA = (seen[0] as number[]).length;
    const checkpointsByA = table.checkpoints.filter((c) => c.owner === 'w0').length;
    await s.put(evs.slice(4000));
    await until('b reading every shard', () => b.status().shards.filter((sh) => sh.state === 'reading').length === 4);
    await s.close();
    const expected = oracle(evs);
    await until('every window', () => emitted(sinks).size >= expected.size);
    // The zombie processed and checkpointed nothing after it was fenced.
    expect((seen[0] as number[]).length).toBe(processedByA);
    expect(table.checkpoints.filter((c) => c.owner === 'w0').length).toBe(checkpointsByA);
    await b.stop('test');
    await a.stop('test');
    expect(emitted(sinks)).toEqual(expected);
    expect(new Set([...(seen[0] as number[]), ...(seen[1] as number[])]).size).toBe(20_001);
    expect((coordinators[1] as MemoryLeases).takes).toBeGreaterThanOrEqual(2);
  });

  it('a shard split mid-run: the parent is read to SHARD_END and checkpointed so, its children start after it; totals exact', async () => {
    const s = await testStream();
    const evs = events(0, 16_000);
    await s.put(evs.slice(0, 8000));
    const sink = new MemorySink<Win>();
    const seen: number[] = [];
    const app = `app-${s.stream}`;
    const w = realWorker(countPipeline(`split-${s.stream}`, s.stream, sink, seen), app, 'w0', { maxRecords: 200 });
    await w.worker.start();
    await until('some progress', () => seen.length > 1000);
    const parent = s.shardIds[0] as string;
    await servers.client.send(
      new SplitShardCommand({
        StreamName: s.stream,
        ShardToSplit: parent,
        NewStartingHashKey: (2n ** 125n).toString(),
      }),
    );
    const children = (await streamShards(servers.client, s.stream))
      .filter((x) => x.open && !s.shardIds.includes(x.shardId))
      .map((x) => x.shardId);
    expect(children).toHaveLength(2);
    await s.put(evs.slice(8000));
    expect(children.every((c) => (s.order.get(c) ?? []).length > 0)).toBe(true);
    await s.close();
    const expected = oracle(evs);
    await until('every window', () => emitted([sink]).size >= expected.size);
    await until('the children checkpointed', () =>
      children.every(
        (c) => w.worker.status().shards.find((sh) => sh.shardId === c)?.checkpoint?.sequenceNumber === s.last.get(c),
      ),
    );
    await w.worker.stop('test');
    w.close();
    expect(emitted([sink])).toEqual(expected);
    expect(checkOrder(s, seen)).toBe(0);
    expect(new Set(seen).size).toBe(16_001); // the closing records are all index -1
    // Every record of the parent was processed before the first of either child.
    const lastOfParent = Math.max(...(s.order.get(parent) ?? []).map((i) => seen.indexOf(i)));
    for (const c of children) {
      const firstOfChild = Math.min(...(s.order.get(c) ?? []).map((i) => seen.indexOf(i)));
      expect(firstOfChild).toBeGreaterThan(lastOfParent);
    }
    const client = dynamoDbClient(servers.dynamo.endpoint);
    const leases = new Map((await new DynamoDbLeaseTable(client, app).list()).map((l) => [l.leaseKey, l]));
    client.destroy();
    expect(leases.get(parent)?.checkpoint).toBe('SHARD_END');
    for (const c of children) {
      expect(leases.get(c)?.checkpoint).toBe(s.last.get(c));
      expect(leases.get(c)?.parentShardIds).toEqual([parent]);
    }
  });

  it('a restart resumes at the checkpoints: no record is processed again after a graceful stop, totals exact', async () => {
    const s = await testStream();
    const evs = events(0, 20_000);
    await s.put(evs.slice(0, 10_000));
    const sinks = [new MemorySink<Win>(), new MemorySink<Win>()];
    const seen: number[][] = [[], []];
    const name = `restart-${s.stream}`;
    const app = `app-${s.stream}`;
    const first = realWorker(
      countPipeline(name, s.stream, sinks[0] as MemorySink<Win>, seen[0] as number[]),
      app,
      'w0',
    );
    await first.worker.start();
    await until('the first half', () => new Set(seen[0]).size === 10_000);
    await first.worker.stop('test');
    first.close();
    await s.put(evs.slice(10_000));
    await s.close();
    const second = realWorker(
      countPipeline(name, s.stream, sinks[1] as MemorySink<Win>, seen[1] as number[]),
      app,
      'w1',
    );
    await second.worker.start();
    const expected = oracle(evs);
    await until('every window', () => emitted(sinks).size >= expected.size);
    await second.worker.stop('test');
    second.close();
    expect(emitted(sinks)).toEqual(expected);
    // Nothing the first worker checkpointed was read again.
    expect((seen[1] as number[]).filter((i) => i >= 0 && i < 10_000)).toEqual([]);
    expect(new Set(seen[1]).size).toBe(10_001);
    // The lease table: each shard checkpointed at its last record, no owner (released).
    const client = dynamoDbClient(servers.dynamo.endpoint);
    const leases = await new DynamoDbLeaseTable(client, app).list();
    client.destroy();
    expect(new Map(leases.map((l) => [l.leaseKey, l.checkpoint]))).toEqual(s.last);
    for (const l of leases) expect(l.leaseOwner).toBeUndefined();
  });

  it('resumes a KPL aggregate at the user record after its sub-sequence checkpoint', async () => {
    const stream = `work-${++names}`;
    const shards = await createStream(servers.client, stream, 4);
    const target = shards[0]?.shardId as string;
    const seqs: string[] = [];
    for (let agg = 0; agg < 3; agg++) {
      const users = Array.from({ length: 10 }, (_, sub) => ({
        partitionKey: randomBytes(4).toString('hex'),
        explicitHashKey: '7',
        data: Buffer.from(JSON.stringify({ i: agg * 10 + sub, k: 'a', t: T0 })),
      }));
      const res = await servers.client.send(
        new PutRecordCommand({
          StreamName: stream,
          Data: aggregateUserRecords(users),
          PartitionKey: 'p',
          ExplicitHashKey: '7',
        }),
      );
      expect(res.ShardId).toBe(target);
      seqs.push(res.SequenceNumber as string);
    }
    // Plain records on the other shards.
    const others = shards.slice(1).map((sh, j) => ({ i: 100 + j, k: 'b', t: T0, hash: sh.hashKey }));
    await putJson(servers.client, stream, others, (o) => ({ partitionKey: 'x', explicitHashKey: o.hash }));
    const table = new MemoryLeaseTable();
    table.leases.set(target, {
      leaseKey: target,
      leaseCounter: 3,
      checkpoint: seqs[1] as string,
      checkpointSubSequenceNumber: 3,
      ownerSwitchesSinceCheckpoint: 0,
      parentShardIds: [],
      childShardIds: [],
    });
    const sink = new MemorySink<{ i: number }>();
    const source = { spec: { kinesis: { stream, endpoint: servers.kinesis.endpoint } } } as TypedSource<{ i: number }>;
    const p = pipeline(`kpl-${stream}`).source(source).sink(sink).build() as Pipeline;
    const worker = tracked(
      createWorker(p, {
        workerId: 'w',
        kinesis: servers.client,
        idleTimeBetweenReadsMs: 20,
        log: quiet,
        leases: (ctx) =>
          new MemoryLeases({ table, kinesis: servers.client, stream: ctx.stream, workerId: ctx.workerId }),
      }),
    );
    await worker.start();
    const expected = [
      ...Array.from({ length: 6 }, (_, j) => 14 + j),
      ...Array.from({ length: 10 }, (_, j) => 20 + j),
      100,
      101,
      102,
    ];
    await until('the records after the checkpoint', () => sink.values.length >= expected.length);
    await until('the checkpoint', () => table.leases.get(target)?.checkpoint === seqs[2]);
    await worker.stop('test');
    expect(sink.values.map((v) => v.i).sort((x, y) => x - y)).toEqual(expected);
    expect(table.leases.get(target)?.checkpointSubSequenceNumber).toBe(9);
  });

  it('refuses window state in memory unless each window is fed by one shard (keyIsPartitionKey)', async () => {
    const s = await testStream();
    const source = { spec: { kinesis: { stream: s.stream, endpoint: servers.kinesis.endpoint } } } as TypedSource<Ev>;
    const memory = pipeline('memory-state')
      .source(source)
      .window({ key: (e) => e.k, tumbling: WINDOW, aggregate: { n: count() } })
      .sink(new MemorySink())
      .build() as Pipeline;
    const table = new MemoryLeaseTable();
    const leases = () => new MemoryLeases({ table, kinesis: servers.client, stream: s.stream, workerId: 'w' });
    const refused = tracked(createWorker(memory, { kinesis: servers.client, log: quiet, leases }));
    const err = await refused.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PipelineValidationError);
    expect((err as PipelineValidationError).issues.map((i) => i.path)).toEqual(['/steps/0/window']);
    expect((err as Error).message).toMatch(/DynamoDB or Redis/);
    await expect(refused.done).rejects.toBe(err);
    // Nothing was taken.
    expect(table.leases.size).toBe(0);

    const perShard = pipeline('memory-per-shard')
      .source(source)
      .window({ key: (e) => e.k, tumbling: WINDOW, aggregate: { n: count() }, keyIsPartitionKey: true })
      .sink(new MemorySink())
      .build() as Pipeline;
    const allowed = tracked(
      createWorker(perShard, { kinesis: servers.client, log: quiet, leases, idleTimeBetweenReadsMs: 20 }),
    );
    await allowed.start();
    expect(allowed.status().state).toBe('running');
    await allowed.stop('test');
    expect(table.leases.size).toBe(4);
  });

  it('refuses a pipeline whose source is not a Kinesis stream', async () => {
    const p = pipeline('file-source')
      .source({ spec: { file: { path: 'in.jsonl' } } } as TypedSource<Ev>)
      .sink(new MemorySink())
      .build() as Pipeline;
    const w = tracked(createWorker(p, { kinesis: servers.client, log: quiet, leases: () => ({}) as never }));
    await expect(w.start()).rejects.toThrow(
      'the worker reads a Kinesis stream: pipeline `file-source` has a file source',
    );
  });
});
