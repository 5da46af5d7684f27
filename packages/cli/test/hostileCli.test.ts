// The CLI under careless or hostile use (issue 12): a closed output pipe, bad paths and malformed
// invocations. Each message is one line naming the file (no stack unless asked); statuses as
// documented: 1 invalid pipeline, 2 the run failed, 64 usage.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bin, runCli } from './hostileSupport.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-hostile-cli-'));
  await writeFile(join(dir, 'in.jsonl'), '{"a":1}\n{"a":2}\n');
  await writeFile(
    join(dir, 'p.yaml'),
    `version: 1
name: hostile
source: { file: { path: in.jsonl } }
steps:
  - map: { a: event.a }
  - sink: { file: { path: out.jsonl } }
deadLetter: { file: { path: dead.jsonl } }
`,
  );
  await writeFile(join(dir, 'empty.yaml'), '');
  // Bytes no editor wrote: NULs, invalid UTF-8, control characters, a stray BOM.
  const garbage = Buffer.alloc(4096);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 256;
  await writeFile(join(dir, 'garbage.yaml'), garbage);
  await mkdir(join(dir, 'folder.yaml'));
});

const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at |TypeError|RangeError/);

describe('a reader that closes the output early', () => {
  it('`tributary schema | head -c 100`: a quiet exit, status 0, nothing on stderr', async () => {
    // A real pipe (spawn's stdio are socket pairs with larger buffers): the schema (~85 KB) is
    // larger than a pipe's 64 KB, so writing it outlives head.
    const r = await runCli(['-c', `set -o pipefail; "${process.execPath}" "${bin}" schema | head -c 100 >/dev/null`], {
      shell: 'bash',
    });
    expect(r.stderr).toBe('');
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
  });
});

describe('malformed invocations: one line naming the file, the documented status', () => {
  it('an unknown flag: usage (64), naming the flag', async () => {
    const r = await runCli(['run', 'p.yaml', '--frobnicate'], { cwd: dir });
    expect(r.code).toBe(64);
    expect(r.stderr.split('\n')[0]).toMatch(/^Unknown option '--frobnicate'/);
    noStack(r.stderr);
  });

  for (const [what, file, message] of [
    ['a missing pipeline file', 'missing.yaml', /^missing\.yaml: cannot read pipeline file: ENOENT/],
    ['a directory as the pipeline file', 'folder.yaml', /^folder\.yaml: cannot read pipeline file: EISDIR/],
    ['binary garbage as the pipeline file', 'garbage.yaml', /^garbage\.yaml:\d+:\d+: /],
    ['an empty pipeline file', 'empty.yaml', /^empty\.yaml:1:1: expected object, got null$/],
  ] as const) {
    for (const command of ['validate', 'run']) {
      it(`${what} (${command}): exit 1, every line names the file`, async () => {
        const r = await runCli([command, file], { cwd: dir });
        expect(r.code).toBe(1);
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines[0]).toMatch(message);
        for (const l of lines) expect(l.startsWith(`${file}`)).toBe(true);
        noStack(r.stderr);
      });
    }
  }

  it('a directory as --input: exit 2, naming the directory (Node says only "EISDIR …, read")', async () => {
    const r = await runCli(['run', 'p.yaml', '--input', 'folder.yaml'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`hostile: failed: input ${join(dir, 'folder.yaml')} is a directory, not a JSON Lines file\n`);
  });

  it('a missing --input: exit 2, naming it', async () => {
    const r = await runCli(['run', 'p.yaml', '--input', 'nope.jsonl'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(join(dir, 'nope.jsonl'));
  });

  it('--output under /proc/nope: an error naming the path, exit 2, no hang', async () => {
    const r = await runCli(['run', 'p.yaml', '--output', '/proc/nope/x.jsonl'], { cwd: dir, timeout: 20_000 });
    expect(r.signal, 'the CLI hung (Node’s recursive mkdir under /proc) and was killed').toBeNull();
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^hostile: failed: .*\/proc\/nope/);
  });

  it('a directory as --output: exit 2, one line; --verbose and TRIBUTARY_DEBUG=1 add the stack', async () => {
    const plain = await runCli(['run', 'p.yaml', '--output', 'folder.yaml'], { cwd: dir });
    expect(plain.code).toBe(2);
    expect(plain.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(plain.stderr).toContain(join(dir, 'folder.yaml'));
    noStack(plain.stderr);
    const verbose = await runCli(['run', 'p.yaml', '--output', 'folder.yaml', '--verbose'], { cwd: dir });
    expect(verbose.code).toBe(2);
    expect(verbose.stderr.split('\n')[0]).toBe(plain.stderr.trimEnd());
    expect(verbose.stderr).toMatch(/\n\s+at /);
    const debug = await runCli(['run', 'p.yaml', '--output', 'folder.yaml'], {
      cwd: dir,
      env: { TRIBUTARY_DEBUG: '1' },
    });
    expect(debug.stderr).toMatch(/\n\s+at /);
  });
});
