// The local event source against kinesalite, with window state in DynamoDB (dynalite): a poison
// record isolated by bisection, transient failures in many batches, a simulator killed mid-run
// and restarted from its checkpoints — window totals exact every time, checked against an oracle.
// And the mapping's starting positions and record age, checked against the arrival times the
// stream reports, and `follow` handling records put after every shard was drained.
import { count, fileSource, MemorySink, pipeline, sum } from '@tributary/core';
import {
  createHandler,
  type EventSourceMapping,
  type FailedBatch,
  LambdaSimulator,
  MemoryCheckpoints,
} from '@tributary/runtime-lambda';
import { dynamoDbState } from '@tributary/state';
import type { KinesisStreamEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import {
  createStream,
  putJson,
  shardRecords,
  startStreamServers,
  streamShards,
  useServers,
} from '../../../test-support/emulators.js';

type Click = { user: string; amount: number; t: number; poison?: boolean };

const servers = useServers(() => startStreamServers('sim-state'));

let streams = 0;
async function streamWith(events: Click[], shards = 2): Promise<string> {
  const name = `s${++streams}`;
  await createStream(servers.client, name, shards);
  await putJson(servers.client, name, events, (e) => ({ partitionKey: e.user }));
  return name;
}

function clicks(n: number): Click[] {
  return Array.from({ length: n }, (_, i) => ({ user: `u${i % 13}`, amount: (i * 7) % 30, t: 1000 + i }));
}

/** The oracle: per user, count and sum, from the input (poison records excluded). */
function totals(cs: Click[]) {
  const m: Record<string, { n: number; s: number }> = {};
  for (const c of cs) {
    if (c.poison) continue;
    const cur = m[c.user] ?? { n: 0, s: 0 };
    m[c.user] = { n: cur.n + 1, s: cur.s + c.amount };
  }
  return m;
}

/** A fresh Lambda container: its own compiled pipeline and clients; state shared in DynamoDB. */
function container(name: string, out: MemorySink<{ key: string; n: number; s: number }>, shards: string[]) {
  const p = pipeline(name)
    .source(fileSource<Click>({ path: '-' }))
    .eventTime((e) => e.t)
    .window({
      key: (e) => e.user,
      tumbling: 1_000_000,
      aggregate: { n: count(), s: sum((e) => e.amount) },
      state: dynamoDbState({ table: 'sim-state', endpoint: servers.dynamo.endpoint }),
    })
    .sink(out)
    .build();
  return createHandler(p, { chunkSize: 25, shards, log: () => {} });
}

const byUser = (vs: { key: string; n: number; s: number }[]) => {
  const m: Record<string, { n: number; s: number }> = {};
  for (const v of vs) {
    expect(m[v.key]).toBeUndefined(); // each window once
    m[v.key] = { n: v.n, s: v.s };
  }
  return m;
};

const SHARDS = ['shardId-000000000000', 'shardId-000000000001'];

describe('lambda-local: the event source simulator', () => {
  it('a poison record, with bisect on, alone reaches the on-failure destination; every other record counts once', async () => {
    const events = clicks(400);
    (events[237] as Click).poison = true;
    const stream = await streamWith(events);
    const out = new MemorySink<{ key: string; n: number; s: number }>();
    const handler = container(`poison-${stream}`, out, SHARDS);
    // The function crashes on the poison record (as on a record that exhausts its memory).
    const crashing = async (event: KinesisStreamEvent) => {
      for (const r of event.Records) {
        if ((JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString()) as Click).poison)
          throw new Error('out of memory');
      }
      return handler(event);
    };
    const destination: FailedBatch[] = [];
    const sim = new LambdaSimulator(crashing, {
      client: servers.client,
      stream,
      mapping: { batchSize: 100, bisectBatchOnFunctionError: true, maximumRetryAttempts: 2 },
      onFailure: async (f) => {
        destination.push(f);
      },
      pollIntervalMs: 5,
    });
    await sim.runUntilIdle();
    expect(
      destination.flatMap((f) => f.records.map((r) => JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString()))),
    ).toEqual([events[237]]);
    expect(destination[0]?.reason).toBe('RetryAttemptsExhausted');
    await (await handler.ready).flush();
    expect(byUser(out.values)).toEqual(totals(events));
  });

  it('a transient failure at record k of each of 50 batches is retried from k; totals are exact', async () => {
    const events = clicks(1000);
    const stream = await streamWith(events);
    const out = new MemorySink<{ key: string; n: number; s: number }>();
    const handler = container(`flaky-${stream}`, out, SHARDS);
    const failedOnce = new Set<string>();
    // A dependency that fails once at the 12th record of every batch: the handler reports it.
    const flaky = async (event: KinesisStreamEvent) => {
      const k = event.Records[12];
      if (k && !failedOnce.has(k.kinesis.sequenceNumber)) {
        failedOnce.add(k.kinesis.sequenceNumber);
        const head = await handler({ Records: event.Records.slice(0, 12) });
        if (head.batchItemFailures.length > 0) return head;
        return { batchItemFailures: [{ itemIdentifier: k.kinesis.sequenceNumber }] };
      }
      return handler(event);
    };
    const sim = new LambdaSimulator(flaky, {
      client: servers.client,
      stream,
      mapping: { batchSize: 20, maximumRetryAttempts: 3 },
      pollIntervalMs: 5,
    });
    await sim.runUntilIdle();
    expect(failedOnce.size).toBeGreaterThanOrEqual(50);
    await (await handler.ready).flush();
    expect(byUser(out.values)).toEqual(totals(events));
  });

  it('a simulator killed mid-run and restarted from its checkpoints, with new containers, gives exact totals', async () => {
    const events = clicks(900);
    const stream = await streamWith(events);
    const name = `killed-${stream}`;
    const checkpoints = new MemoryCheckpoints();
    const out = new MemorySink<{ key: string; n: number; s: number }>();
    let calls = 0;
    const first = container(name, new MemorySink(), SHARDS);
    const sim1: LambdaSimulator = new LambdaSimulator(
      async (event) => {
        const r = await first(event);
        if (++calls === 7) sim1.stop(); // killed after the 7th invocation, before its checkpoint
        return r;
      },
      { client: servers.client, stream, checkpoints, mapping: { batchSize: 50 }, pollIntervalMs: 5 },
    );
    await sim1.runUntilIdle();
    expect(checkpoints.map.size).toBeGreaterThan(0);
    const second = container(name, out, SHARDS);
    const sim2 = new LambdaSimulator(second, {
      client: servers.client,
      stream,
      checkpoints,
      mapping: { batchSize: 50 },
      pollIntervalMs: 5,
    });
    await sim2.runUntilIdle();
    await (await second.ready).flush();
    expect(byUser(out.values)).toEqual(totals(events));
  });

  it('ParallelizationFactor: concurrent lanes per shard, each partition key in order in one lane', async () => {
    const events = clicks(600);
    const stream = await streamWith(events, 1);
    const seen = new Map<string, number[]>();
    let concurrent = 0;
    let peak = 0;
    const sim = new LambdaSimulator(
      async (event) => {
        concurrent++;
        peak = Math.max(peak, concurrent);
        await new Promise((r) => setTimeout(r, 5));
        for (const r of event.Records) {
          const c = JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString()) as Click;
          seen.set(c.user, [...(seen.get(c.user) ?? []), c.t]);
        }
        concurrent--;
        return { batchItemFailures: [] };
      },
      { client: servers.client, stream, mapping: { batchSize: 200, parallelizationFactor: 4 }, pollIntervalMs: 5 },
    );
    await sim.runUntilIdle();
    expect(peak).toBeGreaterThan(1);
    for (const [user, ts] of seen) {
      expect(ts).toEqual(events.filter((e) => e.user === user).map((e) => e.t)); // in order
    }
  });

  /** A stream of 4 shards holding `early`, then (a few ms later) `late`; the first arrival of `late` (ms). */
  async function earlyThenLate(early: Click[], late: Click[]): Promise<{ stream: string; lateFrom: number }> {
    const stream = await streamWith(early, 4);
    await new Promise((r) => setTimeout(r, 25)); // the two lots arrive at different milliseconds
    await putJson(servers.client, stream, late, (e) => ({ partitionKey: e.user }));
    let lateFrom = Number.POSITIVE_INFINITY;
    const lateTimes = new Set(late.map((c) => c.t));
    for (const shard of await streamShards(servers.client, stream))
      for (const r of await shardRecords(servers.client, stream, shard.shardId)) {
        const c = JSON.parse(Buffer.from(r.Data as Uint8Array).toString()) as Click;
        if (lateTimes.has(c.t)) lateFrom = Math.min(lateFrom, (r.ApproximateArrivalTimestamp as Date).getTime());
      }
    return { stream, lateFrom };
  }

  const decode = (r: { kinesis: { data: string } }) =>
    JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString()) as Click;
  const ts = (cs: Click[]) => cs.map((c) => c.t).sort((a, b) => a - b);

  it('MaximumRecordAgeInSeconds: records older go to the destination without an invocation (on the simulator clock)', async () => {
    const all = clicks(180);
    const early = all.slice(0, 70);
    const late = all.slice(70);
    const { stream, lateFrom } = await earlyThenLate(early, late);
    const delivered: Click[] = [];
    const destination: FailedBatch[] = [];
    const sim = new LambdaSimulator(
      async (event) => {
        delivered.push(...event.Records.map(decode));
        return { batchItemFailures: [] };
      },
      {
        client: servers.client,
        stream,
        mapping: { batchSize: 500, maximumRecordAgeInSeconds: 1 },
        // One second after the first late record arrived, less half a millisecond: every early
        // record is older than a second, no late one is.
        now: () => lateFrom + 999.5,
        onFailure: async (f) => {
          destination.push(f);
        },
        pollIntervalMs: 5,
      },
    );
    await sim.runUntilIdle();
    expect(ts(delivered)).toEqual(ts(late));
    expect(sim.recordsDelivered).toBe(late.length);
    expect(ts(destination.flatMap((f) => f.records.map(decode)))).toEqual(ts(early));
    for (const f of destination) {
      expect(f.reason).toBe('RecordAgeExceeded');
      expect(f.error).toBe('older than the maximum record age (MaximumRecordAgeInSeconds 1)');
    }
  });

  it('StartingPosition AT_TIMESTAMP reads the records that arrived at or after the time; TRIM_HORIZON all', async () => {
    const all = clicks(150);
    const { stream, lateFrom } = await earlyThenLate(all.slice(0, 60), all.slice(60));
    const read = async (mapping: EventSourceMapping) => {
      const got: Click[] = [];
      const sim = new LambdaSimulator(
        async (event) => {
          got.push(...event.Records.map(decode));
          return { batchItemFailures: [] };
        },
        { client: servers.client, stream, mapping, pollIntervalMs: 5 },
      );
      await sim.runUntilIdle();
      return got;
    };
    expect(ts(await read({ startingPosition: 'AT_TIMESTAMP', startingPositionTimestamp: lateFrom / 1000 }))).toEqual(
      ts(all.slice(60)),
    );
    expect(ts(await read({ startingPosition: 'TRIM_HORIZON' }))).toEqual(ts(all));
    expect(
      () =>
        new LambdaSimulator(async () => undefined, {
          client: servers.client,
          stream,
          mapping: { startingPosition: 'AT_TIMESTAMP' },
        }),
    ).toThrow('Expected `startingPositionTimestamp` (seconds since the epoch) with AT_TIMESTAMP');
  });

  it('follow from LATEST: nothing of what was there; records put after every shard drained are handled; stop() ends it', async () => {
    const before = clicks(80);
    const stream = await streamWith(before, 4);
    const after = clicks(130).map((c) => ({ ...c, t: c.t + 10_000 }));
    const got: Click[] = [];
    let drains = 0;
    let putting: Promise<unknown> | undefined;
    const sim: LambdaSimulator = new LambdaSimulator(
      async (event) => {
        got.push(...event.Records.map(decode));
        if (got.length >= after.length) sim.stop();
        return { batchItemFailures: [] };
      },
      {
        client: servers.client,
        stream,
        mapping: { startingPosition: 'LATEST', batchSize: 40 },
        pollIntervalMs: 5,
        idleIntervalMs: 5,
      },
    );
    await sim.follow({
      onDrained: () => {
        if (drains++ === 0) putting = putJson(servers.client, stream, after, (e) => ({ partitionKey: e.user }));
      },
    });
    await putting;
    expect(drains).toBeGreaterThanOrEqual(1);
    expect(ts(got)).toEqual(ts(after));
    expect(sim.recordsDelivered).toBe(after.length);
  });
});
