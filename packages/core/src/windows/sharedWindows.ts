/**
 * Where the window step finds its shared-store operators (ranges, sessions, sliding). They are
 * installed by `sharedOperators.ts` — which `@tributary/core` loads, and which `synth` bundles only
 * for a pipeline that keeps window state in a shared store — so a Lambda bundle of a pipeline
 * with memory state carries none of them.
 */
import type { CompileContext, NodeInfo } from '../compile/types.js';
import type { SharedSessionStore, SharedWindowStore } from './shared.js';
import type { WindowOperator, WindowSettings } from './WindowOperator.js';

export interface SharedWindowOperators {
  ranges(settings: WindowSettings, node: NodeInfo, ctx: CompileContext, store: SharedWindowStore): WindowOperator;
  sessions(settings: WindowSettings, node: NodeInfo, ctx: CompileContext, store: SharedSessionStore): WindowOperator;
  sliding(settings: WindowSettings, node: NodeInfo, ctx: CompileContext, store: SharedSessionStore): WindowOperator;
}

let installed: SharedWindowOperators | undefined;

export function installSharedWindowOperators(operators: SharedWindowOperators): void {
  installed = operators;
}

export function sharedWindowOperators(): SharedWindowOperators | undefined {
  return installed;
}
