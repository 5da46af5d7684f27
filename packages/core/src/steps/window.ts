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
import Type, { type Static } from 'typebox';
import { evaluationReason, showExpression } from '../compile/reason.js';
import type { BatchContext, CompileContext, NodeInfo, Push, StepDefinition } from '../compile/types.js';
import { durationMs } from '../duration.js';
import { envelope, type RecordEnvelope, type SourceRecord, withKey } from '../envelope.js';
import type { CompiledExpression } from '../expression.js';
import { register } from '../registry.js';
import { ComponentRef, DurationSchema, Expression, FunctionRef, X_EXPECTED } from '../schema.js';
import type { SinkSpec } from '../spec.js';
import {
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
import {
  classify,
  MemoryWindowStore,
  type StoredWindow,
  type WindowDelta,
  type WindowRef,
  type WindowStore,
} from '../windows/store.js';

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
        aggregate: Type.Union(
          ['count', 'sum', 'min', 'max', 'avg', 'first', 'last', 'count_distinct', 'collect'].map((op) =>
            Type.Literal(op),
          ),
        ),
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
      Type.Union(
        [
          Type.Literal('memory'),
          Type.Object({ memory: Type.Object({}, { additionalProperties: false }) }, { additionalProperties: false }),
        ],
        { description: 'where window state lives (memory; DynamoDB and Redis come with the state package)' },
      ),
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

/** A window the step tracks until it fires and expires. */
interface OpenWindow extends WindowRef {
  keyValue: unknown;
  fireAt: number;
  expireAt: number;
  fired: boolean;
  gen: number;
}

interface Entry {
  at: number;
  id: string;
  gen: number;
  expire: boolean;
}

interface Delta extends WindowDelta {
  /** The raw key (Map key for per-batch grouping). */
  raw: unknown;
  /** Sessions only: the records merged into this delta (they are late if it cannot be placed). */
  records?: RecordEnvelope[];
}

/** Canonical text of a key: distinct for 1 and "1". */
export function keyText(k: unknown): string {
  return JSON.stringify(k) ?? 'null';
}

const windowId = (key: string, start: number, end: number) => `${key}\u0000${start}\u0000${end}`;

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
  private readonly store: WindowStore;
  private readonly late: Push | undefined;
  private readonly name: string;
  /** Watermark as of the end of the previous batch (records are judged late against it). */
  private wm = Number.NEGATIVE_INFINITY;
  private readonly open = new Map<string, OpenWindow>();
  /**
   * Highest position this step has processed per shard. A late record at or below it is a
   * redelivery of a record already applied or already reported late, and is dropped silently.
   */
  private readonly seen = new Map<string, string>();
  private readonly timers = new MinHeap<Entry>();
  private gen = 0;

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
    if (this.kind === 'hopping' && this.every > this.size)
      throw new Error('hopping `every` must not exceed `size` (records would fall between windows)');
    this.lateness = durationMs(spec.allowedLateness ?? 0);
    this.ooo = durationMs(spec.outOfOrderness ?? 0);
    this.idle = durationMs(spec.idleTimeout ?? '1m');
    this.updates = spec.emit === 'updates';
    this.keyOf = spec.key === undefined ? undefined : ctx.expression(spec.key);
    this.aggs = compileAggregates(spec, ctx);
    this.aggregators = this.aggs.map((a) => a.aggregator);
    this.store = new MemoryWindowStore();
    this.name = node.name;
    this.late = spec.late
      ? ctx.sink(spec.late.sink, { name: `${node.name}.late`, kind: 'sink', path: `${node.path}/window/late` })
      : undefined;
    ctx.requestTicks(Math.min(Math.max(this.idle / 4, 100), 10_000));
  }

  link(): (next: Push) => Push {
    return (next) =>
      this.ctx.barrier(
        { name: this.name, kind: 'window', path: '' },
        (records, batch, push) => this.run(records, batch, push),
        next,
        (batch, push, final) => this.advance(batch, push, final),
      );
  }

  /** Close time of a window (when it fires) and when its state may be freed. */
  private times(start: number, end: number): { fireAt: number; expireAt: number } {
    const fireAt = end + this.lateness;
    // A sliding point at t feeds record windows up to t + size, which fire at t + size + 1 + lateness.
    return { fireAt, expireAt: this.kind === 'sliding' ? fireAt + this.size + 1 : fireAt };
  }

  private isClosed(start: number, end: number): boolean {
    return this.times(start, end).fireAt <= this.wm;
  }

  private readKey(env: RecordEnvelope, batch: BatchContext): { ok: boolean; key: unknown } {
    if (!this.keyOf) return { ok: true, key: env.key === undefined ? null : env.key };
    let k: unknown;
    try {
      k = this.keyOf(env.value);
    } catch (err) {
      batch.deadLetter(env, this.name, evaluationReason(err), err);
      return { ok: false, key: undefined };
    }
    const t = typeof k;
    if (k === null || t === 'string' || t === 'number' || t === 'boolean') return { ok: true, key: k };
    batch.deadLetter(env, this.name, 'expression', `window key is ${t}, expected a string, number, boolean or null`);
    return { ok: false, key: undefined };
  }

  private readInputs(env: RecordEnvelope, batch: BatchContext): unknown[] | undefined {
    const n = this.aggs.length;
    const values = new Array<unknown>(n);
    for (let i = 0; i < n; i++) {
      const input = (this.aggs[i] as CompiledAggregate).input;
      if (input === undefined) {
        values[i] = env.value;
        continue;
      }
      try {
        values[i] = input(env.value);
      } catch (err) {
        batch.deadLetter(env, this.name, evaluationReason(err), err);
        return undefined;
      }
    }
    return values;
  }

  /** Windows a record at `t` belongs to (sessions: its own gap window; sliding: its point). */
  private assign(t: number, out: number[]): void {
    out.length = 0;
    switch (this.kind) {
      case 'tumbling': {
        const s = t - (((t % this.size) + this.size) % this.size);
        out.push(s, s + this.size);
        return;
      }
      case 'hopping': {
        let s = t - (((t % this.every) + this.every) % this.every);
        for (; s > t - this.size; s -= this.every) out.push(s, s + this.size);
        return;
      }
      case 'session':
        out.push(t, t + this.size);
        return;
      case 'sliding':
        out.push(t, t + 1);
        return;
    }
  }

  private sendLate(env: RecordEnvelope, batch: BatchContext): void {
    if (this.late) this.late(env, batch);
    else {
      batch.deadLetter(
        env,
        this.name,
        'late',
        `too late: every window of event time ${new Date(env.eventTime).toISOString()} had closed (watermark ${new Date(this.wm).toISOString()}, allowed lateness ${this.lateness} ms)`,
      );
    }
  }

  /** Pre-aggregates `records` (of one shard, in order) into deltas; returns them with the records kept. */
  private preAggregate(
    records: readonly RecordEnvelope[],
    batch: BatchContext,
    since: Map<string, string> | undefined,
    onlyKey?: string,
  ) {
    const deltas = new Map<unknown, Map<number, Delta>>();
    const list: Delta[] = [];
    const late: RecordEnvelope[] = [];
    const bounds: number[] = [];
    const shardId = batch.shardId;
    const aggs = this.aggregators;
    const n = aggs.length;
    const stamp: Stamp = { time: 0, shardId, position: '' };
    for (const env of records) {
      const { ok, key } = this.readKey(env, batch);
      if (!ok) continue;
      let text: string | undefined;
      if (onlyKey !== undefined) {
        text = keyText(key);
        if (text !== onlyKey) continue;
      }
      const position = positionOf(env);
      const values = this.readInputs(env, batch);
      if (!values) continue;
      this.assign(env.eventTime, bounds);
      let placed = false;
      for (let b = 0; b < bounds.length; b += 2) {
        const start = bounds[b] as number;
        const end = bounds[b + 1] as number;
        if (this.kind !== 'session' && this.isClosed(start, end)) continue;
        if (since) {
          const floor = since.get(windowId(text ?? keyText(key), start, end));
          if (floor !== undefined && comparePositions(position, floor) <= 0) {
            placed = true;
            continue;
          }
        }
        placed = true;
        let byStart = deltas.get(key);
        if (!byStart) {
          byStart = new Map();
          deltas.set(key, byStart);
        }
        let d = byStart.get(start);
        if (!d) {
          d = {
            raw: key,
            key: text ?? keyText(key),
            keyValue: key,
            start,
            end,
            acc: aggs.map((a) => a.init()),
            shardId,
            minPosition: position,
            maxPosition: position,
          };
          if (this.kind === 'session') d.records = [];
          byStart.set(start, d);
          list.push(d);
        }
        d.maxPosition = position;
        d.records?.push(env);
        stamp.time = env.eventTime;
        stamp.position = position;
        const acc = d.acc;
        for (let i = 0; i < n; i++) acc[i] = (aggs[i] as Aggregator).add(acc[i], values[i], stamp);
      }
      if (!placed) late.push(env);
    }
    return { list, late: late.filter((env) => !this.isRedelivery(env)) };
  }

  private isRedelivery(env: RecordEnvelope): boolean {
    const seen = this.seen.get(env.shardId);
    return seen !== undefined && comparePositions(positionOf(env), seen) <= 0;
  }

  private markSeen(records: readonly RecordEnvelope[]): void {
    const last = records[records.length - 1];
    if (!last) return;
    const p = positionOf(last);
    const seen = this.seen.get(last.shardId);
    if (seen === undefined || comparePositions(p, seen) > 0) this.seen.set(last.shardId, p);
  }

  private track(w: StoredWindow): void {
    const id = windowId(w.key, w.start, w.end);
    if (this.open.has(id)) return;
    const { fireAt, expireAt } = this.times(w.start, w.end);
    const gen = ++this.gen;
    this.open.set(id, {
      key: w.key,
      keyValue: w.keyValue,
      start: w.start,
      end: w.end,
      fireAt,
      expireAt,
      fired: false,
      gen,
    });
    this.timers.push({ at: fireAt, id, gen, expire: false });
  }

  private async run(records: RecordEnvelope[], batch: BatchContext, next: Push): Promise<void> {
    if (this.kind === 'session') return this.runSessions(records, batch, next);
    let { list, late } = this.preAggregate(records, batch, undefined);
    for (const env of late) this.sendLate(env, batch);
    const changed: StoredWindow[] = [];
    // Apply; re-aggregate only the newer records of any delta that overlaps what was applied.
    for (let round = 0; list.length > 0 && round < 3; round++) {
      const outcomes = await this.store.apply(list, this.aggregators);
      const floors = new Map<string, string>();
      outcomes.forEach((o, i) => {
        const d = list[i] as Delta;
        if (o.status === 'applied') {
          this.track(o.window);
          changed.push(o.window);
        } else if (o.status === 'overlap') floors.set(windowId(d.key, d.start, d.end), o.appliedUpTo);
      });
      if (floors.size === 0) break;
      // Re-reading the records must not dead-letter them a second time.
      const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
      const retry = this.preAggregate(records, quiet, floors);
      list = retry.list.filter((d) => floors.has(windowId(d.key, d.start, d.end)));
      late = [];
    }
    this.markSeen(records);
    if (this.updates) await this.emitChanged(changed, batch, next);
  }

  /** Sessions: merge the batch's records per key, then merge with stored sessions they touch. */
  private async runSessions(records: RecordEnvelope[], batch: BatchContext, next: Push): Promise<void> {
    const { list } = this.preAggregate(records, batch, undefined);
    // Per key, merge the batch's gap windows into batch sessions (touching windows merge).
    const byKey = new Map<string, Delta[]>();
    for (const d of list) {
      const arr = byKey.get(d.key);
      if (arr) arr.push(d);
      else byKey.set(d.key, [d]);
    }
    const changed: StoredWindow[] = [];
    for (const [key, deltas] of byKey) {
      deltas.sort((a, b) => a.start - b.start);
      const sessions: Delta[] = [];
      for (const d of deltas) {
        const last = sessions[sessions.length - 1];
        if (last && d.start <= last.end) {
          last.end = Math.max(last.end, d.end);
          last.acc = last.acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(a, d.acc[i]));
          last.records = [...(last.records ?? []), ...(d.records ?? [])];
          if (comparePositions(d.minPosition, last.minPosition) < 0) last.minPosition = d.minPosition;
          if (comparePositions(d.maxPosition, last.maxPosition) > 0) last.maxPosition = d.maxPosition;
        } else sessions.push({ ...d, acc: [...d.acc], records: [...(d.records ?? [])] });
      }
      for (const s of sessions) await this.mergeSession(key, s, records, batch, changed);
    }
    this.markSeen(records);
    if (this.updates) await this.emitChanged(changed, batch, next);
  }

  private async mergeSession(
    key: string,
    s: Delta,
    records: RecordEnvelope[],
    batch: BatchContext,
    changed: StoredWindow[],
  ): Promise<void> {
    const stored = (await this.store.windowsOf(key)).filter((w) => w.start <= s.end && w.end >= s.start);
    let applied: string | undefined;
    for (const w of stored) {
      const p = w.positions[s.shardId];
      if (p !== undefined && (applied === undefined || comparePositions(p, applied) > 0)) applied = p;
    }
    const verdict = classify(applied, s);
    if (verdict === 'duplicate') return;
    if (verdict === 'overlap') {
      // Keep only this key's records newer than what was applied, and merge those again.
      const newer = records.filter((env) => comparePositions(positionOf(env), applied as string) > 0);
      const quiet = { ...batch, deadLetter: () => {} } as BatchContext;
      const again = this.preAggregate(newer, quiet, undefined, key).list.sort((a, b) => a.start - b.start);
      for (const d of again) await this.mergeSession(key, d, records, batch, changed);
      return;
    }
    if (stored.length === 0 && this.isClosed(s.start, s.end)) {
      for (const env of s.records ?? []) if (!this.isRedelivery(env)) this.sendLate(env, batch);
      return;
    }
    const merged: StoredWindow = {
      key,
      keyValue: s.keyValue,
      start: Math.min(s.start, ...stored.map((w) => w.start)),
      end: Math.max(s.end, ...stored.map((w) => w.end)),
      acc: stored.reduce((acc, w) => acc.map((a, i) => (this.aggregators[i] as Aggregator).merge(w.acc[i], a)), s.acc),
      positions: Object.assign({}, ...stored.map((w) => w.positions)),
    };
    merged.positions[s.shardId] = s.maxPosition;
    for (const w of stored) {
      const id = windowId(w.key, w.start, w.end);
      this.open.delete(id);
      const i = changed.findIndex((c) => c.key === w.key && c.start === w.start && c.end === w.end);
      if (i >= 0) changed.splice(i, 1);
    }
    await this.store.replace(stored, merged);
    this.track(merged);
    changed.push(merged);
  }

  /** The output record of a window. */
  private output(key: unknown, start: number, end: number, acc: readonly unknown[]): Record<string, unknown> {
    const out: Record<string, unknown> = { key, windowStart: start, windowEnd: end };
    for (let i = 0; i < this.aggs.length; i++) {
      const a = this.aggs[i] as CompiledAggregate;
      out[a.name] = a.aggregator.result(acc[i]);
    }
    return out;
  }

  private emit(
    batch: BatchContext,
    next: Push,
    key: string,
    keyValue: unknown,
    start: number,
    end: number,
    acc: readonly unknown[],
  ): void {
    const source: SourceRecord = {
      partitionKey: key,
      sequenceNumber: String(end),
      arrivalTime: this.ctx.scheduler.now(),
    };
    next(withKey(envelope(source, batch.shardId, this.output(keyValue, start, end, acc), end - 1), keyValue), batch);
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
      for (const w of changed) this.emit(batch, next, w.key, w.keyValue, w.start, w.end, w.acc);
      return;
    }
    // A changed point at t changes every record window [r − size, r] with r in [t, t + size].
    const affected = new Map<string, { key: string; keyValue: unknown; t: number }>();
    for (const w of changed) {
      for (const o of this.open.values()) {
        if (o.key === w.key && !o.fired && o.start >= w.start && o.start <= w.start + this.size) {
          affected.set(windowId(o.key, o.start, o.end), { key: o.key, keyValue: o.keyValue, t: o.start });
        }
      }
    }
    for (const a of affected.values()) {
      const acc = await this.slidingAccumulator(a.key, a.t);
      this.emit(batch, next, a.key, a.keyValue, a.t - this.size, a.t + 1, acc);
    }
  }

  /** Advances the watermark and fires (and frees) the windows it closes; at the end of input, all. */
  private async advance(batch: BatchContext, next: Push, final: boolean): Promise<void> {
    const wm = final
      ? Number.POSITIVE_INFINITY
      : this.ctx.watermarks.watermark(this.ooo, this.idle, this.ctx.scheduler.now());
    if (wm > this.wm) this.wm = wm;
    const expired: WindowRef[] = [];
    for (let e = this.timers.peek(); e !== undefined && e.at <= this.wm; e = this.timers.peek()) {
      this.timers.pop();
      const w = this.open.get(e.id);
      if (!w || w.gen !== e.gen) continue;
      if (!e.expire) {
        w.fired = true;
        if (this.kind === 'sliding') {
          const acc = await this.slidingAccumulator(w.key, w.start);
          this.emit(batch, next, w.key, w.keyValue, w.start - this.size, w.start + 1, acc);
        } else {
          const stored = await this.store.get(w);
          if (stored) this.emit(batch, next, w.key, w.keyValue, w.start, w.end, stored.acc);
        }
        if (w.expireAt > w.fireAt) {
          this.timers.push({ at: w.expireAt, id: e.id, gen: w.gen, expire: true });
          continue;
        }
      }
      this.open.delete(e.id);
      expired.push(w);
    }
    if (expired.length > 0) await this.store.delete(expired);
  }
}
