/**
 * An exclusive lock on an output file, so that two runs never write one file at once (their
 * lines would interleave, and one run's output would replace the other's). The lock is a file
 * `<output>.lock`, created with O_EXCL, holding the owner's pid and host name; it is removed at
 * close. A lock left by a process that has died (same host, pid gone) is taken over.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { TributaryError } from '../errors.js';

/** An output that cannot be opened: in use by another run, or its directory cannot be made. */
export class OutputError extends TributaryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OutputError';
  }
}

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
    } catch {
      continue; // removed meanwhile: try again
    }
    if (attempt >= 3 || !isStale(text, lockPath)) {
      throw new OutputError(
        `output ${path} is in use by another run (${ownerOf(text)}; lock file ${lockPath}). Wait for it to end, or remove the lock file if no run is writing the output`,
      );
    }
    await takeOver(lockPath, text);
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
