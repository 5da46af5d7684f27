/**
 * `tributary run <pipeline.yaml>`: runs a pipeline on the file source, printing progress (on a
 * terminal) and a summary. A pipeline whose source is a stream (`kinesis`, `dynamodbStream`) runs
 * on a file given with `--input`; without one it is refused (exit 1) before anything is read. SIGINT/SIGTERM stop it after the batch in progress: the outputs are
 * closed (every line complete), the summary says "interrupted", and the exit status is 130/143.
 */
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { formatIssue, type Pipeline, type RunSummary, runPipeline } from '@tributary/core';
import { kindOf } from '@tributary/core/spi';
import { type Command, EXIT } from '../command.js';
import { OVERRIDE_OPTIONS, OVERRIDES_HELP } from '../overrides.js';
import { compiledPipeline } from '../pipeline.js';
import { STOP_SIGNALS, stopOnSignals, stoppable } from '../signals.js';

/**
 * Why `run` cannot read the source of `pipeline` (of `file`), located at `/source`: a stream
 * source is read by a runtime, not by `run` (unless `--input` put a file in its place).
 */
function streamSourceProblem(pipeline: Pipeline, file: string): string | undefined {
  const kind = kindOf(pipeline.spec.source);
  if (kind !== 'kinesis' && kind !== 'dynamodbStream') return undefined;
  const elsewhere =
    kind === 'kinesis'
      ? 'or run it on the stream with `tributary lambda-local`'
      : 'the stream itself is read by the deployed function';
  return formatIssue({
    file,
    ...(pipeline.locate?.('/source') ?? {}),
    path: '/source',
    message: `\`tributary run\` reads a file, not a ${kind} source: give \`--input <file>\` (JSON Lines) to run it on a file; ${elsewhere}`,
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

export const run: Command = {
  name: 'run',
  usage: `run <pipeline.yaml> [--input <file>] [--output <file>] [--dead-letter <file>]
                [--batch-size <n>] [--fail-on-dead-letter] [--quiet]`,
  summary: 'run a pipeline on the file source (or on --input instead of a stream source)',
  options: {
    ...OVERRIDE_OPTIONS,
    'fail-on-dead-letter': { type: 'boolean' },
    quiet: { type: 'boolean' },
  },
  optionsHelp: `${OVERRIDES_HELP}
  --fail-on-dead-letter exit with status 3 when any record was dead-lettered
  --quiet               no progress or summary`,
  async run(args, context) {
    const { values, positionals } = args;
    const { io } = context;
    const file = positionals[0];
    if (file === undefined || positionals.length > 1) return context.usageError('run needs exactly one pipeline file');
    const loaded = await compiledPipeline(file, args, context);
    if (typeof loaded === 'number') return loaded;
    const { pipeline, compiled } = loaded;
    const quiet = values.quiet === true;
    const notRunnable = streamSourceProblem(pipeline, file);
    if (notRunnable !== undefined) {
      await compiled.close().catch(() => {});
      io.err.write(`${notRunnable}\n`);
      return EXIT.invalid;
    }
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
        io.err.write(`${summaryLine(compiled.name, summary, sig === undefined ? undefined : { signal: sig, line })}\n`);
      if (sig !== undefined) return STOP_SIGNALS[sig];
      if (values['fail-on-dead-letter'] && summary.deadLettered > 0) return EXIT.deadLettered;
      return EXIT.ok;
    } catch (err) {
      if (tty) io.err.write('\n');
      io.err.write(`${compiled.name}: failed: ${context.errorText(err)}\n`);
      return EXIT.failed;
    } finally {
      input.end();
      stop.dispose();
    }
  },
};
