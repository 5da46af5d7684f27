import './components.js';

export { type BatchResult, type CompileOptions, CompiledPipeline, type Pipeline, compile } from './compile/compile.js';
export type {
  BarrierRun,
  BatchContext,
  CompileContext,
  Lookup,
  LookupDefinition,
  NodeInfo,
  Push,
  ResourceContext,
  Sink,
  SinkDefinition,
  Source,
  SourceDefinition,
  StepDefinition,
} from './compile/types.js';
export {
  type EnrichOptions,
  type Enriched,
  PipelineBuilder,
  StepsBuilder,
  type TypedLookup,
  type TypedSource,
  fileSink,
  fileSource,
  pipeline,
  staticLookup,
  stdoutSink,
} from './builder.js';
export { type Duration, durationMs, parseDuration } from './duration.js';
export {
  type DeadLetterReason,
  type DeadLetterRecord,
  type RecordEnvelope,
  type SourceBatch,
  type SourceRecord,
  compareSequenceNumbers,
  envelope,
  withKey,
  withValue,
} from './envelope.js';
export {
  ConfigError,
  DeliveryError,
  ExpressionError,
  PipelineValidationError,
  TributaryError,
  type ValidationIssue,
  describeError,
  formatIssue,
} from './errors.js';
export { type CompiledExpression, type ExpressionSource, compileCel, compileExpression, toPlain } from './expression.js';
export { type BatchOptions, type TestRun, testPipeline, toBatches } from './harness.js';
export { StaticLookup } from './lookups/static.js';
export { type ComponentCategory, type ComponentDefinition, definition, definitions, kindOf, register } from './registry.js';
export { type RunSummary, runPipeline } from './run.js';
export { ComponentRef, DurationSchema, Expression, FIELD_TYPES, type FieldType, FunctionRef } from './schema.js';
export { FileSink } from './sinks/file.js';
export { MemorySink } from './sinks/memory.js';
export { StreamSink } from './sinks/stdout.js';
export { readJsonLines } from './sources/file.js';
export type { LookupKinds, LookupSpec, PipelineSpec, SinkKinds, SinkSpec, SourceKinds, SourceSpec, StepKinds, StepSpec } from './spec.js';
export { pipelineSchema } from './spec.js';
export type { MapTemplate } from './steps/map.js';
export { validateSpec } from './validate.js';
export {
  MAX_ALIASES,
  MAX_PIPELINE_BYTES,
  checkPipelineFile,
  loadPipelineFile,
  parsePipelineYaml,
  resolveFunctions,
} from './yaml/load.js';
