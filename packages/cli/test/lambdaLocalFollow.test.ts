// lambda-local's starting positions and --follow, against kinesalite with 4 shards: `--from
// at-timestamp` reads exactly the records that arrived at or after the time (the oracle: each
// record's ApproximateArrivalTimestamp as the stream reports it), `--from trim-horizon` overrides
// a source that says LATEST, LATEST reads only records put after the start; `--follow` keeps
// polling when drained, handles records put later, and on a stop flushes its open windows
// (in process, with an AbortSignal, and the built bin with SIGINT: exit 130).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadPipelineFile } from '@tributary/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createStream,
  kinesisClient,
  putJson,
  shardRecords,
  startKinesalite,
  streamShards,
} from '../../../test-support/emulators.js';
import { lambdaLocal } from '../src/lambdaLocal.js';
import { main } from '../src/main.js';

type Sale = { user: string; amount: number; batch: string; i: number };

const SHARDS = 4;
const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');
let kinesis: { endpoint: string; close: () => Promise<void> };
let dir: string;

beforeAll(async () => {
  kinesis = await startKinesalite();
  dir = await mkdtemp(join(tmpdir(), 'trib-ll-follow-'));
});
afterAll(async () => {
  await kinesis?.close();
});

const sales = (batch: string, n: number): Sale[] =>
  Array.from({ length: n }, (_, i) => ({ user: `u${(i * 5) % 11}`, amount: (i * 7) % 29, batch, i }));

async function put(stream: string, values: Sale[]): Promise<void> {
  const client = kinesisClient(kinesis.endpoint);
  try {
    await putJson(client, stream, values, (v) => ({ partitionKey: `${v.user}-${v.i}` }));
  } finally {
    client.destroy();
  }
}

async function newStream(name: string): Promise<void> {
  const client = kinesisClient(kinesis.endpoint);
  try {
    await createStream(client, name, SHARDS);
  } finally {
    client.destroy();
  }
}

/** Every record of the stream with its arrival time (ms), as GetRecords reports them. */
async function arrivals(stream: string): Promise<{ sale: Sale; at: number }[]> {
  const client = kinesisClient(kinesis.endpoint);
  try {
    const out: { sale: Sale; at: number }[] = [];
    for (const s of await streamShards(client, stream))
      for (const r of await shardRecords(client, stream, s.shardId))
        out.push({
          sale: JSON.parse(Buffer.from(r.Data as Uint8Array).toString()) as Sale,
          at: (r.ApproximateArrivalTimestamp as Date).getTime(),
        });
    return out;
  } finally {
    client.destroy();
  }
}

async function tributary(args: string[]) {
  let err = '';
  const io = {
    out: new Writable({ write: (_c, _e, cb) => cb() }),
    err: new Writable({
      write(chunk, _enc, cb) {
        err += String(chunk);
        cb();
      },
    }),
  };
  return { code: await main(args, io), err };
}

const readSales = async (file: string): Promise<Sale[]> =>
  existsSync(file)
    ? (await readFile(file, 'utf8'))
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Sale)
    : [];
const byId = (vs: Sale[]) => [...vs].sort((a, b) => a.batch.localeCompare(b.batch) || a.i - b.i);

/** A pipeline passing every record to `out`; `source` adds to the kinesis source's options. */
const passThrough = (stream: string, out: string, source = '') => `version: 1
name: follow-test
source: { kinesis: { stream: ${stream}, endpoint: '${kinesis.endpoint}'${source} } }
steps:
  - sink: { file: { path: ${out} } }
`;

describe('lambda-local --from', () => {
  it('at-timestamp: exactly the records that arrived at or after the time', async () => {
    await newStream('ts');
    await put('ts', sales('early', 60));
    await new Promise((r) => setTimeout(r, 25)); // so the two batches arrive at different milliseconds
    await put('ts', sales('late', 80));
    const all = await arrivals('ts');
    const at = Math.min(...all.filter((a) => a.sale.batch === 'late').map((a) => a.at));
    const oracle = all.filter((a) => a.at >= at).map((a) => a.sale);
    expect(oracle.length).toBeGreaterThan(0);
    expect(oracle.length).toBeLessThan(all.length); // the time splits the stream
    const out = join(dir, 'ts.jsonl');
    await writeFile(join(dir, 'ts.yaml'), passThrough('ts', out));
    const r = await tributary([
      'lambda-local',
      join(dir, 'ts.yaml'),
      '--from',
      'at-timestamp',
      '--timestamp',
      new Date(at).toISOString(),
    ]);
    expect(r.err).toContain(`${oracle.length} records in`);
    expect(r.code).toBe(0);
    expect(byId(await readSales(out))).toEqual(byId(oracle));
  });

  it("the source's startingPosition is read (LATEST: nothing of what is there), and --from trim-horizon overrides it", async () => {
    await newStream('latest');
    const there = sales('there', 90);
    await put('latest', there);
    const out = join(dir, 'latest.jsonl');
    await writeFile(join(dir, 'latest.yaml'), passThrough('latest', out, ', startingPosition: LATEST'));
    const fromLatest = await tributary(['lambda-local', join(dir, 'latest.yaml')]);
    expect(fromLatest.code).toBe(0);
    expect(fromLatest.err).toContain('0 invocations, 0 records in');
    expect(await readSales(out)).toEqual([]);
    const fromStart = await tributary(['lambda-local', join(dir, 'latest.yaml'), '--from', 'trim-horizon']);
    expect(fromStart.code).toBe(0);
    expect(fromStart.err).toContain(`${there.length} records in`);
    expect(byId(await readSales(out))).toEqual(byId(there));
  });

  for (const [args, message] of [
    [['--from', 'oldest'], 'Expected `--from` to be trim-horizon, latest or at-timestamp, got oldest'],
    [['--from', 'at-timestamp'], '`--from at-timestamp` needs `--timestamp <ISO 8601 time>`'],
    [['--from', 'at-timestamp', '--timestamp', 'yesterday'], 'Expected `--timestamp` to be an ISO 8601 time'],
    [['--timestamp', '2026-01-01T00:00:00Z'], '`--timestamp` goes with `--from at-timestamp`'],
    [['--bisect', '--no-bisect'], 'give `--bisect` or `--no-bisect`, not both'],
  ] as const) {
    it(`refuses ${args.join(' ')} as a usage error`, async () => {
      await writeFile(join(dir, 'usage.yaml'), passThrough('nowhere', join(dir, 'usage.jsonl')));
      const r = await tributary(['lambda-local', join(dir, 'usage.yaml'), ...args]);
      expect(r.code).toBe(64);
      expect(r.err).toContain(message);
    });
  }
});

describe('lambda-local --follow', () => {
  it('from LATEST: only records put after it drained; they are handled while it follows; the stop flushes the open windows', async () => {
    await newStream('live');
    await put('live', sales('before', 70));
    const out = join(dir, 'live.jsonl');
    await writeFile(
      join(dir, 'live.yaml'),
      `version: 1
name: live
source: { kinesis: { stream: live, endpoint: '${kinesis.endpoint}' } }
steps:
  - window:
      key: event.user
      tumbling: 1d
      aggregate: { n: count(), total: sum(event.amount) }
      state: { memory: { volatile: true } }
  - sink: { file: { path: ${out} } }
`,
    );
    const pipeline = await loadPipelineFile(join(dir, 'live.yaml'));
    const after = sales('after', 120);
    const stop = new AbortController();
    let drains = 0;
    let handled = 0;
    let putting: Promise<void> | undefined;
    const result = await lambdaLocal(pipeline, {
      from: 'LATEST',
      follow: true,
      idleIntervalMs: 10,
      signal: stop.signal,
      onDrained: () => {
        // The first drain: the stream had nothing new; records put now are after the start.
        if (drains++ === 0) putting = put('live', after);
      },
      log: (line) => {
        handled += (JSON.parse(line) as { RecordsIn?: number }).RecordsIn ?? 0;
        if (handled >= after.length) stop.abort('SIGINT');
      },
    });
    await putting;
    expect(drains).toBeGreaterThanOrEqual(1);
    expect(result.interrupted).toBe(true);
    expect(result.failed).toBe(0);
    expect(result.counts.recordsIn).toBe(after.length);
    expect(result.summary).toMatch(/^live: interrupted by SIGINT: \d+ invocations, 120 records in/);
    // The windows were open until the stop: the flush emitted them; they hold `after` only.
    const oracle = new Map<string, { n: number; total: number }>();
    for (const s of after) {
      const w = oracle.get(s.user) ?? { n: 0, total: 0 };
      oracle.set(s.user, { n: w.n + 1, total: w.total + s.amount });
    }
    const windows = (await readFile(out, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { key: string; n: number; total: number });
    expect(new Map(windows.map((w) => [w.key, { n: w.n, total: w.total }]))).toEqual(oracle);
  });

  it('the bin with --follow: handles what is put while it follows, says when it is drained; SIGINT ends it (exit 130, summary)', async () => {
    expect(existsSync(bin), 'run `pnpm build` first').toBe(true);
    await newStream('tail');
    const first = sales('first', 50);
    const second = sales('second', 75);
    await put('tail', first);
    const out = join(dir, 'tail.jsonl');
    await writeFile(join(dir, 'tail.yaml'), passThrough('tail', out));
    const child: ChildProcess = spawn(process.execPath, [bin, 'lambda-local', join(dir, 'tail.yaml'), '--follow'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const drainedLines: string[] = [];
    let onDrain: (() => void) | undefined;
    child.stderr?.on('data', (c) => {
      stderr += String(c);
      for (const l of stderr.split('\n'))
        if (l.includes('every shard drained') && !drainedLines.includes(l)) {
          drainedLines.push(l);
          onDrain?.();
        }
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const drainedTimes = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (drainedLines.length >= n) resolve();
        };
        onDrain = check;
        check();
      });
    try {
      await drainedTimes(1);
      expect(drainedLines[0]).toBe(
        `follow-test: every shard drained, ${first.length} records in so far; following until SIGINT/SIGTERM`,
      );
      await put('tail', second);
      // Drained again once the second lot is in (each drain line counts the records in so far).
      for (let n = 2; !drainedLines.some((l) => l.includes(`${first.length + second.length} records in`)); n++)
        await drainedTimes(n);
      child.kill('SIGINT');
      expect(await exited).toBe(130);
    } finally {
      child.kill('SIGKILL');
    }
    expect(stderr).toMatch(
      new RegExp(`follow-test: interrupted by SIGINT: \\d+ invocations, ${first.length + second.length} records in`),
    );
    expect(byId(await readSales(out))).toEqual(byId([...first, ...second]));
  });
});
