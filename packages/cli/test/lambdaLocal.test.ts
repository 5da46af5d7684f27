// `tributary lambda-local` as users run it (the built bin), against kinesalite in this process:
// the same pipeline and input give the same window results as `tributary run` on the file.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStream, kinesisClient, putJson, startKinesalite } from '../../../test-support/emulators.js';

const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');
const tributary = (args: string[]) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });

let kinesis: { endpoint: string; close: () => Promise<void> };
let dir: string;
const events = Array.from({ length: 700 }, (_, i) => ({
  user: `u${(i * 5) % 17}`,
  amount: i % 23,
  t: 1_000 + i * 300,
}));

beforeAll(async () => {
  kinesis = await startKinesalite();
  dir = await mkdtemp(join(tmpdir(), 'trib-lambda-local-'));
  await writeFile(join(dir, 'events.jsonl'), `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
  const client = kinesisClient(kinesis.endpoint);
  await createStream(client, 'clicks');
  await putJson(client, 'clicks', events, (e) => ({ partitionKey: e.user }));
  client.destroy();
});
afterAll(async () => {
  await kinesis?.close();
});

const yaml = (out: string) => `version: 1
name: local-clicks
source: { file: { path: events.jsonl, batchSize: 64 } }
eventTime: event.t
steps:
  - window:
      key: event.user
      tumbling: 1m
      aggregate: { n: count(), total: sum(event.amount) }
      state: { memory: { volatile: true } }
  - sink: { file: { path: ${out} } }
`;

async function windows(file: string) {
  const lines = (await readFile(join(dir, file), 'utf8')).trim().split('\n');
  return lines.map((l) => JSON.parse(l)).sort((a, b) => a.key.localeCompare(b.key) || a.windowStart - b.windowStart);
}

describe('tributary lambda-local', () => {
  it('runs the handler on the stream; the windows equal those of tributary run on the same input', async () => {
    await writeFile(join(dir, 'local.yaml'), yaml('from-lambda.jsonl'));
    await writeFile(join(dir, 'file.yaml'), yaml('from-file.jsonl'));
    const local = await tributary([
      'lambda-local',
      join(dir, 'local.yaml'),
      '--stream',
      'clicks',
      '--endpoint',
      kinesis.endpoint,
      '--batch-size',
      '50',
    ]);
    expect(local.code).toBe(0);
    expect(local.stderr).toMatch(
      /local-clicks: \d+ invocations, 700 records in \(each once, retries not counted\), \d+ written, 0 dead-lettered, 0 sent to the on-failure destination\n/,
    );
    const run = await tributary(['run', join(dir, 'file.yaml'), '--quiet']);
    expect(run.code).toBe(0);
    const a = await windows('from-lambda.jsonl');
    const b = await windows('from-file.jsonl');
    expect(a).toEqual(b);
    // And both equal the oracle: counts per (user, minute) from the input.
    const oracle = new Map<string, number>();
    for (const e of events) {
      const id = `${e.user}/${e.t - (e.t % 60_000)}`;
      oracle.set(id, (oracle.get(id) ?? 0) + 1);
    }
    expect(new Map(a.map((w) => [`${w.key}/${w.windowStart}`, w.n]))).toEqual(oracle);
  });

  it('a batch whose retries run out fails the run: exit status 2, the summary says so, the destination keeps the error', async () => {
    // Window state in a DynamoDB nobody listens on: every batch fails until its retries run out.
    await writeFile(
      join(dir, 'down.yaml'),
      `version: 1
name: local-down
source: { file: { path: events.jsonl } }
eventTime: event.t
deadLetter: { file: { path: ${join(dir, 'down-dead.jsonl')} } }
steps:
  - window:
      key: event.user
      tumbling: 1m
      aggregate: { n: count() }
      state: { dynamodb: { table: down-state, endpoint: 'http://127.0.0.1:1' } }
  - sink: { file: { path: ${join(dir, 'down-out.jsonl')} } }
`,
    );
    const r = await tributary([
      'lambda-local',
      join(dir, 'down.yaml'),
      '--stream',
      'clicks',
      '--endpoint',
      kinesis.endpoint,
      '--batch-size',
      '700',
      '--max-retries',
      '0',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /local-down: 1 invocations, 700 records in \(each once, retries not counted\), 0 written, 0 dead-lettered, 700 sent to the on-failure destination \(FAILED: their retries ran out; FAILED: the end-of-stream flush: state store: .*ECONNREFUSED.*\)/,
    );
    const dead = (await readFile(join(dir, 'down-dead.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(dead).toHaveLength(700);
    expect(dead[0]).toMatchObject({
      reason: 'RetryAttemptsExhausted',
      step: 'lambda',
      shardId: 'shardId-000000000000',
    });
    expect(dead[0].error).toMatch(/state store: .* failed/);
  });

  it('needs a stream when the source is a file', async () => {
    const r = await tributary(['lambda-local', join(dir, 'local.yaml')]);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain(
      `lambda-local needs --stream <name>: the source of ${join(dir, 'local.yaml')} is a file, not a kinesis stream`,
    );
  });
});
