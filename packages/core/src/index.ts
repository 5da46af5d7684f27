/**
 * `@tributary/core`, for pipeline authors: the TypeScript builder and its aggregate functions, the
 * YAML loader and validator, compile, the test harness and the file runner, with the spec types
 * and errors they use. Importing it registers every built-in component. Authors of components
 * (steps, sources, sinks, lookups, state stores) and runtimes import `@tributary/core/spi`; a
 * bundle imports `@tributary/core/runtime`.
 */
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
export { type BatchResult, CompiledPipeline, type CompileOptions, compile, type Pipeline } from './compile/compile.js';
export type { Duration } from './duration.js';
export type { DeadLetterReason, DeadLetterRecord, RecordEnvelope, SourceBatch, SourceRecord } from './envelope.js';
export {
  ConfigError,
  DeliveryError,
  ExpressionError,
  formatIssue,
  PipelineValidationError,
  TributaryError,
  type ValidationIssue,
} from './errors.js';
export { type BatchOptions, type TestRun, testPipeline, toBatches } from './harness.js';
export { StaticLookup } from './lookups/static.js';
export { referenceMarkdown } from './reference.js';
export { type RunSummary, runPipeline } from './run.js';
export { FileSink } from './sinks/file.js';
export { MemorySink } from './sinks/memory.js';
export { StreamSink } from './sinks/stdout.js';
export { readJsonLines } from './sources/file.js';
export {
  type LookupKinds,
  type LookupSpec,
  type PipelineSpec,
  pipelineSchema,
  type SinkKinds,
  type SinkSpec,
  type SourceKinds,
  type SourceSpec,
  type StepKinds,
  type StepSpec,
  type StoreKinds,
  type StoreSpec,
} from './spec.js';
export type { MapTemplate } from './steps/map.js';
export type { AggregateSpec, WindowSpec } from './steps/window.js';
export { validateSpec } from './validate.js';
export {
  type Agg,
  type AggResult,
  aggregator,
  avg,
  collect,
  count,
  countDistinct,
  first,
  last,
  max,
  min,
  sum,
} from './windows/aggregateFunctions.js';
export type { CustomAggregator } from './windows/aggregates.js';
export {
  checkPipelineFile,
  loadPipelineFile,
  MAX_ALIASES,
  MAX_PIPELINE_BYTES,
  type PipelineFileOptions,
  type PipelineYamlOptions,
  parsePipelineYaml,
  resolveFunctions,
} from './yaml/load.js';
export type { FunctionModuleOptions } from './yaml/modules.js';
export type { Environment } from './yaml/substitute.js';
