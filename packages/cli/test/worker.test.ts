// `tributary worker`: its flags and their refusals, its help, and the refusal of a source the
// worker does not read, in process (`main`); then the built bin end to end on kinesalite with 4
// shards and dynalite (the lease table), checked against the records as put.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, request, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createStream,
  dynamoDbClient,
  kinesisClient,
  type Placed,
  putJson,
  startDynalite,
  startKinesalite,
} from '../../../test-support/emulators.js';
import { worker } from '../src/commands/worker.js';
import { runMain } from './support/runMain.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-worker-cli-'));
});

/** Runs the command line in process: its exit status and what it wrote. */
const tributary = runMain;

/** A pipeline of `source` (one YAML line, on line 3). */
const pipelineYaml = (source: string, name = 'worker-cli') => `version: 1
name: ${name}
source: ${source}
steps:
  - map: { user: event.user }
  - sink: { file: { path: out.jsonl } }
`;

describe('tributary worker: flags', () => {
  it('is listed in the usage of tributary --help', async () => {
    const r = await tributary(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`  tributary ${worker.usage}\n`);
    expect(worker.usage).toMatch(
      /^worker <pipeline\.yaml> \[--app <name>\] \[--worker-id <id>\] \[--metrics-port <port>\]/,
    );
  });

  it('--help documents every flag of the command, and the global ones', async () => {
    const r = await tributary(['worker', '--help']);
    expect(r.code).toBe(0);
    const flags = Object.keys(worker.options);
    expect(flags.sort()).toEqual(['app', 'endpoint', 'metrics-host', 'metrics-port', 'worker-id']);
    for (const flag of flags) expect(r.out).toMatch(new RegExp(`\\n  --${flag} <[a-z]+> +\\S`));
    for (const global of ['--verbose', '--allow-outside-project', '--env-file <file>'])
      expect(r.out).toContain(`  ${global}`);
    expect(r.out).toContain('TRIBUTARY_LOG_LEVEL');
    expect(r.out).toContain('SIGINT/SIGTERM');
  });

  const usageCases: [string, string[], string][] = [
    ['no pipeline file', ['worker'], 'worker needs one pipeline file'],
    ['two pipeline files', ['worker', 'a.yaml', 'b.yaml'], 'worker needs one pipeline file'],
    [
      'a port out of range',
      ['worker', 'p.yaml', '--metrics-port', '65536'],
      'Expected `--metrics-port` to be an integer from 0 to 65535, got 65536',
    ],
    [
      'a port that is no integer',
      ['worker', 'p.yaml', '--metrics-port', '80a'],
      'Expected `--metrics-port` to be an integer from 0 to 65535, got 80a',
    ],
    [
      'an app that is no table name',
      ['worker', 'p.yaml', '--app', 'my app'],
      'Expected `--app` to be 3 to 255 letters, digits, _, - or . (a DynamoDB table name), got "my app"',
    ],
    [
      'a worker id with a space',
      ['worker', 'p.yaml', '--worker-id', 'a b'],
      'Expected `--worker-id` to be 1 to 255 characters without spaces, got "a b"',
    ],
    [
      'an endpoint that is no URL',
      ['worker', 'p.yaml', '--endpoint', 'localhost:4567'],
      'Expected `--endpoint` to be an http:// or https:// URL, got localhost:4567',
    ],
    ['an unknown flag', ['worker', 'p.yaml', '--shards', '4'], "Unknown option '--shards'"],
  ];
  for (const [what, args, message] of usageCases) {
    it(`${what}: a usage error (64) saying why, with the command's usage`, async () => {
      const r = await tributary(args);
      expect(r.code).toBe(64);
      expect(r.err.startsWith(message)).toBe(true);
      expect(r.err).toContain(
        `Usage:\n  tributary ${worker.usage}\n\nRun \`tributary worker --help\` for its options.\n`,
      );
    });
  }
});

describe('tributary worker: the source', () => {
  for (const [kind, source] of [
    ['file', '{ file: { path: events.jsonl } }'],
    ['dynamodbStream', '{ dynamodbStream: { table: users } }'],
  ] as const) {
    it(`refuses a ${kind} source at its line and column (exit 1), saying the worker reads kinesis sources`, async () => {
      const file = join(dir, `${kind}.yaml`);
      const text = pipelineYaml(source);
      await writeFile(file, text);
      // Where the source's value is: on the line of `source:`, after it (1-based).
      const lines = text.split('\n');
      const line = lines.findIndex((l) => l.startsWith('source:')) + 1;
      const column = (lines[line - 1] as string).indexOf('{') + 1;
      const r = await tributary(['worker', file, '--metrics-port', '0']);
      expect(r.code).toBe(1);
      expect(r.err).toBe(
        `${file}:${line}:${column}: the worker reads Kinesis streams only (a \`kinesis\` source), not a ${kind} source; run this pipeline with \`tributary run\`${kind === 'dynamodbStream' ? ' or deploy it to Lambda (`tributary synth`)' : ''}\n`,
      );
    });
  }

  it('refuses an invalid pipeline with every problem at its line and column (exit 1), as validate does', async () => {
    const file = join(dir, 'invalid.yaml');
    await writeFile(file, 'version: 1\nname: bad\nsource: { kinesis: { stream: s } }\nsteps:\n  - nosuchstep: {}\n');
    const r = await tributary(['worker', file]);
    const v = await tributary(['validate', file]);
    expect(r.code).toBe(1);
    expect(v.code).toBe(1);
    expect(r.err).toBe(v.err);
    expect(r.err).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+: `));
  });

  it('refuses a pipeline name that is no table name, unless --app names one', async () => {
    const file = join(dir, 'named.yaml');
    // (Checked before anything is connected to: the endpoint is never called.)
    await writeFile(file, pipelineYaml('{ kinesis: { stream: clicks, endpoint: "http://127.0.0.1:9" } }', 'ab'));
    const r = await tributary(['worker', file, '--metrics-port', '0']);
    expect(r.code).toBe(64);
    expect(r.err.split('\n')[0]).toBe(
      "the pipeline's name `ab` is not a DynamoDB table name (3 to 255 letters, digits, _, - or .): give `--app <name>`",
    );
  });
});

// ---- End to end: the built bin on kinesalite (4 shards) and dynalite -------------------------

const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');
const SHARDS = 4;
const STREAM = 'worker-e2e';
const APP = 'worker-e2e-app';

interface Event {
  user: string;
  seq: number;
  n: number;
}

/** Events with random users (partition keys) from a seeded generator, `seq` unique from `from`. */
function makeEvents(count: number, from: number, seed: number): Event[] {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: count }, (_, i) => ({
    user: `u${Math.floor(next() * 1000)}`,
    seq: from + i,
    n: Math.floor(next() * 100),
  }));
}

interface Running {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The port of /metrics, from the worker's log line saying where it listens. */
  port: Promise<number>;
}

function startWorker(args: string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(process.execPath, [bin, 'worker', ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let onLine: ((line: string) => void) | undefined;
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => {
    const before = err.length;
    err += c;
    for (const line of err
      .slice(err.lastIndexOf('\n', before) + 1)
      .split('\n')
      .slice(0, -1))
      onLine?.(line);
  });
  child.stdout?.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  const port = new Promise<number>((resolve, reject) => {
    onLine = (line) => {
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as { msg: string; fields?: { port?: number } };
      if (entry.msg === 'metrics endpoint listening' && entry.fields?.port) resolve(entry.fields.port);
    };
    exit.then(() => reject(new Error(`the worker exited before listening:\n${err}`)));
  });
  return { child, stderr: () => err, exit, port };
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** `tributary_records_in_total` per shard, from the exposition text. */
function recordsInByShard(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const [, shard, value] of text.matchAll(/^tributary_records_in_total\{shard="([^"]+)"\} (\d+)$/gm))
    m.set(shard as string, Number(value));
  return m;
}

/** Polls /metrics until records in (every shard) reach `total`; the last text. Bounded, not timed. */
async function untilRecordsIn(port: number, total: number, running: Running): Promise<string> {
  for (let i = 0; i < 600; i++) {
    if (running.child.exitCode !== null) throw new Error(`the worker exited:\n${running.stderr()}`);
    const { body } = await httpGet(port, '/metrics');
    const sum = [...recordsInByShard(body).values()].reduce((a, b) => a + b, 0);
    if (sum >= total) return body;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`records in never reached ${total}:\n${running.stderr()}`);
}

/** Polls until `cond` holds (bounded by a count of polls, not timed); fails if the worker exits first. */
async function until(cond: () => boolean, running: Running): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (cond()) return;
    if (running.child.exitCode !== null) throw new Error(`the worker exited:\n${running.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the condition never held:\n${running.stderr()}`);
}

/** The lease items of the app's table, by shard id. */
function leaseItems(endpoint: string): Promise<Map<string, Record<string, unknown>>> {
  return leaseItemsOf(endpoint, APP);
}

async function leaseItemsOf(endpoint: string, table: string): Promise<Map<string, Record<string, unknown>>> {
  const client = dynamoDbClient(endpoint);
  try {
    const res = await client.send(new ScanCommand({ TableName: table, ConsistentRead: true }));
    return new Map((res.Items ?? []).map((item) => [item.leaseKey?.S as string, unmarshall(item)]));
  } finally {
    client.destroy();
  }
}

describe('tributary worker: end to end on kinesalite (4 shards) and dynalite', () => {
  let kinesis: { endpoint: string; close: () => Promise<void> };
  let dynamo: { endpoint: string; close: () => Promise<void> };
  let env: NodeJS.ProcessEnv;
  let yamlFile: string;

  beforeAll(async () => {
    expect(existsSync(bin), 'run `pnpm build` first').toBe(true);
    kinesis = await startKinesalite();
    dynamo = await startDynalite();
    const client = kinesisClient(kinesis.endpoint);
    await createStream(client, STREAM, SHARDS);
    client.destroy();
    yamlFile = join(dir, 'e2e.yaml');
    await writeFile(
      yamlFile,
      `version: 1
name: worker-e2e
source: { kinesis: { stream: ${STREAM}, endpoint: "${kinesis.endpoint}", startingPosition: TRIM_HORIZON } }
steps:
  - filter: event.n % 3 != 0
  - map: { user: event.user, seq: event.seq, n: event.n }
  - sink: { file: { path: "\${OUT}" } }
`,
    );
    env = {
      ...process.env,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'x',
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      TRIBUTARY_LOG_LEVEL: 'info',
    };
  });
  afterAll(async () => {
    await kinesis?.close();
    await dynamo?.close();
  });

  /** Records put on the stream so far (by every test of this block: a later app reads them all). */
  let totalPut = 0;
  /** Puts `events`; where each went. */
  async function put(events: Event[]): Promise<Placed[]> {
    const client = kinesisClient(kinesis.endpoint);
    try {
      const placed = await putJson(client, STREAM, events, (e) => ({ partitionKey: e.user }));
      totalPut += placed.length;
      return placed;
    } finally {
      client.destroy();
    }
  }

  /** Per shard: how many records were put there and the sequence number of the last. */
  function perShard(placed: Placed[]) {
    const count = new Map<string, number>();
    const last = new Map<string, string>();
    for (const p of placed) {
      count.set(p.shardId, (count.get(p.shardId) ?? 0) + 1);
      const prev = last.get(p.shardId);
      if (prev === undefined || BigInt(p.sequenceNumber) > BigInt(prev)) last.set(p.shardId, p.sequenceNumber);
    }
    return { count, last };
  }

  async function outputSeqs(file: string): Promise<number[]> {
    const text = await readFile(join(dir, file), 'utf8');
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as Event).seq);
  }

  it('reads every shard (records_in per shard equal what was put), is ready, and on SIGTERM checkpoints, releases its leases and exits 143; a restart reads only what came after', async () => {
    const first = makeEvents(2000, 0, 15);
    const placed1 = await put(first);
    const shards1 = perShard(placed1);
    expect(shards1.count.size).toBe(SHARDS);

    const w1 = startWorker(
      [yamlFile, '--app', APP, '--worker-id', 'w-1', '--metrics-port', '0', '--metrics-host', '127.0.0.1'],
      {
        ...env,
        OUT: 'out-1.jsonl',
      },
    );
    const port1 = await w1.port;
    const text = await untilRecordsIn(port1, first.length, w1);
    expect(Object.fromEntries(recordsInByShard(text))).toEqual(Object.fromEntries(shards1.count));
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    // Records out per shard: those the filter keeps (from the input and where each was put); the
    // lease series: 4 taken, 4 held.
    const keptByShard = new Map<string, number>();
    first.forEach((e, i) => {
      const shardId = (placed1[i] as Placed).shardId;
      if (e.n % 3 !== 0) keptByShard.set(shardId, (keptByShard.get(shardId) ?? 0) + 1);
    });
    const outByShard = new Map(
      [...text.matchAll(/^tributary_records_out_total\{shard="([^"]+)"\} (\d+)$/gm)].map(([, sh, v]) => [
        sh,
        Number(v),
      ]),
    );
    expect(Object.fromEntries(outByShard)).toEqual(Object.fromEntries(keptByShard));
    expect(text).toMatch(/^tributary_lease_events_total\{kind="taken"\} 4$/m);
    expect(text).toMatch(/^tributary_leases_held 4$/m);
    expect((await httpGet(port1, '/healthz')).status).toBe(200);
    const ready = await httpGet(port1, '/readyz');
    expect([ready.status, JSON.parse(ready.body)]).toEqual([200, { ok: true, detail: '4 leases held' }]);
    // Every lease is this worker's.
    const held = await leaseItems(dynamo.endpoint);
    expect([...held.keys()].sort()).toEqual([...shards1.count.keys()].sort());
    for (const item of held.values()) expect(item.leaseOwner).toBe('w-1');

    w1.child.kill('SIGTERM');
    const exit1 = await w1.exit;
    expect(exit1, w1.stderr()).toEqual({ code: 143, signal: null });
    // Released (no owner) and checkpointed at each shard's last record.
    const released = await leaseItems(dynamo.endpoint);
    expect(released.size).toBe(SHARDS);
    for (const [shardId, item] of released) {
      expect(item.leaseOwner, shardId).toBeUndefined();
      expect(item.checkpoint, shardId).toBe(shards1.last.get(shardId));
    }
    // The output: every record the filter keeps, each once (the oracle, from the input).
    const expected1 = first.filter((e) => e.n % 3 !== 0).map((e) => e.seq);
    const got1 = await outputSeqs('out-1.jsonl');
    expect(got1.length).toBe(expected1.length);
    expect([...got1].sort((a, b) => a - b)).toEqual(expected1);
    // Its log: JSON lines only (Node's own warnings too), each with time, level, msg and the
    // worker id; no status line on a pipe.
    expect(w1.stderr()).not.toContain('\x1b');
    expect(w1.stderr()).not.toContain('\r');
    for (const line of w1
      .stderr()
      .split('\n')
      .filter((l) => l !== '')) {
      const entry = JSON.parse(line);
      expect(entry).toMatchObject({ level: expect.any(String), msg: expect.any(String), workerId: 'w-1' });
      expect(Number.isNaN(Date.parse(entry.time))).toBe(false);
    }

    // A restart goes on from the checkpoints: only the records put since are read and written.
    const second = makeEvents(600, first.length, 16);
    const placed2 = await put(second);
    const w2 = startWorker(
      [yamlFile, '--app', APP, '--worker-id', 'w-2', '--metrics-port', '0', '--metrics-host', '127.0.0.1'],
      {
        ...env,
        OUT: 'out-2.jsonl',
      },
    );
    const port2 = await w2.port;
    const text2 = await untilRecordsIn(port2, second.length, w2);
    expect(Object.fromEntries(recordsInByShard(text2))).toEqual(Object.fromEntries(perShard(placed2).count));
    w2.child.kill('SIGTERM');
    expect(await w2.exit, w2.stderr()).toEqual({ code: 143, signal: null });
    const got2 = await outputSeqs('out-2.jsonl');
    expect([...got2].sort((a, b) => a - b)).toEqual(second.filter((e) => e.n % 3 !== 0).map((e) => e.seq));
    for (const item of (await leaseItems(dynamo.endpoint)).values()) expect(item.leaseOwner).toBeUndefined();
  }, 180_000);

  it('the same pipeline file and input through run, lambda-local and the worker give identical windows (and equal the oracle)', async () => {
    const stream = 'worker-same';
    const client = kinesisClient(kinesis.endpoint);
    // Event times over 12 minutes, in order per key; users spread over the shards by partition key.
    const events = makeEvents(1500, 0, 21).map((e, i) => ({ ...e, t: 1_700_000_000_000 + i * 480 }));
    // Then one event on each shard 5 minutes later, so that every window of the events above closes
    // on every shard while the worker runs (a worker emits a window once the watermark passes it;
    // at a stop, open windows are left to be recomputed from the held-back checkpoint).
    const last = (events[events.length - 1] as { t: number }).t;
    let closers: (Event & { t: number })[] = [];
    try {
      const shards = await createStream(client, stream, SHARDS);
      await putJson(client, stream, events, (e) => ({ partitionKey: e.user }));
      closers = shards.map((_, i) => ({ user: `closer-${i}`, seq: 100_000 + i, n: 0, t: last + 300_000 }));
      await putJson(client, stream, closers, (_e, i) => ({
        partitionKey: `closer-${i}`,
        explicitHashKey: (shards[i] as { hashKey: string }).hashKey,
      }));
    } finally {
      client.destroy();
    }
    const all = [...events, ...closers];
    await writeFile(join(dir, 'same-events.jsonl'), `${all.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const file = join(dir, 'same.yaml');
    await writeFile(
      file,
      `version: 1
name: worker-same
source: { kinesis: { stream: ${stream}, endpoint: "${kinesis.endpoint}", startingPosition: TRIM_HORIZON } }
eventTime: event.t
steps:
  - window:
      key: event.user
      keyIsPartitionKey: true
      tumbling: 1m
      aggregate: { n: count(), total: sum(event.n) }
      state: { memory: { volatile: true } }
  - sink: { file: { path: "\${OUT}" } }
`,
    );
    const runBin = (args: string[], out: string) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const c = spawn(process.execPath, [bin, ...args], {
          cwd: dir,
          env: { ...env, OUT: out },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let err = '';
        c.stderr?.setEncoding('utf8');
        c.stderr?.on('data', (x: string) => (err += x));
        c.on('close', (code) => resolve({ code, err }));
      });
    // The oracle: counts and sums per (user, minute), from the input.
    const oracle = new Map<string, { n: number; total: number }>();
    for (const e of events) {
      const k = `${e.user}@${e.t - (e.t % 60_000)}`;
      const o = oracle.get(k) ?? { n: 0, total: 0 };
      oracle.set(k, { n: o.n + 1, total: o.total + e.n });
    }
    const ran = await runBin(['run', file, '--input', 'same-events.jsonl', '--quiet'], 'same-run.jsonl');
    expect(ran.code, ran.err).toBe(0);
    const local = await runBin(['lambda-local', file], 'same-lambda.jsonl');
    expect(local.code, local.err).toBe(0);
    const w = startWorker(
      [file, '--app', 'worker-same-app', '--worker-id', 'w-6', '--metrics-port', '0', '--metrics-host', '127.0.0.1'],
      {
        ...env,
        OUT: 'same-worker.jsonl',
      },
    );
    const port = await w.port;
    await untilRecordsIn(port, all.length, w);
    // Every window of the events (not the closers') has been written once the worker's records out
    // reach their count (the oracle's).
    for (let i = 0; ; i++) {
      const text = (await httpGet(port, '/metrics')).body;
      const out = [...text.matchAll(/^tributary_records_out_total\{shard="[^"]*"\} (\d+)$/gm)].reduce(
        (a, m) => a + Number(m[1]),
        0,
      );
      if (out >= oracle.size) break;
      if (i > 300) throw new Error(`records out stayed at ${out}, below ${oracle.size}:\n${w.stderr()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    w.child.kill('SIGTERM');
    expect(await w.exit, w.stderr()).toEqual({ code: 143, signal: null });
    const windows = async (f: string) =>
      (await readFile(join(dir, f), 'utf8'))
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { key: string; windowStart: number; n: number; total: number })
        .filter((x) => !x.key.startsWith('closer-'))
        .map((x) => `${x.key}@${x.windowStart}: ${x.n} ${x.total}`)
        .sort();
    const run = await windows('same-run.jsonl');
    expect(run).toEqual([...oracle].map(([k, o]) => `${k}: ${o.n} ${o.total}`).sort());
    expect(await windows('same-lambda.jsonl')).toEqual(run);
    expect(await windows('same-worker.jsonl')).toEqual(run);
  }, 180_000);

  it('two workers of one app share the 4 shards 2 and 2; each exports the iterator age of its own shards only', async () => {
    const app = 'worker-e2e-pair';
    if (totalPut === 0) await put(makeEvents(400, 10_000, 17));
    const args = (id: string) => [
      yamlFile,
      '--app',
      app,
      '--worker-id',
      id,
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
    ];
    const a = startWorker(args('w-a'), { ...env, OUT: 'out-a.jsonl' });
    let b: Running | undefined;
    try {
      const portA = await a.port;
      await untilRecordsIn(portA, totalPut, a);
      b = startWorker(args('w-b'), { ...env, OUT: 'out-b.jsonl' });
      const portB = await b.port;
      const heldOn = async (port: number) =>
        Number(/^tributary_leases_held (\d+)$/m.exec((await httpGet(port, '/metrics')).body)?.[1] ?? -1);
      for (let i = 0; ; i++) {
        if ((await heldOn(portA)) === 2 && (await heldOn(portB)) === 2) break;
        if (i > 600) throw new Error(`the leases were not balanced:\n${a.stderr()}\n${b.stderr()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      // The lease table says which two are whose; each worker's gauges name exactly those.
      const owners = await leaseItemsOf(dynamo.endpoint, app);
      const ownedBy = (id: string) =>
        [...owners]
          .filter(([, item]) => item.leaseOwner === id)
          .map(([shard]) => shard)
          .sort();
      expect(ownedBy('w-a')).toHaveLength(2);
      expect(ownedBy('w-b')).toHaveLength(2);
      const agedOn = async (port: number) =>
        [...(await httpGet(port, '/metrics')).body.matchAll(/^tributary_iterator_age_ms\{shard="([^"]+)"\} /gm)]
          .map((m) => m[1] as string)
          .sort();
      // w-b reports an age for a shard after its first read of it: poll until it has.
      for (let i = 0; (await agedOn(portB)).length < 2; i++) {
        if (i > 300) throw new Error(`w-b reported no iterator age:\n${b.stderr()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(await agedOn(portA)).toEqual(ownedBy('w-a'));
      expect(await agedOn(portB)).toEqual(ownedBy('w-b'));
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
      expect(await a.exit, a.stderr()).toEqual({ code: 143, signal: null });
      expect(await b.exit, b.stderr()).toEqual({ code: 143, signal: null });
    } finally {
      a.child.kill('SIGKILL');
      b?.child.kill('SIGKILL');
    }
  }, 180_000);

  it('is live but not ready while the lease table does not answer (the coordinator has not started)', async () => {
    // A DynamoDB endpoint that accepts connections and never answers: the start waits on it.
    const accepted = new Set<Socket>();
    const silent = createNetServer((socket) => {
      accepted.add(socket);
      socket.on('close', () => accepted.delete(socket));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const silentPort = (silent.address() as AddressInfo).port;
    const w = startWorker(
      [
        yamlFile,
        '--app',
        'worker-e2e-silent',
        '--worker-id',
        'w-5',
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
      ],
      { ...env, OUT: 'out-5.jsonl', AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${silentPort}` },
    );
    // Each step bounded, so a slow machine fails here naming the step and the worker's log.
    const step = <T>(what: string, p: Promise<T>): Promise<T> =>
      Promise.race([
        p,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`${what} did not happen within 20 s:\n${w.stderr()}`)), 20_000).unref(),
        ),
      ]);
    try {
      const port = await step('the metrics endpoint listening', w.port);
      const ready = await step('GET /readyz', httpGet(port, '/readyz'));
      const health = await step('GET /healthz', httpGet(port, '/healthz'));
      expect([ready.status, JSON.parse(ready.body)]).toEqual([503, { ok: false, detail: 'starting' }]);
      expect([health.status, JSON.parse(health.body)]).toEqual([200, { ok: true, detail: 'starting' }]);
      expect(recordsInByShard((await step('GET /metrics', httpGet(port, '/metrics'))).body).size).toBe(0);
    } finally {
      w.child.kill('SIGKILL');
      await w.exit;
      // The server's side of the worker's connections, which it never answered.
      for (const socket of accepted) socket.destroy();
      await new Promise((r) => silent.close(r));
    }
  }, 60_000);

  it('a second SIGTERM exits at once (143), without waiting for the batch in flight or releasing the leases', async () => {
    // A sink that never answers holds the batch in flight, so the graceful stop cannot end by itself.
    const held: ServerResponse[] = [];
    const sinkServer = createServer((_req, res) => held.push(res));
    await new Promise<void>((r) => sinkServer.listen(0, '127.0.0.1', r));
    const sinkPort = (sinkServer.address() as AddressInfo).port;
    const file = join(dir, 'held.yaml');
    await writeFile(
      file,
      `version: 1
name: worker-e2e-held
source: { kinesis: { stream: ${STREAM}, endpoint: "${kinesis.endpoint}", startingPosition: TRIM_HORIZON } }
steps:
  - sink: { http: { url: "http://127.0.0.1:${sinkPort}/in", timeout: 600000 } }
`,
    );
    const app = 'worker-e2e-held';
    if (totalPut === 0) await put(makeEvents(400, 10_000, 17));
    const w = startWorker(
      [file, '--app', app, '--worker-id', 'w-3', '--metrics-port', '0', '--metrics-host', '127.0.0.1'],
      env,
    );
    try {
      await w.port;
      const lines = (msg: string) =>
        w
          .stderr()
          .split('\n')
          .filter((l) => l.includes(`"msg":"${msg}"`));
      await until(() => held.length > 0 && lines('shard reading').length === SHARDS, w);
      w.child.kill('SIGTERM');
      await until(() => lines('worker stopping').length === 1, w);
      // Stopping, and held there by the batch in flight: still running, the leases still its own.
      expect(w.child.exitCode).toBeNull();
      w.child.kill('SIGTERM');
      expect(await w.exit, w.stderr()).toEqual({ code: 143, signal: null });
      expect(
        lines('SIGTERM again: exiting now, without checkpointing the batches in flight or releasing leases'),
      ).toHaveLength(1);
      const client = dynamoDbClient(dynamo.endpoint);
      try {
        const res = await client.send(new ScanCommand({ TableName: app, ConsistentRead: true }));
        const owners = (res.Items ?? []).map((i) => unmarshall(i).leaseOwner);
        expect(owners).toEqual(Array.from({ length: SHARDS }, () => 'w-3'));
      } finally {
        client.destroy();
      }
    } finally {
      w.child.kill('SIGKILL');
      for (const res of held) res.destroy();
      sinkServer.closeAllConnections();
      await new Promise((r) => sinkServer.close(r));
    }
  }, 120_000);

  it('on a terminal (a pseudo-terminal from script(1)) draws one status line in place between whole JSON log lines; clears it at exit', async () => {
    const app = 'worker-e2e-tty';
    // Records on every shard (this test may run alone).
    if (totalPut === 0) await put(makeEvents(400, 10_000, 17));
    const command = [
      process.execPath,
      bin,
      'worker',
      yamlFile,
      '--app',
      app,
      '--worker-id',
      'w-4',
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
    ]
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    // -e: script exits with the command's status; -f: flushes at once; -q: no banner. The shell
    // keeps the terminal open a moment after the worker exits, so script(1) reads all the worker
    // wrote before it sees the terminal close (it can lose the last output otherwise).
    const held = `${command}; s=$?; sleep 1; exit $s`;
    const child = spawn('script', ['-qfec', held, '/dev/null'], {
      cwd: dir,
      env: { ...env, OUT: 'out-4.jsonl' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let tty = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (tty += c));
    child.stderr.resume();
    const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const running: Running = {
      child,
      stderr: () => tty,
      exit: exit.then((code) => ({ code, signal: null })),
      port: Promise.resolve(0),
    };
    try {
      await until(() => /"msg":"metrics endpoint listening"[^\n]*"port":\d+/.test(tty), running);
      const port = Number(/"msg":"metrics endpoint listening"[^\n]*"port":(\d+)/.exec(tty)?.[1]);
      await untilRecordsIn(port, totalPut, running);
      // The status line has shown the 4 shards being read.
      const status = /^worker-e2e w-4: (\d+) shards?, (…|\d+) records\/s, (not read yet|[\d.]+ (ms|s|min|h) behind)$/;
      const parts = () =>
        tty
          .split(/\r\n/)
          .flatMap((line) => line.split('\r\x1b[2K'))
          .filter((p) => p !== '');
      await until(() => parts().some((p) => status.exec(p)?.[1] === '4'), running);
      // The worker is the node process under script's shell: SIGTERM it.
      const pid = workerPid(child.pid as number);
      process.kill(pid, 'SIGTERM');
      expect(await exit, tty).toBe(143);
      // Every piece between line ends and line clears is a whole JSON log line or a status line.
      const pieces = parts();
      const json = pieces.filter((p) => p.startsWith('{'));
      for (const p of pieces) {
        if (p.startsWith('{')) expect(JSON.parse(p).workerId).toBe('w-4');
        else expect(p, JSON.stringify(p)).toMatch(status);
      }
      expect(
        json.some((p) => JSON.parse(p).msg === 'exiting'),
        tty,
      ).toBe(true);
      // The last thing written is the clear of the status line (after the last log line).
      expect(tty.endsWith('\r\x1b[2K')).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  }, 120_000);
});

/** The pid of the `tributary worker` node process under `script` (its child, or its shell's child). */
function workerPid(scriptPid: number): number {
  const children = (pid: number) =>
    readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((p) => p !== '')
      .map(Number);
  // The node process itself, not the shell whose command line names it.
  const isWorker = (pid: number) => {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv[0] === process.execPath && argv.some((a) => a.endsWith('bin.js'));
  };
  for (const pid of children(scriptPid)) {
    if (isWorker(pid)) return pid;
    for (const grandchild of children(pid)) if (isWorker(grandchild)) return grandchild;
  }
  throw new Error(`no worker process under ${scriptPid}`);
}
