// The fleet tests' processes and oracles: kinesalite and dynalite each in a child process
// (emulator.mjs), workers as child processes of the `tributary` bin built from the sources
// (build.ts), the lease table read as it is, a producer that remembers where each record went,
// and the oracle recomputed from the records put.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CreateTableCommand, type DynamoDBClient, paginateScan } from '@aws-sdk/client-dynamodb';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import {
  createStateTables,
  createStream,
  dynamoDbClient,
  kinesisClient,
  type Placed,
  putJson,
  streamShards,
} from '../../../../test-support/emulators.js';

// ---- Emulators in child processes ---------------------------------------------------------

export interface EmulatorProcess {
  endpoint: string;
  child: ChildProcess;
  close(): Promise<void>;
}

export async function startEmulatorProcess(kind: 'kinesalite' | 'dynalite'): Promise<EmulatorProcess> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'emulator.mjs'), kind], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const endpoint = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => resolve((JSON.parse(line) as { endpoint: string }).endpoint));
    child.once('exit', (code) => reject(new Error(`${kind} exited (${code}) before listening`)));
  });
  return {
    endpoint,
    child,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

// ---- Records ------------------------------------------------------------------------------

/** An event: its id, its key, its sequence number within the key (from 1) and its event time. */
export interface Ev {
  id: string;
  k: string;
  s: number;
  t: number;
}

export const T0 = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;
export const WINDOW_MS = 1000;
export const KEYS = 40;

/** A seeded generator (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` events from index `from` on `KEYS` keys at random, per-key sequence numbers continuing `seqs`; event time T0 + index ms. */
export function makeEvents(rand: () => number, from: number, n: number, seqs: Map<string, number>): Ev[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    const k = `k${Math.floor(rand() * KEYS)}`;
    const s = (seqs.get(k) ?? 0) + 1;
    seqs.set(k, s);
    return { id: `e${i}`, k, s, t: T0 + i };
  });
}

/** The oracle: per `key@windowStart`, the count and the sum of per-key sequence numbers of the events put. */
export function windowOracle(evs: Ev[]): Map<string, { n: number; total: number }> {
  const m = new Map<string, { n: number; total: number }>();
  for (const e of evs) {
    const id = `${e.k}@${Math.floor((e.t - T0) / WINDOW_MS) * WINDOW_MS + T0}`;
    const w = m.get(id) ?? { n: 0, total: 0 };
    w.n++;
    w.total += e.s;
    m.set(id, w);
  }
  return m;
}

// ---- One test's stream, tables and pipeline ----------------------------------------------------

export interface FleetEnv {
  kinesis: EmulatorProcess;
  dynamo: EmulatorProcess;
  bin: string;
  dir: string;
}

export interface WorkerProcess {
  id: string;
  /** This process's file sink: every record it processed, in processing order. */
  out: string;
  child: ChildProcess;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Lease settings of the tests' workers: failover in 2.5 s (KCL's default is 10 s). */
export const SETTINGS = {
  failoverTimeMs: 2500,
  renewIntervalMs: 500,
  fencingMarginMs: 500,
  maxLeasesToStealAtOneTime: 1,
  shardSyncIntervalMs: 2000,
};
/** The coordinator's take pass runs every failoverTime / 2. */
export const TAKE_INTERVAL_MS = SETTINGS.failoverTimeMs / 2;

export class Fleet {
  readonly stream: string;
  readonly app: string;
  readonly stateTable: string;
  readonly recordsTable: string;
  readonly windowsTable: string;
  readonly yamlFile: string;
  readonly kinesisClient: KinesisClient;
  readonly dynamoClient: DynamoDBClient;
  shardIds: string[] = [];
  readonly put: Ev[] = [];
  /** Where each event went (by id) and each shard's event ids in put order. */
  readonly placed = new Map<string, Placed>();
  readonly order = new Map<string, string[]>();
  readonly workers: WorkerProcess[] = [];
  private incarnations = 0;

  constructor(
    readonly env: FleetEnv,
    readonly name: string,
  ) {
    this.stream = `${name}-stream`;
    this.app = `${name}-app`;
    this.stateTable = `${name}-state`;
    this.recordsTable = `${name}-records`;
    this.windowsTable = `${name}-windows`;
    this.yamlFile = join(env.dir, `${name}.yaml`);
    this.kinesisClient = kinesisClient(env.kinesis.endpoint);
    this.dynamoClient = dynamoDbClient(env.dynamo.endpoint);
  }

  /** The stream (4 shards), the state and sink tables and the pipeline file. */
  async create(shards = 4): Promise<void> {
    this.shardIds = (await createStream(this.kinesisClient, this.stream, shards)).map((s) => s.shardId);
    await createStateTables(this.env.dynamo.endpoint, this.stateTable);
    await this.dynamoClient.send(
      new CreateTableCommand({
        TableName: this.recordsTable,
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    await this.dynamoClient.send(
      new CreateTableCommand({
        TableName: this.windowsTable,
        AttributeDefinitions: [
          { AttributeName: 'key', AttributeType: 'S' },
          { AttributeName: 'windowStart', AttributeType: 'N' },
        ],
        KeySchema: [
          { AttributeName: 'key', KeyType: 'HASH' },
          { AttributeName: 'windowStart', KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    const ddb = this.env.dynamo.endpoint;
    await writeFile(
      this.yamlFile,
      `version: 1
name: ${this.name}
source: { kinesis: { stream: ${this.stream}, endpoint: "${this.env.kinesis.endpoint}", startingPosition: TRIM_HORIZON } }
eventTime: event.t
steps:
  - sink: { file: { path: "\${OUT}" } }
  - sink: { dynamodb: { table: ${this.recordsTable}, endpoint: "${ddb}" } }
  - window:
      key: event.k
      tumbling: ${WINDOW_MS}
      aggregate: { n: count(), total: sum(event.s) }
      state: { dynamodb: { table: ${this.stateTable}, endpoint: "${ddb}" } }
  - sink: { dynamodb: { table: ${this.windowsTable}, endpoint: "${ddb}" } }
`,
    );
  }

  /** Puts `evs` with random partition keys (seeded), remembering where each went. */
  async produce(evs: Ev[], rand: () => number): Promise<void> {
    for (let i = 0; i < evs.length; i += 500) {
      const chunk = evs.slice(i, i + 500);
      const placed = await putJson(this.kinesisClient, this.stream, chunk, () => ({
        partitionKey: `p${Math.floor(rand() * 1e9)}`,
      }));
      placed.forEach((p, j) => {
        const e = chunk[j] as Ev;
        this.placed.set(e.id, p);
        this.order.set(p.shardId, [...(this.order.get(p.shardId) ?? []), e.id]);
      });
      this.put.push(...chunk);
    }
  }

  /** The sequence number of the last record put on `shardId`. */
  lastSequenceNumber(shardId: string): string | undefined {
    const ids = this.order.get(shardId) ?? [];
    const last = ids[ids.length - 1];
    return last === undefined ? undefined : this.placed.get(last)?.sequenceNumber;
  }

  /** One record per open shard far ahead in event time (key `close`): every window of the data closes. */
  async closeWindows(): Promise<void> {
    for (const sh of (await streamShards(this.kinesisClient, this.stream)).filter((x) => x.open)) {
      await putJson(
        this.kinesisClient,
        this.stream,
        [{ id: `close-${sh.shardId}`, k: 'close', s: 0, t: T0 + 10_000_000 }],
        () => ({
          partitionKey: 'close',
          explicitHashKey: sh.hashKey,
        }),
      );
    }
  }

  /** Starts a worker process with id `id` (a new incarnation writes its own file). */
  startWorker(id: string): WorkerProcess {
    const out = join(this.env.dir, `${this.name}-${id}-${++this.incarnations}.jsonl`);
    const child = spawn(
      process.execPath,
      [
        this.env.bin,
        'worker',
        this.yamlFile,
        '--app',
        this.app,
        '--worker-id',
        id,
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
      ],
      {
        cwd: this.env.dir,
        stdio: ['ignore', 'ignore', 'pipe'],
        env: {
          ...process.env,
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'x',
          AWS_SECRET_ACCESS_KEY: 'x',
          AWS_ENDPOINT_URL_DYNAMODB: this.env.dynamo.endpoint,
          TRIBUTARY_LOG_LEVEL: 'info',
          OUT: out,
          TRIBUTARY_FLEET_WORKER_OPTIONS: JSON.stringify({
            settings: SETTINGS,
            idleTimeBetweenReadsMs: 200,
            tickIntervalMs: 250,
            retry: { baseDelay: 100, maxDelay: 1000 },
          }),
        },
      },
    );
    let err = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (c: string) => {
      err += c;
      if (err.length > 2_000_000) err = err.slice(-1_000_000);
    });
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );
    const w: WorkerProcess = { id, out, child, stderr: () => err, exit };
    this.workers.push(w);
    return w;
  }

  /** Every lease item of the app's table as stored, by shard id (empty while the table is absent). */
  async leases(): Promise<Map<string, Record<string, unknown>>> {
    try {
      const items: Record<string, unknown>[] = [];
      for await (const page of paginateScan(
        { client: this.dynamoClient },
        { TableName: this.app, ConsistentRead: true },
      ))
        for (const item of page.Items ?? []) items.push(unmarshall(item));
      return new Map(items.map((i) => [i.leaseKey as string, i]));
    } catch (err) {
      if ((err as Error).name === 'ResourceNotFoundException') return new Map();
      throw err;
    }
  }

  /** The owner of each shard's lease. */
  async owners(): Promise<Map<string, string | undefined>> {
    return new Map([...(await this.leases())].map(([k, v]) => [k, v.leaseOwner as string | undefined]));
  }

  async scan(table: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    for await (const page of paginateScan({ client: this.dynamoClient }, { TableName: table, ConsistentRead: true }))
      for (const item of page.Items ?? []) items.push(unmarshall(item));
    return items;
  }

  /** The window sink table, by `key@windowStart` (the close records' windows left out). */
  async windows(): Promise<Map<string, { n: number; total: number }>> {
    const m = new Map<string, { n: number; total: number }>();
    for (const w of await this.scan(this.windowsTable)) {
      if (w.key === 'close') continue;
      m.set(`${w.key}@${w.windowStart}`, { n: Number(w.n), total: Number(w.total) });
    }
    return m;
  }

  /** What each worker process wrote to its file sink (ids in processing order), by process. */
  processed(): { worker: WorkerProcess; ids: string[] }[] {
    return this.workers.map((worker) => {
      let text = '';
      try {
        text = readFileSync(worker.out, 'utf8');
      } catch {
        // never wrote
      }
      const ids = text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => (JSON.parse(l) as Ev).id)
        .filter((id) => !id.startsWith('close-'));
      return { worker, ids };
    });
  }

  /**
   * Lost, duplicated-effect and out-of-order counts against the oracle:
   * - lost: events put that no window counts (window totals below the oracle) or that the record sink lacks;
   * - duplicated: window counts above the oracle, or windows that do not exist in the oracle;
   * - out of order: in a process's log, a record of a shard after one later in the shard's order,
   *   with no rewind (a replay from a checkpoint starts at or before where the last run ended),
   *   or ahead of the last over records no other process processed.
   */
  async audit(): Promise<{
    /** Records in the logs of more than one process (at-least-once reads the window state de-duplicated). */
    reprocessed: number;
    lost: number;
    duplicated: number;
    outOfOrder: number;
    replays: number;
    windows: number;
    records: number;
  }> {
    const expected = windowOracle(this.put);
    const got = await this.windows();
    let lost = 0;
    let duplicated = 0;
    for (const [id, w] of expected) {
      const g = got.get(id);
      const n = g?.n ?? 0;
      if (n < w.n) lost += w.n - n;
      if (n > w.n) duplicated += n - w.n;
      if (g !== undefined && g.total !== w.total && n === w.n) duplicated++;
    }
    for (const [id, g] of got) if (!expected.has(id)) duplicated += g.n;
    const records = new Set(
      (await this.scan(this.recordsTable)).map((r) => r.id as string).filter((id) => !id.startsWith('close-')),
    );
    for (const e of this.put) if (!records.has(e.id)) lost++;
    const putIds = new Set(this.put.map((e) => e.id));
    for (const id of records) if (!putIds.has(id)) duplicated++;
    const logs = this.processed();
    let outOfOrder = 0;
    let replays = 0;
    const pos = new Map<string, number>();
    for (const ids of this.order.values()) for (const [i, id] of ids.entries()) pos.set(id, i);
    for (const [p, { ids }] of logs.entries()) {
      const elsewhere = new Set(logs.filter((_, q) => q !== p).flatMap((l) => l.ids));
      const at = new Map<string, number>();
      for (const id of ids) {
        const shard = (this.placed.get(id) as Placed).shardId;
        const order = this.order.get(shard) as string[];
        const i = pos.get(id) as number;
        const prev = at.get(shard);
        if (prev !== undefined && i !== prev + 1) {
          if (i <= prev) replays++;
          else if (order.slice(prev + 1, i).some((skipped) => !elsewhere.has(skipped))) outOfOrder++;
        } else if (prev === undefined && i > 0 && order.slice(0, i).some((skipped) => !elsewhere.has(skipped)))
          outOfOrder++;
        at.set(shard, i);
      }
    }
    const seenBy = new Map<string, number>();
    for (const { ids } of logs) for (const id of new Set(ids)) seenBy.set(id, (seenBy.get(id) ?? 0) + 1);
    const reprocessed = [...seenBy.values()].filter((n) => n > 1).length;
    return { reprocessed, lost, duplicated, outOfOrder, replays, windows: got.size, records: records.size };
  }

  async close(): Promise<void> {
    for (const w of this.workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await Promise.all(this.workers.map((w) => w.exit));
    this.kinesisClient.destroy();
    this.dynamoClient.destroy();
  }
}

/** Polls `cond` every 100 ms until it holds; throws `what` after `polls` polls. */
export async function until<T>(what: string, cond: () => Promise<T | undefined | false>, polls = 900): Promise<T> {
  for (let i = 0; i < polls; i++) {
    const v = await cond();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never held: ${what}`);
}
