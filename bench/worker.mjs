// The Node worker end to end through kinesalite: 4 shards, 200k records of ~200 B put beforehand
// (PutRecords, 500 a call, 8 calls in flight), the pipeline filter → map → tumbling count per user
// and minute (window state in DynamoDB) → DynamoDB sink, on dynalite. In the same run, each in a
// fresh process of its own (bench/workerConsumer.mjs), reading the same stream from TRIM_HORIZON:
//   1. a bare GetRecords loop (4 shards concurrently, Limit 10 000, no work): the emulator's
//      ceiling, measured before and after the others (their mean is the ceiling); target: the
//      worker at >= 0.8x its records/s;
//   2. the worker (createWorker on the pipeline file, default settings);
//   3. lifion-kinesis (a Node consumer keeping its leases and checkpoints in DynamoDB), its record
//      callback doing the same work by hand and writing the counts to DynamoDB at the end; target:
//      the worker at >= 1x its records/s.
// Records/s are over each consumer's active time: from its first record to every shard's last
// record processed (the worker: checkpointed, after its state and sink acknowledged it); startup
// (lease table creation, lease takes) is shown beside. Both the worker's and lifion-kinesis's
// counts are checked against the oracle recomputed from the input. Then put-to-sink latency: the
// worker on a stateless filter → map → DynamoDB sink path while a paced producer puts 500 records/s
// for 20 s (a window would add its own length to the latency), from the put call's start to the
// sink's write acknowledged; at the default wait after an empty read (1 s) and at 100 ms. The
// emulators run in child processes of their own (bench/workerServers.mjs).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CreateTableCommand, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { CreateStreamCommand, DescribeStreamCommand, KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { fmt, random, table } from './lib.mjs';

export const name = 'worker';

const here = import.meta.dirname;
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const local = (endpoint) => ({ endpoint, region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler() });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const WINDOW = 60_000;
const USERS = 100;
const env = {
  ...process.env,
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'x',
  AWS_SECRET_ACCESS_KEY: 'x',
  AWS_NODEJS_SUPPRESS_VERSION_DEPRECATION_WARNING: '1',
  AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
};

/** An emulator in a child process; it exits when this process closes its standard input. */
async function emulator(which) {
  const child = spawn(process.execPath, ['--no-warnings', join(here, 'workerServers.mjs'), which], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const line = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${which} exited (${code}) before listening`)));
    createInterface({ input: child.stdout }).once('line', resolve);
  });
  return { endpoint: JSON.parse(line).endpoint, close: () => child.stdin.end(), cpuMs: () => cpuMsOf(child.pid) };
}

/** CPU time (user + system, ms) a process has used so far, from /proc; undefined where there is none. */
function cpuMsOf(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return undefined;
  }
}

/**
 * Runs one consumer variant in a fresh process; resolves with its JSON result. `onLine` sees its
 * other output lines (the latency variant says `ready`).
 */
function consumer(variant, config, onLine = () => {}) {
  return new Promise((resolve, reject) => {
    // BENCH_WORKER_PROFILE=<dir> writes a CPU profile of each consumer process there (.cpuprofile).
    const profile = process.env.BENCH_WORKER_PROFILE;
    const flags = profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [];
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--no-warnings', ...flags, join(here, 'workerConsumer.mjs'), variant],
      {
        env: { ...env, BENCH_CONFIG: JSON.stringify(config) },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let result;
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('{')) result = JSON.parse(line);
      else onLine(line);
    });
    child.once('exit', (code, signal) => {
      if (code === 0 && result) resolve(result);
      else reject(new Error(`consumer ${variant} failed (${code ?? signal})`));
    });
  });
}

async function createStream(kc, stream) {
  await kc.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 4 }));
  for (let i = 0; i < 200; i++) {
    const d = (await kc.send(new DescribeStreamCommand({ StreamName: stream }))).StreamDescription;
    if (d.StreamStatus === 'ACTIVE')
      return d.Shards.map((s) => ({ shardId: s.ShardId, hashKey: s.HashKeyRange.StartingHashKey }));
    await sleep(20);
  }
  throw new Error(`stream ${stream} did not become active`);
}

/** PutRecords with its failed entries put again (with backoff) until none fail; returns each entry's result. */
async function putRecords(kc, stream, entries) {
  const out = new Array(entries.length);
  let pending = entries.map((e, i) => ({ e, i }));
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt > 20) throw new Error('PutRecords kept failing');
    if (attempt > 0) await sleep(50 * 2 ** Math.min(attempt, 5));
    const res = await kc.send(new PutRecordsCommand({ StreamName: stream, Records: pending.map((p) => p.e) }));
    const failed = [];
    res.Records.forEach((r, j) => {
      if (r.ErrorCode) failed.push(pending[j]);
      else out[pending[j].i] = r;
    });
    pending = failed;
  }
  return out;
}

async function createTable(ddb, name, keys) {
  await ddb.send(
    new CreateTableCommand({
      TableName: name,
      AttributeDefinitions: keys.map(([n, t]) => ({ AttributeName: n, AttributeType: t })),
      KeySchema: keys.map(([n], i) => ({ AttributeName: n, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}

/** Every item of a table (Scan, page by page). */
async function scan(ddb, name) {
  const items = [];
  let start;
  do {
    const res = await ddb.send(new ScanCommand({ TableName: name, ExclusiveStartKey: start }));
    items.push(...res.Items);
    start = res.LastEvaluatedKey;
  } while (start);
  return items;
}

/** Compares a counts table (key, windowStart → n) with the oracle; returns the differences. */
function differences(items, oracle) {
  const got = new Map();
  for (const it of items) if (it.key.S !== 'close') got.set(`${it.key.S}@${it.windowStart.N}`, Number(it.n.N));
  let diff = 0;
  for (const [id, n] of oracle) if (got.get(id) !== n) diff++;
  for (const id of got.keys()) if (!oracle.has(id)) diff++;
  return diff;
}

export async function run({ records = 200_000, pacedRate = 500, pacedSeconds = 20 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-worker-'));
  const [kin, dyn] = await Promise.all([emulator('kinesalite'), emulator('dynalite')]);
  const kc = new KinesisClient(local(kin.endpoint));
  const ddb = new DynamoDBClient(local(dyn.endpoint));
  try {
    // ---- the input, and its oracle: clicks per user and minute ----
    const stream = 'bench';
    const shards = await createStream(kc, stream);
    const rand = random(42);
    const T0 = Math.floor((Date.now() - 7_200_000) / WINDOW) * WINDOW;
    const pad = 'x'.repeat(110);
    const oracle = new Map();
    const events = Array.from({ length: records }, (_, i) => {
      const e = {
        id: i,
        type: rand() < 0.75 ? 'click' : 'view',
        user: `u${Math.floor(rand() * USERS)}`,
        amount: Math.floor(rand() * 1000),
        ts: T0 + i * 6,
        page: `/p/${pad}`,
      };
      if (e.type === 'click') {
        const id = `${e.user}@${e.ts - (e.ts % WINDOW)}`;
        oracle.set(id, (oracle.get(id) ?? 0) + 1);
      }
      return e;
    });
    const entries = events.map((e) => ({
      Data: Buffer.from(JSON.stringify(e)),
      PartitionKey: Math.floor(rand() * 2 ** 48).toString(16),
    }));
    const bytes = entries.reduce((n, e) => n + e.Data.length, 0) / records;
    const tPut = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < entries.length) {
          const from = next;
          next += 500;
          await putRecords(kc, stream, entries.slice(from, from + 500));
        }
      }),
    );
    // One record per shard far ahead in time, put last: every window of the data closes, and its
    // sequence number is the shard's last.
    const last = {};
    for (const s of shards) {
      const [r] = await putRecords(kc, stream, [
        {
          Data: Buffer.from(JSON.stringify({ id: -1, type: 'click', user: 'close', amount: 0, ts: T0 + 86_400_000 })),
          PartitionKey: 'close',
          ExplicitHashKey: s.hashKey,
        },
      ]);
      if (r.ShardId !== s.shardId) throw new Error(`the closing record went to ${r.ShardId}, not ${s.shardId}`);
      last[s.shardId] = r.SequenceNumber;
    }
    const putMs = performance.now() - tPut;
    const total = records + shards.length;

    // ---- the pipeline file and its tables ----
    await createTable(ddb, 'bench-counts', [
      ['key', 'S'],
      ['windowStart', 'N'],
    ]);
    await createTable(ddb, 'bench-lifion-counts', [
      ['key', 'S'],
      ['windowStart', 'N'],
    ]);
    const pipelineFile = join(dir, 'pipeline.yaml');
    writeFileSync(
      pipelineFile,
      `version: 1
name: bench-worker
source: { kinesis: { stream: ${stream}, endpoint: "${kin.endpoint}", startingPosition: TRIM_HORIZON } }
eventTime: event.ts
steps:
  - filter: event.type == "click"
  - map: { user: event.user, amount: event.amount, ts: event.ts }
  - window:
      key: event.user
      tumbling: 1m
      outOfOrderness: 1m
      aggregate: { n: count() }
      state: { dynamodb: { table: bench-state, endpoint: "${dyn.endpoint}", createTable: true } }
  - sink: { dynamodb: { table: bench-counts, endpoint: "${dyn.endpoint}" } }
`,
    );
    const config = {
      kinesis: kin.endpoint,
      dynamo: dyn.endpoint,
      stream,
      last,
      total,
      pipelineFile,
      lifionTable: 'bench-lifion-counts',
    };

    // ---- the consumers, one after another, each in a fresh process ----
    // Each with the CPU time the emulators spent serving it: where the time goes.
    const withEmulators = async (variant, cfg) => {
      const k0 = kin.cpuMs();
      const d0 = dyn.cpuMs();
      const r = await consumer(variant, cfg);
      return { ...r, kinesaliteCpuMs: kin.cpuMs() - k0, dynaliteCpuMs: dyn.cpuMs() - d0 };
    };
    const before = await withEmulators('getrecords', config);
    const ours = await withEmulators('worker', { ...config, app: 'bench-worker' });
    const lifion = await withEmulators('lifion', { ...config, app: 'bench-lifion' });
    const after = await withEmulators('getrecords', config);
    for (const r of [before, after, lifion])
      if (r.records !== total) throw new Error(`${r.variant} read ${r.records} records, not ${total}`);
    if (ours.records < total) throw new Error(`the worker processed ${ours.records} records, not ${total}`);
    const ourDiff = differences(await scan(ddb, 'bench-counts'), oracle);
    const lifionDiff = differences(await scan(ddb, 'bench-lifion-counts'), oracle);
    if (ourDiff > 0) throw new Error(`the worker's counts differ from the oracle in ${ourDiff} windows`);
    if (lifionDiff > 0) throw new Error(`lifion-kinesis's counts differ from the oracle in ${lifionDiff} windows`);

    // ---- put-to-sink latency: a paced producer, the worker on a stateless path ----
    // Twice: at the worker's default wait after a read that returned nothing (1 s, as KCL's
    // idleTimeBetweenReadsInMillis), which sets most of the latency at this rate, and at 100 ms.
    const paced = async (idleMs) => {
      const stream = `paced-${idleMs ?? 'default'}`;
      const out = `bench-latency-out-${idleMs ?? 'default'}`;
      await createStream(kc, stream);
      await createTable(ddb, out, [['id', 'N']]);
      const n = pacedRate * pacedSeconds;
      const perTick = pacedRate / 10;
      let expected = 0;
      const kinds = Array.from({ length: n }, () => (rand() < 0.75 ? 'click' : 'view'));
      for (const k of kinds) if (k === 'click') expected++;
      let ready;
      const isReady = new Promise((r) => {
        ready = r;
      });
      const latencyRun = consumer(
        'latency',
        {
          ...config,
          stream,
          app: `bench-latency-${idleMs ?? 'default'}`,
          latencyTable: out,
          shardCount: 4,
          expected,
          idleMs,
        },
        (line) => line === 'ready' && ready(),
      );
      await Promise.race([isReady, latencyRun]);
      const tPaced = performance.now();
      const puts = [];
      for (let tick = 0; tick * perTick < n; tick++) {
        // Every 100 ms on the clock (not 100 ms after the last put): the pace holds however long a call takes.
        const due = tPaced + tick * 100;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const sentAt = Date.now();
        const batch = [];
        for (let j = tick * perTick; j < Math.min(n, (tick + 1) * perTick); j++)
          batch.push({
            Data: Buffer.from(
              JSON.stringify({
                id: j,
                type: kinds[j],
                user: `u${j % USERS}`,
                amount: j % 1000,
                sentAt,
                page: `/p/${pad}`,
              }),
            ),
            PartitionKey: Math.floor(rand() * 2 ** 48).toString(16),
          });
        puts.push(putRecords(kc, stream, batch));
      }
      await Promise.all(puts);
      const lat = await latencyRun;
      const written = (await scan(ddb, out)).length;
      if (written !== expected)
        throw new Error(`the latency run wrote ${written} items, not the ${expected} clicks put`);
      return lat;
    };
    const lat = await paced(undefined);
    const latFast = await paced(100);

    // ---- the numbers ----
    const rate = (r) => (r.records / r.activeMs) * 1000;
    const ceiling = (rate(before) + rate(after)) / 2;
    const vsCeiling = rate(ours) / ceiling;
    const vsLifion = rate(ours) / rate(lifion);
    const mb = (b) => `${fmt(b / 2 ** 20)} MB`;
    const rows = [
      { variant: 'bare GetRecords loop (before)', r: before },
      { variant: 'tributary worker (filter → map → count → DynamoDB)', r: ours },
      { variant: 'lifion-kinesis (same work by hand)', r: lifion },
      { variant: 'bare GetRecords loop (after)', r: after },
    ].map(({ variant, r }) => ({
      variant,
      'records/s': fmt(rate(r)),
      'active s': (r.activeMs / 1000).toFixed(1),
      'startup s': ((r.ms - r.activeMs) / 1000).toFixed(1),
      'worker / this': `${(rate(ours) / rate(r)).toFixed(2)}x`,
      'peak RSS': mb(r.rssBytes),
      'CPU s: consumer': (r.cpuMs / 1000).toFixed(1),
      kinesalite: Number.isNaN(r.kinesaliteCpuMs) ? '' : (r.kinesaliteCpuMs / 1000).toFixed(1),
      dynalite: Number.isNaN(r.dynaliteCpuMs) ? '' : (r.dynaliteCpuMs / 1000).toFixed(1),
    }));
    const checks = [
      { name: 'worker records/s / bare GetRecords loop', value: vsCeiling, op: '>=', target: 0.8 },
      { name: 'worker records/s / lifion-kinesis', value: vsLifion, op: '>=', target: 1 },
      { name: 'put-to-sink latency p50 ms (stateless path, paced)', value: lat.p50 },
      { name: 'put-to-sink latency p99 ms (stateless path, paced)', value: lat.p99 },
      { name: 'put-to-sink latency p50 ms, idle wait 100 ms', value: latFast.p50 },
      { name: 'put-to-sink latency p99 ms, idle wait 100 ms', value: latFast.p99 },
      { name: 'worker peak RSS MB', value: ours.rssBytes / 2 ** 20 },
      { name: 'lifion-kinesis peak RSS MB', value: lifion.rssBytes / 2 ** 20 },
    ];
    const pass = checks.every((c) => c.target === undefined || c.value >= c.target);
    const text = `${table(rows, ['variant', 'records/s', 'active s', 'startup s', 'worker / this', 'peak RSS', 'CPU s: consumer', 'kinesalite', 'dynalite'])}

${fmt(total)} records of ~${Math.round(bytes)} B on 4 shards (put in ${(putMs / 1000).toFixed(1)} s), ${fmt(oracle.size)} windows; the worker's and lifion-kinesis's counts in DynamoDB equal the oracle
put-to-sink latency, stateless filter → map → DynamoDB sink, ${pacedRate} records/s for ${pacedSeconds} s (${fmt(lat.records)} written): p50 ${lat.p50} ms, p99 ${lat.p99} ms, max ${lat.max} ms at the default idle wait (1 s); p50 ${latFast.p50} ms, p99 ${latFast.p99} ms, max ${latFast.max} ms at idleTimeBetweenReadsMs 100; the latency worker's peak RSS ${mb(lat.rssBytes)}

worker = ${vsCeiling.toFixed(2)}x the bare GetRecords loop (target >= 0.8x), ${vsLifion.toFixed(2)}x lifion-kinesis (target >= 1x); peak RSS ${mb(ours.rssBytes)}: ${pass ? 'PASS' : 'FAIL'}`;
    return {
      text,
      summary: {
        records: total,
        recordBytes: Math.round(bytes),
        windows: oracle.size,
        bareRecordsPerSecond: ceiling,
        bareBeforeRecordsPerSecond: rate(before),
        bareAfterRecordsPerSecond: rate(after),
        workerRecordsPerSecond: rate(ours),
        lifionRecordsPerSecond: rate(lifion),
        workerStartupMs: ours.ms - ours.activeMs,
        lifionStartupMs: lifion.ms - lifion.activeMs,
        vsCeiling,
        vsLifion,
        latencyP50Ms: lat.p50,
        latencyP99Ms: lat.p99,
        latencyMaxMs: lat.max,
        latencyIdle100P50Ms: latFast.p50,
        latencyIdle100P99Ms: latFast.p99,
        latencyIdle100MaxMs: latFast.max,
        workerRssBytes: ours.rssBytes,
        lifionRssBytes: lifion.rssBytes,
        bareRssBytes: before.rssBytes,
        latencyWorkerRssBytes: lat.rssBytes,
        cpuMs: Object.fromEntries(
          [
            ['bareBefore', before],
            ['worker', ours],
            ['lifion', lifion],
            ['bareAfter', after],
          ].map(([k, r]) => [k, { consumer: r.cpuMs, kinesalite: r.kinesaliteCpuMs, dynalite: r.dynaliteCpuMs }]),
        ),
        targets: { vsCeiling: 0.8, vsLifion: 1 },
        checks,
        pass,
      },
    };
  } finally {
    kc.destroy();
    ddb.destroy();
    kin.close();
    dyn.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
