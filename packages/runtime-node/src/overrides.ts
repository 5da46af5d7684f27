import { ConfigError, kindOf, type Pipeline, type PipelineSpec, type SinkSpec } from '@tributary/core';

export interface RunOverrides {
  /** Absolute path (or `-`) replacing the file source's path. */
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
  if (o.input !== undefined || o.batchSize !== undefined) {
    if (kindOf(spec.source) !== 'file') throw new ConfigError('--input and --batch-size apply to the file source only');
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
