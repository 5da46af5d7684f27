/**
 * Issue 12 review, inputs and outputs through the real CLI: an output that is the run's input (or
 * another output) through a path, a symbolic link or a hard link is refused before anything is
 * opened; a lock file that cannot be read is an error, not a spin; signals hand over the lines
 * already read from standard input; a trickling standard input is written promptly; write errors
 * name the output.
 */
import { existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bin, runCli, startCli, until } from './hostileSupport.js';

let dir: string;
const data = `${Array.from({ length: 50 }, (_, i) => `{"i":${i + 1}}`).join('\n')}\n`;

beforeAll(async () => {
  expect(existsSync(bin), 'run `pnpm build` first').toBe(true);
  dir = await mkdtemp(join(tmpdir(), 'trib-review-io-'));
  await writeFile(
    join(dir, 'p.yaml'),
    'version: 1\nname: p\nsource: { file: { path: data.jsonl } }\nsteps:\n  - map: { i: event.i }\n',
  );
  await writeFile(
    join(dir, 'sinks.yaml'),
    'version: 1\nname: p\nsource: { file: { path: data.jsonl } }\nsteps:\n  - sink: { file: { path: data.jsonl } }\n',
  );
  await writeFile(join(dir, 'data.jsonl'), data);
  await symlink('data.jsonl', join(dir, 'sym.jsonl'));
  await link(join(dir, 'data.jsonl'), join(dir, 'hard.jsonl'));
});

const run = (args: string[], input?: string) => runCli(['run', ...args], { cwd: dir, input, timeout: 20_000 });

describe('review: an output that is the input, or another output', () => {
  it.each([
    [['p.yaml', '--input', 'data.jsonl', '--output', 'data.jsonl'], 'data.jsonl', 'data.jsonl'],
    [['p.yaml', '--output', 'o.jsonl', '--dead-letter', 'data.jsonl'], 'data.jsonl', 'data.jsonl'],
    [['sinks.yaml'], 'data.jsonl', 'data.jsonl'],
    [['p.yaml', '--output', 'sym.jsonl'], 'sym.jsonl', 'data.jsonl, the same file'],
    [['p.yaml', '--output', 'hard.jsonl'], 'hard.jsonl', 'data.jsonl, the same file'],
    [['p.yaml', '--input', 'hard.jsonl', '--dead-letter', 'sym.jsonl'], 'sym.jsonl', 'hard.jsonl, the same file'],
  ])('run %j is refused (exit 2), naming both, and the input is untouched', async (args, out, how) => {
    const r = await run(args);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(2);
    const how2 = how.replace(/^[^,]+/, (p) => join(dir, p));
    expect(r.stderr).toBe(
      `p: failed: output ${join(dir, out)} is the run's input (${how2}): writing it would replace the records being read. Write to another file\n`,
    );
    expect(await readFile(join(dir, 'data.jsonl'), 'utf8')).toBe(data);
    expect(existsSync(join(dir, 'o.jsonl'))).toBe(false); // refused before any output was opened
  });

  it('standard input redirected from the output file is refused too', async () => {
    // through a shell, so standard input is the file itself
    const s = await runCli(
      ['-c', `exec "${process.execPath}" "${bin}" run p.yaml --input - --output hard.jsonl < data.jsonl`],
      {
        cwd: dir,
        shell: '/bin/sh',
      },
    );
    expect(s.code).toBe(2);
    expect(s.stderr).toContain(`output ${join(dir, 'hard.jsonl')} is the run's input (standard input is that file)`);
    expect(await readFile(join(dir, 'data.jsonl'), 'utf8')).toBe(data);
  });

  it('one file as two outputs (same path, symbolic link, hard link) is "given twice", not "in use by another run"', async () => {
    await writeFile(join(dir, 'out.jsonl'), 'old\n');
    await symlink('out.jsonl', join(dir, 'out-sym.jsonl'));
    await link(join(dir, 'out.jsonl'), join(dir, 'out-hard.jsonl'));
    const same = await run(['p.yaml', '--output', 'out.jsonl', '--dead-letter', 'out.jsonl']);
    expect(same.code).toBe(2);
    expect(same.stderr).toBe(
      `p: failed: output ${join(dir, 'out.jsonl')} is given twice: each output must be a file of its own\n`,
    );
    for (const other of ['out-sym.jsonl', 'out-hard.jsonl']) {
      const r = await run(['p.yaml', '--output', 'out.jsonl', '--dead-letter', other]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `p: failed: output ${join(dir, other)} is given twice (as ${join(dir, 'out.jsonl')} and ${join(dir, other)}, the same file): each output must be a file of its own\n`,
      );
      expect(r.stderr).not.toContain('in use by another run');
    }
    expect(await readFile(join(dir, 'out.jsonl'), 'utf8')).toBe('old\n'); // not opened, not replaced
  });
});

describe('review: a lock file that cannot be read', () => {
  it('a directory or a dangling symbolic link as <out>.lock: exit 2 at once, naming the lock file and why', async () => {
    await mkdir(join(dir, 'd.jsonl.lock'));
    await symlink('nowhere', join(dir, 'l.jsonl.lock'));
    const d = await run(['p.yaml', '--output', 'd.jsonl']);
    expect(d.signal).toBeNull(); // not killed by the timeout: it used to spin for ever
    expect(d.code).toBe(2);
    expect(d.stderr).toBe(
      `p: failed: cannot lock output ${join(dir, 'd.jsonl')}: lock file ${join(dir, 'd.jsonl.lock')} is a directory; remove it if no run is writing the output\n`,
    );
    const l = await run(['p.yaml', '--output', 'l.jsonl']);
    expect(l.signal).toBeNull();
    expect(l.code).toBe(2);
    expect(l.stderr).toBe(
      `p: failed: cannot lock output ${join(dir, 'l.jsonl')}: lock file ${join(dir, 'l.jsonl.lock')} is a symbolic link to nowhere, which does not exist; remove it if no run is writing the output\n`,
    );
    expect(existsSync(join(dir, 'd.jsonl'))).toBe(false);
  });
});

describe('review: standard input that is slow, or stopped', () => {
  const stdinYaml = 'version: 1\nname: s\nsource: { file: { path: "-" } }\nsteps:\n  - map: { i: event.i }\n';
  const lines = (n: number) => Array.from({ length: n }, (_, i) => `{"i":${i + 1}}\n`).join('');
  const outLines = async (f: string) => (existsSync(f) ? (await readFile(f, 'utf8')).split('\n').length - 1 : 0);

  it('SIGTERM while the first batch is being read: its lines are processed and written, and counted', async () => {
    await writeFile(join(dir, 's.yaml'), stdinYaml);
    const out = join(dir, 'sig.jsonl');
    const cli = startCli(['run', 's.yaml', '--input', '-', '--output', out], { cwd: dir });
    await until(() => existsSync(`${out}.lock`), 'the output to be opened');
    cli.child.stdin.write(lines(5));
    await new Promise((r) => setTimeout(r, 300)); // let it read them (a batch of 1000 is not full)
    cli.child.kill('SIGTERM');
    const { code } = await cli.exited;
    expect(code).toBe(143);
    expect(cli.stderr()).toContain('s: interrupted by SIGTERM after line 5: 5 records in, 5 written');
    expect(await readFile(out, 'utf8')).toBe(lines(5));
  });

  it('lines trickling into standard input are written before the input ends (a batch waits at most about a second)', async () => {
    await writeFile(join(dir, 's.yaml'), stdinYaml);
    const out = join(dir, 'trickle.jsonl');
    const cli = startCli(['run', 's.yaml', '--input', '-', '--output', out, '--quiet'], { cwd: dir });
    cli.child.stdin.write(lines(2));
    await until(async () => (await outLines(out)) === 2, 'the first two lines to be written');
    cli.child.stdin.write('{"i":3}\n');
    await until(async () => (await outLines(out)) === 3, 'the third line to be written');
    cli.child.stdin.end();
    expect((await cli.exited).code).toBe(0);
    expect(await readFile(out, 'utf8')).toBe(lines(3));
  });
});

describe('review: write errors name the output', () => {
  it('--output /dev/full: exit 2, "cannot write output /dev/full: ENOSPC …"', async () => {
    const r = await run(['p.yaml', '--output', '/dev/full']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('p: failed: cannot write output /dev/full: ENOSPC: no space left on device, write\n');
  });
});
