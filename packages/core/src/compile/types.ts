/**
 * Contracts between the compiler and the components it assembles: steps link into a push
 * chain (consecutive stateless steps fuse into one per-record function), async steps become
 * batch barriers, sinks buffer per batch and acknowledge before the batch does.
 */

import type { SchedulerLike } from 'rxjs';
import type { DeadLetterReason, DeadLetterRecord, Ordering, RecordEnvelope, SourceBatch } from '../envelope.js';
import type { CompiledExpression, ExpressionSource, FunctionResolver } from '../expression.js';
import type { AwsPermission, ComponentDefinition } from '../registry.js';
import type { StateStore } from '../windows/shared.js';
import type { WatermarkView } from '../windows/watermarks.js';

/**
 * Per-record function of a fused segment; `batch` carries the per-batch buffers.
 *
 * Envelope ownership (Flink's object reuse): the push an envelope is handed to owns it. Inside a
 * fused chain, `map`, `enrich` and `keyBy` change the envelope they are handed in place instead
 * of allocating a new one, so once a step has called `next(env)` the envelope may change under
 * it. A push that keeps the record and passes nothing on (a barrier's or a sink's buffer, a
 * window) owns it and needs nothing. A step that keeps a record beyond the chain and also passes
 * it on — a sink step's buffer, a list of its own, a second push besides `next` — keeps a copy
 * (`withValue(env, env.value)`), unless `CompileContext.isEnd(next)`. A step that only reads the
 * record, or passes on a new one made by `withValue`/`withKey` (which copy), needs nothing.
 * Dead letters are copies taken at the failing step: they keep the value the record had there.
 */
export type Push = (env: RecordEnvelope, batch: BatchContext) => void;

/** What one batch accumulates while it runs. One per batch, so batches of several shards can run at once. */
export interface BatchContext {
  /** The shard of the batch; empty for a tick or the end-of-input flush. */
  readonly shardId: string;
  /** What the records are in order by (see SourceBatch.ordering); `shard` unless the source says. */
  readonly ordering: Ordering;
  /** The batch's checkpoint (its last sequence number unless the source gives one). */
  readonly checkpoint?: string | undefined;
  /** Per-barrier and per-sink buffers, indexed by the id the compiler gave them. */
  readonly buffers: RecordEnvelope[][];
  readonly deadLetters: RecordEnvelope<DeadLetterRecord>[];
  /** Routes a record to the dead-letter output; the batch goes on. */
  deadLetter(env: RecordEnvelope, step: string, reason: DeadLetterReason, error: unknown): void;
  counters: { filtered: number };
  /**
   * Runs `fn` once the batch's output is durable (every sink and the dead-letter output have
   * acknowledged it), before the batch result is emitted; if it fails, the batch fails.
   */
  afterAck(fn: () => Promise<void>): void;
  /**
   * Runs `fn` if the batch fails (it will be delivered again): a stateful step puts back what the
   * failed attempt changed in memory but never made durable (fired windows, its watermark).
   * Hooks run synchronously, last registered first.
   */
  afterFailure(fn: () => void): void;
  /**
   * Set on a batch that replays records a checkpoint held back (see
   * `CompiledPipeline.resumeShard`): the index of the original batch it repeats. Its records only
   * rebuild window state in memory; its output (sink writes, late records, dead letters, emitted
   * windows) was produced before the checkpoint and is dropped.
   */
  readonly replay?: number | undefined;
}

/**
 * A window step whose state of a shard lives in this process's memory, one operator per shard
 * (`keyIsPartitionKey` without a shared store): what holds a shard's checkpoint back, and what
 * replays it after a restart (see `CompiledPipeline.shardCheckpointState`).
 */
export interface ShardWindowState {
  readonly name: string;
  /** Position of the oldest record still in an open window of the shard; undefined when none is. */
  retained(shardId: string): string | undefined;
  /** The watermark the shard's next batch is judged against (−∞ before its first). */
  watermark(shardId: string): number;
  /**
   * Before a shard's replay: the watermark each replayed batch is judged against (as the original
   * batch was), and the one after the last (the saved one).
   */
  resume(shardId: string, marks: readonly number[], final: number): void;
  /** Forgets the shard's windows (its lease moved: another process recomputes them). */
  release(shardId: string): void;
}

/** Identity of a node in the compiled graph. */
export interface NodeInfo {
  /** Unique node name, e.g. `filter-0` (or the step's own `name`). */
  name: string;
  kind: string;
  /** JSON pointer of the step in the definition, e.g. `/steps/0`. */
  path: string;
}

/** What a sink may do with records it cannot write (see `Sink.write`). */
export interface SinkContext {
  /**
   * Routes a record the sink will never be able to write (too large, rejected by the
   * destination as invalid) to the dead-letter output, with the reason; the rest goes on.
   */
  deadLetter(env: RecordEnvelope, error: unknown): void;
}

/**
 * A destination for records. `write` resolves only when every record is durable or has been
 * routed to the dead-letter output through `context`; it rejects if that cannot be done (the
 * batch then fails and is delivered again).
 */
export interface Sink {
  /** The file this sink writes, if it writes one: a run refuses an output that is its input or another output. */
  readonly outputFile?: string;
  write(records: readonly RecordEnvelope[], context?: SinkContext): Promise<void>;
  open?(): Promise<void>;
  close(): Promise<void>;
}

/** Source of batches, per shard. */
export interface Source {
  batches(): AsyncIterable<SourceBatch>;
  close?(): Promise<void>;
}

/** Key–value lookup for `enrich`: values for a batch's distinct keys, missing keys absent. */
export interface Lookup {
  get(keys: readonly string[]): Promise<Map<string, unknown>>;
  close?(): Promise<void>;
}

/** Turns a key into the string a lookup is asked for (and `enrich` caches by); `undefined` for a key that cannot be one. */
export function lookupKey(k: unknown): string | undefined {
  switch (typeof k) {
    case 'string':
      return k;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(k);
    default:
      return undefined;
  }
}

/** Where resources come from when a pipeline is compiled. */
export interface ResourceContext {
  /** Directory that relative paths in the definition are resolved against. */
  baseDir: string;
  /** Objects bound by the TypeScript builder (functions, sinks, lookups), by reference name. */
  bindings: ReadonlyMap<string, unknown>;
  scheduler: SchedulerLike;
}

export interface CompileContext extends ResourceContext {
  resolve: FunctionResolver;
  /** Compiles an expression found at `path`. */
  expression(source: ExpressionSource): CompiledExpression;
  /** A fresh node name for a step kind (`filter-0`, `filter-1`, …). */
  nodeName(kind: string, explicit: string | undefined): string;
  /**
   * An async barrier: records pushed into it are buffered for the whole batch; after the
   * synchronous pass `run` receives them and pushes its results into `next`.
   */
  barrier(node: NodeInfo, run: BarrierRun, next: Push, advance?: BarrierAdvance): Push;
  /** Compiles nested steps (a branch route) ending in `next` (default: the end of a chain). */
  steps(specs: readonly unknown[], path: string, next?: Push): Push;
  /**
   * True when `next` ends a chain (a branch route's end, the end of the main steps): no step after
   * it changes the record, so a step that keeps the record as well need not copy it (see `Push`).
   */
  isEnd(next: Push): boolean;
  /** Creates a sink and returns the push that buffers records for it (the buffer keeps the envelope). */
  sink(spec: object, node: NodeInfo): Push;
  lookup(spec: object, path: string): Lookup;
  /** Creates a window state store (closed with the pipeline); `undefined` for process memory. */
  store(spec: object, path: string): StateStore | undefined;
  /** The pipeline's name (state namespaces start with it). */
  pipelineName: string;
  /** Per-shard event-time progress, updated from every decoded record. */
  watermarks: WatermarkView;
  /** Asks the runtime to call the pipeline's `tick()` at least this often (ms) while it runs. */
  requestTicks(intervalMs: number): void;
  /** Registers a gauge reported by `CompiledPipeline.stats()` (summed over nodes of the same name). */
  gauge(name: string, read: () => number): void;
  /** Registers a window step whose per-shard state is in memory (checkpoints are held back by it). */
  holdsShardState(step: ShardWindowState): void;
}

export type BarrierRun = (records: RecordEnvelope[], batch: BatchContext, next: Push) => Promise<void>;
/**
 * Called after every batch and every tick (time passing with no batch), and once with
 * `final = true` at the end of a finite input: stateful steps emit what time has closed.
 */
export type BarrierAdvance = (batch: BatchContext, next: Push, final: boolean) => Promise<void>;

export interface StepDefinition<S = never> extends ComponentDefinition {
  category: 'step';
  /**
   * Links the step in front of `next`; returns the step's own push. An option the step refuses
   * throws a `ConfigError` (as do the `create` of sinks, sources, lookups and stores): `compile()`
   * reports it as a validation issue at the component's spec, with file, line and column. The
   * push owns each envelope handed to it; one it keeps while also passing it on is copied (see
   * `Push`).
   */
  compile(spec: S, node: NodeInfo, ctx: CompileContext): (next: Push) => Push;
  /** One-line description of a configured step for `describe()`. */
  summary(spec: S): string;
}

export interface SinkDefinition<S = never> extends ComponentDefinition {
  category: 'sink';
  /** The AWS actions this component calls for `spec` (see ComponentDefinition.permissions). */
  permissions?(spec: S): AwsPermission[];
  create(spec: S, ctx: ResourceContext): Sink;
  summary(spec: S): string;
}

export interface SourceDefinition<S = never> extends ComponentDefinition {
  category: 'source';
  /** The AWS actions this component calls for `spec` (see ComponentDefinition.permissions). */
  permissions?(spec: S): AwsPermission[];
  create(spec: S, ctx: ResourceContext & { fields?: unknown }): Source;
  summary(spec: S): string;
}

export interface LookupDefinition<S = never> extends ComponentDefinition {
  category: 'lookup';
  /** The AWS actions this component calls for `spec` (see ComponentDefinition.permissions). */
  permissions?(spec: S): AwsPermission[];
  create(spec: S, ctx: ResourceContext): Lookup;
  /** The key expression the lookup's own spec names, if it names one (`key: { id: event.user }`). */
  keyOf?(spec: S): ExpressionSource | undefined;
}

export interface StoreDefinition<S = never> extends ComponentDefinition {
  category: 'store';
  /** The AWS actions this component calls for `spec` (see ComponentDefinition.permissions). */
  permissions?(spec: S): AwsPermission[];
  /** `undefined`: window state in process memory. */
  create(spec: S, ctx: ResourceContext): StateStore | undefined;
  summary(spec: S): string;
}
