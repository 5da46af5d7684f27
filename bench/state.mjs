// Window state in DynamoDB (dynalite) and Redis (redis-server): 100k events over 1k keys, one hot
// key (10% of events), in 10k-record batches, counted per key in 1-minute tumbling windows.
// (a) naive: one awaited UpdateItem ADD / INCR per event; (b) Tributary: one batch at a time through
// a window step with the store. Reports backend calls and wall time side by side, in one process.
// The naive DynamoDB writer runs on the first 10k events (100k awaited calls would take minutes
// here); its calls and time per event are scaled to the whole input, and the table says so.
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { compile, count, fileSource, pipeline } from '@tributary/core';
import { createStateTable, dynamoDbClient, dynamoDbState, redisState } from '@tributary/state';
import { Redis } from 'ioredis';
import { startDynalite, startRedis } from '../test-support/servers.mjs';
import { fmt, random, table } from './lib.mjs';

export const name = 'state';

const WINDOW = 60_000;

function makeEvents(records, keys, seed) {
  const rand = random(seed);
  const events = new Array(records);
  for (let i = 0; i < records; i++) {
    const k = rand() < 0.1 ? 'hot' : `k${Math.floor(rand() * keys)}`;
    events[i] = { k, t: 1_700_000_000_000 + Math.floor((i / records) * 150_000) }; // 2.5 minutes: 3 windows
  }
  return events;
}

/** Counts per `key|windowStart`, from the input: the oracle both variants are checked against. */
function expectedCounts(events) {
  const m = new Map();
  for (const e of events) {
    const id = `${e.k}|${e.t - (e.t % WINDOW)}`;
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

function sameCounts(a, b) {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

async function tributary(events, batchSize, state, pipelineName) {
  const counts = new Map();
  const sink = {
    async write(records) {
      for (const r of records) counts.set(`${r.value.key}|${r.value.windowStart}`, r.value.n);
    },
    async close() {},
  };
  const p = pipeline(pipelineName)
    .source(fileSource({ path: '-' }))
    .eventTime((e) => e.t)
    .window({ key: (e) => e.k, tumbling: WINDOW, aggregate: { n: count() }, state })
    .sink(sink)
    .build();
  const c = compile(p, { deadLetter: sink });
  c.registerShard('shardId-000000000000');
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += batchSize) {
    await c.process({
      shardId: 'shardId-000000000000',
      records: events
        .slice(i, i + batchSize)
        .map((value, j) => ({ value, partitionKey: value.k, sequenceNumber: String(i + j + 1), arrivalTime: 0 })),
    });
  }
  await c.flush();
  const ms = performance.now() - t0;
  const calls = state.backend.calls;
  await c.close();
  return { ms, calls, counts, batches: Math.ceil(events.length / batchSize) };
}

export async function run({ records = 100_000, keys = 1_000, batchSize = 10_000, naiveDynamo = 10_000 } = {}) {
  const events = makeEvents(records, keys, 7);
  const expected = expectedCounts(events);
  const dyn = await startDynalite();
  const redisServer = await startRedis();
  const rows = [];
  const summary = { records, keys, batchSize, targets: { fewerCalls: 100, lessTime: 20 }, stores: {} };
  let pass = true;
  try {
    // ---- DynamoDB ----
    const client = dynamoDbClient({ endpoint: dyn.endpoint });
    await createStateTable(client, 'bench-state');
    const sample = events.slice(0, Math.min(naiveDynamo, records));
    let t0 = performance.now();
    for (const e of sample) {
      await client.send(
        new UpdateItemCommand({
          TableName: 'bench-state',
          Key: { pk: { S: `naive|${e.t - (e.t % WINDOW)}` }, sk: { S: e.k } },
          UpdateExpression: 'ADD n :one',
          ExpressionAttributeValues: { ':one': { N: '1' } },
        }),
      );
    }
    const naiveDynMs = ((performance.now() - t0) / sample.length) * records;
    client.destroy();
    const dynState = dynamoDbState({ table: 'bench-state', endpoint: dyn.endpoint });
    const dynTrib = await tributary(events, batchSize, dynState, 'bench-dynamodb');

    // ---- Redis ----
    const redis = new Redis(redisServer.url);
    t0 = performance.now();
    for (const e of events) await redis.incr(`naive|${e.t - (e.t % WINDOW)}|${e.k}`);
    const naiveRedisMs = performance.now() - t0;
    // The oracle also checks the naive writer (it is the baseline, so it must be right too).
    const naiveCounts = new Map();
    for (const id of expected.keys()) {
      const [k, start] = id.split('|');
      naiveCounts.set(id, Number(await redis.get(`naive|${start}|${k}`)));
    }
    redis.disconnect();
    const redisState_ = redisState({ url: redisServer.url });
    const redisTrib = await tributary(events, batchSize, redisState_, 'bench-redis');

    const report = (store, naive, trib, naiveNote) => {
      const fewerCalls = naive.calls / trib.calls;
      const lessTime = naive.ms / trib.ms;
      const correct = sameCounts(trib.counts, expected);
      summary.stores[store] = {
        naiveCalls: naive.calls,
        tributaryCalls: trib.calls,
        callsPerBatch: trib.calls / trib.batches,
        naiveMs: Math.round(naive.ms),
        tributaryMs: Math.round(trib.ms),
        fewerCalls,
        lessTime,
        correct,
      };
      if (fewerCalls < 100 || lessTime < 20 || !correct) pass = false;
      rows.push(
        {
          store,
          variant: `naive: one awaited call per event${naiveNote}`,
          calls: fmt(naive.calls),
          'wall ms': fmt(naive.ms),
          'calls/batch': '-',
          ratio: '1x',
        },
        {
          store,
          variant: 'tributary window (batched, exactly once)',
          calls: fmt(trib.calls),
          'wall ms': fmt(trib.ms),
          'calls/batch': (trib.calls / trib.batches).toFixed(1),
          ratio: `${fmt(fewerCalls)}x fewer calls, ${lessTime.toFixed(0)}x less time${correct ? '' : ' (WRONG COUNTS)'}`,
        },
      );
    };
    report(
      'dynamodb',
      { calls: records, ms: naiveDynMs },
      dynTrib,
      sample.length < records ? ` (first ${fmt(sample.length)} events, scaled)` : '',
    );
    if (!sameCounts(naiveCounts, expected)) throw new Error('the naive Redis writer counted wrong');
    report('redis', { calls: records, ms: naiveRedisMs }, redisTrib, '');
  } finally {
    await dyn.close();
    await redisServer.close();
  }
  summary.pass = pass;
  const line = Object.entries(summary.stores)
    .map(([s, r]) => `${s}: ${fmt(r.fewerCalls)}x fewer calls, ${r.lessTime.toFixed(0)}x less time`)
    .join('; ');
  return {
    text: `${table(rows, ['store', 'variant', 'calls', 'wall ms', 'calls/batch', 'ratio'])}\n\n${line} (targets >= 100x and >= 20x): ${pass ? 'PASS' : 'FAIL'}`,
    summary,
  };
}
