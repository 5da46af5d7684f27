// Windows on the real shape of a stream, through the Lambda event-source simulator on kinesalite:
// 4 shards polled concurrently with random delays (interleavings the test does not control),
// partition key = window key or random, window state in DynamoDB (dynalite) or Redis
// (redis-server) — one container for every shard (lambda-local) or one container per shard,
// recycled — and a few records hours old. Every record ends in exactly one place: a window (the
// totals equal an oracle recomputed from the input) or the late output; a replay of the whole
// stream against the same state re-emits nothing and reports nothing late.
import { count, fileSource, type Pipeline, pipeline, sum } from '@tributary/core';
import type { StateStore } from '@tributary/core/spi';
import { createHandler, LambdaSimulator, MemoryCheckpoints } from '@tributary/runtime-lambda';
import { dynamoDbState, redisState } from '@tributary/state';
import type { KinesisStreamEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { useServers } from '../../../test-support/emulators.js';
import {
  expectEveryRecordOnce,
  generate,
  oracleWindows,
  prng,
  type ShapeEvent,
  type ShapeOutputs,
  shapeOutputs,
  startShapeServers,
  streamOf,
  T0,
} from '../../../test-support/shape.js';

const servers = useServers(() => startShapeServers('shape-state'));

/** `dynamodb-spread`: DynamoDB with the shards' progress spread over 4 partition keys. */
type StateName = 'memory' | 'dynamodb' | 'dynamodb-spread' | 'redis';
type Window = { size: number; every?: number };

let runs = 0;
function store(state: StateName): StateStore | undefined {
  if (state === 'dynamodb') return dynamoDbState({ table: 'shape-state', endpoint: servers.dynamo.endpoint });
  if (state === 'dynamodb-spread') {
    return dynamoDbState({ table: 'shape-state', endpoint: servers.dynamo.endpoint, progressPartitions: 4 });
  }
  if (state === 'redis') return redisState({ url: servers.redis.url });
  return undefined;
}

function windowPipeline(name: string, w: Window, state: StateName, sinks: ShapeOutputs): Pipeline {
  const st = store(state);
  return pipeline(name)
    .source(fileSource<ShapeEvent>({ path: '-' }))
    .eventTime((e) => e.ts)
    .window({
      key: (e) => e.user,
      ...(w.every ? { hopping: { size: w.size, every: w.every } } : { tumbling: w.size }),
      outOfOrderness: 1000,
      aggregate: { n: count(), s: sum((e) => e.amount) },
      late: sinks.late,
      // Memory state in Lambda dies with its container: only with the explicit opt-in.
      state: st ?? { memory: { volatile: true } },
    })
    .sink(sinks.out)
    .build();
}

/** A handler that waits a random 0–4 ms before each invocation: shards interleave differently. */
function jittered(seed: number, invoke: (e: KinesisStreamEvent) => Promise<unknown>) {
  const rnd = prng(seed);
  return async (e: KinesisStreamEvent) => {
    await new Promise((r) => setTimeout(r, Math.floor(rnd() * 5)));
    return (await invoke(e)) as never;
  };
}

interface Run {
  name: string;
  stream: string;
  shards: string[];
  w: Window;
  state: StateName;
  sinks: ShapeOutputs;
  seed: number;
  containers: 'one' | 'per-shard';
  batchSize: number;
  /** ParallelizationFactor: concurrent batches per shard, each lane in its own container. */
  parallelization?: number;
}

/** Runs the stream through the simulator from the start, then ends the input on every shard. */
async function simulate(r: Run): Promise<{ invocations: number; failed: number }> {
  const p = windowPipeline(r.name, r.w, r.state, r.sinks);
  const handlers: ReturnType<typeof createHandler>[] = [];
  const container = () => {
    const h = createHandler(p, {
      deadLetter: r.sinks.dead,
      shards: r.shards,
      parallelizationFactor: r.parallelization ?? 1,
      log: () => {},
    });
    handlers.push(h);
    return jittered(r.seed + handlers.length, h);
  };
  let failed = 0;
  const one = r.containers === 'one' ? container() : undefined;
  const sim = new LambdaSimulator(one ?? { container, recycleAfter: 7 }, {
    client: servers.client,
    stream: r.stream,
    checkpoints: new MemoryCheckpoints(),
    mapping: { batchSize: r.batchSize, maximumRetryAttempts: 3, parallelizationFactor: r.parallelization ?? 1 },
    onFailure: async (f) => {
      failed += f.records.length;
    },
    pollIntervalMs: 2,
  });
  await sim.runUntilIdle();
  // The end of the stream: a container ends every shard's input (lambda-local's flush) — the
  // one container, or a new one (any container can: the state is in the store).
  const last = one
    ? (handlers[0] as ReturnType<typeof createHandler>)
    : createHandler(p, { deadLetter: r.sinks.dead, shards: r.shards, log: () => {} });
  if (!one) handlers.push(last);
  await (await last.ready).flush({ shards: r.shards });
  for (const h of handlers) await (await h.ready).close();
  return { invocations: sim.invocations, failed };
}

/** Every record in exactly one place, against the tumbling or hopping windows' oracle. */
const expectExact = (events: ShapeEvent[], w: Window, s: ShapeOutputs) =>
  expectEveryRecordOnce(events, (fresh) => oracleWindows(fresh, w), w.every ? w.size / w.every : 1, s);

describe('windows on the real shape: 4 shards through the Lambda event source', () => {
  const cases: { state: StateName; partitionKey: 'keyed' | 'random'; containers: 'one' | 'per-shard'; w: Window }[] = [
    { state: 'dynamodb', partitionKey: 'random', containers: 'one', w: { size: 10_000 } },
    { state: 'dynamodb', partitionKey: 'random', containers: 'per-shard', w: { size: 10_000, every: 5_000 } },
    { state: 'dynamodb', partitionKey: 'keyed', containers: 'per-shard', w: { size: 10_000 } },
    { state: 'dynamodb-spread', partitionKey: 'random', containers: 'per-shard', w: { size: 10_000 } },
    { state: 'redis', partitionKey: 'random', containers: 'one', w: { size: 10_000, every: 5_000 } },
    { state: 'redis', partitionKey: 'random', containers: 'per-shard', w: { size: 10_000 } },
    { state: 'redis', partitionKey: 'keyed', containers: 'one', w: { size: 10_000 } },
    { state: 'memory', partitionKey: 'random', containers: 'one', w: { size: 10_000 } },
    { state: 'memory', partitionKey: 'keyed', containers: 'one', w: { size: 10_000, every: 5_000 } },
  ];
  for (const [i, c] of cases.entries()) {
    const title = `${c.state} state, ${c.partitionKey} partition keys, ${c.containers === 'one' ? 'one container' : 'a container per shard'}, ${c.w.every ? 'hopping' : 'tumbling'}: exact, then a replay changes nothing`;
    it(title, async () => {
      const seed = 1000 + i;
      const events = generate({ n: 3000, users: 40, seed, stepMs: 20, disorder: 500, old: 3 });
      const { stream } = await streamOf(servers.client, events, { shards: 4, partitionKey: c.partitionKey, seed });
      const shards = await new LambdaSimulator(async () => undefined, { client: servers.client, stream }).shards();
      const run: Run = {
        name: `shape-${++runs}-${c.state}`,
        stream,
        shards,
        w: c.w,
        state: c.state,
        sinks: shapeOutputs(),
        seed,
        containers: c.containers,
        batchSize: 100,
      };
      const first = await simulate(run);
      expect(first.failed).toBe(0);
      expectExact(events, c.w, run.sinks);
      if (c.state === 'memory') return; // memory state dies with the process: nothing to replay against
      // The whole stream again, from the start, against the same state, with other batch cuts.
      const again = { ...run, sinks: shapeOutputs(), batchSize: 37, seed: seed + 1 };
      expect((await simulate(again)).failed).toBe(0);
      expect(again.sinks.out.values).toEqual([]);
      expect(again.sinks.late.values).toEqual([]);
      expect(again.sinks.dead.values).toEqual([]);
    });
  }

  for (const [i, c] of [
    { state: 'dynamodb' as const, partitionKey: 'keyed' as const, shards: 1, parallelization: 4 },
    { state: 'dynamodb' as const, partitionKey: 'random' as const, shards: 4, parallelization: 10, n: 800 },
    { state: 'redis' as const, partitionKey: 'keyed' as const, shards: 2, parallelization: 4 },
  ].entries()) {
    it(`ParallelizationFactor ${c.parallelization}, ${c.shards} shard(s), ${c.state} state, ${c.partitionKey} partition keys: exact per partition key, a replay changes nothing`, async () => {
      const seed = 2000 + i;
      const w = { size: 10_000 };
      const n = 'n' in c ? (c.n as number) : 2000;
      const events = generate({ n, users: 40, seed, stepMs: 20, disorder: 500, old: 3 });
      const { stream } = await streamOf(servers.client, events, {
        shards: c.shards,
        partitionKey: c.partitionKey,
        seed,
      });
      const shards = await new LambdaSimulator(async () => undefined, { client: servers.client, stream }).shards();
      const run: Run = {
        name: `shape-pf-${++runs}`,
        stream,
        shards,
        w,
        state: c.state,
        sinks: shapeOutputs(),
        seed,
        containers: 'per-shard',
        batchSize: 200,
        parallelization: c.parallelization,
      };
      expect((await simulate(run)).failed).toBe(0);
      expectExact(events, w, run.sinks);
      const again = { ...run, sinks: shapeOutputs(), batchSize: 77, seed: seed + 1 };
      expect((await simulate(again)).failed).toBe(0);
      expect(again.sinks.out.values).toEqual([]);
      expect(again.sinks.dead.values).toEqual([]);
    });
  }

  it('memory state, partition key = window key: a shard that has not delivered yet holds windows back (the reported reproduction)', async () => {
    // 100 records of 7 users a second apart, over 4 shards; 10 s tumbling counts: 70 windows, nothing late.
    const events: ShapeEvent[] = Array.from({ length: 100 }, (_, i) => ({
      user: `u${i % 7}`,
      amount: 1,
      ts: T0 + i * 1000,
    }));
    const { stream } = await streamOf(servers.client, events, { shards: 4, partitionKey: 'keyed', seed: 1 });
    const shards = await new LambdaSimulator(async () => undefined, { client: servers.client, stream }).shards();
    const sinks = shapeOutputs();
    const w = { size: 10_000 };
    await simulate({
      name: `repro-${++runs}`,
      stream,
      shards,
      w,
      state: 'memory',
      sinks,
      seed: 5,
      containers: 'one',
      batchSize: 100,
    });
    expect(sinks.late.values).toEqual([]);
    expect(sinks.out.values.length).toBe(oracleWindows(events, w).size);
    expectExact(events, w, sinks);
  });
});
