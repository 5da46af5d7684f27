/**
 * Issue 12, rows "two runs writing the same output file at once" and "`--output /proc/nope/x.jsonl`
 * hangs": a file output is locked while it is open (`<file>.lock`, created with O_EXCL, holding the
 * pid), a second writer is refused with a clear error, a lock whose process is gone is taken over;
 * a directory that cannot be created is an error at once, not a hang.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, FileSink, runPipeline } from '@tributary/core';
import { envelope } from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';
import { fileCopyPipeline } from './helpers.js';

const rec = (n: number) => envelope({ partitionKey: 'k', sequenceNumber: String(n), arrivalTime: 0 }, 's', { n }, 0);

/** The pid of a process that has ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('hostile input: file outputs', () => {
  it('a second sink on an open output is refused with a clear error; the first writes on; after close the file is free', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-lock-'));
    const path = join(dir, 'out.jsonl');
    const first = new FileSink(path);
    await first.open();
    expect(await readFile(`${path}.lock`, 'utf8')).toBe(`${process.pid}\n${hostname()}\n`);
    const second = new FileSink(path, { append: true });
    await expect(second.open()).rejects.toThrow(
      `output ${path} is in use by another run (pid ${process.pid} on ${hostname()}; lock file ${path}.lock)`,
    );
    await expect(second.write([rec(9)])).rejects.toThrow(/is in use by another run/);
    await second.close();
    await first.write([rec(1), rec(2)]);
    await first.close();
    expect(existsSync(`${path}.lock`)).toBe(false);
    expect(await readFile(path, 'utf8')).toBe('{"n":1}\n{"n":2}\n');
    const third = new FileSink(path, { append: true });
    await third.write([rec(3)]);
    await third.close();
    expect(await readFile(path, 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
  });

  it('takes over a lock left by a process that has died, and keeps one held by a live process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-stale-'));
    const path = join(dir, 'out.jsonl');
    await writeFile(`${path}.lock`, `${deadPid()}\n${hostname()}\n`);
    const sink = new FileSink(path);
    await sink.write([rec(1)]);
    expect(await readFile(`${path}.lock`, 'utf8')).toBe(`${process.pid}\n${hostname()}\n`);
    await sink.close();
    expect(existsSync(`${path}.lock`)).toBe(false);

    // A live process (the parent of this test process), or one on another host: refused.
    for (const owner of [`${process.ppid}\n${hostname()}\n`, `${deadPid()}\nsome-other-host\n`]) {
      await writeFile(`${path}.lock`, owner);
      await expect(new FileSink(path).open()).rejects.toThrow(/is in use by another run/);
      expect(await readFile(`${path}.lock`, 'utf8')).toBe(owner);
    }
  });

  it('a run whose output is locked fails before reading a record, and releases the outputs it did open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-run-'));
    await writeFile(join(dir, 'in.jsonl'), '{"n":1}\n');
    await writeFile(join(dir, 'out.jsonl.lock'), `${process.ppid}\n${hostname()}\n`);
    const p = fileCopyPipeline('locked', dir);
    await expect(runPipeline(compile(p))).rejects.toThrow(/out\.jsonl is in use by another run/);
    expect(existsSync(join(dir, 'dead.jsonl.lock'))).toBe(false);
    expect(existsSync(join(dir, 'out.jsonl'))).toBe(false);
  });

  it('an output whose directory cannot be created is an error at once (Node recursive mkdir loops in /proc)', async () => {
    const sink = new FileSink('/proc/nope/x.jsonl');
    await expect(sink.open()).rejects.toThrow(/cannot create directory \/proc\/nope/);
    const dir = await mkdtemp(join(tmpdir(), 'trib-notdir-'));
    await writeFile(join(dir, 'file'), '');
    await expect(new FileSink(join(dir, 'file', 'sub', 'x.jsonl')).open()).rejects.toThrow(
      /cannot use directory .*not a directory/,
    );
    const nested = new FileSink(join(dir, 'a', 'b', 'c', 'x.jsonl'));
    await nested.write([rec(1)]);
    await nested.close();
    expect(await readFile(join(dir, 'a', 'b', 'c', 'x.jsonl'), 'utf8')).toBe('{"n":1}\n');
  }, 10_000);
});
