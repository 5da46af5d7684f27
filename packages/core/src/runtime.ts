/**
 * `@tributary/core/runtime`: what runs an already-loaded pipeline — compile, envelopes, errors,
 * expressions, the registry, windows and state contracts — without registering any built-in
 * component, the YAML loader or the JSON Schema validator (compile such pipelines with
 * `validated: true`). A bundle (`tributary synth`) imports this entry plus the modules of the
 * components its pipeline uses (see COMPONENT_MODULES), so the rest is left out. Everything else
 * imports `@tributary/core`, which registers every built-in component and exports this and more.
 */
export { type BatchResult, CompiledPipeline, type CompileOptions, compile, type Pipeline } from './compile/compile.js';
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
  SinkContext,
  SinkDefinition,
  Source,
  SourceDefinition,
  StepDefinition,
  StoreDefinition,
} from './compile/types.js';
export { COMPONENT_MODULES } from './component-modules.js';
export { type Duration, durationMs, parseDuration } from './duration.js';
export {
  compareSequenceNumbers,
  type DeadLetterReason,
  type DeadLetterRecord,
  envelope,
  type Ordering,
  type RecordEnvelope,
  type SourceBatch,
  type SourceRecord,
  withKey,
  withValue,
} from './envelope.js';
export {
  ConfigError,
  DeliveryError,
  describeError,
  ExpressionError,
  formatIssue,
  isTransient,
  PipelineValidationError,
  TributaryError,
  type ValidationIssue,
} from './errors.js';
export {
  type CompiledExpression,
  compileCel,
  compileExpression,
  type ExpressionSource,
  toPlain,
} from './expression.js';
export {
  type ComponentCategory,
  type ComponentDefinition,
  definition,
  definitions,
  kindOf,
  register,
} from './registry.js';
export {
  ComponentRef,
  DurationSchema,
  Expression,
  FIELD_TYPES,
  type FieldType,
  FunctionRef,
  X_EXPECTED,
} from './schema.js';
export type {
  LookupKinds,
  LookupSpec,
  PipelineSpec,
  SinkKinds,
  SinkSpec,
  SourceKinds,
  SourceSpec,
  StepKinds,
  StepSpec,
  StoreKinds,
  StoreSpec,
} from './spec.js';
export type { MapTemplate } from './steps/map.js';
export type { AggregateSpec, WindowSpec } from './steps/window.js';
export { type ComponentUse, walkComponents } from './walkComponents.js';
export {
  type Aggregator,
  type CustomAggregator,
  comparePositions,
  parseAggregate,
  type Stamp,
} from './windows/aggregates.js';
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
export {
  isStateStore,
  type LateRecord,
  type ProgressOptions,
  type SessionState,
  type SharedApplyOutcome,
  type SharedSessionStore,
  type SharedWindowStore,
  type StateStore,
  type StoredShardProgress,
  type WindowRange,
  type WindowScope,
} from './windows/shared.js';
export {
  type ApplyOutcome,
  classifyDelta,
  MemoryWindowStore,
  type StoredWindow,
  type WindowDelta,
  type WindowRef,
} from './windows/store.js';
export { lowestWatermark, Watermarks } from './windows/watermarks.js';
