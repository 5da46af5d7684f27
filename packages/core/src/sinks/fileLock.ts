/**
 * An exclusive lock on an output file, so that two runs never write one file at once (their
 * lines would interleave, and one run's output would replace the other's). The lock is a file
 * `<output>.lock`, created with O_EXCL, holding the owner's pid and host name; it is removed at
 * close. A lock left by a process that has died (same host, pid gone) is taken over.
 */
import { randomBytes } from 'node:crypto';
import { fstatSync } from 'node:fs';
import { link, lstat, mkdir, open, readFile, readlink, realpath, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { OutputError } from '../errors.js';

/** Lock files this process holds (a second sink of this process on the same file is refused too). */
const held = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Whether the lock text names a process on this host that no longer runs. */
function isStale(text: string, lockPath: string): boolean {
  const [pidText, host] = text.split('\n');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false; // being written, or not ours: leave it
  if (host !== undefined && host !== '' && host !== hostname()) return false;
  if (pid === process.pid) return !held.has(lockPath); // left by a sink of this process never closed
  return !isAlive(pid);
}

/** An owner's description for messages. */
function ownerOf(text: string): string {
  const [pid, host] = text.split('\n');
  return `pid ${pid || '?'}${host ? ` on ${host}` : ''}`;
}

/**
 * Creates the directories of `dir` that are missing, one level at a time. (Node's recursive
 * mkdir loops for ever where a directory cannot be created but its parent exists, e.g. in /proc.)
 */
export async function makeDirectory(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      if (!(await stat(d)).isDirectory()) throw new OutputError(`${d} is not a directory`);
      break;
    } catch (err) {
      if (err instanceof OutputError) throw err;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(d) === d) {
        throw new OutputError(`cannot use directory ${d}: ${(err as Error).message}`, { cause: err });
      }
      missing.push(d);
    }
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    const d = missing[i] as string;
    try {
      await mkdir(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new OutputError(`cannot create directory ${d}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** Takes the lock of output file `path`; throws an {@link OutputError} if another run holds it. */
export async function lockOutput(path: string): Promise<() => Promise<void>> {
  const lockPath = `${path}.lock`;
  const mine = `${process.pid}\n${hostname()}\n`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(lockPath, 'wx');
      try {
        await fh.writeFile(mine);
      } finally {
        await fh.close();
      }
      held.add(lockPath);
      return async () => {
        held.delete(lockPath);
        try {
          if ((await readFile(lockPath, 'utf8')) === mine) await unlink(lockPath);
        } catch {
          // gone already
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new OutputError(`cannot lock output ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
    let text: string;
    try {
      text = await readFile(lockPath, 'utf8');
    } catch (err) {
      // Removed meanwhile: try again (a few times: a dangling symbolic link stays "removed").
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 3) continue;
      throw new OutputError(
        `cannot lock output ${path}: lock file ${lockPath} ${await lockProblem(lockPath, err)}; remove it if no run is writing the output`,
        { cause: err },
      );
    }
    if (attempt >= 3 || !isStale(text, lockPath)) {
      throw new OutputError(
        `output ${path} is in use by another run (${ownerOf(text)}; lock file ${lockPath}). Wait for it to end, or remove the lock file if no run is writing the output`,
      );
    }
    await takeOver(lockPath, text);
  }
}

/** Why an existing lock file cannot be read, in words. */
async function lockProblem(lockPath: string, err: unknown): Promise<string> {
  const code = (err as NodeJS.ErrnoException).code;
  try {
    const st = await lstat(lockPath);
    if (st.isDirectory()) return 'is a directory';
    if (st.isSymbolicLink()) {
      const target = await readlink(lockPath).catch(() => '?');
      return code === 'ENOENT'
        ? `is a symbolic link to ${target}, which does not exist`
        : `is a symbolic link to ${target}, which cannot be read (${code ?? (err as Error).message})`;
    }
    if (!st.isFile()) return 'is not a regular file';
  } catch {
    // gone meanwhile: report the read error
  }
  return code === 'EACCES' || code === 'EPERM'
    ? `cannot be read (permission denied)`
    : `cannot be read (${(err as Error).message})`;
}

/** Where a file is: its real path (of its directory when it does not exist yet) and, if it exists, its device and inode. */
interface FileIdentity {
  real: string;
  /** A regular file, or none yet (a device, a pipe or a terminal may well be written twice). */
  regular: boolean;
  dev?: number;
  ino?: number;
}

async function identify(path: string): Promise<FileIdentity> {
  try {
    const st = await stat(path);
    return { real: await realpath(path), dev: st.dev, ino: st.ino, regular: st.isFile() };
  } catch {
    // Not there yet (or a dangling link: writing it creates the link's target).
    let p = path;
    try {
      if ((await lstat(p)).isSymbolicLink()) p = resolve(dirname(p), await readlink(p));
    } catch {
      // not a link
    }
    const dir = await realpath(dirname(p)).catch(() => resolve(dirname(p)));
    return { real: join(dir, basename(p)), regular: true };
  }
}

function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  if (!a.regular || !b.regular) return false;
  if (a.dev !== undefined && a.dev === b.dev && a.ino === b.ino) return true;
  return a.real === b.real;
}

/**
 * Refuses, before any output is opened (opening one replaces its content), outputs that are the
 * run's input or each other: compared by real path (symbolic links) and by device and inode
 * (hard links). `input` is the file source's path (`-`: standard input, checked when it is a file).
 */
export async function checkOutputs(input: string | undefined, outputs: readonly string[]): Promise<void> {
  const ids = await Promise.all(outputs.map(identify));
  let inputId: FileIdentity | undefined;
  if (input === '-') {
    try {
      const st = fstatSync(0);
      if (st.isFile()) inputId = { real: '\0stdin', dev: st.dev, ino: st.ino, regular: true };
    } catch {
      // no standard input
    }
  } else if (input !== undefined) inputId = await identify(input);
  for (let i = 0; i < outputs.length; i++) {
    const out = outputs[i] as string;
    const id = ids[i] as FileIdentity;
    if (inputId && sameFile(id, inputId)) {
      const how = input === '-' ? 'standard input is that file' : out === input ? input : `${input}, the same file`;
      throw new OutputError(
        `output ${out} is the run's input (${how}): writing it would replace the records being read. Write to another file`,
      );
    }
    for (let j = 0; j < i; j++) {
      if (!sameFile(id, ids[j] as FileIdentity)) continue;
      const other = outputs[j] as string;
      throw new OutputError(
        other === out
          ? `output ${out} is given twice: each output must be a file of its own`
          : `output ${out} is given twice (as ${other} and ${out}, the same file): each output must be a file of its own`,
      );
    }
  }
}

/**
 * Moves a stale lock aside (rename is atomic: of two runs taking it over, one moves it). If what
 * was moved is not the stale lock (another run took it over first), it is put back.
 */
async function takeOver(lockPath: string, staleText: string): Promise<void> {
  const aside = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    await rename(lockPath, aside);
  } catch {
    return; // gone already
  }
  try {
    if ((await readFile(aside, 'utf8')) !== staleText) await link(aside, lockPath).catch(() => {});
  } finally {
    await unlink(aside).catch(() => {});
  }
}
