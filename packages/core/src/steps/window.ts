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
 * - With `keyIsPartitionKey` and state in memory, a runtime that checkpoints holds each shard's
 *   checkpoint back to the oldest record still in an open window, and after a restart replays the
 *   records from there in their original batches against their original watermarks
 *   (`CompiledPipeline.shardCheckpointState`, `resumeShard`): the open windows come back exactly,
 *   and nothing emitted, late or dead-lettered before is produced again.
 */
import Type, { type Static } from 'typebox';
import { showExpression } from '../compile/reason.js';
import type { CompileContext, NodeInfo, StepDefinition } from '../compile/types.js';
import { durationMs } from '../duration.js';
import { ConfigError } from '../errors.js';
import { register } from '../registry.js';
import { ComponentRef, DurationSchema, Expression, FunctionRef, X_EXPECTED } from '../schema.js';
import type { SinkSpec, StoreSpec } from '../spec.js';
import {
  AGGREGATE_OPS,
  aggregatorFor,
  type CompiledAggregate,
  type CustomAggregator,
  custom,
  parseAggregate,
} from '../windows/aggregates.js';
import { BucketedWindows } from '../windows/BucketedWindows.js';
import { MergingWindows } from '../windows/MergingWindows.js';
import { RESERVED_FIELDS, windowRecordFactory } from '../windows/output.js';
import { type LinkedWindows, PerShardWindows } from '../windows/PerShardWindows.js';
import type { StateStore } from '../windows/shared.js';
import { sharedWindowOperators } from '../windows/sharedWindows.js';
import type { WindowKind, WindowOperator, WindowSettings } from '../windows/WindowOperator.js';

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
    keyIsPartitionKey: Type.Optional(
      Type.Boolean({
        description:
          "the stream's partition key is the window key, so each shard holds all of a key's records: windows close on their own shard's watermark (per-partition stream time, as in Kafka Streams) instead of the lowest over every shard (default false)",
      }),
    ),
    state: Type.Optional(
      Type.Union([Type.Literal('memory'), ComponentRef<StoreSpec>('store')], {
        description:
          'where window state lives: memory (default), or a shared store such as { dynamodb: { table } } or { redis: { url } } (every window kind), or { memory: { volatile: true } } to run memory state in Lambda',
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

declare module '../index.js' {
  interface StepKinds {
    window: WindowSpec;
  }
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
        throw new ConfigError(`aggregator \`${a.fn}\` is not bound to an object with init, add, merge and result`);
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

export const windowStepDefinition: StepDefinition<WindowSpec> = register({
  kind: 'window',
  category: 'step',
  module: './steps/window.js',
  schema: windowSchema,
  description:
    'Aggregates records per key over event-time windows (tumbling, hopping, sliding, session) and emits `{ key, windowStart, windowEnd, <aggregate>: value }`. A window closes when the watermark (lowest over shards of max event time − outOfOrderness) reaches its end + allowedLateness; `final` emits once on close, `updates` after every batch that changed it and on close. Records too late for every window go to `late` (default: the dead-letter output). State is applied exactly once per (shard, sequence number).',
  summary: (spec) => {
    const kind = kindOf(spec);
    const size =
      kind === 'hopping'
        ? `${spec.hopping?.size} every ${spec.hopping?.every}`
        : kind === 'session'
          ? `gap ${spec.session?.gap}`
          : String(spec[kind]);
    return `${kind} ${size}${spec.key ? ` by ${showExpression(spec.key)}` : ''}: ${Object.keys(spec.aggregate).join(', ')} (${spec.emit ?? 'final'}${spec.keyIsPartitionKey ? ', per shard' : ''})`;
  },
  compile(spec, node, ctx) {
    return windowOperator(spec, node, ctx).link();
  },
});

function kindOf(spec: WindowSpec): WindowKind {
  return (['tumbling', 'hopping', 'sliding', 'session'] as const).find((k) => spec[k] !== undefined) as WindowKind;
}

/**
 * The operator that runs the spec's windows (see `windows/WindowOperator.ts`): by kind, and by
 * where their state lives.
 */
function windowOperator(spec: WindowSpec, node: NodeInfo, ctx: CompileContext): LinkedWindows {
  const kind = kindOf(spec);
  const size = durationMs(
    kind === 'hopping'
      ? (spec.hopping?.size ?? 0)
      : kind === 'session'
        ? (spec.session?.gap ?? 0)
        : (spec[kind] as string | number),
  );
  const every = kind === 'hopping' ? durationMs(spec.hopping?.every ?? 0) : size;
  if (size <= 0) throw new ConfigError('window size must be greater than 0');
  if (every <= 0) throw new ConfigError('hopping `every` must be greater than 0');
  if (kind === 'hopping' && every > size) {
    throw new ConfigError('hopping `every` must not exceed `size` (records would fall between windows)');
  }
  const lateness = durationMs(spec.allowedLateness ?? 0);
  const ooo = durationMs(spec.outOfOrderness ?? 0);
  const idle = durationMs(spec.idleTimeout ?? '1m');
  const updates = spec.emit === 'updates';
  const keyOf = spec.key === undefined ? undefined : ctx.expression(spec.key);
  const aggs = compileAggregates(spec, ctx);
  const aggregators = aggs.map((a) => a.aggregator);
  const record = windowRecordFactory(
    aggs.map((a) => a.name),
    aggregators,
  );
  const settings: WindowSettings = {
    kind,
    size,
    every,
    lateness,
    ooo,
    idle,
    updates,
    keyOf,
    aggs,
    aggregators,
    record,
    late: spec.late,
  };
  const stateSpec = spec.state === undefined || spec.state === 'memory' ? undefined : spec.state;
  const stateStore = stateSpec ? ctx.store(stateSpec, `${node.path}/window/state`) : undefined;
  const namespace = `${ctx.pipelineName}/${node.name}`;
  if (spec.keyIsPartitionKey) {
    // One operator per shard, each on its shard's watermark (and its own state namespace).
    return new PerShardWindows(
      node,
      ctx,
      (shardCtx, shardId) => operatorFor(settings, node, shardCtx, stateStore, `${namespace}@${shardId}`),
      spec.late?.sink,
      Math.min(Math.max(idle / 4, 100), 10_000),
    );
  }
  return operatorFor(settings, node, ctx, stateStore, namespace);
}

/** The operator for the settings, by window kind and by where the state lives. */
function operatorFor(
  settings: WindowSettings,
  node: NodeInfo,
  ctx: CompileContext,
  stateStore: StateStore | undefined,
  namespace: string,
): WindowOperator {
  const { kind, lateness, aggregators } = settings;
  if (!stateStore) {
    return kind === 'tumbling' || kind === 'hopping'
      ? new BucketedWindows(settings, node, ctx)
      : new MergingWindows(settings, node, ctx);
  }
  const scope = { namespace, aggregators, lateness };
  if ((kind === 'session' || kind === 'sliding') && stateStore.forSessions === undefined) {
    throw new ConfigError(
      `${kind} windows keep their state in process memory; a shared state store (${stateStore.summary}) holds tumbling and hopping windows`,
    );
  }
  const shared = sharedWindowOperators();
  if (!shared) {
    throw new ConfigError(
      `window state in ${stateStore.summary} needs the shared-store window operators (import @tributary/core, or bundle its windows/sharedOperators.js)`,
    );
  }
  if (kind === 'session' || kind === 'sliding') {
    const keyed = (stateStore.forSessions as NonNullable<typeof stateStore.forSessions>)(scope);
    return kind === 'session'
      ? shared.sessions(settings, node, ctx, keyed)
      : shared.sliding(settings, node, ctx, keyed);
  }
  return shared.ranges(settings, node, ctx, stateStore.forWindows(scope));
}
