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
 *   tributary synth <pipeline.yaml> --runtime lambda [--out <dir>] [--bundle-sdk]
  tributary lambda-local <pipeline.yaml> --stream <name> [--endpoint <url>]
 *                                               run the Lambda handler on a Kinesis stream locally
 */
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  checkPipelineFile,
  compile,
  describeError,
  formatIssue,
  type Pipeline,
  PipelineValidationError,
  pipelineSchema,
  type RunSummary,
  runPipeline,
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
  --quiet               no progress or summary`;

/** Exit statuses. */
export const EXIT = { ok: 0, invalid: 1, failed: 2, deadLettered: 3, usage: 64 } as const;

interface Io {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

async function load(file: string, io: Io): Promise<Pipeline | undefined> {
  const { pipeline, issues } = await checkPipelineFile(file);
  for (const issue of issues) io.err.write(`${formatIssue(issue)}\n`);
  return pipeline;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function summaryLine(name: string, s: RunSummary): string {
  const rate = s.durationMs > 0 ? (s.recordsIn / s.durationMs) * 1000 : 0;
  return `${name}: ${fmt(s.recordsIn)} records in, ${fmt(s.recordsOut)} written, ${fmt(s.deadLettered)} dead-lettered, ${fmt(s.filtered)} filtered in ${(s.durationMs / 1000).toFixed(2)} s (${fmt(rate)} records/s)`;
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
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    io.err.write(`${describeError(err)}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
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
      const loaded = await load(file, io);
      if (!loaded) return EXIT.invalid;
      try {
        for (const line of await initState(loaded.spec)) io.out.write(`${line}\n`);
        return EXIT.ok;
      } catch (err) {
        io.err.write(`${file}: state init failed: ${describeError(err)}\n`);
        return EXIT.failed;
      }
    }
    case 'synth': {
      const file = positionals[0];
      if (file === undefined || positionals.length > 1 || values.runtime !== 'lambda') {
        io.err.write(`synth needs a pipeline file and --runtime lambda\n\n${USAGE}\n`);
        return EXIT.usage;
      }
      const loaded = await load(file, io);
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
        io.err.write(`${file}: synth failed: ${describeError(err)}\n`);
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
      const loaded = await load(file, io);
      if (!loaded) return EXIT.invalid;
      try {
        const { summary, failed } = await lambdaLocal(loaded, {
          stream,
          endpoint: values.endpoint as string | undefined,
          batchSize: values['batch-size'] === undefined ? undefined : Number(values['batch-size']),
          bisect: values.bisect === true,
          maxRetries: values['max-retries'] === undefined ? undefined : Number(values['max-retries']),
          parallelization: values.parallelization === undefined ? undefined : Number(values.parallelization),
          log: (line) => io.err.write(`${line}\n`),
        });
        io.err.write(`${summary}\n`);
        return failed > 0 ? EXIT.failed : EXIT.ok;
      } catch (err) {
        io.err.write(`${file}: lambda-local failed: ${describeError(err)}\n`);
        return EXIT.failed;
      }
    }
    case 'validate': {
      if (positionals.length === 0) {
        io.err.write(`validate needs at least one pipeline file\n\n${USAGE}\n`);
        return EXIT.usage;
      }
      let ok = true;
      for (const file of positionals) {
        const pipeline = await load(file, io);
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
      const loaded = await load(file, io);
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
        io.err.write(`${describeError(err)}\n`);
        return EXIT.usage;
      }
      let compiled: ReturnType<typeof compile>;
      try {
        compiled = compile(pipeline);
      } catch (err) {
        if (err instanceof PipelineValidationError) for (const i of err.issues) io.err.write(`${formatIssue(i)}\n`);
        else io.err.write(`${file}: ${describeError(err)}\n`);
        return EXIT.invalid;
      }
      if (command === 'describe') {
        io.out.write(`${compiled.describe()}\n`);
        await compiled.close();
        return EXIT.ok;
      }
      const quiet = values.quiet === true;
      const tty = io.err.isTTY === true && !quiet;
      let lastPaint = 0;
      try {
        const summary = await runPipeline(compiled, {
          onBatch: (_r, total) => {
            if (!tty) return;
            const now = performance.now();
            if (now - lastPaint < 200) return;
            lastPaint = now;
            io.err.write(`\r\x1b[K${summaryLine(compiled.name, total)}`);
          },
        });
        if (tty) io.err.write('\r\x1b[K');
        if (!quiet) io.err.write(`${summaryLine(compiled.name, summary)}\n`);
        if (values['fail-on-dead-letter'] && summary.deadLettered > 0) return EXIT.deadLettered;
        return EXIT.ok;
      } catch (err) {
        if (tty) io.err.write('\n');
        io.err.write(`${compiled.name}: failed: ${describeError(err)}\n`);
        return EXIT.failed;
      }
    }
    default:
      io.err.write(`unknown command \`${command}\`\n\n${USAGE}\n`);
      return EXIT.usage;
  }
}
