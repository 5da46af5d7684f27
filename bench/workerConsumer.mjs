// One consumer of the worker benchmark's stream, in a fresh process of its own (so its peak RSS is
// its own): `node workerConsumer.mjs <variant>` with the run's settings as JSON in BENCH_CONFIG.
// Variants: `getrecords` (the bare loop: every shard read concurrently with GetRecords, Limit
// 10 000, no work), `worker` (createWorker on the pipeline file), `lifion` (lifion-kinesis, its
// leases in DynamoDB, the pipeline's work done by hand in its record callback), `latency` (the
// worker on a stateless filter → map → DynamoDB sink path, recording put-to-sink latency). Each
// reads until every shard's last record put is processed, then prints one JSON line: records
// read, milliseconds from start to done and from its first record to done, peak RSS.
import { createRequire } from 'node:module';
import { BatchWriteItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  ProvisionedThroughputExceededException,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { loadPipelineFile, pipeline } from '@tributary/core';
import { createWorker } from '@tributary/runtime-node';
import { DynamoDbSink } from '@tributary/sinks'; // also registers the sinks a pipeline file names
import '@tributary/state'; // registers the state stores a pipeline file names

const config = JSON.parse(process.env.BENCH_CONFIG ?? '{}');
const variant = process.argv[2];
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const local = (endpoint) => ({ endpoint, region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler() });
const quiet = { debug() {}, info() {}, warn() {}, error: (msg, f) => console.error(msg, JSON.stringify(f ?? {})) };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const WINDOW = 60_000;

/** Resolves once `done()` holds, polled every 10 ms; fails after `timeoutMs`. */
async function until(what, done, timeoutMs = 600_000) {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The bare GetRecords loop: no work, each shard read until its last sequence number. */
async function getRecordsLoop() {
  const kc = new KinesisClient(local(config.kinesis));
  const t0 = performance.now();
  let first;
  let records = 0;
  const { Shards } = await kc.send(new ListShardsCommand({ StreamName: config.stream }));
  await Promise.all(
    Shards.map(async ({ ShardId }) => {
      const last = config.last[ShardId];
      let { ShardIterator: it } = await kc.send(
        new GetShardIteratorCommand({ StreamName: config.stream, ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
      );
      for (;;) {
        let res;
        try {
          res = await kc.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10_000 }));
        } catch (err) {
          if (!(err instanceof ProvisionedThroughputExceededException)) throw err;
          await sleep(100);
          continue;
        }
        const rs = res.Records ?? [];
        if (rs.length > 0) first ??= performance.now();
        records += rs.length;
        if (rs.length > 0 && rs[rs.length - 1].SequenceNumber === last) return;
        it = res.NextShardIterator;
      }
    }),
  );
  const end = performance.now();
  kc.destroy();
  return { records, ms: end - t0, activeMs: end - first };
}

/** The worker on the pipeline file, until every shard is checkpointed at its last record. */
async function worker() {
  const p = await loadPipelineFile(config.pipelineFile);
  const w = createWorker(p, {
    app: config.app,
    workerId: 'bench-worker',
    dynamodb: { endpoint: config.dynamo },
    log: quiet,
  });
  const t0 = performance.now();
  await w.start();
  let first;
  const shards = Object.keys(config.last);
  await until('the worker', () => {
    const st = w.status();
    if (first === undefined && st.recordsIn > 0) first = performance.now();
    return shards.every(
      (id) => st.shards.find((s) => s.shardId === id)?.checkpoint?.sequenceNumber === config.last[id],
    );
  });
  const end = performance.now();
  const records = w.status().recordsIn;
  await w.stop('benchmark done');
  return { records, ms: end - t0, activeMs: end - first };
}

/**
 * lifion-kinesis as a Node team would set it up: polling consumer, automatic shard assignment and
 * checkpoints (its leases and checkpoints in DynamoDB), TRIM_HORIZON. Its record callback does the
 * pipeline's work by hand: keep clicks, project them, count per user and minute in a Map; once
 * every shard's last record has arrived, the counts are written to DynamoDB (BatchWriteItem, 25
 * per call, 4 in flight, unprocessed items retried), as the pipeline's sink writes them.
 */
async function lifion() {
  const require = createRequire(import.meta.url);
  const Kinesis = require('lifion-kinesis');
  const counts = new Map();
  const seenLast = new Set();
  let records = 0;
  let first;
  const shards = Object.keys(config.last);
  const k = new Kinesis({
    streamName: config.stream,
    consumerGroup: config.app,
    endpoint: config.kinesis,
    region: 'us-east-1',
    credentials,
    createStreamIfNeeded: false,
    initialPositionInStream: 'TRIM_HORIZON',
    useEnhancedFanOut: false,
    // Its default is 20 s between lease passes: at that, startup alone would be most of the run.
    leaseAcquisitionInterval: 1000,
    dynamoDb: { endpoint: config.dynamo, region: 'us-east-1', credentials, tableName: `${config.app}-state` },
    logger: quiet,
  });
  k.on('data', ({ records: rs, shardId }) => {
    first ??= performance.now();
    for (const r of rs) {
      records++;
      const e = r.data;
      if (r.sequenceNumber === config.last[shardId]) seenLast.add(shardId);
      if (e.type !== 'click') continue;
      const v = { user: e.user, amount: e.amount, ts: e.ts };
      const start = v.ts - (v.ts % WINDOW);
      const id = `${v.user}|${start}`;
      const w = counts.get(id);
      if (w) w.n++;
      else counts.set(id, { key: v.user, windowStart: start, windowEnd: start + WINDOW, n: 1 });
    }
  });
  k.on('error', (err) => console.error('lifion-kinesis error', err));
  const t0 = performance.now();
  await k.startConsumer();
  await until('lifion-kinesis', () => shards.every((id) => seenLast.has(id)));
  const ddb = new DynamoDBClient(local(config.dynamo));
  const items = [...counts.values()]
    .filter((w) => w.key !== 'close')
    .map((w) => ({
      key: { S: w.key },
      windowStart: { N: String(w.windowStart) },
      windowEnd: { N: String(w.windowEnd) },
      n: { N: String(w.n) },
    }));
  const chunks = [];
  for (let i = 0; i < items.length; i += 25) chunks.push(items.slice(i, i + 25));
  const writeChunk = async (chunk) => {
    let req = { [config.lifionTable]: chunk.map((Item) => ({ PutRequest: { Item } })) };
    for (let attempt = 0; req && Object.keys(req).length > 0; attempt++) {
      const res = await ddb.send(new BatchWriteItemCommand({ RequestItems: req }));
      req = res.UnprocessedItems;
      if (req && Object.keys(req).length > 0) await sleep(50 * 2 ** Math.min(attempt, 6));
    }
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < chunks.length) await writeChunk(chunks[next++]);
    }),
  );
  const end = performance.now();
  k.stopConsumer();
  ddb.destroy();
  return { records, ms: end - t0, activeMs: end - first };
}

/**
 * The worker on a stateless path (filter → map → DynamoDB sink) while the parent puts records at
 * a steady pace: each record carries the time its PutRecords call began; the sink, once its write
 * is acknowledged, notes now − that time. Tells the parent when it holds every lease (line
 * `ready`), then reads until the last record put (`config.total` of them).
 */
async function latency() {
  const sink = new DynamoDbSink({ table: config.latencyTable, endpoint: config.dynamo });
  const latencies = [];
  const timed = {
    open: () => sink.open?.(),
    close: () => sink.close(),
    async write(records, context) {
      await sink.write(records, context);
      const now = Date.now();
      for (const r of records) latencies.push(now - r.value.sentAt);
    },
  };
  const p = pipeline('bench-worker-latency')
    .source({
      spec: { kinesis: { stream: config.stream, endpoint: config.kinesis, startingPosition: 'TRIM_HORIZON' } },
    })
    .filter((e) => e.type === 'click')
    .map((e) => ({ id: e.id, user: e.user, amount: e.amount, sentAt: e.sentAt }))
    .sink(timed)
    .build();
  const w = createWorker(p, {
    app: config.app,
    workerId: 'bench-latency',
    ...(config.idleMs === undefined ? {} : { idleTimeBetweenReadsMs: config.idleMs }),
    dynamodb: { endpoint: config.dynamo },
    log: quiet,
  });
  await w.start();
  await until('every lease', () => w.status().shards.length === config.shardCount);
  process.stdout.write('ready\n');
  await until('the paced records', () => latencies.length >= config.expected);
  await w.stop('benchmark done');
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return { records: latencies.length, p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1] };
}

const variants = { getrecords: getRecordsLoop, worker, lifion, latency };
if (!variants[variant]) {
  console.error(`unknown variant ${variant}; available: ${Object.keys(variants).join(', ')}`);
  process.exit(64);
}
globalThis.gc?.();
const result = await variants[variant]();
const usage = process.resourceUsage();
const rssBytes = usage.maxRSS * 1024;
// CPU time of the whole process (start-up included), to tell a consumer bound by its own work from one waiting on the emulators.
const cpuMs = (usage.userCPUTime + usage.systemCPUTime) / 1000;
process.stdout.write(`${JSON.stringify({ variant, ...result, rssBytes, cpuMs })}\n`);
process.exit(0);
