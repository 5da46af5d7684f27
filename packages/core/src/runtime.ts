/**
 * `@tributary/core/runtime`: what runs an already-loaded pipeline — compile, and the pipeline
 * author's spec types, errors and aggregate functions — without registering any built-in
 * component, the YAML loader or the JSON Schema validator (compile such pipelines with
 * `validated: true`). A bundle (`tributary synth`) resolves `@tributary/core` to this entry and
 * imports the modules of the components its pipeline uses, so the rest is left out. Components and runtimes import
 * `@tributary/core/spi`, which registers nothing either. Everything else imports
 * `@tributary/core`, which registers every built-in component and exports this and more.
 */
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
export type { LookupSpec, PipelineSpec, SinkSpec, SourceSpec, StepSpec, StoreSpec } from './spec.js';
export type { MapTemplate } from './steps/map.js';
export type { AggregateSpec, WindowSpec } from './steps/window.js';
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
