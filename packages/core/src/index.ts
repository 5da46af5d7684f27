import './components.js';

export {
  type Enriched,
  type EnrichOptions,
  fileSink,
  fileSource,
  PipelineBuilder,
  pipeline,
  StepsBuilder,
  staticLookup,
  stdoutSink,
  type TypedLookup,
  type TypedSource,
  type WindowOptions,
  type WindowResult,
} from './builder.js';
export { type BatchOptions, type TestRun, testPipeline, toBatches } from './harness.js';
export { StaticLookup } from './lookups/static.js';
export { type RunSummary, runPipeline } from './run.js';
export { referenceMarkdown } from './reference.js';
export * from './runtime.js';
export { FileSink } from './sinks/file.js';
export { MemorySink } from './sinks/memory.js';
export { StreamSink } from './sinks/stdout.js';
export { readJsonLines } from './sources/file.js';
export { pipelineSchema } from './spec.js';
export { validateSpec } from './validate.js';
export {
  checkPipelineFile,
  loadPipelineFile,
  MAX_ALIASES,
  MAX_PIPELINE_BYTES,
  type PipelineFileOptions,
  parsePipelineYaml,
  resolveFunctions,
} from './yaml/load.js';
export type { FunctionModuleOptions } from './yaml/modules.js';
