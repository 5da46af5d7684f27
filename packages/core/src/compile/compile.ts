/**
 * Compiles a pipeline into RxJS operators over batches. Consecutive stateless steps are linked
 * into one push chain and run in a tight loop over the batch; async steps (enrich) are batch
 * barriers; sinks buffer per batch and acknowledge before the batch result is emitted.
 */
import {
  asyncScheduler,
  concat,
  concatMap,
  defer,
  EMPTY,
  finalize,
  from,
  interval,
  map,
  merge,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
  Subject,
  takeUntil,
} from 'rxjs';
import { parseDuration } from '../duration.js';
import {
  type DeadLetterReason,
  type DeadLetterRecord,
  envelope,
  type Ordering,
  type RecordEnvelope,
  type SourceBatch,
  type SourceRecord,
  withValue,
} from '../envelope.js';
import {
  ConfigError,
  describeError,
  ExpressionError,
  FencedError,
  PipelineValidationError,
  TributaryError,
  type ValidationIssue,
} from '../errors.js';
import { type CompiledExpression, compileExpression, type ExpressionSource } from '../expression.js';
import { comparePositions } from '../position.js';
import { definition, installedSpecCheck, kindOf } from '../registry.js';
import { checkOutputs } from '../sinks/fileLock.js';
import { jsonSafe } from '../sinks/json.js';
import type { FileSourceSpec } from '../sources/file.js';
import { fileSourcePath } from '../sources/path.js';
import type { PipelineSpec, SinkSpec, StepSpec } from '../spec.js';
import type { StateStore } from '../windows/shared.js';
import { Watermarks } from '../windows/watermarks.js';
import { decodeRecord, payloadText } from './decode.js';
import { MAX_EVENT_TIME, parseEventTime } from './eventTime.js';
import { compileFieldCheck } from './fields.js';
import type {
  BarrierAdvance,
  BarrierRun,
  BatchContext,
  CompileContext,
  Lookup,
  LookupDefinition,
  NodeInfo,
  Push,
  ShardWindowState,
  Sink,
  SinkContext,
  SinkDefinition,
  Source,
  SourceDefinition,
  StepDefinition,
  StoreDefinition,
} from './types.js';

/** A pipeline definition with what it needs to compile: bound functions and objects, base directory. */
export interface Pipeline {
  readonly spec: PipelineSpec;
  /** Functions, sinks and lookups referenced by name from the spec. */
  readonly bindings: ReadonlyMap<string, unknown>;
  /** The file the definition came from, if any. */
  readonly file?: string;
  /** Directory that relative paths resolve against (the pipeline file's, else the working directory). */
  readonly baseDir: string;
  /**
   * The line and column of a JSON pointer into the spec in its source file (a YAML pipeline's
   * loader sets it): errors raised while compiling a component are reported there.
   */
  readonly locate?: (path: string) => { line: number; column: number } | undefined;
}

export interface CompileOptions {
  /** Clock for arrival time, caches and (later) idle windows. Default: `asyncScheduler`. */
  scheduler?: SchedulerLike;
  /** Replaces the pipeline's dead-letter output. */
  deadLetter?: Sink;
  /** Collect the records that reach the end of the main steps into `BatchResult.tail`. */
  collectTail?: boolean;
  /**
   * The spec was validated already (e.g. by `tributary synth`): skip the JSON Schema check, which
   * builds the whole schema and costs cold-start time. Components still check their options.
   */
  validated?: boolean;
  /**
   * The runtime checkpoints shards and resumes them (the Node worker): window steps whose
   * per-shard state is in memory keep what a held-back checkpoint needs (see
   * `CompiledPipeline.shardCheckpointState`). Default false: nothing is kept, nothing held back.
   */
  holdBackCheckpoints?: boolean;
}

/** Emitted once per batch, after every sink and the dead-letter output have acknowledged it. */
export interface BatchResult {
  shardId: string;
  /** Position to checkpoint: the batch's checkpoint, else its last sequence number. */
  checkpoint: string | undefined;
  recordsIn: number;
  /** What produced this result: a source batch, a timer tick, or the end-of-input flush. */
  phase: Phase;
  /** Records written to sinks (a record written to two sinks counts twice). */
  recordsOut: number;
  deadLettered: number;
  filtered: number;
  tail?: RecordEnvelope[];
}

interface GraphNode extends NodeInfo {
  depth: number;
  summary: string;
}

interface SinkSlot {
  node: NodeInfo;
  sink: Sink;
  id: number;
}
interface Barrier {
  node: NodeInfo;
  id: number;
  run: BarrierRun;
  next: Push;
  advance: BarrierAdvance | undefined;
}

type Phase = 'batch' | 'tick' | 'final';

/**
 * What a shard's checkpoint holds when a window step keeps the shard's state in memory (see
 * {@link CompiledPipeline.shardCheckpointState}).
 */
export interface ShardCheckpointState {
  /**
   * The position to checkpoint, after which a restart reads again: the end of the last batch
   * wholly before the oldest record still in an open window; `null` when that record is in the
   * first batch this process read of the shard (checkpoint where the process began the shard).
   */
  retainedAfter: string | null;
  /** The position of the last record processed. */
  processed: string;
  /** What a restart needs to replay the records in between exactly (JSON text; see resumeShard). */
  state: string;
}

/** One batch of a shard since the oldest still held back: its last position, and each window step's watermark. */
interface HeldBatch {
  end: string;
  marks: number[];
}

/** Per shard: the batches a restart would replay (see shardCheckpointState). */
interface ShardHistory {
  after: string | null;
  batches: HeldBatch[];
  processed: string | undefined;
}

/** A shard being replayed from a held-back checkpoint (see resumeShard). */
interface Replay {
  /** The last position of each original batch to replay, in order. */
  ends: string[];
  next: number;
  /** Records up to here were replayed. */
  done: string | undefined;
  /** Records read of a batch not yet complete (its last record is in a later read). */
  pending: SourceRecord[];
  /** Checkpointed again until the replay is over. */
  saved: ShardCheckpointState;
}

/** The JSON of ShardCheckpointState.state (−∞ watermarks are `null`). */
interface SavedShardState {
  v: 1;
  after: string | null;
  steps: string[];
  /** Per batch: its last position, then each step's watermark. */
  batches: (string | number | null)[][];
  final: (number | null)[];
  progress: [number | null, number | null];
}

/** A source record's position (see position.ts). */
function sourcePosition(r: SourceRecord): string {
  return r.subSequenceNumber === undefined ? r.sequenceNumber : `${r.sequenceNumber}:${r.subSequenceNumber}`;
}

const markOf = (v: unknown): number => (typeof v === 'number' ? v : Number.NEGATIVE_INFINITY);

/** Where a chain ends (a branch route, the main steps without a collected tail): records are dropped. */
const chainEnd: Push = () => {};

/** Options of {@link CompiledPipeline.operator}. */
export interface OperatorOptions {
  /**
   * When the input completes, emit every open window (a finite input such as a file). Default
   * true. Runtimes whose input never really ends (a Lambda invocation) call `process()` instead.
   */
  flushAtEnd?: boolean;
  /** Call `tick()` on the pipeline's scheduler while batches flow, so idle windows close. Default true. */
  ticks?: boolean;
}

class Batch implements BatchContext {
  readonly buffers: RecordEnvelope[][];
  readonly deadLetters: RecordEnvelope<DeadLetterRecord>[] = [];
  counters = { filtered: 0 };
  readonly acked: (() => Promise<void>)[] = [];
  constructor(
    readonly shardId: string,
    slots: number,
    private readonly pipeline: string,
    private readonly now: () => number,
    readonly checkpoint?: string,
    readonly ordering: Ordering = 'shard',
    private readonly mayWrite?: () => boolean,
    readonly replay?: number,
  ) {
    this.buffers = Array.from({ length: slots }, () => []);
  }
  /** Throws a FencedError when the batch's source says it may no longer write (SourceBatch.mayWrite). */
  fence(): void {
    if (this.mayWrite !== undefined && !this.mayWrite()) throw new FencedError(this.shardId);
  }
  deadLetter(env: RecordEnvelope, step: string, reason: DeadLetterReason, error: unknown): void {
    // A replayed record was dead-lettered (or not) when it was first processed.
    if (this.replay !== undefined) return;
    const src = env.source;
    const rec: DeadLetterRecord = {
      reason,
      step,
      error: errorText(error),
      shardId: env.shardId,
      sequenceNumber: env.sequenceNumber,
      partitionKey: env.partitionKey,
      data: payloadText(src),
      pipeline: this.pipeline,
      time: new Date(this.now()).toISOString(),
    };
    if (env.subSequenceNumber !== undefined) rec.subSequenceNumber = env.subSequenceNumber;
    if (src.line !== undefined) rec.line = src.line;
    // A value the dead-letter output could not write (circular, too deep, bigints) is replaced
    // by a form it can: the dead-letter writer is never crashed by the record it reports.
    if (env.value !== undefined) rec.value = jsonSafe(env.value);
    this.deadLetters.push(withValue(env, rec));
  }
  afterAck(fn: () => Promise<void>): void {
    this.acked.push(fn);
  }
  readonly failed: (() => void)[] = [];
  afterFailure(fn: () => void): void {
    this.failed.push(fn);
  }
  /** Undoes what the batch changed in memory (see BatchContext.afterFailure). */
  rollBack(): void {
    for (let i = this.failed.length - 1; i >= 0; i--) (this.failed[i] as () => void)();
    this.failed.length = 0;
  }
}

/** An epoch-ms time for messages: ISO-8601 when it is a date, else the number. */
function timeText(t: number): string {
  return Number.isFinite(t) && Math.abs(t) <= MAX_EVENT_TIME ? new Date(t).toISOString() : String(t);
}

/** The dead letter's `error`: the text, or a thrown value's message (never throwing itself). */
function errorText(error: unknown): string {
  if (typeof error === 'string') return error;
  try {
    return describeError(error);
  } catch {
    return 'an error that cannot be described';
  }
}

export class CompiledPipeline {
  readonly name: string;
  readonly spec: PipelineSpec;
  readonly scheduler: SchedulerLike;
  /** Every node of the graph, in definition order. */
  readonly nodes: readonly GraphNode[];
  private readonly head: Push;
  private readonly slots: number;
  private readonly barriers: Barrier[];
  private readonly sinkSlots: SinkSlot[];
  private readonly lookups: Lookup[];
  private readonly stores: StateStore[];
  private readonly deadLetterSink: Sink;
  private readonly tailSlot: number | undefined;
  private readonly eventTime: CompiledExpression | undefined;
  /** `maxFutureSkew` in ms: +∞ when the pipeline sets none. */
  private readonly maxFutureSkew: number;
  private readonly checkFields: ((v: unknown) => string | undefined) | undefined;
  private readonly pipeline: Pipeline;
  /** Per-shard event-time progress shared by the stateful steps. */
  readonly watermarks = new Watermarks();
  /** How often stateful steps want `tick()` (ms); undefined when none do. */
  readonly tickInterval: number | undefined;

  constructor(pipeline: Pipeline, options: CompileOptions = {}) {
    if (!options.validated) {
      const check = installedSpecCheck();
      if (check === undefined)
        throw new ConfigError(
          'no pipeline validator is loaded (import @tributary/core, or compile a pipeline validated already with `validated: true`)',
        );
      const issues = check(pipeline.spec);
      if (issues.length > 0)
        throw new PipelineValidationError(
          issues.map((i) => ({
            ...i,
            file: pipeline.file,
            ...(i.line === undefined ? pipeline.locate?.(i.path) : {}),
          })),
        );
    }
    this.pipeline = pipeline;
    this.spec = pipeline.spec;
    this.name = pipeline.spec.name;
    this.scheduler = options.scheduler ?? asyncScheduler;
    const nodes: GraphNode[] = [];
    const barriers: Barrier[] = [];
    const sinkSlots: SinkSlot[] = [];
    const lookups: Lookup[] = [];
    const stores: StateStore[] = [];
    const shardStates: ShardWindowState[] = [];
    const counters = new Map<string, number>();
    const names = new Set<string>();
    let slots = 0;
    let depth = 0;
    let currentPath = '';
    let tickInterval: number | undefined;
    const gauges: { name: string; read: () => number }[] = [];

    // Problems of components (a step, sink, store, lookup) are collected, so that every one is
    // reported at once; the compile throws them together at the end.
    const problems: ValidationIssue[] = [];
    let firstCause: unknown;
    const collect = (err: unknown, path: string): boolean => {
      if (err instanceof PipelineValidationError) problems.push(...err.issues);
      else if (isConfigurationError(err))
        problems.push({ file: pipeline.file, ...pipeline.locate?.(path), path, message: err.message });
      else return false;
      firstCause ??= err instanceof PipelineValidationError ? err.cause : err;
      return true;
    };
    const fail = (path: string, message: string, cause?: unknown): never => {
      const err = new PipelineValidationError([{ file: pipeline.file, ...pipeline.locate?.(path), path, message }]);
      if (cause) (err as { cause?: unknown }).cause = cause;
      throw err;
    };
    const resources = { baseDir: pipeline.baseDir, bindings: pipeline.bindings, scheduler: this.scheduler };
    const ctx: CompileContext = {
      ...resources,
      resolve: (ref) => pipeline.bindings.get(ref) as ((...args: never[]) => unknown) | undefined,
      expression: (source: ExpressionSource) => {
        try {
          return compileExpression(source, ctx.resolve);
        } catch (err) {
          return fail(currentPath, err instanceof ExpressionError ? err.message : describeError(err), err);
        }
      },
      nodeName: (kind, explicit) => {
        let name = explicit;
        if (name === undefined) {
          const n = counters.get(kind) ?? 0;
          counters.set(kind, n + 1);
          name = `${kind}-${n}`;
        }
        if (names.has(name)) fail(currentPath, `duplicate node name \`${name}\``);
        names.add(name);
        return name;
      },
      watermarks: this.watermarks,
      gauge: (name, read) => {
        gauges.push({ name, read });
      },
      holdsShardState: (step) => {
        shardStates.push(step);
      },
      requestTicks: (ms) => {
        tickInterval = tickInterval === undefined ? ms : Math.min(tickInterval, ms);
      },
      barrier: (node, run, next, advance) => {
        const id = slots++;
        barriers.push({ node, id, run, next, advance });
        return (env, batch) => {
          (batch.buffers[id] as RecordEnvelope[]).push(env);
        };
      },
      steps: (specs, path, next = chainEnd) => compileSteps(specs as StepSpec[], path, next),
      isEnd: (next) => next === chainEnd || next === tail,
      sink: (spec, node) => {
        const id = slots++;
        const sink = createSink(spec as SinkSpec, node.path);
        sinkSlots.push({ node, sink, id });
        return (env, batch) => {
          // A replayed batch's output was written when it was first processed.
          if (batch.replay !== undefined) return;
          (batch.buffers[id] as RecordEnvelope[]).push(env);
        };
      },
      store: (spec, path) => {
        const kind = kindOf(spec);
        try {
          const store = definition<StoreDefinition<unknown>>('store', kind).create(
            (spec as Record<string, unknown>)[kind],
            resources,
          );
          if (store) stores.push(store);
          return store;
        } catch (err) {
          return fail(path, describeError(err), err);
        }
      },
      pipelineName: pipeline.spec.name,
      lookup: (spec, path) => {
        const kind = kindOf(spec);
        try {
          const lookup = definition<LookupDefinition<unknown>>('lookup', kind).create(
            (spec as Record<string, unknown>)[kind],
            resources,
          );
          lookups.push(lookup);
          return lookup;
        } catch (err) {
          return fail(path, describeError(err), err);
        }
      },
    };

    const createSink = (spec: SinkSpec, path: string): Sink => {
      const kind = kindOf(spec);
      try {
        return definition<SinkDefinition<unknown>>('sink', kind).create(
          (spec as Record<string, unknown>)[kind],
          resources,
        );
      } catch (err) {
        return fail(path, describeError(err), err);
      }
    };

    // Nodes are named in definition order, then linked back to front so each push knows its next.
    const compileSteps = (specs: StepSpec[], path: string, next: Push): Push => {
      const linkers: ((next: Push) => Push)[] = [];
      const specPaths: string[] = [];
      depth++;
      specs.forEach((spec, i) => {
        const kind = kindOf(spec);
        const def = definition<StepDefinition<unknown>>('step', kind);
        currentPath = `${path}/${i}`;
        const value = (spec as Record<string, unknown>)[kind];
        // A sink step may be named on the step or inside its sink spec.
        const explicit = spec.name ?? (kind === 'sink' ? (value as SinkSpec).name : undefined);
        const node: GraphNode = {
          name: ctx.nodeName(kind, explicit),
          kind,
          path: currentPath,
          depth,
          summary: def.summary(value as never),
        };
        if (kind === 'sink') node.summary = `${kindOf(value as object)} ${sinkSummary(value as SinkSpec)}`;
        nodes.push(node);
        specPaths.push(`${node.path}/${kind}`);
        try {
          linkers.push(def.compile(value as never, node, ctx));
        } catch (err) {
          // A bad option of the step (or of a component inside it) is reported at the step's spec;
          // the steps after it are still compiled, for their own problems.
          if (!collect(err, `${node.path}/${kind}`)) throw err;
          linkers.push((next) => next);
        }
      });
      depth--;
      let push = next;
      for (let i = linkers.length - 1; i >= 0; i--) {
        // A step may refuse its options while linking too (knowing its next): reported the same way.
        const specPath = specPaths[i] as string;
        currentPath = specPath.slice(0, specPath.lastIndexOf('/'));
        try {
          push = (linkers[i] as (n: Push) => Push)(push);
        } catch (err) {
          if (!collect(err, specPath)) throw err;
        }
      }
      return push;
    };

    // The end of the main steps: nothing, or the collected tail (which keeps records unchanged).
    let tail: Push = chainEnd;
    if (options.collectTail) {
      const id = slots++;
      this.tailSlot = id;
      tail = (env, batch) => {
        if (batch.replay !== undefined) return;
        (batch.buffers[id] as RecordEnvelope[]).push(env);
      };
    }
    currentPath = '/eventTime';
    this.eventTime = pipeline.spec.eventTime === undefined ? undefined : ctx.expression(pipeline.spec.eventTime);
    currentPath = '/maxFutureSkew';
    const skew = pipeline.spec.maxFutureSkew;
    this.maxFutureSkew = skew === undefined ? Number.POSITIVE_INFINITY : (parseDuration(skew) ?? Number.NaN);
    if (Number.isNaN(this.maxFutureSkew))
      fail(currentPath, `expected a duration such as 30s, 5m or 1h, got ${JSON.stringify(skew)}`);
    if (skew !== undefined && this.eventTime === undefined)
      fail(currentPath, '`maxFutureSkew` bounds the `eventTime` of records; this pipeline has no `eventTime`');
    this.checkFields = pipeline.spec.fields ? compileFieldCheck(pipeline.spec.fields) : undefined;
    this.head = compileSteps(pipeline.spec.steps, '/steps', tail);
    let deadLetterSink = options.deadLetter;
    try {
      deadLetterSink ??= createSink(pipeline.spec.deadLetter ?? { stderr: {} }, '/deadLetter');
    } catch (err) {
      if (!collect(err, '/deadLetter')) throw err;
    }
    if (problems.length > 0) throw new PipelineValidationError(problems, { cause: firstCause });
    this.deadLetterSink = deadLetterSink as Sink;
    this.nodes = nodes;
    this.slots = slots;
    this.barriers = barriers;
    this.sinkSlots = sinkSlots;
    this.lookups = lookups;
    this.stores = stores;
    this.tickInterval = tickInterval;
    this.gauges = gauges;
    this.shardStates = options.holdBackCheckpoints ? shardStates : [];
  }

  private readonly gauges: { name: string; read: () => number }[];

  /** Current gauges of stateful steps, e.g. `{ openWindows: 12 }`. */
  stats(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const g of this.gauges) out[g.name] = (out[g.name] ?? 0) + g.read();
    return out;
  }

  /** The dead-letter output (runtimes send records a whole invocation could not handle here). */
  get deadLetterOutput(): Sink {
    return this.deadLetterSink;
  }

  /** The sinks of the graph, by node name. */
  get sinks(): ReadonlyMap<string, Sink> {
    return new Map(this.sinkSlots.map((s) => [s.node.name, s.sink]));
  }

  /** Creates the pipeline's source (for runtimes that read it themselves, e.g. the file runner). */
  createSource(): Source {
    const spec = this.spec.source;
    const kind = kindOf(spec);
    try {
      return definition<SourceDefinition<unknown>>('source', kind).create((spec as Record<string, unknown>)[kind], {
        baseDir: this.pipeline.baseDir,
        bindings: this.pipeline.bindings,
        scheduler: this.scheduler,
      });
    } catch (err) {
      if (!isConfigurationError(err)) throw err;
      const { file, locate } = this.pipeline;
      const issue = { file, ...locate?.('/source'), path: '/source', message: err.message };
      throw new PipelineValidationError([issue], { cause: err });
    }
  }

  /** Opens sinks and lookups that need it (files, connections) before the first record. */
  async open(): Promise<void> {
    const sinks = [...new Set([...this.sinkSlots.map((s) => s.sink), this.deadLetterSink])];
    // Before any output is opened (opening a file output replaces it): no output is the input or another output.
    const source = this.spec.source as { file?: FileSourceSpec };
    await checkOutputs(
      source.file ? fileSourcePath(source.file, this.pipeline.baseDir) : undefined,
      sinks.flatMap((s) => (s.outputFile === undefined ? [] : [s.outputFile])),
    );
    const all = [...sinks, ...this.lookups];
    const opened = await Promise.allSettled(all.map((r) => (r as { open?: () => Promise<void> }).open?.()));
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // What did open (file locks, connections) is released: the run ends before it began.
      await this.close().catch(() => {});
      throw failed.reason;
    }
  }

  async close(): Promise<void> {
    const sinks = new Set([...this.sinkSlots.map((s) => s.sink), this.deadLetterSink]);
    const results = await Promise.allSettled([...sinks].map((s) => s.close()));
    await Promise.allSettled(this.lookups.map((l) => l.close?.()));
    await Promise.allSettled(this.stores.map((s) => s.close()));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed)
      throw new TributaryError(`closing a sink failed: ${describeError(failed.reason)}`, { cause: failed.reason });
  }

  /** The end of the last batch, tick or flush started: they run one at a time (see `serially`). */
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Runs `work` after everything started before it has settled. Batches of several shards may be
   * handed to one compiled pipeline at once (a worker owning several leases, the local event
   * source polling every shard): window steps judge a batch against the watermark and shard
   * progress as of its start, so batches, ticks and flushes must not interleave.
   */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    // Nothing running: start now, so the batch's synchronous part (decode, fused steps) runs at
    // the time of the call, as the scheduler sees it.
    const run = this.running === 0 ? work() : this.queue.then(work, work);
    this.running++;
    this.queue = run.then(
      () => {
        this.running--;
      },
      () => {
        this.running--;
      },
    );
    return run;
  }

  /** Batches, ticks and flushes started and not yet settled. */
  private running = 0;

  /**
   * Runs one batch through the graph; resolves when sinks and dead-letter output have
   * acknowledged it. Calls made while another batch runs wait for it (batches never interleave).
   */
  process(input: SourceBatch): Promise<BatchResult> {
    return this.serially(() => {
      const replay = this.replays.get(input.shardId);
      return replay ? this.processReplay(input, replay) : this.processNow(input);
    });
  }

  /** Window steps whose per-shard state is in memory (they hold checkpoints back). */
  private readonly shardStates: ShardWindowState[];
  private readonly histories = new Map<string, ShardHistory>();
  private readonly replays = new Map<string, Replay>();

  /**
   * Whether checkpoints are held back (see shardCheckpointState): compiled with
   * `holdBackCheckpoints`, and a window step keeps per-shard state in memory.
   */
  get holdsCheckpoints(): boolean {
    return this.shardStates.length > 0;
  }

  /**
   * Position of the oldest record still in an open window of the shard, over the window steps
   * whose per-shard state is in memory (`keyIsPartitionKey`, no shared store); undefined when none.
   */
  retainedPosition(shardId: string): string | undefined {
    let oldest: string | undefined;
    for (const s of this.shardStates) {
      const p = s.retained(shardId);
      if (p !== undefined && (oldest === undefined || comparePositions(p, oldest) < 0)) oldest = p;
    }
    return oldest;
  }

  /**
   * What to checkpoint for a shard when window state is in memory (`holdsCheckpoints`), read after
   * a batch: the checkpoint is held back to before the oldest record still in an open window, so a
   * restart (or another process taking the shard) reads those records again, and `state` tells
   * {@link resumeShard} how to replay them: the last processed position, the batches since then
   * and the watermark each was judged against. Undefined when nothing is held back (see
   * `holdsCheckpoints`), or before the shard's first batch.
   */
  shardCheckpointState(shardId: string): ShardCheckpointState | undefined {
    if (this.shardStates.length === 0) return undefined;
    const replay = this.replays.get(shardId);
    if (replay) return replay.saved;
    const h = this.histories.get(shardId);
    if (!h || h.processed === undefined) return undefined;
    const progress = this.watermarks.progress(shardId);
    const saved: SavedShardState = {
      v: 1,
      after: h.after,
      steps: this.shardStates.map((s) => s.name),
      batches: h.batches.map((b) => [b.end, ...b.marks]),
      final: this.shardStates.map((s) => s.watermark(shardId)),
      progress: [progress?.maxEventTime ?? null, progress?.sourceWatermark ?? null],
    };
    return { retainedAfter: h.after, processed: h.processed, state: JSON.stringify(saved) };
  }

  /**
   * Before a shard's first batch, when it resumes from a checkpoint `shardCheckpointState` gave
   * (in this process or another): the records read from the checkpoint up to `processed` are
   * replayed in their original batches, each judged against the watermark it was judged against
   * then, so they land in the same windows and sessions, and are late or not as they were. They
   * only rebuild the windows still open: what they produced then (sink writes, late records, dead
   * letters, windows emitted) is not produced again. Records after `processed` are processed as
   * usual. A replayed `emit: updates` window emits its updates again from the first batch after.
   */
  resumeShard(shardId: string, saved: { processed: string; state: string }): void {
    let s: SavedShardState;
    try {
      s = JSON.parse(saved.state) as SavedShardState;
    } catch (err) {
      throw new ConfigError(`the saved window state of shard ${shardId} is not JSON: ${describeError(err)}`);
    }
    if (s?.v !== 1 || !Array.isArray(s.batches) || !Array.isArray(s.steps) || !Array.isArray(s.final)) {
      throw new ConfigError(`the saved window state of shard ${shardId} is not one this version writes`);
    }
    this.replays.delete(shardId);
    const progress = s.progress ?? [null, null];
    this.watermarks.observe(
      shardId,
      markOf(progress[0]),
      this.scheduler.now(),
      typeof progress[1] === 'number' ? progress[1] : undefined,
    );
    for (const step of this.shardStates) {
      const j = s.steps.indexOf(step.name);
      if (j < 0) continue;
      step.resume(
        shardId,
        s.batches.map((b) => markOf(b[j + 1])),
        markOf(s.final[j]),
      );
    }
    const ends = s.batches.map((b) => String(b[0]));
    this.histories.set(shardId, {
      after: s.after,
      batches: [],
      processed: ends.length > 0 ? (s.after ?? undefined) : saved.processed,
    });
    if (ends.length > 0) {
      this.replays.set(shardId, {
        ends,
        next: 0,
        done: s.after ?? undefined,
        pending: [],
        saved: { retainedAfter: s.after, processed: saved.processed, state: saved.state },
      });
    }
  }

  /**
   * Forgets what this process holds of a shard's windows in memory (its lease moved, or its reading
   * stopped): they are not emitted from here; whoever reads the shard next recomputes them from
   * the held-back checkpoint.
   */
  releaseShard(shardId: string): void {
    if (this.shardStates.length === 0) return;
    this.replays.delete(shardId);
    this.histories.delete(shardId);
    for (const s of this.shardStates) s.release(shardId);
    this.watermarks.restore(shardId, undefined);
  }

  /** A batch of a shard being replayed: cut into the original batches, then what follows them. */
  private async processReplay(input: SourceBatch, replay: Replay): Promise<BatchResult> {
    const done = replay.done;
    let records = [...replay.pending, ...input.records];
    if (done !== undefined) records = records.filter((r) => comparePositions(sourcePosition(r), done) > 0);
    const results: BatchResult[] = [];
    while (replay.next < replay.ends.length) {
      const end = replay.ends[replay.next] as string;
      let k = 0;
      while (k < records.length && comparePositions(sourcePosition(records[k] as SourceRecord), end) <= 0) k++;
      const complete =
        k < records.length || (k > 0 && comparePositions(sourcePosition(records[k - 1] as SourceRecord), end) === 0);
      if (!complete) break;
      const { checkpoint: _, ...rest } = input;
      results.push(await this.processNow({ ...rest, records: records.slice(0, k) }, { index: replay.next, end }));
      records = records.slice(k);
      replay.next++;
      replay.done = end;
    }
    if (replay.next < replay.ends.length) replay.pending = records;
    else {
      this.replays.delete(input.shardId);
      if (records.length > 0) results.push(await this.processNow({ ...input, records }));
    }
    const last = input.records[input.records.length - 1];
    const out: BatchResult = {
      shardId: input.shardId,
      checkpoint: input.checkpoint ?? last?.sequenceNumber,
      phase: 'batch',
      recordsIn: 0,
      recordsOut: 0,
      deadLettered: 0,
      filtered: 0,
    };
    for (const r of results) {
      out.recordsIn += r.recordsIn;
      out.recordsOut += r.recordsOut;
      out.deadLettered += r.deadLettered;
      out.filtered += r.filtered;
    }
    if (this.tailSlot !== undefined) out.tail = results.flatMap((r) => r.tail ?? []);
    return out;
  }

  /** After a shard's batch: its end and marks are kept while a window holds a record of it or after. */
  private noteBatch(shardId: string, end: string, marks: number[]): void {
    let h = this.histories.get(shardId);
    if (!h) {
      h = { after: null, batches: [], processed: undefined };
      this.histories.set(shardId, h);
    }
    h.batches.push({ end, marks });
    h.processed = end;
    const oldest = this.retainedPosition(shardId);
    if (oldest === undefined) {
      h.after = end;
      h.batches.length = 0;
      return;
    }
    let n = 0;
    while (n < h.batches.length && comparePositions((h.batches[n] as HeldBatch).end, oldest) < 0) n++;
    if (n > 0) {
      h.after = (h.batches[n - 1] as HeldBatch).end;
      h.batches.splice(0, n);
    }
  }

  private async processNow(input: SourceBatch, replay?: { index: number; end: string }): Promise<BatchResult> {
    const now = this.scheduler.now();
    const lastRecord = input.records[input.records.length - 1];
    const batch = new Batch(
      input.shardId,
      this.slots,
      this.name,
      () => this.scheduler.now(),
      input.checkpoint ?? lastRecord?.sequenceNumber,
      input.ordering ?? 'shard',
      input.mayWrite,
      replay?.index,
    );
    // The watermark each window step judges the batch against, kept for a replay (see noteBatch).
    const marks =
      this.shardStates.length > 0 && input.shardId !== '' && (input.ordering ?? 'shard') === 'shard'
        ? this.shardStates.map((s) => s.watermark(input.shardId))
        : undefined;
    const records = input.records;
    const head = this.head;
    const eventTime = this.eventTime;
    const checkFields = this.checkFields;
    const maxFutureSkew = this.maxFutureSkew;
    const shardId = input.shardId;
    let maxEventTime = Number.NEGATIVE_INFINITY;
    let minEventTime = Number.POSITIVE_INFINITY;
    for (let i = 0; i < records.length; i++) {
      const src = records[i] as SourceRecord;
      let value: unknown;
      try {
        value = decodeRecord(src);
      } catch (err) {
        batch.deadLetter(envelope(src, shardId, undefined, src.arrivalTime), 'source', 'decode', err);
        continue;
      }
      if (checkFields !== undefined) {
        const problem = checkFields(value);
        if (problem !== undefined) {
          batch.deadLetter(envelope(src, shardId, value, src.arrivalTime), 'source', 'schema', problem);
          continue;
        }
      }
      let time = src.arrivalTime;
      if (eventTime !== undefined) {
        let t: number | undefined;
        let problem: unknown;
        try {
          t = parseEventTime(eventTime(value));
        } catch (err) {
          problem = err;
        }
        if (t === undefined) {
          batch.deadLetter(
            envelope(src, shardId, value, src.arrivalTime),
            'eventTime',
            'event-time',
            problem ?? 'event time is not epoch milliseconds or an ISO-8601 timestamp within ±8.64e15 ms',
          );
          continue;
        }
        if (t - src.arrivalTime > maxFutureSkew) {
          batch.deadLetter(
            envelope(src, shardId, value, src.arrivalTime),
            'eventTime',
            'event-time',
            `event time ${new Date(t).toISOString()} is more than maxFutureSkew (${String(this.spec.maxFutureSkew)}) ahead of its arrival time ${timeText(src.arrivalTime)}`,
          );
          continue;
        }
        time = t;
      } else if (!(Math.abs(time) <= MAX_EVENT_TIME)) {
        batch.deadLetter(
          envelope(src, shardId, value, 0),
          'source',
          'event-time',
          `arrival time ${String(time)} is not epoch milliseconds within ±8.64e15`,
        );
        continue;
      }
      if (time > maxEventTime) maxEventTime = time;
      if (time < minEventTime) minEventTime = time;
      head(envelope(src, shardId, value, time), batch);
    }
    const before = this.watermarks.snapshot(shardId);
    // When only a partition key's records are in order, other batches of the shard may be in
    // flight at once with records as old as this batch's oldest: the shard's progress moves by
    // the batch's earliest event time, not its latest.
    const progress =
      input.ordering === 'partitionKey' && minEventTime !== Number.POSITIVE_INFINITY ? minEventTime : maxEventTime;
    this.watermarks.observe(shardId, progress, now, input.watermark);
    const last = records[records.length - 1];
    let result: BatchResult;
    try {
      result = await this.drain(batch, 'batch', records.length, input.checkpoint ?? last?.sequenceNumber);
    } catch (err) {
      // The batch will be delivered again: its event times must not have moved the watermark
      // (a tick or another shard's batch would otherwise close windows it has yet to fill).
      this.watermarks.restore(shardId, before);
      batch.rollBack();
      throw err;
    }
    const end = replay?.end ?? (last === undefined ? undefined : sourcePosition(last));
    if (marks !== undefined && end !== undefined) this.noteBatch(shardId, end, marks);
    return result;
  }

  /**
   * Registers a shard before its first batch arrives, so the shard holds window watermarks back
   * until it delivers events (or stays idle past a window's idleTimeout). With state in memory a
   * runtime registers the shards it consumes; with a shared state store (DynamoDB, Redis) it
   * registers every shard of the stream, since windows may be fed by shards other processes own.
   * A shard never registered counts from its first batch.
   */
  registerShard(shardId: string): void {
    this.watermarks.observe(shardId, Number.NEGATIVE_INFINITY, this.scheduler.now());
  }

  /** A shard that has ended (closed by resharding) stops holding window watermarks back. */
  closeShard(shardId: string): void {
    this.watermarks.closeShard(shardId);
  }

  /**
   * Lets time pass without a batch: stateful steps advance their watermark by processing time
   * and emit what it closes (idle shards and keys still close). Runtimes call it on a timer.
   */
  tick(): Promise<BatchResult> {
    return this.serially(() => this.drainTimer('tick'));
  }

  /**
   * End of a finite input. The shards that ended (default: every shard this pipeline has seen or
   * registered) stop holding windows back, and windows are emitted: with state in memory, every open window;
   * with a shared store, every window no other live shard still holds back (another process's
   * shard may still be feeding it — a runtime that registered every shard of a stream names the
   * ones whose input ended here). The shards are not closed for good: a shared store keeps their
   * progress, and a later run over more of the stream goes on from it.
   */
  flush(options: { shards?: readonly string[] } = {}): Promise<BatchResult> {
    return this.serially(() => {
      for (const shardId of options.shards ?? this.watermarks.shardIds) this.watermarks.endInput(shardId);
      return this.drainTimer('final');
    });
  }

  /** A tick or the end-of-input flush: a batch without records; a failure undoes what it fired. */
  private async drainTimer(phase: 'tick' | 'final'): Promise<BatchResult> {
    const batch = new Batch('', this.slots, this.name, () => this.scheduler.now());
    try {
      return await this.drain(batch, phase, 0, undefined);
    } catch (err) {
      batch.rollBack();
      throw err;
    }
  }

  /** Runs the barriers (upstream first), lets stateful steps advance, then writes sinks. */
  private async drain(
    batch: Batch,
    phase: Phase,
    recordsIn: number,
    checkpoint: string | undefined,
  ): Promise<BatchResult> {
    const barriers = this.barriers;
    batch.fence();
    for (let i = barriers.length - 1; i >= 0; i--) {
      const b = barriers[i] as Barrier;
      const buffered = batch.buffers[b.id] as RecordEnvelope[];
      if (buffered.length > 0) {
        batch.buffers[b.id] = [];
        await b.run(buffered, batch, b.next);
      }
      if (b.advance) await b.advance(batch, b.next, phase === 'final');
    }
    let recordsOut = 0;
    const writes: Promise<void>[] = [];
    batch.fence();
    for (const slot of this.sinkSlots) {
      const buffered = batch.buffers[slot.id] as RecordEnvelope[];
      if (buffered.length === 0) continue;
      recordsOut += buffered.length;
      const name = slot.node.name;
      const context: SinkContext = {
        deadLetter: (env, error) => {
          recordsOut--;
          batch.deadLetter(env, name, 'sink', error);
        },
      };
      writes.push(slot.sink.write(buffered, context));
    }
    // Every write settles before the batch fails (none keeps running beside its retry).
    const settled = await Promise.allSettled(writes);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    // After the sinks: they may have routed records they could not write here.
    if (batch.deadLetters.length > 0) {
      batch.fence();
      await this.deadLetterSink.write(batch.deadLetters);
    }
    for (const fn of batch.acked) await fn();
    const result: BatchResult = {
      shardId: batch.shardId,
      checkpoint,
      phase,
      recordsIn,
      recordsOut,
      deadLettered: batch.deadLetters.length,
      filtered: batch.counters.filtered,
    };
    if (this.tailSlot !== undefined) result.tail = batch.buffers[this.tailSlot];
    return result;
  }

  /**
   * An operator over batches of one shard: batches run one at a time, in order. While batches
   * flow, ticks run on the pipeline's scheduler (if a stateful step asked for them); when the
   * input completes, open windows are flushed.
   */
  operator(options: OperatorOptions = {}): OperatorFunction<SourceBatch, BatchResult> {
    const flushAtEnd = options.flushAtEnd ?? true;
    const useTicks = (options.ticks ?? true) && this.tickInterval !== undefined;
    return (source: Observable<SourceBatch>) =>
      defer(() => {
        // Ticks stop when the input ends. The input may end synchronously, before the ticks are
        // even subscribed (a source built from an array), hence the flag as well as the subject.
        let ended = false;
        const end = new Subject<void>();
        const batches = source.pipe(
          finalize(() => {
            ended = true;
            end.next();
          }),
        );
        const ticks: Observable<'tick'> = useTicks
          ? defer(() =>
              ended
                ? EMPTY
                : interval(this.tickInterval as number, this.scheduler).pipe(
                    map(() => 'tick' as const),
                    takeUntil(end),
                  ),
            )
          : EMPTY;
        const work = merge(batches, ticks).pipe(
          concatMap((item) => from(item === 'tick' ? this.tick() : this.process(item))),
        );
        return flushAtEnd
          ? concat(
              work,
              defer(() => from(this.flush())),
            )
          : work;
      });
  }

  /** The graph as text, one node per line. */
  describe(): string {
    const spec = this.spec;
    const lines = [`pipeline ${spec.name}`, `  source       ${kindOf(spec.source)} ${sourceSummary(spec)}`];
    if (spec.eventTime !== undefined)
      lines.push(
        `  event time   ${typeof spec.eventTime === 'string' ? spec.eventTime : `fn ${spec.eventTime.fn}`}${spec.maxFutureSkew === undefined ? '' : ` (at most ${String(spec.maxFutureSkew)} ahead of arrival)`}`,
      );
    for (const n of this.nodes) {
      const indent = '  '.repeat(n.depth);
      lines.push(`${indent}${n.name.padEnd(Math.max(12, n.name.length + 1))} ${n.kind.padEnd(8)} ${n.summary}`);
    }
    const dl = spec.deadLetter ?? { stderr: {} };
    lines.push(`  dead-letter  ${kindOf(dl)} ${sinkSummary(dl)}`);
    return lines.join('\n');
  }
}

/** A bad option or expression in a component's spec (reported as a validation issue at that spec). */
function isConfigurationError(err: unknown): err is ConfigError | ExpressionError {
  return err instanceof ConfigError || err instanceof ExpressionError;
}

function sinkSummary(spec: SinkSpec): string {
  const kind = kindOf(spec);
  return definition<SinkDefinition<unknown>>('sink', kind).summary((spec as Record<string, unknown>)[kind] as never);
}
function sourceSummary(spec: PipelineSpec): string {
  const kind = kindOf(spec.source);
  return definition<SourceDefinition<unknown>>('source', kind).summary(
    (spec.source as Record<string, unknown>)[kind] as never,
  );
}

/** Compiles a pipeline. Throws {@link PipelineValidationError} before any record is read if it is invalid. */
export function compile(pipeline: Pipeline, options?: CompileOptions): CompiledPipeline {
  return new CompiledPipeline(pipeline, options);
}
