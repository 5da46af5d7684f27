/**
 * `window`: event-time windowed aggregation (tumbling, hopping, sliding, session).
 *
 * Semantics (Flink / Kafka Streams style):
 * - A record's event time comes from the pipeline's `eventTime` (else its arrival time).
 * - Watermark = lowest over live shards of (max event time seen − outOfOrderness); a shard idle
 *   for longer than `idleTimeout` has its watermark advanced by the processing time beyond it.
 *   The watermark moves between batches.
 * - Windows are half-open [start, end). A window closes when watermark >= end + allowedLateness.
 *   `emit: final` emits each window once, on close; `emit: updates` emits after every batch that
 *   changed it, and a last time on close.
 * - A record whose windows have all closed goes to the late output (default: the dead-letter
 *   output, reason `late`), never silently dropped.
 * - Sessions merge when a record bridges two (windows that touch or overlap merge).
 * - Sliding: one window per record r, looking back: [r − size, r] inclusive, i.e.
 *   windowStart = r − size, windowEnd = r + 1.
 * - At the end of a finite input every open window is emitted.
 * - Per batch, records are pre-aggregated into one delta per (key, window) and applied to the
 *   state store exactly once per (shard, position) — a replayed batch changes nothing.
 */
import { randomUUID } from 'node:crypto';
import Type, { type Static } from 'typebox';
import { evaluationReason, showExpression } from '../compile/reason.js';
import type { BatchContext, CompileContext, NodeInfo, Push, StepDefinition } from '../compile/types.js';
import { durationMs } from '../duration.js';
import { type Emission, emitted, keyText, type RecordEnvelope } from '../envelope.js';
import { ConfigError, DeliveryError } from '../errors.js';
import type { CompiledExpression } from '../expression.js';
import { register } from '../registry.js';
import { ComponentRef, DurationSchema, Expression, FunctionRef, X_EXPECTED } from '../schema.js';
import type { SinkSpec, StoreSpec } from '../spec.js';
import {
  AGGREGATE_OPS,
  type Aggregator,
  aggregatorFor,
  type CompiledAggregate,
  type CustomAggregator,
  comparePositions,
  custom,
  parseAggregate,
  type Stamp,
} from '../windows/aggregates.js';
import { MinHeap } from '../windows/heap.js';
import { RESERVED_FIELDS, type WindowRecordFactory, windowRecordFactory } from '../windows/output.js';
import type {
  SessionState,
  SharedApplyOutcome,
  SharedSessionStore,
  SharedWindowStore,
  StoredShardProgress,
} from '../windows/shared.js';
import {
  type ApplyOutcome,
  classify,
  MemoryWindowStore,
  type StoredWindow,
  type WindowRef,
  WindowState,
  type WindowStore,
} from '../windows/store.js';
import { lowestWatermark } from '../windows/watermarks.js';

export const X_AGGREGATE = 'x-aggregate';

const aggregateSchema = Type.Union(
  [
    Type.String({
      minLength: 1,
      [X_AGGREGATE]: true,
      description:
        'count(), sum(expr), min(expr), max(expr), avg(expr), first(expr), last(expr), count_distinct(expr), collect(expr, limit)',
    }),
    Type.Object(
      {
        aggregate: Type.Union(AGGREGATE_OPS.map((op) => Type.Literal(op))),
        of: Type.Optional(Expression('the aggregated value')),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
      },
      { additionalProperties: false },
    ),
    FunctionRef,
  ],
  {
    [X_EXPECTED]: 'an aggregate such as sum(event.amount), or { fn: "module.js#aggregator" }',
    description: 'an aggregate',
  },
);
export type AggregateSpec = Static<typeof aggregateSchema>;

export const windowSchema = Type.Object(
  {
    key: Type.Optional(Expression('the window key (default: the keyBy key, else one global key)')),
    tumbling: Type.Optional(DurationSchema('tumbling windows of this size')),
    hopping: Type.Optional(
      Type.Object(
        { size: DurationSchema('window size'), every: DurationSchema('a new window starts this often') },
        { additionalProperties: false },
      ),
    ),
    sliding: Type.Optional(DurationSchema('one window per record, looking back this far')),
    session: Type.Optional(
      Type.Object(
        { gap: DurationSchema('a session ends after this much inactivity') },
        { additionalProperties: false },
      ),
    ),
    allowedLateness: Type.Optional(DurationSchema('how long after its end a window still accepts records (default 0)')),
    outOfOrderness: Type.Optional(
      DurationSchema('how far behind the newest event time the watermark stays (default 0)'),
    ),
    idleTimeout: Type.Optional(
      DurationSchema(
        'after this much processing time without records the watermark advances with processing time (default 1m)',
      ),
    ),
    aggregate: Type.Record(Type.String({ minLength: 1 }), aggregateSchema, {
      minProperties: 1,
      propertyNames: {
        not: { enum: [...RESERVED_FIELDS] },
        [X_EXPECTED]: 'a name other than key, windowStart, windowEnd',
      },
      description: 'output field → aggregate',
    }),
    emit: Type.Optional(
      Type.Union([Type.Literal('final'), Type.Literal('updates')], {
        description: 'final (default): once, on close; updates: after each batch that changed it, and on close',
      }),
    ),
    late: Type.Optional(
      Type.Object(
        { sink: ComponentRef<SinkSpec>('sink') },
        { additionalProperties: false, description: 'where too-late records go (default: the dead-letter output)' },
      ),
    ),
    state: Type.Optional(
      Type.Union([Type.Literal('memory'), ComponentRef<StoreSpec>('store')], {
        description:
          'where window state lives: memory (default), or a shared store such as { dynamodb: { table } } or { redis: { url } } (tumbling, hopping and session windows; sliding windows keep state in memory), or { memory: { volatile: true } } to run memory state in Lambda',
      }),
    ),
  },
  {
    additionalProperties: false,
    oneOf: [
      { required: ['tumbling'] },
      { required: ['hopping'] },
      { required: ['sliding'] },
      { required: ['session'] },
    ],
    [X_EXPECTED]: 'exactly one of tumbling, hopping, sliding, session',
  },
);
export type WindowSpec = Static<typeof windowSchema>;

type Kind = 'tumbling' | 'hopping' | 'sliding' | 'session';

type Delta = WindowState;

const windowId = (key: string, start: number, end: number) => `${key}\u0000${start}\u0000${end}`;

/** A time for messages: ISO-8601 when it is a date, else the number itself (−∞, +∞, out of range). */
function timeText(t: number): string {
  return Number.isFinite(t) && Math.abs(t) <= 8.64e15 ? new Date(t).toISOString() : String(t);
}

/**
 * The unit whose records are in order, at which positions are compared (see SourceBatch.ordering):
 * the shard, or the partition key when only a partition key's records are in order. A partition
 * key's records stay in order across shards too (a Kinesis key after resharding, a DynamoDB item
 * whose stream shard is not known), so the key alone names its grain.
 */
function grainOf(env: RecordEnvelope, batch: BatchContext): string {
  return batch.ordering === 'partitionKey' ? `\u0001${env.partitionKey}` : env.shardId;
}

/** A delta's identity in a batch: its window and the grain whose records it holds. */
const deltaId = (key: string, start: number, end: number, grain: string) =>
  `${key}\u0000${start}\u0000${end}\u0000${grain}`;

function positionOf(env: RecordEnvelope): string {
  const sub = env.subSequenceNumber;
  return sub === undefined ? env.sequenceNumber : `${env.sequenceNumber}:${sub}`;
}

export function compileAggregates(spec: WindowSpec, ctx: CompileContext): CompiledAggregate[] {
  return Object.entries(spec.aggregate).map(([name, a]) => {
    if (typeof a === 'string') {
      const parsed = parseAggregate(a);
      return {
        name,
        input: parsed.input === undefined ? undefined : ctx.expression(parsed.input),
        aggregator: aggregatorFor(parsed.op, parsed.limit),
      };
    }
    if ('fn' in a) {
      const agg = ctx.bindings.get(a.fn) as CustomAggregator | undefined;
      if (!agg || typeof agg.add !== 'function' || typeof agg.merge !== 'function') {
        throw new Error(`aggregator \`${a.fn}\` is not bound to an object with init, add, merge and result`);
      }
      return { name, input: undefined, aggregator: custom(agg) };
    }
    return {
      name,
      input: a.of === undefined ? undefined : ctx.expression(a.of),
      aggregator: aggregatorFor(a.aggregate as never, a.limit),
    };
  });
}

export const windowStep: StepDefinition<WindowSpec> = register({
  kind: 'window',
  category: 'step',
  schema: windowSchema,
  description:
    'Aggregates records per key over event-time windows (tumbling, hopping, sliding, session) and emits `{ key, windowStart, windowEnd, <aggregate>: value }`. A window closes when the watermark (lowest over shards of max event time − outOfOrderness) reaches its end + allowedLateness; `final` emits once on close, `updates` after every batch that changed it and on close. Records too late for every window go to `late` (default: the dead-letter output). State is applied exactly once per (shard, sequence number).',
  summary: (spec) => {
    const kind = (['tumbling', 'hopping', 'sliding', 'session'] as const).find((k) => spec[k] !== undefined) as Kind;
    const size =
      kind === 'hopping'
        ? `${spec.hopping?.size} every ${spec.hopping?.every}`
        : kind === 'session'
          ? `gap ${spec.session?.gap}`
          : String(spec[kind]);
    return `${kind} ${size}${spec.key ? ` by ${showExpression(spec.key)}` : ''}: ${Object.keys(spec.aggregate).join(', ')} (${spec.emit ?? 'final'})`;
  },
  compile(spec, node, ctx) {
    return new WindowOperator(spec, node, ctx).link();
  },
});

type Tracked = WindowState;

const FAILED = Symbol('failed');

/** How often a batch re-aggregates around state that other writers keep moving before it fails. */
const MAX_OVERLAP_ROUNDS = 8;

/**
 * In-memory state of one tumbling or hopping window start: the accumulators of every key, and
 * per shard the highest position applied to it. Records of a shard are applied in order, so one
 * position per (window, shard) gives the same exactly-once guarantee as one per (key, window),
 * without an object per key.
 */
class Bucket {
  /**
   * Key → its slot in `keys`/`accs`. A record costs one lookup (the accumulator is then updated
   * in place in the array), where a Map of accumulators would need a get and a set.
   */
  readonly index = new Map<unknown, number>();
  readonly keys: unknown[] = [];
  /** Per slot: the accumulator (a single aggregate), or the array of them. */
  readonly accs: unknown[] = [];
  readonly positions = new Map<string, string>();
  /** Slots changed by the current batch (emit: updates). */
  readonly changed = new Set<number>();
  /** The batch that last touched this bucket, and the position applied before it. */
  batch = 0;
  floor: string | undefined = undefined;
  constructor(
    readonly start: number,
    readonly end: number,
    /** When it fires (end + allowedLateness). */
    readonly at: number,
  ) {}
}

class WindowOperator {
  private readonly kind: Kind;
  private readonly size: number;
  private readonly every: number;
  private readonly lateness: number;
  private readonly ooo: number;
  private readonly idle: number;
  private readonly updates: boolean;
  private readonly keyOf: CompiledExpression | undefined;
  private readonly aggs: CompiledAggregate[];
  private readonly aggregators: Aggregator[];
  private readonly inputs: (CompiledExpression | undefined)[];
  /** Reused per record: the aggregate inputs of the record being added. */
  private readonly values: unknown[];
  private readonly record: WindowRecordFactory;
  private readonly store: WindowStore;
  /** Window state shared by processes (DynamoDB, Redis), when the step has a `state` store. */
  private readonly shared: SharedWindowStore | undefined;
  /** Session windows shared by processes, when a session step has a `state` store. */
  private readonly sessions: SharedSessionStore | undefined;
  /** Claims emissions made by ticks and the end-of-input flush (no batch position to name them). */
  private readonly instance = randomUUID();
  /** Shard progress as last written to the shared store, per shard. */
  private readonly written = new Map<string, StoredShardProgress>();
  /** See isClosed. */
  private readonly retention: number = 0;
  /** Whether the watermark has been read from the shared store since this process started. */
  private synced = false;
  private readonly late: Push | undefined;
  private readonly name: string;
  /** Watermark as of the end of the previous batch (records are judged late against it). */
  private wm = Number.NEGATIVE_INFINITY;
  /** Timers: windows bucketed by the time they fire (or expire), and a heap of those times. */
  private readonly buckets = new Map<number, Tracked[]>();
  private readonly times = new MinHeap<{ at: number }>();
  /** Sessions and sliding windows look tracked windows up by id; tumbling and hopping never do. */
  private readonly byId: Map<string, Tracked> | undefined;
  private tracked = 0;
  /** Tumbling and hopping windows in memory: per window start (see Bucket). */
  private readonly bucketed: boolean;
  private readonly bucketsByStart = new Map<number, Bucket>();
  private readonly bucketTimes = new MinHeap<Bucket>();
  private batches = 0;
  private lastBucket: Bucket | undefined;
  /**
   * Highest position this step has processed per shard. A late record at or below it is a
   * redelivery of a record already applied or already reported late, and is dropped silently.
   */
  private readonly seen = new Map<string, string>();

  constructor(
    spec: WindowSpec,
    node: NodeInfo,
    private readonly ctx: CompileContext,
  ) {
    this.kind = (['tumbling', 'hopping', 'sliding', 'session'] as const).find((k) => spec[k] !== undefined) as Kind;
    this.size = durationMs(
      this.kind === 'hopping'
        ? (spec.hopping?.size ?? 0)
        : this.kind === 'session'
          ? (spec.session?.gap ?? 0)
          : (spec[this.kind] as string | number),
    );
    this.every = this.kind === 'hopping' ? durationMs(spec.hopping?.every ?? 0) : this.size;
    if (this.size <= 0) throw new Error('window size must be greater than 0');
    if (this.every <= 0) throw new Error('hopping `every` must be greater than 0');
    if (this.kind === 'hopping' && this.every > this.size) {
      throw new Error('hopping `every` must not exceed `size` (records would fall between windows)');
    }
    this.lateness = durationMs(spec.allowedLateness ?? 0);
    this.ooo = durationMs(spec.outOfOrderness ?? 0);
    this.idle = durationMs(spec.idleTimeout ?? '1m');
    this.updates = spec.emit === 'updates';
    this.keyOf = spec.key === undefined ? undefined : ctx.expression(spec.key);
    this.aggs = compileAggregates(spec, ctx);
    this.aggregators = this.aggs.map((a) => a.aggregator);
    this.inputs = this.aggs.map((a) => a.input);
    this.values = new Array(this.aggs.length);
    this.record = windowRecordFactory(
      this.aggs.map((a) => a.name),
      this.aggregators,
    );
    this.store = new MemoryWindowStore();
    this.byId = this.kind === 'session' || this.kind === 'sliding' ? new Map() : undefined;
    const stateSpec = spec.state === undefined || spec.state === 'memory' ? undefined : spec.state;
    const stateStore = stateSpec ? ctx.store(stateSpec, `${node.path}/window/state`) : undefined;
    if (stateStore) {
      const scope = {
        namespace: `${ctx.pipelineName}/${node.name}`,
        aggregators: this.aggregators,
        lateness: this.lateness,
      };
      if (this.kind === 'sliding' || (this.kind === 'session' && stateStore.forSessions === undefined)) {
        throw new ConfigError(
          `${this.kind} windows keep their state in process memory; a shared state store (${stateStore.summary}) holds tumbling, hopping${stateStore.forSessions ? ' and session' : ''} windows`,
        );
      }
      if (this.kind === 'session') {
        this.sessions = (stateStore.forSessions as NonNullable<typeof stateStore.forSessions>)(scope);
        this.retention = this.sessions.retention;
      } else {
        this.shared = stateStore.forWindows(scope);
        this.retention = this.shared.retention;
      }
    }
    this.bucketed = (this.kind === 'tumbling' || this.kind === 'hopping') && this.shared === undefined;
    if (this.sessions) ctx.gauge('storedWindows', () => 0);
    this.name = node.name;
    this.late = spec.late
      ? ctx.sink(spec.late.sink, { name: `${node.name}.late`, kind: 'sink', path: `${node.path}/window/late` })
      : undefined;
    ctx.requestTicks(Math.min(Math.max(this.idle / 4, 100), 10_000));
    ctx.gauge('openWindows', () => this.tracked);
    ctx.gauge('storedWindows', () => (this.bucketed ? this.tracked : (this.store as MemoryWindowStore).size));
  }

  link(): (next: Push) => Push {
    if (this.sessions) {
      const sessions = this.sessions;
      return (next) =>
        this.ctx.barrier(
          { name: this.name, kind: 'window', path: '' },
          (records, batch, push) => this.runSharedSessions(sessions, records, batch, push),
          next,
          (batch, push, final) => this.advanceShared(sessions, batch, push, final),
        );
    }
    if (this.shared) {
      const shared = this.shared;
      return (next) =>
        this.ctx.barrier(
          { name: this.name, kind: 'window', path: '' },
          (records, batch, push) => this.runShared(shared, records, batch, push),
          next,
          (batch, push, final) => this.advanceShared(shared, batch, push, final),
        );
    }
    if (this.bucketed) {
      // Aggregation into buckets is synchronous: records are consumed inline in the fused chain
      // (no per-batch buffer); the barrier only finishes the batch and fires windows.
      return (next) => {
        this.ctx.barrier(
          { name: this.name, kind: 'window', path: '' },
          async () => {},
          next,
          (batch, push, final) => this.advance(batch, push, final),
        );
        return (env, batch) => this.addToBuckets(env, batch);
      };
    }
    return (next) =>
      this.ctx.barrier(
        { name: this.name, kind: 'window', path: '' },
        (records, batch, push) => this.run(records, batch, push),
        next,
        (batch, push, final) => this.advance(batch, push, final),
      );
  }

  /**
   * A window closes (fires) at end + allowedLateness. With a shared store a record is judged
   * late only past the store's retention: until then the store itself knows whether its window
   * was emitted (the record is late) or the record is a redelivery (already counted).
   */
  private isClosed(end: number): boolean {
    return end + this.lateness + this.retention <= this.wm;
  }

  private readKey(env: RecordEnvelope, batch: BatchContext): unknown {
    if (!this.keyOf) return env.key === undefined ? null : env.key;
    let k: unknown;
    try {
      k = this.keyOf(env.value);
    } catch (err) {
      batch.deadLetter(env, this.name, evaluationReason(err), err);
      return FAILED;
    }
    const t = typeof k;
    if (k === null || t === 'string' || t === 'number' || t === 'boolean') return k;
    batch.deadLetter(env, this.name, 'expression', `window key is ${t}, expected a string, number, boolean or null`);
    return FAILED;
  }

  /** Fills `this.values` with the record's aggregate inputs; false if one failed (dead-lettered). */
  private readInputs(env: RecordEnvelope, batch: BatchContext): boolean {
    const inputs = this.inputs;
    const values = this.values;
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i];
      if (input === undefined) {
        values[i] = env.value;
        continue;
      }
      try {
        values[i] = input(env.value);
      } catch (err) {
        batch.deadLetter(env, this.name, evaluationReason(err), err);
        return false;
      }
    }
    return true;
  }

  /**
   * Writes the windows a record at `t` belongs to into `out` as start/end pairs (sessions: its gap
   * window; sliding: its point) and returns how many numbers it wrote. `out` is reused: no
   * allocation per record.
   */
  private assign(t: number, out: number[]): number {
    switch (this.kind) {
      case 'session':
        out[0] = t;
        out[1] = t + this.size;
        return 2;
      case 'sliding':
        out[0] = t;
        out[1] = t + 1;
        return 2;
      default: {
        let n = 0;
        for (let s = t - (((t % this.every) + this.every) % this.every); s > t - this.size; s -= this.every) {
          out[n++] = s;
          out[n++] = s + this.size;
        }
        return n;
      }
    }
  }

  private sendLate(env: RecordEnvelope, batch: BatchContext): void {
    if (this.late) this.late(env, batch);
    else {
      batch.deadLetter(
        env,
        this.name,
        'late',
        `too late: every window of event time ${timeText(env.eventTime)} had closed (watermark ${timeText(this.wm)}, allowed lateness ${this.lateness} ms)`,
      );
    }
  }

  private isRedelivery(env: RecordEnvelope, batch: BatchContext): boolean {
    const seen = this.seen.get(grainOf(env, batch));
    return seen !== undefined && comparePositions(positionOf(env), seen) <= 0;
  }

  /**
   * Once the batch is durable, its records count as handled: a later delivery of one of them is a
   * redelivery (not reported late again). Not before: a failed batch's late records must be
   * reported again when it is retried.
   */
  private markSeen(records: readonly RecordEnvelope[], batch: BatchContext): void {
    const last = records[records.length - 1];
    if (!last) return;
    if (batch.ordering === 'partitionKey') {
      // Per grain: the last position of each partition key in the batch (kept in memory only).
      const lastOf = new Map<string, string>();
      for (const env of records) lastOf.set(grainOf(env, batch), positionOf(env));
      batch.afterAck(async () => {
        for (const [grain, p] of lastOf) this.noteSeen(grain, p);
      });
      return;
    }
    batch.afterAck(async () => {
      const p = positionOf(last);
      this.noteSeen(last.shardId, p);
      this.acked.set(last.shardId, p);
    });
  }

  /** Per shard, the last position this process acknowledged (written to a shared store's progress). */
  private readonly acked = new Map<string, string>();

  private noteSeen(shardId: string, p: string): void {
    const seen = this.seen.get(shardId);
    if (seen === undefined || comparePositions(p, seen) > 0) this.seen.set(shardId, p);
  }

  /**
   * Pre-aggregates `records` (of one shard, in order) into one delta per (key, window). With
   * `floors`, records at or below the position already applied to a window are left out of it.
   */
  private preAggregate(
    records: readonly RecordEnvelope[],
    batch: BatchContext,
    floors: Map<string, string> | undefined,
    onlyKey?: string,
  ): { list: Delta[]; late: RecordEnvelope[] } {
    const heads = new Map<unknown, Delta>();
    const list: Delta[] = [];
    const late: RecordEnvelope[] = [];
    const bounds: number[] = [];
    const shardId = batch.shardId;
    const byKey = batch.ordering === 'partitionKey';
    const aggs = this.aggregators;
    const n = aggs.length;
    const values = this.values;
    const stamp: Stamp = { time: 0, shardId, position: '' };
    const session = this.kind === 'session';
    for (let r = 0; r < records.length; r++) {
      const env = records[r] as RecordEnvelope;
      const key = this.readKey(env, batch);
      if (key === FAILED) continue;
      if (onlyKey !== undefined && keyText(key) !== onlyKey) continue;
      if (!this.readInputs(env, batch)) continue;
      const position = positionOf(env);
      const grain = byKey ? grainOf(env, batch) : shardId;
      const nBounds = this.assign(env.eventTime, bounds);
      let placed = false;
      for (let b = 0; b < nBounds; b += 2) {
        const start = bounds[b] as number;
        const end = bounds[b + 1] as number;
        if (!session && this.isClosed(end)) continue;
        placed = true;
        if (floors) {
          const floor = floors.get(deltaId(keyText(key), start, end, grain));
          if (floor !== undefined && comparePositions(position, floor) <= 0) continue;
        }
        const head = heads.get(key);
        let d = head;
        while (d !== undefined && (d.start !== start || d.shardId !== grain)) d = d.nextInBatch;
        if (d === undefined) {
          const acc = new Array<unknown>(n);
          for (let i = 0; i < n; i++) acc[i] = (aggs[i] as Aggregator).init();
          d = new WindowState(keyText(key), key, start, end, acc, grain, position, position);
          if (session) d.records = [];
          d.nextInBatch = head;
          heads.set(key, d);
          list.push(d);
        }
        d.maxPosition = position;
        if (session) d.records?.push(env);
        stamp.time = env.eventTime;
        stamp.position = position;
        const acc = d.acc;
        for (let i = 0; i < n; i++) acc[i] = (aggs[i] as Aggregator).add(acc[i], values[i], stamp);
      }
      if (!placed && !this.isRedelivery(env, batch)) late.push(env);
    }
    for (const d of list) d.nextInBatch = undefined; // the chains were for this batch only
    return { list, late };
  }

  private schedule(tr: Tracked, at: number): void {
    const bucket = this.buckets.get(at);
    if (bucket) bucket.push(tr);
    else {
      this.buckets.set(at, [tr]);
      this.times.push({ at });
    }
  }

  private track(w: StoredWindow): void {
    // With the in-memory store the stored window is the step's own object; otherwise track a copy.
    const tr = w instanceof WindowState ? w : new WindowState(w.key, w.keyValue, w.start, w.end, w.acc, '', '', '');
    const fireAt = w.end + this.lateness;
    tr.fireAt = fireAt;
    // A sliding point at t feeds record windows up to t + size, which fire at t + size + 1 + lateness.
    tr.expireAt = this.kind === 'sliding' ? fireAt + this.size + 1 : fireAt;
    tr.fired = false;
    tr.dead = false;
    this.tracked++;
    this.byId?.set(windowId(w.key, w.start, w.end), tr);
    this.schedule(tr, fireAt);
  }

  /** Per-batch progress of the inline bucket path, keyed by the batch it belongs to. */
  private readonly pendingBatches = new Map<
    BatchContext,
    { id: number; touched: Bucket[]; last: RecordEnvelope | undefined }
  >();
  /** The batch the last record came from and its state (saves a lookup per record). */
  private currentBatch: BatchContext | undefined;
  private currentState: { id: number; touched: Bucket[]; last: RecordEnvelope | undefined } | undefined;
  private readonly stamp: Stamp = { time: 0, shardId: '', position: '' };

  /** Tumbling/hopping in memory: adds one record straight into its window buckets, exactly once per (window, shard). */
  private addToBuckets(env: RecordEnvelope, batch: BatchContext): void {
    let state = this.currentBatch === batch ? this.currentState : this.pendingBatches.get(batch);
    if (state === undefined) {
      state = { id: ++this.batches, touched: [], last: undefined };
      this.pendingBatches.set(batch, state);
      const mine = state;
      // Records added to buckets are applied, even if the batch fails later: a retry must skip them.
      batch.afterFailure(() => {
        if (this.pendingBatches.get(batch) !== mine) return;
        this.pendingBatches.delete(batch);
        if (this.currentBatch === batch) {
          this.currentBatch = undefined;
          this.currentState = undefined;
        }
        const last = mine.last;
        if (last && batch.ordering !== 'partitionKey') {
          for (const b of mine.touched) b.positions.set(last.shardId, positionOf(last));
        }
      });
    }
    this.currentBatch = batch;
    this.currentState = state;
    state.last = env;
    const key = this.readKey(env, batch);
    if (key === FAILED) return;
    if (!this.readInputs(env, batch)) return;
    const position = positionOf(env);
    const t = env.eventTime;
    const aggs = this.aggregators;
    const n = aggs.length;
    const values = this.values;
    const stamp = this.stamp;
    const size = this.size;
    const every = this.every;
    const byKey = batch.ordering === 'partitionKey';
    let placed = false;
    // The windows of `t`: starts aligned to `every`, from the latest down to the first that covers t
    // (tumbling: every = size, one window). No array per record: this is the hottest loop.
    for (let start = t - (((t % every) + every) % every); start > t - size; start -= every) {
      const end = start + size;
      if (this.isClosed(end)) continue;
      placed = true;
      let bucket =
        this.lastBucket !== undefined && this.lastBucket.start === start
          ? this.lastBucket
          : this.bucketsByStart.get(start);
      if (bucket === undefined) {
        bucket = new Bucket(start, end, end + this.lateness);
        this.bucketsByStart.set(start, bucket);
        this.bucketTimes.push(bucket);
      }
      this.lastBucket = bucket;
      if (byKey) {
        // Only a partition key's records are in order: one position per (bucket, grain), per record.
        const grain = grainOf(env, batch);
        const floor = bucket.positions.get(grain);
        if (floor !== undefined && comparePositions(position, floor) <= 0) continue; // applied before
        bucket.positions.set(grain, position);
        if (bucket.batch !== state.id) {
          bucket.batch = state.id;
          state.touched.push(bucket);
        }
      } else if (bucket.batch !== state.id) {
        bucket.batch = state.id;
        const floor = bucket.positions.get(env.shardId);
        // A batch's records come in position order: once one is above the floor, all later ones are.
        bucket.floor = floor !== undefined && comparePositions(position, floor) <= 0 ? floor : undefined;
        state.touched.push(bucket);
      }
      if (bucket.floor !== undefined) {
        if (comparePositions(position, bucket.floor) <= 0) continue; // applied before
        bucket.floor = undefined;
      }
      stamp.time = env.eventTime;
      stamp.shardId = env.shardId;
      stamp.position = position;
      let slot = bucket.index.get(key);
      if (slot === undefined) {
        slot = bucket.keys.length;
        bucket.index.set(key, slot);
        bucket.keys.push(key);
        if (n === 1) bucket.accs.push((aggs[0] as Aggregator).init());
        else {
          const acc = new Array<unknown>(n);
          for (let i = 0; i < n; i++) acc[i] = (aggs[i] as Aggregator).init();
          bucket.accs.push(acc);
        }
        this.tracked++;
      }
      const accs = bucket.accs;
      if (n === 1) accs[slot] = (aggs[0] as Aggregator).add(accs[slot], values[0], stamp);
      else {
        const acc = accs[slot] as unknown[];
        for (let i = 0; i < n; i++) acc[i] = (aggs[i] as Aggregator).add(acc[i], values[i], stamp);
      }
      if (this.updates) bucket.changed.add(slot);
    }
    if (!placed && !this.isRedelivery(env, batch)) this.sendLate(env, batch);
  }

  /** End of a batch on the bucket path: record the positions applied, emit updates. */
  private finishBuckets(batch: BatchContext, next: Push): void {
    const state = this.pendingBatches.get(batch);
    if (state === undefined) return;
    this.pendingBatches.delete(batch);
    if (this.currentBatch === batch) {
      this.currentBatch = undefined;
      this.currentState = undefined;
    }
    const last = state.last as RecordEnvelope;
    const maxPosition = positionOf(last);
    if (batch.ordering !== 'partitionKey') for (const b of state.touched) b.positions.set(last.shardId, maxPosition);
    this.markSeen([last], batch);
    if (this.updates) {
      for (const b of state.touched) {
        const emission = this.emission(b.end, batch);
        for (const slot of b.changed) this.emitBucket(batch, next, b, b.keys[slot], b.accs[slot], emission);
        b.changed.clear();
      }
    }
  }

  private emitBucket(batch: BatchContext, next: Push, b: Bucket, key: unknown, acc: unknown, emission: Emission): void {
    next(emitted(emission, this.record(key, b.start, b.end, acc), key), batch);
  }

  /** Fires the buckets the watermark has closed, and frees them. */
  private fireBuckets(batch: BatchContext, next: Push): void {
    let fired: Bucket[] | undefined;
    for (let b = this.bucketTimes.peek(); b !== undefined && b.at <= this.wm; b = this.bucketTimes.peek()) {
      this.bucketTimes.pop();
      this.bucketsByStart.delete(b.start);
      if (this.lastBucket === b) this.lastBucket = undefined;
      const emission = this.emission(b.end, batch);
      const { keys, accs } = b;
      for (let i = 0; i < keys.length; i++) this.emitBucket(batch, next, b, keys[i], accs[i], emission);
      this.tracked -= keys.length;
      if (fired === undefined) fired = [b];
      else fired.push(b);
    }
    if (fired === undefined) return;
    const again = fired;
    // The output of these windows was not acknowledged: keep them, to fire again on the retry.
    batch.afterFailure(() => {
      for (const b of again) {
        this.bucketsByStart.set(b.start, b);
        this.bucketTimes.push(b);
        this.tracked += b.keys.length;
      }
    });
  }

  private async run(records: RecordEnvelope[], batch: BatchContext, next: Push): Promise<void> {
    if (this.kind === 'session') return this.runSessions(records, batch, next);
    const first = this.preAggregate(records, batch, undefined);
    for (const env of first.late) this.sendLate(env, batch);
    let list = first.list;
    const changed: StoredWindow[] = [];
    // Apply; re-aggregate only the newer records of any delta that overlaps what was applied.
    for (let round = 0; list.length > 0 && round < 3; round++) {
      const outcomes = await this.store.apply(list, this.aggregators);
      let floors: Map<string, string> | undefined;
      for (let i = 0; i < outcomes.length; i++) {
        const o = outcomes[i] as ApplyOutcome;
        if (o.status === 'applied') {
          if (o.created) this.track(o.window);
          if (this.updates) changed.push(o.window);
        } else if (o.status === 'overlap') {
          const d = list[i] as Delta;
          floors ??= new Map();
          floors.set(deltaId(d.key, d.start, d.end, d.shardId), o.appliedUpTo);
        }
      }
      if (!floors) break;
      // Re-reading the records must not dead-letter them a second time.
      const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
      const keep = floors;
      list = this.preAggregate(records, quiet, keep).list.filter((d) =>
        keep.has(deltaId(d.key, d.start, d.end, d.shardId)),
      );
    }
    this.markSeen(records, batch);
    if (this.updates) await this.emitChanged(changed, batch, next);
  }

  /**
   * Sessions: per key, the batch's gap windows and every stored session they touch are merged in
   * one step, with one exactly-once check over all of the key's records in the batch (a shard's
   * records can fall into sessions out of position order, so sessions are not applied one by one).
   */
  private async runSessions(records: RecordEnvelope[], batch: BatchContext, next: Push): Promise<void> {
    const { list } = this.preAggregate(records, batch, undefined);
    // Per key and grain (with `shard` ordering every delta has the batch's shard as its grain).
    const byKey = new Map<string, Delta[]>();
    for (const d of list) {
      const id = `${d.key}\u0000${d.shardId}`;
      const arr = byKey.get(id);
      if (arr) arr.push(d);
      else byKey.set(id, [d]);
    }
    const changed: StoredWindow[] = [];
    for (const deltas of byKey.values()) {
      await this.mergeSessions((deltas[0] as Delta).key, deltas, records, batch, changed);
    }
    this.markSeen(records, batch);
    if (this.updates) await this.emitChanged(changed, batch, next);
  }

  private async mergeSessions(
    key: string,
    deltas: Delta[],
    records: RecordEnvelope[],
    batch: BatchContext,
    changed: StoredWindow[],
  ): Promise<void> {
    const shardId = (deltas[0] as Delta).shardId; // the grain of these deltas
    let minPosition = (deltas[0] as Delta).minPosition;
    let maxPosition = (deltas[0] as Delta).maxPosition;
    for (const d of deltas) {
      if (comparePositions(d.minPosition, minPosition) < 0) minPosition = d.minPosition;
      if (comparePositions(d.maxPosition, maxPosition) > 0) maxPosition = d.maxPosition;
    }
    const touches = (w: WindowRef) => deltas.some((d) => w.start <= d.end && w.end >= d.start);
    const stored = (await this.store.windowsOf(key)).filter(touches);
    let applied: string | undefined;
    for (const w of stored) {
      const p = w.positions[shardId];
      if (p !== undefined && (applied === undefined || comparePositions(p, applied) > 0)) applied = p;
    }
    const verdict = classify(applied, { minPosition, maxPosition });
    if (verdict === 'duplicate') return;
    if (verdict === 'overlap') {
      // Merge again with only this key's records newer than what was applied.
      const newer = records.filter(
        (env) => grainOf(env, batch) === shardId && comparePositions(positionOf(env), applied as string) > 0,
      );
      const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
      const again = this.preAggregate(newer, quiet, undefined, key).list;
      if (again.length > 0) await this.mergeSessions(key, again, records, batch, changed);
      return;
    }
    // A gap window that has closed and touches no open session is late.
    const live = deltas.filter((d) => {
      if (!this.isClosed(d.end) || stored.some((w) => w.start <= d.end && w.end >= d.start)) return true;
      for (const env of d.records ?? []) if (!this.isRedelivery(env, batch)) this.sendLate(env, batch);
      return false;
    });
    if (live.length === 0) return;
    // Union of the stored sessions and the batch's gap windows; touching intervals merge.
    type Part = { start: number; end: number; acc: unknown[]; positions: Record<string, string> };
    const parts: Part[] = [...stored, ...live.map((d) => ({ start: d.start, end: d.end, acc: d.acc, positions: {} }))];
    parts.sort((a, b) => a.start - b.start);
    const keyValue = (deltas[0] as Delta).keyValue;
    const merged: WindowState[] = [];
    for (const p of parts) {
      const last = merged[merged.length - 1];
      if (last && p.start <= last.end) {
        last.end = Math.max(last.end, p.end);
        last.acc = last.acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(a, p.acc[i]));
        for (const [shard, pos] of Object.entries(p.positions)) {
          const cur = last.positionFor(shard);
          if (cur === undefined || comparePositions(pos, cur) > 0) last.setPosition(shard, pos);
        }
      } else {
        const w = new WindowState(key, keyValue, p.start, p.end, [...p.acc], shardId, minPosition, maxPosition);
        w.positions = { ...p.positions };
        merged.push(w);
      }
    }
    for (const w of merged) w.setPosition(shardId, maxPosition);
    for (const w of stored) {
      const id = windowId(w.key, w.start, w.end);
      const tr = this.byId?.get(id);
      if (tr && !tr.dead) {
        tr.dead = true;
        this.tracked--;
      }
      this.byId?.delete(id);
      const i = changed.findIndex((c) => c.key === w.key && c.start === w.start && c.end === w.end);
      if (i >= 0) changed.splice(i, 1);
    }
    await this.store.replace(stored, merged);
    for (const w of merged) {
      this.track(w);
      changed.push(w);
    }
  }

  /**
   * What the results of windows ending at `end` share. A window's end makes its sequence number
   * (and its key the partition key), so a replayed emission carries the same ones.
   */
  private emission(end: number, batch: BatchContext): Emission {
    return {
      source: { partitionKey: '', sequenceNumber: String(end), arrivalTime: this.ctx.scheduler.now() },
      shardId: batch.shardId,
      eventTime: end - 1,
    };
  }

  /** Emits a window's output record `{ key, windowStart, windowEnd, ...aggregates }`. */
  private emit(
    batch: BatchContext,
    next: Push,
    w: StoredWindow,
    start: number,
    end: number,
    acc: readonly unknown[],
    emission: Emission = this.emission(end, batch),
  ): void {
    const out = this.record(w.keyValue, start, end, this.aggs.length === 1 ? acc[0] : acc);
    next(emitted(emission, out, w.keyValue), batch);
  }

  /** Sliding: the window of the record at `t` merges the point windows in [t − size, t]. */
  private async slidingAccumulator(key: string, t: number): Promise<unknown[]> {
    const points = (await this.store.windowsOf(key)).filter((w) => w.start >= t - this.size && w.start <= t);
    return points.reduce<unknown[]>(
      (acc, w) => acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(a, w.acc[i])),
      this.aggregators.map((a) => a.init()),
    );
  }

  private async emitChanged(changed: StoredWindow[], batch: BatchContext, next: Push): Promise<void> {
    if (this.kind !== 'sliding') {
      for (const w of changed) this.emit(batch, next, w, w.start, w.end, w.acc);
      return;
    }
    // A changed point at t changes every record window [r − size, r] with r in [t, t + size].
    const affected = new Map<string, Tracked>();
    for (const w of changed) {
      for (const p of await this.store.windowsOf(w.key)) {
        if (p.start < w.start || p.start > w.start + this.size) continue;
        const id = windowId(p.key, p.start, p.end);
        const tr = this.byId?.get(id);
        if (tr && !tr.fired) affected.set(id, tr);
      }
    }
    for (const tr of affected.values()) {
      this.emit(batch, next, tr, tr.start - this.size, tr.start + 1, await this.slidingAccumulator(tr.key, tr.start));
    }
  }

  /**
   * Sessions in a shared store: per key, the batch's gap windows merge with the key's stored
   * sessions inside one atomic update of the key's item (the merge below runs again if another
   * writer changed it meanwhile). Gap windows that touch a session claimed or emitted already, or
   * that are closed and touch no open session, are late.
   */
  private async runSharedSessions(
    store: SharedSessionStore,
    records: RecordEnvelope[],
    batch: BatchContext,
    next: Push,
  ): Promise<void> {
    if (!this.synced) {
      await this.refreshWatermark(store, [], this.ctx.scheduler.now(), false, false);
      this.synced = true;
    }
    const { list } = this.preAggregate(records, batch, undefined);
    const byKey = new Map<string, Delta[][]>();
    const byGrain = new Map<string, Delta[]>();
    for (const d of list) {
      const id = `${d.key}\u0000${d.shardId}`;
      let g = byGrain.get(id);
      if (!g) {
        g = [];
        byGrain.set(id, g);
        const groups = byKey.get(d.key);
        if (groups) groups.push(g);
        else byKey.set(d.key, [g]);
      }
      g.push(d);
    }
    const results = new Map<string, { late: RecordEnvelope[]; changed: StoredWindow[] }>();
    if (byKey.size > 0) {
      await store.update([...byKey.keys()], (key, current) => {
        const late: RecordEnvelope[] = [];
        const changed: StoredWindow[] = [];
        let state = current;
        for (const deltas of byKey.get(key) ?? [])
          state = this.mergeSession(state, deltas, records, batch, late, changed);
        results.set(key, { late, changed });
        return state;
      });
    }
    for (const r of results.values())
      for (const env of r.late) if (!this.isRedelivery(env, batch)) this.sendLate(env, batch);
    this.markSeen(records, batch);
    if (this.updates)
      for (const r of results.values()) for (const w of r.changed) this.emit(batch, next, w, w.start, w.end, w.acc);
  }

  /** Merges one grain's gap windows of a key into its session state (pure but for `late` and `changed`). */
  private mergeSession(
    state: SessionState,
    deltas: Delta[],
    records: RecordEnvelope[],
    batch: BatchContext,
    late: RecordEnvelope[],
    changed: StoredWindow[],
  ): SessionState {
    const grain = (deltas[0] as Delta).shardId;
    const key = (deltas[0] as Delta).key;
    let minPosition = (deltas[0] as Delta).minPosition;
    let maxPosition = (deltas[0] as Delta).maxPosition;
    for (const d of deltas) {
      if (comparePositions(d.minPosition, minPosition) < 0) minPosition = d.minPosition;
      if (comparePositions(d.maxPosition, maxPosition) > 0) maxPosition = d.maxPosition;
    }
    const touchesAny = (w: WindowRef, ds: readonly WindowRef[]) => ds.some((d) => w.start <= d.end && w.end >= d.start);
    let applied: string | undefined;
    for (const w of [...state.open, ...state.claimed, ...state.emitted]) {
      if (!touchesAny(w, deltas)) continue;
      const p = w.positions[grain];
      if (p !== undefined && (applied === undefined || comparePositions(p, applied) > 0)) applied = p;
    }
    const verdict = classify(applied, { minPosition, maxPosition });
    if (verdict === 'duplicate') return state;
    if (verdict === 'overlap') {
      const floor = applied as string;
      const newer = records.filter(
        (env) => grainOf(env, batch) === grain && comparePositions(positionOf(env), floor) > 0,
      );
      const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
      const again = this.preAggregate(newer, quiet, undefined, key).list.filter((d) => d.shardId === grain);
      return again.length > 0 ? this.mergeSession(state, again, records, batch, late, changed) : state;
    }
    const done = [...state.claimed, ...state.emitted];
    const live: Delta[] = [];
    for (const d of deltas) {
      const hitsDone = touchesAny(d, done);
      if (hitsDone || (this.isClosed(d.end) && !touchesAny(d, state.open))) late.push(...(d.records ?? []));
      else live.push(d);
    }
    if (live.length === 0) return state;
    const touching = state.open.filter((w) => touchesAny(w, live));
    const rest = state.open.filter((w) => !touchesAny(w, live));
    type Part = { start: number; end: number; acc: unknown[]; positions: Record<string, string> };
    const parts: Part[] = [
      ...touching.map((w) => ({ start: w.start, end: w.end, acc: w.acc, positions: w.positions })),
      ...live.map((d) => ({ start: d.start, end: d.end, acc: d.acc, positions: {} })),
    ].sort((a, b) => a.start - b.start);
    const merged: StoredWindow[] = [];
    for (const p of parts) {
      const last = merged[merged.length - 1];
      if (last && p.start <= last.end) {
        last.end = Math.max(last.end, p.end);
        last.acc = last.acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(a, p.acc[i]));
        for (const [g, pos] of Object.entries(p.positions)) {
          const cur = last.positions[g];
          if (cur === undefined || comparePositions(pos, cur) > 0) last.positions[g] = pos;
        }
      } else {
        merged.push({
          key,
          keyValue: (deltas[0] as Delta).keyValue,
          start: p.start,
          end: p.end,
          acc: [...p.acc],
          positions: { ...p.positions },
        });
      }
    }
    for (const w of merged) {
      const cur = w.positions[grain];
      if (cur === undefined || comparePositions(maxPosition, cur) > 0) w.positions[grain] = maxPosition;
      changed.push(w);
    }
    return { open: [...rest, ...merged], claimed: state.claimed, emitted: state.emitted };
  }

  /** Claims and emits the sessions the watermark has closed; they become tombstones once durable. */
  private async emitSessions(
    store: SharedSessionStore,
    batch: BatchContext,
    next: Push,
    claimants: readonly string[],
    now: number,
  ): Promise<void> {
    const due = await store.claimDue((w) => w.end + this.lateness <= this.dueWm, claimants, now);
    if (due.length === 0) return;
    for (const w of due) this.emit(batch, next, w, w.start, w.end, w.acc);
    // Tombstones go once no redelivery could reach them: `retention` of event time past their end.
    const wm = this.finiteWm;
    batch.afterAck(() => store.emitted(due, (t) => t.end + this.lateness + this.retention <= wm));
  }

  /**
   * Shared store: applies the batch's deltas (re-aggregating only newer records where a replay
   * overlaps what was applied); records whose every window was sealed for emission meanwhile go
   * to the late output.
   */
  private async runShared(
    shared: SharedWindowStore,
    records: RecordEnvelope[],
    batch: BatchContext,
    next: Push,
  ): Promise<void> {
    if (!this.synced) {
      // A new process judges its first records against the watermark in the store, not −∞.
      await this.refreshWatermark(shared, [], this.ctx.scheduler.now(), false, false);
      this.synced = true;
    }
    const first = this.preAggregate(records, batch, undefined);
    for (const env of first.late) this.sendLate(env, batch);
    let list = first.list;
    const sealed = new Set<string>();
    const rejected = new Map<string, string>();
    const changed: StoredWindow[] = [];
    const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
    /** Per window, the position up to which this shard's records were already applied. */
    const applied = new Map<string, string>();
    for (let round = 0; list.length > 0; round++) {
      if (round >= MAX_OVERLAP_ROUNDS) {
        // Only a second consumer writing the same shard at the same time keeps this going.
        throw new DeliveryError(
          `${this.name}: window state kept moving under this batch of ${batch.shardId} (another consumer of the shard?); the batch will be retried`,
        );
      }
      const outcomes = await shared.apply(list, batch.shardId);
      let floors: Map<string, string> | undefined;
      for (let i = 0; i < outcomes.length; i++) {
        const o = outcomes[i] as SharedApplyOutcome;
        const d = list[i] as Delta;
        if (o.status === 'applied') {
          if (this.updates) changed.push(o.window);
        } else if (o.status === 'overlap') {
          floors ??= new Map();
          floors.set(deltaId(d.key, d.start, d.end, d.shardId), o.appliedUpTo);
        } else if (o.status === 'closed') sealed.add(deltaId(d.key, d.start, d.end, d.shardId));
        else if (o.status === 'rejected') rejected.set(deltaId(d.key, d.start, d.end, d.shardId), o.reason);
      }
      if (!floors) break;
      const keep = floors;
      for (const [id, floor] of keep) applied.set(id, floor);
      list = this.preAggregate(records, quiet, keep).list.filter((d) =>
        keep.has(deltaId(d.key, d.start, d.end, d.shardId)),
      );
    }
    if (sealed.size > 0 || rejected.size > 0) this.notApplied(records, quiet, batch, sealed, rejected, applied);
    this.markSeen(records, batch);
    if (this.updates) for (const w of changed) this.emit(batch, next, w, w.start, w.end, w.acc);
  }

  /**
   * Records the store did not apply: those whose every window is closed or was sealed for
   * emission go to the late output; those with a window the store rejected, to the dead-letter
   * output with the store's reason.
   */
  private notApplied(
    records: RecordEnvelope[],
    quiet: BatchContext,
    batch: BatchContext,
    sealed: Set<string>,
    rejected: Map<string, string>,
    applied: Map<string, string>,
  ): void {
    const bounds: number[] = [];
    for (const env of records) {
      const key = this.readKey(env, quiet);
      if (key === FAILED) continue;
      const n = this.assign(env.eventTime, bounds);
      const position = positionOf(env);
      let open = false;
      let hit = false;
      let reason: string | undefined;
      for (let b = 0; b < n; b += 2) {
        const id = deltaId(keyText(key), bounds[b] as number, bounds[b + 1] as number, grainOf(env, batch));
        const floor = applied.get(id);
        // Applied by an earlier delivery (before the window was sealed): counted, not late.
        if (floor !== undefined && comparePositions(position, floor) <= 0) open = true;
        else if (sealed.has(id)) hit = true;
        else if (rejected.has(id)) reason ??= rejected.get(id);
        else if (!this.isClosed(bounds[b + 1] as number)) open = true;
      }
      if (reason !== undefined) batch.deadLetter(env, this.name, 'state', reason);
      else if (hit && !open && !this.isRedelivery(env, batch)) this.sendLate(env, batch);
    }
  }

  /**
   * Writes this process's shard progress (`updates`) and moves the watermark to the lowest over
   * every live shard in the store. Progress is written before emission is decided, so of two
   * consumers deciding at once the later sees both; it is written after the batch's state, so a
   * batch that fails later has its window contributions applied already (its retry finds them).
   */
  private async refreshWatermark(
    shared: Pick<SharedWindowStore, 'progress'>,
    updates: StoredShardProgress[],
    now: number,
    final: boolean,
    decide = true,
  ): Promise<void> {
    const all = await shared.progress(updates);
    for (const u of updates) this.written.set(u.shardId, u);
    this.stored = new Map(all.map((p) => [p.shardId, p]));
    // What any consumer acknowledged on a shard is handled: a redelivery of it is a duplicate.
    for (const p of all) if (p.applied !== undefined) this.noteSeen(p.shardId, p.applied);
    const ended = this.ctx.watermarks.ended;
    const open = all.filter((p) => !p.closed);
    let live = open.filter((p) => !p.ended && !ended.has(p.shardId));
    // At the end of a finite input, shards nobody has delivered anything from do not hold back.
    if (final) live = live.filter((p) => p.maxEventTime !== Number.NEGATIVE_INFINITY);
    // Emission: shards whose input ended hold nothing back; if every shard has ended or closed,
    // nothing more can come and every window is due.
    const due =
      all.length > 0 && live.length === 0 ? Number.POSITIVE_INFINITY : lowestWatermark(live, this.ooo, this.idle, now);
    // (Not on the first read of a new process, before its own shards are in the store: after a
    // run that ended every shard, that read would make every range due.)
    if (decide && due > this.dueWm) this.dueWm = due;
    // Lateness: a shard whose input ended may go on in a later run, so records are judged by
    // its progress, not as if it were over (the store then tells late from on time exactly).
    const judged = final
      ? due
      : open.length === 0
        ? due
        : lowestWatermark(
            open.filter((p) => !ended.has(p.shardId) || !p.ended),
            this.ooo,
            this.idle,
            now,
          );
    if (judged > this.wm) this.wm = judged;
    if (Number.isFinite(this.wm) && this.wm > this.finiteWm) this.finiteWm = this.wm;
  }

  /** Every shard's progress as last read from the shared store. */
  private stored = new Map<string, StoredShardProgress>();

  /** The highest finite watermark seen (the end-of-input flush moves `wm` to +∞). */
  private finiteWm = Number.NEGATIVE_INFINITY;

  /** Shared store: the watermark that decides which ranges are due for emission (see refreshWatermark). */
  private dueWm = Number.NEGATIVE_INFINITY;

  /**
   * Shared store: records this process's shard progress, computes the watermark over every live
   * shard in the store, and emits each range it closes that this step can claim.
   */
  private async advanceShared(
    shared: SharedWindowStore | SharedSessionStore,
    batch: BatchContext,
    next: Push,
    final: boolean,
  ): Promise<void> {
    const now = this.ctx.scheduler.now();
    const before = this.wm;
    const dueBefore = this.dueWm;
    batch.afterFailure(() => {
      this.wm = before;
      this.dueWm = dueBefore;
    });
    const marks = this.ctx.watermarks;
    const updates: StoredShardProgress[] = [];
    for (const shardId of new Set([...marks.shardIds, ...marks.ended.keys()])) {
      const p = marks.progress(shardId) ?? marks.ended.get(shardId) ?? this.written.get(shardId);
      if (!p) continue;
      const last = this.written.get(shardId);
      const applied = this.acked.get(shardId);
      const known = this.stored.get(shardId);
      if (
        last === undefined &&
        known !== undefined &&
        !known.ended &&
        !known.closed &&
        p.maxEventTime === Number.NEGATIVE_INFINITY &&
        p.sourceWatermark === Number.NEGATIVE_INFINITY
      ) {
        // Registered here, nothing read from it yet, and already in the store: nothing to add
        // (every process registers every shard; writing them all would cost shards² writes).
        this.written.set(shardId, known);
        continue;
      }
      if (
        last === undefined ||
        last.maxEventTime !== p.maxEventTime ||
        last.sourceWatermark !== p.sourceWatermark ||
        last.lastActivity !== p.lastActivity ||
        (marks.ended.has(shardId) && !last.ended)
      ) {
        const u: StoredShardProgress = {
          shardId,
          maxEventTime: p.maxEventTime,
          sourceWatermark: p.sourceWatermark,
          lastActivity: p.lastActivity,
          closed: false,
        };
        if (applied !== undefined) u.applied = applied;
        if (marks.ended.has(shardId)) u.ended = true;
        updates.push(u);
      }
    }
    for (const shardId of marks.closed) {
      if (this.written.get(shardId)?.closed) continue;
      updates.push({
        shardId,
        maxEventTime: Number.NEGATIVE_INFINITY,
        sourceWatermark: Number.NEGATIVE_INFINITY,
        lastActivity: now,
        closed: true,
      });
    }
    await this.refreshWatermark(shared, updates, now, final);
    this.synced = true;
    // The position a batch acknowledged is written once the batch is durable (its late records
    // have reached the late output): a redelivery of it is then a duplicate for every consumer,
    // and a container that dies right after its last batch has written it already.
    const own = batch.shardId;
    if (own !== '') {
      batch.afterAck(async () => {
        const applied = this.acked.get(own);
        const last = this.written.get(own);
        if (applied === undefined || last === undefined || last.applied === applied) return;
        const u = { ...last, applied };
        await shared.progress([u]);
        this.written.set(own, u);
      });
    }
    // A batch claims in its shard's name: the shard's next batch (its retry, or the one after a
    // batch whose retries ran out) takes over an emission it left unfinished. Where a shard's
    // batches run at once (partition-key ordering), each batch claims in its own name.
    const claimant =
      batch.shardId === ''
        ? `${final ? 'flush' : 'tick'}@${this.instance}`
        : batch.ordering === 'partitionKey' && batch.checkpoint !== undefined
          ? `${batch.shardId}@${batch.checkpoint}`
          : `shard:${batch.shardId}`;
    // At the end of the input, the shards that ended here are this process's: it finishes what
    // their batches claimed and left.
    const mine = final ? [...marks.ended.keys()].map((id) => `shard:${id}`) : [];
    if ('claimDue' in shared) return this.emitSessions(shared, batch, next, [claimant, ...mine], now);
    const due = (await shared.openRanges())
      .filter((r) => r.end + this.lateness <= this.dueWm)
      .sort((a, b) => a.end - b.end || a.start - b.start);
    for (const range of due) {
      let windows = await shared.claim(range, claimant, now);
      for (let i = 0; windows === undefined && i < mine.length; i++)
        windows = await shared.claim(range, mine[i] as string, now);
      if (windows === undefined) continue; // another consumer emits it
      const emission = this.emission(range.end, batch);
      for (const w of windows) this.emit(batch, next, w, w.start, w.end, w.acc, emission);
      batch.afterAck(() => shared.emitted(range));
    }
  }

  /** Advances the watermark and fires (and frees) the windows it closes; at the end of input, all. */
  private async advance(batch: BatchContext, next: Push, final: boolean): Promise<void> {
    const wm = final
      ? Number.POSITIVE_INFINITY
      : this.ctx.watermarks.watermark(this.ooo, this.idle, this.ctx.scheduler.now());
    const before = this.wm;
    batch.afterFailure(() => {
      this.wm = before;
    });
    if (wm > this.wm) this.wm = wm;
    if (this.bucketed) {
      this.finishBuckets(batch, next);
      this.fireBuckets(batch, next);
      return;
    }
    const expired: Tracked[] = [];
    const fired: Tracked[] = [];
    for (let top = this.times.peek(); top !== undefined && top.at <= this.wm; top = this.times.peek()) {
      this.times.pop();
      const at = top.at;
      const bucket = this.buckets.get(at) as Tracked[];
      this.buckets.delete(at);
      // Windows firing together share an end (fireAt − lateness), hence one emission.
      const emission = this.emission(at - this.lateness, batch);
      for (const tr of bucket) {
        if (tr.dead) continue;
        if (!tr.fired && at === tr.fireAt) {
          tr.fired = true;
          fired.push(tr);
          if (this.kind === 'sliding') {
            this.emit(
              batch,
              next,
              tr,
              tr.start - this.size,
              tr.start + 1,
              await this.slidingAccumulator(tr.key, tr.start),
            );
          } else {
            const acc = this.store.live ? tr.acc : (await this.store.get(tr))?.acc;
            if (acc) this.emit(batch, next, tr, tr.start, tr.end, acc, emission);
          }
          if (tr.expireAt > tr.fireAt) {
            this.schedule(tr, tr.expireAt);
            continue;
          }
        } else if (at !== tr.expireAt) continue;
        tr.dead = true;
        this.tracked--;
        if (this.byId) this.byId.delete(windowId(tr.key, tr.start, tr.end));
        expired.push(tr);
      }
    }
    if (fired.length === 0 && expired.length === 0) return;
    // Freed once the output is durable; if the batch fails, these windows fire again on the retry.
    if (expired.length > 0) batch.afterAck(() => this.store.delete(expired));
    batch.afterFailure(() => {
      const refired = new Set(fired);
      for (const tr of expired) {
        tr.dead = false;
        this.tracked++;
        this.byId?.set(windowId(tr.key, tr.start, tr.end), tr);
        if (!refired.has(tr)) this.schedule(tr, tr.expireAt);
      }
      for (const tr of fired) {
        tr.fired = false;
        this.schedule(tr, tr.fireAt);
      }
    });
  }
}
