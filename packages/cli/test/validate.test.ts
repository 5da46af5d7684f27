// `tributary validate` as users run it (the built bin): it compiles each pipeline as `run` would,
// so an option a component refuses is reported at its spec, yet it runs no user code and opens
// no output or connection.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');
function tributary(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    // (Without Node's warnings: the AWS SDK warns of Node versions it will stop supporting.)
    const child = spawn(process.execPath, ['--no-warnings', bin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

let dir: string;
// Every connection made to it is counted: validate must make none.
let listener: Server;
let port: number;
let connections = 0;

beforeAll(async () => {
  expect(existsSync(bin), 'run `pnpm build` first').toBe(true);
  dir = await mkdtemp(join(tmpdir(), 'trib-validate-'));
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  listener = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((done) => listener.listen(0, '127.0.0.1', done));
  port = (listener.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise((done) => listener.close(done));
});

describe('tributary validate', () => {
  it('reports an option that compiling refuses, at its step, as run does (exit 1)', async () => {
    await writeFile(
      join(dir, 'hopping.yaml'),
      `version: 1
name: hopping
source: { file: { path: events.jsonl } }
steps:
  - filter: event.type == "click"
  - window: { hopping: { size: 1m, every: 2m }, aggregate: { n: count() } }
  - sink: { file: { path: hopping-out.jsonl } }
`,
    );
    const line = 'hopping.yaml:6:13: hopping `every` must not exceed `size` (records would fall between windows)';
    const validated = await tributary(['validate', 'hopping.yaml'], dir);
    expect(validated.code).toBe(1);
    expect(validated.stderr).toBe(`${line}\n`);
    const run = await tributary(['run', 'hopping.yaml'], dir);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`${line}\n`);
  });

  it('reports every refused option of every file, each at its own spec, and ok for a good one', async () => {
    await writeFile(
      join(dir, 'two.yaml'),
      `version: 1
name: two
source: { file: { path: events.jsonl } }
steps:
  - window: { key: event.user, hopping: { size: 1m, every: 2m }, aggregate: { n: count() } }
  - sink: { redis: { url: "redis://127.0.0.1:${port}", command: zadd, key: event.user } }
`,
    );
    await writeFile(
      join(dir, 'good.yaml'),
      'version: 1\nname: good\nsource: { file: { path: events.jsonl } }\nsteps:\n  - sink: { stdout: {} }\n',
    );
    const r = await tributary(['validate', 'two.yaml', 'good.yaml'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'two.yaml:5:13: hopping `every` must not exceed `size` (records would fall between windows)',
      'two.yaml:6:11: Expected `score` for zadd',
      'good.yaml: ok',
    ]);
  });

  it('validates a pipeline with fn: functions without importing their module, opening its outputs or connecting', async () => {
    // Importing the module would write ran.txt.
    await writeFile(
      join(dir, 'handlers.js'),
      `import { writeFileSync } from 'node:fs';
writeFileSync(new URL('./ran.txt', import.meta.url), 'executed');
export const isClick = (e) => e.type === 'click';
export function shape(e) { return { user: e.user }; }
export const distinctUsers = { init: () => [], add: (a, v) => a, merge: (a, b) => a, result: (a) => a.length };
`,
    );
    const redis = `redis://127.0.0.1:${port}`;
    const endpoint = `http://127.0.0.1:${port}`;
    await writeFile(
      join(dir, 'functions.yaml'),
      `version: 1
name: functions
source: { file: { path: events.jsonl } }
steps:
  - filter: { fn: ./handlers.js#isClick }
  - map: { fn: ./handlers.js#shape }
  - sink: { file: { path: mid.jsonl } }
  - sink: { redis: { url: "${redis}", command: set, key: event.user } }
  - sink: { kinesis: { stream: out, endpoint: "${endpoint}", partitionKey: event.user } }
  - window: { key: event.user, tumbling: 1m, aggregate: { n: count(), users: { fn: ./handlers.js#distinctUsers } }, state: { redis: { url: "${redis}" } } }
  - sink: { file: { path: windows.jsonl } }
deadLetter: { file: { path: dead.jsonl } }
`,
    );
    const before = await readdir(dir);
    const r = await tributary(['validate', 'functions.yaml'], dir);
    expect(r.stderr).toBe('functions.yaml: ok\n');
    expect(r.code).toBe(0);
    // Nothing was written (no ran.txt, no output, no lock) and nothing was connected to.
    expect(await readdir(dir)).toEqual(before);
    expect(connections).toBe(0);
  });
});
