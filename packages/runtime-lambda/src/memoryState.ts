/**
 * Window state in memory inside AWS Lambda: a container ends at any time (scale-in, a deploy, a
 * crash, an idle recycle), and with it every open window kept in its memory — silently, since the
 * event source mapping has already moved on. So a window step run by the Lambda runtime must keep
 * its state in a shared store (DynamoDB, Redis), or opt in to losing it:
 * `state: { memory: { volatile: true } }`. `createHandler` and `synth` refuse anything else.
 */
import { ConfigError, type PipelineSpec, type StepSpec } from '@tributary/core';

/** JSON pointers of the window steps whose state is in memory without `volatile: true`. */
export function memoryWindows(spec: PipelineSpec): string[] {
  const out: string[] = [];
  const walk = (steps: readonly StepSpec[], path: string) => {
    for (const [i, step] of steps.entries()) {
      const at = `${path}/${i}`;
      if ('window' in step) {
        const state = step.window.state as unknown;
        const memory =
          state === undefined ||
          state === 'memory' ||
          (typeof state === 'object' && state !== null && 'memory' in state);
        const volatile =
          typeof state === 'object' &&
          state !== null &&
          (state as { memory?: { volatile?: boolean } }).memory?.volatile === true;
        if (memory && !volatile) out.push(at);
      }
      if ('branch' in step) {
        for (const [j, r] of step.branch.routes.entries()) walk(r.steps, `${at}/branch/routes/${j}/steps`);
      }
    }
  };
  walk(spec.steps, '/steps');
  return out;
}

/** Throws a ConfigError naming every window step whose state would die with a Lambda container. */
export function checkLambdaWindowState(spec: PipelineSpec, file?: string): void {
  const paths = memoryWindows(spec);
  if (paths.length === 0) return;
  const where = file ? `${file}: ` : '';
  throw new ConfigError(
    `${where}window state in memory would be lost whenever a Lambda container ends (at any time, without notice): ${paths
      .map((p) => `${p}/window`)
      .join(
        ', ',
      )} — keep it in a shared store (state: { dynamodb: { table } } or { redis: { url } }), or accept the loss with state: { memory: { volatile: true } }`,
  );
}
