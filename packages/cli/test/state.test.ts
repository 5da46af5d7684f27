// `tributary state init` and `tributary run` with window state in DynamoDB (dynalite) and Redis
// (redis-server), as users run them: the built bin in a child process.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startDynalite, startRedis } from '../../../test-support/emulators.js';
import { withoutSdkNotice } from './hostileSupport.js';

const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');
// Asynchronous: dynalite runs in this process and must keep answering while the CLI runs.
const tributary = (args: string[]) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr: withoutSdkNotice(stderr) });
    });
  });

let dir: string;
let dynamo: { endpoint: string; close: () => Promise<void> };
let redis: RedisServer;
const events = Array.from({ length: 500 }, (_, i) => ({ user: `u${(i * 7) % 11}`, t: 1_000 + i * 400 }));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-state-'));
  dynamo = await startDynalite();
  redis = await startRedis();
  await writeFile(join(dir, 'events.jsonl'), `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
});
afterAll(async () => {
  await dynamo?.close();
  await redis?.close();
});

const pipelineYaml = (name: string, state: string) => `version: 1
name: ${name}
source: { file: { path: events.jsonl, batchSize: 37 } }
eventTime: event.t
steps:
  - window:
      key: event.user
      tumbling: 10s
      aggregate: { n: count() }
      state: ${state}
  - sink: { file: { path: ${name}.jsonl } }
`;

/** The oracle: counts per (user, 10 s window), from the input. */
function expected() {
  const m = new Map<string, number>();
  for (const e of events) {
    const id = `${e.user}/${e.t - (e.t % 10_000)}`;
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

async function outputOf(name: string) {
  const lines = (await readFile(join(dir, `${name}.jsonl`), 'utf8')).trim().split('\n');
  const m = new Map<string, number>();
  for (const l of lines) {
    const o = JSON.parse(l) as { key: string; windowStart: number; n: number };
    expect(m.has(`${o.key}/${o.windowStart}`)).toBe(false); // each window once
    m.set(`${o.key}/${o.windowStart}`, o.n);
  }
  return m;
}

describe('tributary with window state outside the process', () => {
  it('state init creates the DynamoDB table (then says it exists); run counts exactly', async () => {
    const file = join(dir, 'dynamo.yaml');
    await writeFile(
      file,
      pipelineYaml('dynamo', `{ dynamodb: { table: clicks-state, endpoint: '${dynamo.endpoint}' } }`),
    );
    const first = await tributary(['state', 'init', file]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toBe('/steps/0/window/state: dynamodb table clicks-state: created (TTL on `ttl`)\n');
    expect(first.code).toBe(0);
    expect((await tributary(['state', 'init', file])).stdout).toContain('clicks-state: already exists');
    const run = await tributary(['run', file, '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(await outputOf('dynamo')).toEqual(expected());
  });

  it('run with Redis state counts exactly; state init has nothing to create', async () => {
    const file = join(dir, 'redis.yaml');
    await writeFile(file, pipelineYaml('redis', `{ redis: { url: '${redis.url}' } }`));
    expect((await tributary(['state', 'init', file])).stdout).toBe(
      '/steps/0/window/state: redis: nothing to create (keys are created on first write)\n',
    );
    const run = await tributary(['run', file, '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(await outputOf('redis')).toEqual(expected());
  });

  it('state init: usage errors and invalid pipelines', async () => {
    expect((await tributary(['state', 'drop', 'x.yaml'])).code).toBe(64);
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, pipelineYaml('bad', '{ dynamodb: { table: ab } }'));
    const r = await tributary(['state', 'init', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${bad}:10:35: expected at least 3 characters, got "ab"\n`);
  });
});
