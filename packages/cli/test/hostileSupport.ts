// The built CLI in a child process, for the hostile-input tests: its output as it comes, signals,
// and its end. Asynchronous, so emulators in this process keep answering while it runs.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');

export interface Cli {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit status (or the signal that killed it). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; shell?: string } = {}): Cli {
  // `shell`: run that program with `args` instead of the CLI (a pipeline of commands).
  const child = spawn(options.shell ?? process.execPath, options.shell ? args : [bin, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: 'pipe',
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  child.stdin.on('error', () => {}); // the CLI may exit before it has read everything
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => withoutSdkNotice(err), exited };
}

/** Runs the CLI to its end (killed after `timeout` ms: a hang shows as `signal: 'SIGKILL'`). */
export async function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeout?: number; shell?: string } = {},
) {
  const cli = startCli(args, options);
  cli.child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), options.timeout ?? 30_000);
  const { code, signal } = await cli.exited;
  clearTimeout(timer);
  return { code, signal, stdout: cli.stdout(), stderr: cli.stderr() };
}

/** Polls until `check` holds (bounded by `tries` × 25 ms). */
export async function until(check: () => boolean | Promise<boolean>, what: string, tries = 2400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/** Every line of a JSON Lines file, parsed (a partial last line fails `JSON.parse`, or has no newline). */
export async function jsonLines(file: string): Promise<unknown[]> {
  const text = await readFile(file, 'utf8');
  if (text === '') return [];
  if (!text.endsWith('\n')) throw new Error(`${file} ends in a partial line: ${JSON.stringify(text.slice(-80))}`);
  return text
    .slice(0, -1)
    .split('\n')
    .map((l, i) => {
      try {
        return JSON.parse(l);
      } catch {
        throw new Error(`${file}:${i + 1} is not JSON: ${JSON.stringify(l.slice(0, 80))}`);
      }
    });
}

/** The AWS SDK's notice that its releases after January 2027 need Node 22 (printed on Node 20). */
export function withoutSdkNotice(stderr: string): string {
  const start = stderr.indexOf('Warning: NodeVersionSupportWarning');
  if (start < 0) return stderr;
  const lineStart = stderr.lastIndexOf('\n', start) + 1;
  const end = stderr.indexOf('(Use `node --trace-warnings', start);
  const lineEnd = end < 0 ? stderr.length : stderr.indexOf('\n', end) + 1;
  return stderr.slice(0, lineStart) + stderr.slice(lineEnd);
}
