/**
 * `@tributary/core/spi`: for authors of components — steps, sources, sinks, lookups and state
 * stores — and of runtimes: `register` and the schema helpers a registration is written with, the
 * contracts a component implements and the contexts it is given, envelopes, errors, durations,
 * expressions, the KPL codec and position order; TypeBox's `Type`, to write a kind's schema. Importing it registers no component (a bundle
 * may import it beside `@tributary/core/runtime`). Pipeline authors import `@tributary/core`.
 *
 * A new kind adds its spec to the kind maps of `@tributary/core`:
 * `declare module '@tributary/core' { interface SinkKinds { mine: MySinkSpec } }`.
 *
 * A custom step: the fused chain owns its envelopes — later steps of a chain may change an
 * envelope in place, so a step that keeps a record beyond its push takes a copy (see `Push`).
 */

// The schema builder a registration's `schema` is written with (TypeBox's, as core's own kinds use).
export { type Static, type TSchema, Type } from 'typebox';
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
export { type Duration, durationMs, parseDuration } from './duration.js';
export {
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
  FencedError,
  isTransient,
  PipelineValidationError,
  TributaryError,
  type ValidationIssue,
} from './errors.js';
export { type CompiledExpression, compileExpression, type ExpressionSource } from './expression.js';
export {
  type Deaggregated,
  deaggregate,
  deaggregateRecord,
  type HashKeyRange,
  hasAggregateMagic,
  hashKeyOf,
  type UserRecord,
} from './kpl.js';
export { aggregateUserRecords, userRecordSize } from './kplAggregate.js';
export { comparePositions, compareSequenceNumbers } from './position.js';
export {
  type AwsPermission,
  type AwsResource,
  type ComponentCategory,
  type ComponentDefinition,
  definitions,
  kindOf,
  register,
} from './registry.js';
export { type BackoffPolicy, backoff, backoffDelay, type RetryPolicy, retry, sleep } from './retry.js';
export { ComponentRef, DurationSchema, Expression, FunctionRef, X_EXPECTED } from './schema.js';
export { kinesisStreamName } from './sources/streamArn.js';
export { type ComponentUse, walkComponents } from './walkComponents.js';
export type { Aggregator, Stamp } from './windows/aggregates.js';
export type {
  LateRecord,
  ProgressOptions,
  SessionState,
  SharedApplyOutcome,
  SharedSessionStore,
  SharedWindowStore,
  StateStore,
  StoredShardProgress,
  WindowRange,
  WindowScope,
} from './windows/shared.js';
export { classifyDelta, type StoredWindow, type WindowDelta, type WindowRef } from './windows/store.js';
