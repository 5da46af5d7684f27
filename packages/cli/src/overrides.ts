/**
 * The run overrides of the command line (`--input`, `--output`, `--dead-letter`, `--batch-size`):
 * the paths and batch size a run takes instead of the pipeline file's. `run` and `describe` take them.
 * `--input` on a pipeline whose source is a stream (`kinesis`, `dynamodbStream`) puts a file
 * source in its place, so the pipeline deployed on a stream runs unchanged on a file.
 */
import { isAbsolute, resolve } from 'node:path';
import { ConfigError, type Pipeline, type PipelineSpec, type SinkSpec } from '@tributary/core';
import { kindOf } from '@tributary/core/spi';
import type { CommandArgs, CommandOptions } from './command.js';
import { UsageError } from './errors.js';

export interface RunOverrides {
  /** Absolute path (or `-`) replacing the file source's path, or a stream source. */
  input?: string;
  /** Absolute path (or `-` for stdout) for the main output. */
  output?: string;
  /** Absolute path for dead letters. */
  deadLetter?: string;
  batchSize?: number;
}

function fileOrStdout(path: string): SinkSpec {
  return path === '-' ? { stdout: {} } : { file: { path } };
}

/** The pipeline with command-line overrides applied (the definition itself is not changed). */
export function withOverrides(pipeline: Pipeline, o: RunOverrides): Pipeline {
  const spec: PipelineSpec = structuredClone(pipeline.spec);
  const kind = kindOf(spec.source);
  if (kind !== 'file' && o.input !== undefined) {
    // A stream source: the file takes its place (the stream's batch settings are the mapping's).
    spec.source = { file: { path: o.input, ...(o.batchSize === undefined ? {} : { batchSize: o.batchSize }) } };
  } else if (kind !== 'file' && o.batchSize !== undefined) {
    throw new ConfigError(
      `--batch-size applies to a file source: the source is ${kind}; give --input <file> with it (the stream's batch size is the source's \`batchSize\`)`,
    );
  } else if (o.input !== undefined || o.batchSize !== undefined) {
    const file = (spec.source as { file: { path: string; batchSize?: number } }).file;
    if (o.input !== undefined) file.path = o.input;
    if (o.batchSize !== undefined) file.batchSize = o.batchSize;
  }
  if (o.output !== undefined) {
    const last = spec.steps[spec.steps.length - 1];
    const sink = fileOrStdout(o.output);
    if (last && kindOf(last) === 'sink')
      spec.steps[spec.steps.length - 1] = { ...(last.name ? { name: last.name } : {}), sink };
    else spec.steps.push({ sink });
  }
  if (o.deadLetter !== undefined) spec.deadLetter = fileOrStdout(o.deadLetter);
  return { ...pipeline, spec };
}

/** The flags of the overrides. */
export const OVERRIDE_OPTIONS = {
  input: { type: 'string' },
  output: { type: 'string' },
  'dead-letter': { type: 'string' },
  'batch-size': { type: 'string' },
} as const satisfies CommandOptions;

/** Their help, as `--help` prints it. */
export const OVERRIDES_HELP = `  --input <file>        read this JSON Lines file instead of the source's path, or instead of
                        the stream of a kinesis/dynamodbStream source (- = stdin)
  --output <file>       write the main output here (- = stdout): replaces the last step if it is
                        a sink, else adds one
  --dead-letter <file>  write dead letters here (JSON Lines) instead of the pipeline's deadLetter
  --batch-size <n>      records per batch (default: the source's, 1000)`;

/** The overrides a command line asks for; relative paths are of the working directory. */
export function overridesOf(values: CommandArgs['values']): RunOverrides {
  const batchSize = values['batch-size'] === undefined ? undefined : Number(values['batch-size']);
  if (batchSize !== undefined && (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000)) {
    throw new UsageError(`Expected \`--batch-size\` to be an integer from 1 to 100000, got ${values['batch-size']}`);
  }
  const cwdPath = (p: unknown) =>
    typeof p !== 'string' ? undefined : p === '-' || isAbsolute(p) ? p : resolve(process.cwd(), p);
  return {
    input: cwdPath(values.input),
    output: cwdPath(values.output),
    deadLetter: cwdPath(values['dead-letter']),
    batchSize,
  };
}
