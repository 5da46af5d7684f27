/**
 * Window state in memory inside AWS Lambda: a container ends at any time (scale-in, a deploy, a
 * crash, an idle recycle), and with it every open window kept in its memory — silently, since the
 * event source mapping has already moved on. So a window step run by the Lambda runtime must keep
 * its state in a shared store (DynamoDB, Redis), or opt in to losing it:
 * `state: { memory: { volatile: true } }`. `createHandler` and `synth` refuse anything else.
 */
import type { Pipeline, PipelineSpec, WindowSpec } from '@tributary/core';
import { PipelineValidationError, walkComponents } from '@tributary/core/spi';

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

/**
 * Throws a PipelineValidationError with one issue for each window step whose state would die with
 * a Lambda container, at that step's window spec (with its file, line and column when the
 * pipeline came from YAML), as compile reports a component it refuses.
 */
export function checkLambdaWindowState(pipeline: Pick<Pipeline, 'spec' | 'file' | 'locate'>): void {
  const paths = memoryWindows(pipeline.spec);
  if (paths.length === 0) return;
  throw new PipelineValidationError(
    paths.map((step) => {
      const path = `${step}/window`;
      return { file: pipeline.file, ...pipeline.locate?.(path), path, message: STATE_LOST };
    }),
  );
}
