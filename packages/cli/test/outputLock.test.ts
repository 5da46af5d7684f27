/**
 * Issue 12 through the real CLI: two `tributary run`s writing the same output at once — the second
 * is refused with a clear error and a failing exit code, the first's output stays valid JSON Lines;
 * `--output /proc/nope/x.jsonl` is an error at once, not a hang.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');
let dir: string;

beforeAll(async () => {
  expect(existsSync(bin), 'run `pnpm build` first').toBe(true);
  dir = await mkdtemp(join(tmpdir(), 'trib-lock-cli-'));
  await writeFile(
    join(dir, 'pipeline.yaml'),
    `version: 1
name: lock-test
source: { file: { path: '-', batchSize: 1 } }
steps:
  - map: { n: event.n }
  - sink: { file: { path: out.jsonl } }
deadLetter: { file: { path: dead.jsonl } }
`,
  );
  await writeFile(join(dir, 'in.jsonl'), '{"n":100}\n{"n":101}\n');
});

const until = async (ok: () => boolean, ms = 20_000) => {
  for (const start = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() - start > ms) throw new Error('timed out');
  }
};

describe('tributary run: exclusive outputs', () => {
  it('a second run on the same output is refused (exit 2, the file and the lock named); the first goes on and exits 0 with valid output', async () => {
    const out = join(dir, 'out.jsonl');
    const first = spawn(process.execPath, [bin, 'run', 'pipeline.yaml', '--quiet'], { cwd: dir });
    let firstErr = '';
    first.stderr.on('data', (c) => {
      firstErr += c;
    });
    const exited = new Promise<number | null>((resolve) => first.on('close', (code) => resolve(code)));
    first.stdin.write('{"n":1}\n');
    await until(() => existsSync(`${out}.lock`));

    for (const args of [[], ['--output', 'out.jsonl']]) {
      const second = spawnSync(process.execPath, [bin, 'run', 'pipeline.yaml', '--input', 'in.jsonl', ...args], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(second.status).toBe(2);
      expect(second.stderr).toContain(`lock-test: failed: output ${out} is in use by another run (pid ${first.pid}`);
      expect(second.stderr).toContain(`lock file ${out}.lock`);
      expect(second.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }

    first.stdin.end('{"n":2}\n');
    expect(await exited).toBe(0);
    expect(firstErr).toBe('');
    expect(existsSync(`${out}.lock`)).toBe(false);
    expect(existsSync(join(dir, 'dead.jsonl.lock'))).toBe(false);
    const lines = (await readFile(out, 'utf8')).trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('--output /proc/nope/x.jsonl: an error naming the directory, at once', () => {
    const r = spawnSync(
      process.execPath,
      [bin, 'run', 'pipeline.yaml', '--input', 'in.jsonl', '--output', '/proc/nope/x.jsonl'],
      { cwd: dir, encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.signal).toBeNull(); // not killed by the timeout
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('lock-test: failed: cannot create directory /proc/nope');
  });
});
