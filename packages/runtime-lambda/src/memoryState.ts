/**
 * Window state in memory inside AWS Lambda: a container ends at any time (scale-in, a deploy, a
 * crash, an idle recycle), and with it every open window kept in its memory — silently, since the
 * event source mapping has already moved on. So a window step run by the Lambda runtime must keep
 * its state in a shared store (DynamoDB, Redis), or opt in to losing it:
 * `state: { memory: { volatile: true } }`. `createHandler` and `synth` refuse anything else.
 */
import type { Pipeline, PipelineSpec, WindowSpec } from '@tributary/core';
import { ConfigError, PipelineValidationError, walkComponents } from '@tributary/core/spi';

/** What is said of each window step whose state would die with a Lambda container. */
const STATE_LOST =
  'window state in memory would be lost whenever a Lambda container ends (at any time, without notice) — keep it in a shared store (state: { dynamodb: { table } } or { redis: { url } }), or accept the loss with state: { memory: { volatile: true } }';

/** JSON pointers of the window steps whose state is in memory without `volatile: true`. */
export function memoryWindows(spec: PipelineSpec): string[] {
  const out: string[] = [];
  for (const c of walkComponents(spec)) {
    if (c.category !== 'step' || c.kind !== 'window') continue;
    const state = (c.spec as WindowSpec).state as unknown;
    const memory =
      state === undefined || state === 'memory' || (typeof state === 'object' && state !== null && 'memory' in state);
    const volatile =
      typeof state === 'object' &&
      state !== null &&
      (state as { memory?: { volatile?: boolean } }).memory?.volatile === true;
    if (memory && !volatile) out.push(c.path);
  }
  return out;
}

/** What checkLambdaWindowState reads of a pipeline. */
type LocatedSpec = Pick<Pipeline, 'spec' | 'file' | 'locate'>;

/**
 * Throws a PipelineValidationError with one issue for each window step whose state would die with
 * a Lambda container, at that step's window spec (with its file, line and column when the
 * pipeline came from YAML), as compile reports a component it refuses.
 *
 * Takes the pipeline (from `loadPipelineFile`, `loadPipeline` or the builder), or — its former
 * form — a `PipelineSpec` and the file it came from (issues then carry the file, no line). Any
 * other argument is a ConfigError: the check never passes on something it could not read.
 */
export function checkLambdaWindowState(pipeline: LocatedSpec): void;
export function checkLambdaWindowState(spec: PipelineSpec, file?: string): void;
export function checkLambdaWindowState(pipelineOrSpec: LocatedSpec | PipelineSpec, file?: string): void {
  const pipeline = pipelineOf(pipelineOrSpec, file);
  const paths = memoryWindows(pipeline.spec);
  if (paths.length === 0) return;
  throw new PipelineValidationError(
    paths.map((step) => {
      const path = `${step}/window`;
      return { file: pipeline.file, ...pipeline.locate?.(path), path, message: STATE_LOST };
    }),
  );
}

function isSpec(value: unknown): value is PipelineSpec {
  return typeof value === 'object' && value !== null && Array.isArray((value as { steps?: unknown }).steps);
}

function pipelineOf(value: unknown, file: string | undefined): LocatedSpec {
  if (isSpec(value)) return { spec: value, file };
  if (typeof value === 'object' && value !== null && isSpec((value as { spec?: unknown }).spec)) {
    return value as LocatedSpec;
  }
  const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
  throw new ConfigError(
    `checkLambdaWindowState expects a pipeline (with a \`spec\`) or a PipelineSpec (with \`steps\`), got ${got === 'object' ? 'an object with neither' : got}`,
  );
}
