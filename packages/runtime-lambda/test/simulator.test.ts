// The local event source against kinesalite, with window state in DynamoDB (dynalite): a poison
// record isolated by bisection, transient failures in many batches, a simulator killed mid-run
// and restarted from its checkpoints — window totals exact every time, checked against an oracle.
import { count, fileSource, MemorySink, pipeline, sum } from '@tributary/core';
import { createHandler, type FailedBatch, LambdaSimulator, MemoryCheckpoints } from '@tributary/runtime-lambda';
import { dynamoDbState } from '@tributary/state';
import type { KinesisStreamEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { createStream, putJson, startStreamServers, useServers } from '../../../test-support/emulators.js';

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
});
