/**
 * The `tributary` command line.
 *
 *   tributary validate <pipeline.yaml>...       every problem, as file:line:column: message
 *   tributary run <pipeline.yaml> [options]     run on the file source
 *   tributary describe <pipeline.yaml>          print the compiled graph
 *   tributary schema                            print the pipeline JSON Schema
 *   tributary docs                              print the step/source/sink reference (Markdown)
 *   tributary state init <pipeline.yaml>        create the tables the window state needs
 *   tributary synth <pipeline.yaml> --runtime lambda [--out <dir>]
 *                                               bundle and CloudFormation template for Lambda
 *   tributary lambda-local <pipeline.yaml> --stream <name> [--endpoint <url>]
 *                                               run the Lambda handler on a Kinesis stream locally
 *
 * Errors are one line each, naming the file; `--verbose` (or `TRIBUTARY_DEBUG=1`) adds stacks.
 * SIGINT/SIGTERM during `run` or `lambda-local` stop after the batch in progress: the outputs are
 * closed (every line complete), the summary says "interrupted", and the exit status is 130/143.
 */
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  checkPipelineFile,
  compile,
  describeError,
  formatIssue,
  type Pipeline,
  type PipelineFileOptions,
  PipelineValidationError,
  pipelineSchema,
  type RunSummary,
  runPipeline,
  type Source,
} from '@tributary/core';
// Registers the state stores (dynamodb, redis) and the sinks (dynamodb, kinesis, redis, s3, sqs, http) for YAML pipelines.
import '@tributary/sinks';
import '@tributary/state';
import { lambdaLocal } from './lambdaLocal.js';
import { withOverrides } from './overrides.js';
import { referenceMarkdown } from './reference.js';
import { initState } from './stateInit.js';

const USAGE = `Usage:
  tributary validate <pipeline.yaml>...
  tributary run <pipeline.yaml> [--input <file>] [--output <file>] [--dead-letter <file>]
                [--batch-size <n>] [--fail-on-dead-letter] [--quiet]
  tributary describe <pipeline.yaml>
  tributary schema
  tributary docs
  tributary state init <pipeline.yaml>
  tributary synth <pipeline.yaml> --runtime lambda [--out <dir>] [--bundle-sdk]
  tributary lambda-local <pipeline.yaml> --stream <name> [--endpoint <url>] [--batch-size <n>]
                [--bisect] [--max-retries <n>] [--parallelization <n>]

run options:
  --input <file>        read this JSON Lines file instead of the source's path (- = stdin)
  --output <file>       write the main output here (- = stdout): replaces the last step if it is
                        a sink, else adds one
  --dead-letter <file>  write dead letters here (JSON Lines) instead of the pipeline's deadLetter
  --batch-size <n>      records per batch (default: the source's, 1000)
  --fail-on-dead-letter exit with status 3 when any record was dead-lettered
  --quiet               no progress or summary

every command:
  --verbose             print the stack of an error (also: TRIBUTARY_DEBUG=1)
  --allow-outside-project
                        accept fn: modules outside the pipeline's project folder (the nearest
                        folder with a package.json at or above the pipeline file)

Exit status: 0 ok, 1 invalid pipeline, 2 the run failed, 3 dead letters with --fail-on-dead-letter,
64 usage, 70 internal error (a bug), 130/143 interrupted by SIGINT/SIGTERM.`;

/**
 * Exit statuses. `internal` (EX_SOFTWARE) is an error Tributary did not expect (a bug); a run
 * stopped by a signal exits 128 + the signal's number, as a shell reports a process it killed.
 */
export const EXIT = {
  ok: 0,
  invalid: 1,
  failed: 2,
  deadLettered: 3,
  usage: 64,
  internal: 70,
  sigint: 130,
  sigterm: 143,
} as const;

/** The signals that stop a run gracefully, and the exit status after each. */
const STOP_SIGNALS = { SIGINT: EXIT.sigint, SIGTERM: EXIT.sigterm } as const;
type StopSignal = keyof typeof STOP_SIGNALS;

/** Whether stacks are printed: `--verbose` or `TRIBUTARY_DEBUG=1`. */
export function debugWanted(argv: readonly string[] = []): boolean {
  const env = process.env.TRIBUTARY_DEBUG;
  return argv.includes('--verbose') || (env !== undefined && env !== '' && env !== '0' && env !== 'false');
}

/**
 * One line for an error, naming the file when the error knows it and its message does not (Node's
 * `EISDIR: illegal operation on a directory, read`). With `verbose`, the stacks follow (causes too).
 */
export function errorText(err: unknown, verbose = false): string {
  let line: string;
  try {
    line = describeError(err);
    const path = (err as { path?: unknown } | null)?.path;
    if (typeof path === 'string' && !line.includes(path)) line += ` (${path})`;
  } catch {
    line = Object.prototype.toString.call(err);
  }
  if (!verbose) return line;
  const stacks: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    stacks.push(`${depth === 0 ? '' : 'caused by: '}${e.stack ?? `${e.name}: ${e.message}`}`);
  }
  return stacks.length > 0 ? `${line}\n${stacks.join('\n')}` : line;
}

/**
 * SIGINT/SIGTERM while a run is going: the first stops it after the batch in progress (the signal
 * aborts `signal`); a second, while it shuts down, exits at once.
 */
function stopOnSignals(io: Io, quiet: boolean) {
  const controller = new AbortController();
  let received: StopSignal | undefined;
  // On a terminal, leave the progress line first.
  const nl = io.err.isTTY === true ? '\n' : '';
  const listeners = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((sig) => {
    const listener = () => {
      if (received !== undefined) {
        io.err.write(`${nl}tributary: ${sig} again: exiting now (outputs may end in a partial line)\n`);
        process.exit(STOP_SIGNALS[sig]);
      }
      received = sig;
      if (!quiet)
        io.err.write(
          `${nl}tributary: ${sig}: finishing the batch in progress and closing the outputs (again to exit now)\n`,
        );
      controller.abort(sig);
    };
    process.on(sig, listener);
    return [sig, listener] as const;
  });
  return {
    signal: controller.signal,
    received: () => received,
    dispose: () => {
      for (const [sig, listener] of listeners) process.off(sig, listener);
    },
  };
}

/**
 * The source of a run, read at most one batch ahead of the batch in progress, which ends when
 * `signal` aborts: batches already handed on finish. A source that can stop (the file source's
 * `stop()`) hands over the complete lines it has read as a last batch; of another, a batch being
 * read is abandoned (so the outputs hold whole batches, and the run ends as if its input ended there).
 */
function stoppable(source: Source, signal: AbortSignal) {
  let inFlight = 0;
  let ended = false;
  let wake: (() => void) | undefined;
  const nudge = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const STOP = Symbol('stop');
  const stopSource = (source as { stop?: unknown }).stop;
  const drains = typeof stopSource === 'function';
  signal.addEventListener(
    'abort',
    () => {
      if (drains) (stopSource as () => void).call(source);
      nudge();
    },
    { once: true },
  );
  return {
    source: {
      async *batches() {
        const it = source.batches()[Symbol.asyncIterator]();
        let reading = false;
        try {
          for (;;) {
            while (inFlight >= 2 && !signal.aborted && !ended) await new Promise<void>((r) => (wake = r));
            if (ended || (signal.aborted && !drains)) return;
            reading = true;
            // A source that drains ends its read itself when stopped; another's read is abandoned.
            const next = drains ? await it.next() : await readOrStop(it, signal, STOP);
            if (next === STOP) return;
            reading = false;
            if (next.done || (signal.aborted && !drains)) return;
            inFlight++;
            yield next.value;
          }
        } finally {
          // A read in progress (standard input waiting for a line) is left behind, not awaited.
          if (reading) it.return?.().catch(() => {});
          else await it.return?.();
        }
      },
      close: async () => source.close?.(),
    } satisfies Source,
    /** A batch handed on has been processed. */
    batchDone: () => {
      inFlight--;
      nudge();
    },
    /** The run is over (done or failed): stop waiting. */
    end: () => {
      ended = true;
      nudge();
    },
  };
}

/** The next batch, or `stop` if `signal` aborts first (the read is then abandoned, its outcome ignored). */
function readOrStop<T, S>(it: AsyncIterator<T>, signal: AbortSignal, stop: S): Promise<IteratorResult<T> | S> {
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(stop);
    signal.addEventListener('abort', onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** A problem with the file source's input that Node would report without the path (a directory). */
async function inputProblem(pipeline: Pipeline): Promise<string | undefined> {
  const source = pipeline.spec.source as { file?: { path?: unknown } };
  const path = source.file?.path;
  if (typeof path !== 'string' || path === '-') return undefined;
  const full = isAbsolute(path) ? path : resolve(pipeline.baseDir, path);
  try {
    if ((await stat(full)).isDirectory()) return `input ${full} is a directory, not a JSON Lines file`;
  } catch {
    // Missing or unreadable: the source says so, with the path, when it opens the file.
  }
  return undefined;
}

interface Io {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

async function load(
  file: string,
  io: Io,
  verbose: boolean,
  modules: PipelineFileOptions,
): Promise<Pipeline | undefined> {
  try {
    const { pipeline, issues } = await checkPipelineFile(file, modules);
    for (const issue of issues) io.err.write(`${formatIssue(issue)}\n`);
    return pipeline;
  } catch (err) {
    io.err.write(`${file}: cannot load the pipeline: ${errorText(err, verbose)}\n`);
    return undefined;
  }
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** The run's summary; `interrupted`: by which signal, and the last input line of the batches that finished. */
function summaryLine(name: string, s: RunSummary, interrupted?: { signal: string; line: string | undefined }): string {
  const rate = s.durationMs > 0 ? (s.recordsIn / s.durationMs) * 1000 : 0;
  const stop = interrupted
    ? `interrupted by ${interrupted.signal} ${interrupted.line === undefined ? 'before the first batch' : `after line ${interrupted.line}`}: `
    : '';
  return `${name}: ${stop}${fmt(s.recordsIn)} records in, ${fmt(s.recordsOut)} written, ${fmt(s.deadLettered)} dead-lettered, ${fmt(s.filtered)} filtered in ${(s.durationMs / 1000).toFixed(2)} s (${fmt(rate)} records/s)`;
}

export async function main(argv: string[], io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  const [command, ...rest] = argv;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        input: { type: 'string' },
        output: { type: 'string' },
        'dead-letter': { type: 'string' },
        'batch-size': { type: 'string' },
        'fail-on-dead-letter': { type: 'boolean' },
        quiet: { type: 'boolean' },
        stream: { type: 'string' },
        endpoint: { type: 'string' },
        bisect: { type: 'boolean' },
        'max-retries': { type: 'string' },
        parallelization: { type: 'string' },
        runtime: { type: 'string' },
        out: { type: 'string' },
        'bundle-sdk': { type: 'boolean' },
        verbose: { type: 'boolean' },
        'allow-outside-project': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    io.err.write(`${describeError(err)}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  const verbose = values.verbose === true || debugWanted();
  const modules: PipelineFileOptions = { allowOutsideProject: values['allow-outside-project'] === true };
  if (values.help || command === undefined || command === 'help' || command === '--help' || command === '-h') {
    (command === undefined ? io.err : io.out).write(`${USAGE}\n`);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  switch (command) {
    case 'schema':
      io.out.write(`${JSON.stringify(pipelineSchema(), null, 2)}\n`);
      return EXIT.ok;
    case 'docs':
      io.out.write(referenceMarkdown());
      return EXIT.ok;
    case 'state': {
      const [sub, file, ...more] = positionals;
      if (sub !== 'init' || file === undefined || more.length > 0) {
        io.err.write(`state needs: state init <pipeline.yaml>\n\n${USAGE}\n`);
        return EXIT.usage;
      }
      const loaded = await load(file, io, verbose, modules);
      if (!loaded) return EXIT.invalid;
      try {
        for (const line of await initState(loaded.spec)) io.out.write(`${line}\n`);
        return EXIT.ok;
      } catch (err) {
        io.err.write(`${file}: state init failed: ${errorText(err, verbose)}\n`);
        return EXIT.failed;
      }
    }
    case 'synth': {
      const file = positionals[0];
      if (file === undefined || positionals.length > 1 || values.runtime !== 'lambda') {
        io.err.write(`synth needs a pipeline file and --runtime lambda\n\n${USAGE}\n`);
        return EXIT.usage;
      }
      const loaded = await load(file, io, verbose, modules);
      if (!loaded) return EXIT.invalid;
      try {
        const { synth } = await import('@tributary/runtime-lambda/synth');
        const r = await synth(loaded, {
          outDir: resolve(process.cwd(), (values.out as string | undefined) ?? 'dist-lambda'),
          bundleSdk: values['bundle-sdk'] === true,
        });
        io.out.write(
          `${r.bundle} (${r.bundleBytes} bytes, ${r.bundleGzipBytes} gzipped)\n${r.files.map((f) => `${f}\n`).join('')}${r.template}\n`,
        );
        return EXIT.ok;
      } catch (err) {
        io.err.write(`${file}: synth failed: ${errorText(err, verbose)}\n`);
        return EXIT.failed;
      }
    }
    case 'lambda-local': {
      const file = positionals[0];
      const stream = values.stream as string | undefined;
      if (file === undefined || positionals.length > 1 || stream === undefined) {
        io.err.write(`lambda-local needs a pipeline file and --stream <name>\n\n${USAGE}\n`);
        return EXIT.usage;
      }
      const loaded = await load(file, io, verbose, modules);
      if (!loaded) return EXIT.invalid;
      const stop = stopOnSignals(io, false);
      try {
        const { summary, failed } = await lambdaLocal(loaded, {
          signal: stop.signal,
          stream,
          endpoint: values.endpoint as string | undefined,
          batchSize: values['batch-size'] === undefined ? undefined : Number(values['batch-size']),
          bisect: values.bisect === true,
          maxRetries: values['max-retries'] === undefined ? undefined : Number(values['max-retries']),
          parallelization: values.parallelization === undefined ? undefined : Number(values.parallelization),
          log: (line) => io.err.write(`${line}\n`),
        });
        io.err.write(`${summary}\n`);
        if (failed > 0) return EXIT.failed;
        const sig = stop.received();
        return sig === undefined ? EXIT.ok : STOP_SIGNALS[sig];
      } catch (err) {
        io.err.write(`${file}: lambda-local failed: ${errorText(err, verbose)}\n`);
        return EXIT.failed;
      } finally {
        stop.dispose();
      }
    }
    case 'validate': {
      if (positionals.length === 0) {
        io.err.write(`validate needs at least one pipeline file\n\n${USAGE}\n`);
        return EXIT.usage;
      }
      let ok = true;
      for (const file of positionals) {
        // Validation never runs user code: `fn:` modules are lexed for their exports, not imported.
        const pipeline = await load(file, io, verbose, { ...modules, importModules: false });
        if (pipeline) io.err.write(`${file}: ok\n`);
        else ok = false;
      }
      return ok ? EXIT.ok : EXIT.invalid;
    }
    case 'describe':
    case 'run': {
      const file = positionals[0];
      if (file === undefined || positionals.length > 1) {
        io.err.write(`${command} needs exactly one pipeline file\n\n${USAGE}\n`);
        return EXIT.usage;
      }
      const loaded = await load(file, io, verbose, modules);
      if (!loaded) return EXIT.invalid;
      let pipeline: Pipeline;
      try {
        const batchSize = values['batch-size'] === undefined ? undefined : Number(values['batch-size']);
        if (batchSize !== undefined && (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000)) {
          throw new RangeError(
            `Expected \`--batch-size\` to be an integer from 1 to 100000, got ${values['batch-size']}`,
          );
        }
        const cwdPath = (p: unknown) =>
          typeof p !== 'string' ? undefined : p === '-' || isAbsolute(p) ? p : resolve(process.cwd(), p);
        pipeline = withOverrides(loaded, {
          input: cwdPath(values.input),
          output: cwdPath(values.output),
          deadLetter: cwdPath(values['dead-letter']),
          batchSize,
        });
      } catch (err) {
        io.err.write(`${errorText(err, verbose)}\n`);
        return EXIT.usage;
      }
      let compiled: ReturnType<typeof compile>;
      try {
        compiled = compile(pipeline);
      } catch (err) {
        if (err instanceof PipelineValidationError) for (const i of err.issues) io.err.write(`${formatIssue(i)}\n`);
        else io.err.write(`${file}: ${errorText(err, verbose)}\n`);
        return EXIT.invalid;
      }
      if (command === 'describe') {
        io.out.write(`${compiled.describe()}\n`);
        await compiled.close();
        return EXIT.ok;
      }
      const quiet = values.quiet === true;
      const problem = await inputProblem(pipeline);
      if (problem !== undefined) {
        await compiled.close().catch(() => {});
        io.err.write(`${compiled.name}: failed: ${problem}\n`);
        return EXIT.failed;
      }
      const tty = io.err.isTTY === true && !quiet;
      let lastPaint = 0;
      const stop = stopOnSignals(io, quiet);
      const input = stoppable(compiled.createSource(), stop.signal);
      let line: string | undefined;
      try {
        const summary = await runPipeline(compiled, {
          source: input.source,
          onBatch: (r, total) => {
            if (r.phase === 'batch') {
              input.batchDone();
              line = r.checkpoint ?? line;
            }
            if (!tty) return;
            const now = performance.now();
            if (now - lastPaint < 200) return;
            lastPaint = now;
            io.err.write(`\r\x1b[K${summaryLine(compiled.name, total)}`);
          },
        });
        const sig = stop.received();
        if (tty) io.err.write('\r\x1b[K');
        if (!quiet)
          io.err.write(
            `${summaryLine(compiled.name, summary, sig === undefined ? undefined : { signal: sig, line })}\n`,
          );
        if (sig !== undefined) return STOP_SIGNALS[sig];
        if (values['fail-on-dead-letter'] && summary.deadLettered > 0) return EXIT.deadLettered;
        return EXIT.ok;
      } catch (err) {
        if (tty) io.err.write('\n');
        io.err.write(`${compiled.name}: failed: ${errorText(err, verbose)}\n`);
        return EXIT.failed;
      } finally {
        input.end();
        stop.dispose();
      }
    }
    default:
      io.err.write(`unknown command \`${command}\`\n\n${USAGE}\n`);
      return EXIT.usage;
  }
}
