/**
 * The base of the window step's operators (see `steps/window.ts` for the semantics). One operator
 * class per way of keeping window state:
 *
 * - BucketedWindows: tumbling and hopping windows in memory, per window start;
 * - MergingWindows: sessions and sliding windows in memory (windows that merge or overlap per record);
 * - SharedRangeWindows: tumbling and hopping windows in a shared store (DynamoDB, Redis);
 * - SharedSessionWindows: session windows in a shared store.
 *
 * What they share lives here: reading a record's key and aggregate inputs, assigning it to
 * windows, pre-aggregating a batch into deltas, late handling, and emission.
 */
import { MAX_EVENT_TIME } from '../compile/eventTime.js';
import { evaluationReason } from '../compile/reason.js';
import type { BatchContext, CompileContext, NodeInfo, Push } from '../compile/types.js';
import { type Emission, emitted, keyText, type RecordEnvelope } from '../envelope.js';
import type { CompiledExpression } from '../expression.js';
import { comparePositions, positionOf } from '../position.js';
import type { SinkSpec } from '../spec.js';
import type { Aggregator, CompiledAggregate, Stamp } from './aggregates.js';
import type { WindowRecordFactory } from './output.js';
import { type StoredWindow, WindowState } from './store.js';

export type WindowKind = 'tumbling' | 'hopping' | 'sliding' | 'session';

export type Delta = WindowState;

/** A window step's settings, as `steps/window.ts` compiles them from its spec. */
export interface WindowSettings {
  readonly kind: WindowKind;
  /** Window size in ms (sessions: the gap). */
  readonly size: number;
  /** Hopping: how often a window starts, in ms; else the size. */
  readonly every: number;
  readonly lateness: number;
  readonly ooo: number;
  readonly idle: number;
  /** `emit: updates`. */
  readonly updates: boolean;
  readonly keyOf: CompiledExpression | undefined;
  readonly aggs: CompiledAggregate[];
  readonly aggregators: Aggregator[];
  readonly record: WindowRecordFactory;
  /** Where too-late records go (`late` of the window spec); default the dead-letter output. */
  readonly late: { sink: SinkSpec } | undefined;
}

export const FAILED = Symbol('failed');

/** Where the output of a replayed batch goes (see BatchContext.replay): nowhere. */
export const DROPPED: Push = () => {};

/** How a window operator advances after a batch or tick (see WindowOperator.replayMode). */
export type AdvanceMode = 'normal' | 'replay' | 'skip';

/** A time for messages: ISO-8601 when it is a date, else the number itself (−∞, +∞, out of range). */
function timeText(t: number): string {
  return Number.isFinite(t) && Math.abs(t) <= MAX_EVENT_TIME ? new Date(t).toISOString() : String(t);
}

/**
 * The unit whose records are in order, at which positions are compared (see SourceBatch.ordering):
 * the shard, or the partition key when only a partition key's records are in order. A partition
 * key's records stay in order across shards too (a Kinesis key after resharding, a DynamoDB item
 * whose stream shard is not known), so the key alone names its grain.
 */
export function grainOf(env: RecordEnvelope, batch: BatchContext): string {
  return batch.ordering === 'partitionKey' ? `\u0001${env.partitionKey}` : env.shardId;
}

/** A delta's identity in a batch: its window and the grain whose records it holds. */
export const deltaId = (key: string, start: number, end: number, grain: string) =>
  `${key}\u0000${start}\u0000${end}\u0000${grain}`;

export abstract class WindowOperator {
  protected readonly kind: WindowKind;
  protected readonly size: number;
  protected readonly every: number;
  protected readonly lateness: number;
  protected readonly ooo: number;
  protected readonly idle: number;
  protected readonly updates: boolean;
  protected readonly keyOf: CompiledExpression | undefined;
  protected readonly aggs: CompiledAggregate[];
  protected readonly aggregators: Aggregator[];
  protected readonly inputs: (CompiledExpression | undefined)[];
  /** Reused per record: the aggregate inputs of the record being added. */
  protected readonly values: unknown[];
  protected readonly record: WindowRecordFactory;
  /** See isClosed. */
  protected readonly retention: number;
  protected readonly late: Push | undefined;
  protected readonly name: string;
  /** Watermark as of the end of the previous batch (records are judged late against it). */
  protected wm = Number.NEGATIVE_INFINITY;
  /**
   * Highest position this step has processed per shard. A late record at or below it is a
   * redelivery of a record already applied or already reported late, and is dropped silently.
   */
  protected readonly seen = new Map<string, string>();

  protected constructor(
    settings: WindowSettings,
    node: NodeInfo,
    protected readonly ctx: CompileContext,
    /** How long a shared store keeps a window's state after it closes (0 in memory; see isClosed). */
    retention: number,
  ) {
    this.kind = settings.kind;
    this.size = settings.size;
    this.every = settings.every;
    this.lateness = settings.lateness;
    this.ooo = settings.ooo;
    this.idle = settings.idle;
    this.updates = settings.updates;
    this.keyOf = settings.keyOf;
    this.aggs = settings.aggs;
    this.aggregators = settings.aggregators;
    this.inputs = this.aggs.map((a) => a.input);
    this.values = new Array(this.aggs.length);
    this.record = settings.record;
    this.retention = retention;
    this.name = node.name;
    this.late = settings.late
      ? ctx.sink(settings.late.sink, { name: `${node.name}.late`, kind: 'sink', path: `${node.path}/window/late/sink` })
      : undefined;
    ctx.requestTicks(Math.min(Math.max(this.idle / 4, 100), 10_000));
    ctx.gauge('openWindows', () => this.openWindows());
    ctx.gauge('storedWindows', () => this.storedWindows());
  }

  /** The step in the compiled chain: a push that takes the step's records, given the next one. */
  abstract link(): (next: Push) => Push;

  /**
   * While the shard's held-back records are replayed (see `CompiledPipeline.resumeShard`): the
   * watermark each replayed batch was judged against when it was first processed, and the one
   * after the last.
   */
  private replayPlan: { marks: readonly number[]; final: number } | undefined;

  /** The watermark the next batch is judged against. */
  currentWatermark(): number {
    return this.wm;
  }

  /**
   * Starts a replay: each replayed batch is judged against the watermark its original batch was
   * (so records land in the same windows and sessions, and the same ones are late), and once the
   * last is replayed the watermark is the saved one. Ticks do not move it meanwhile.
   */
  resumeReplay(marks: readonly number[], final: number): void {
    this.wm = marks.length > 0 ? (marks[0] as number) : final;
    this.replayPlan = marks.length > 0 ? { marks, final } : undefined;
  }

  /**
   * How `advance` goes on after `batch`: `normal` (the watermark moves with the shards' progress);
   * `replay` (a replayed batch: the watermark is the next one of the plan, and what fires was
   * emitted before the checkpoint: its output is dropped); `skip` (a tick during a replay).
   */
  protected replayMode(batch: BatchContext, final: boolean): AdvanceMode {
    const plan = this.replayPlan;
    if (plan === undefined) return 'normal';
    if (final) {
      this.replayPlan = undefined;
      return 'normal';
    }
    if (batch.replay === undefined) return 'skip';
    const before = this.wm;
    batch.afterFailure(() => {
      this.wm = before;
      this.replayPlan = plan;
    });
    const i = batch.replay + 1;
    if (i < plan.marks.length) this.wm = plan.marks[i] as number;
    else {
      this.wm = plan.final;
      this.replayPlan = undefined;
    }
    return 'replay';
  }

  /** Windows open in this process (the `openWindows` gauge). */
  protected abstract openWindows(): number;

  /** Windows whose state this process holds (the `storedWindows` gauge). */
  protected abstract storedWindows(): number;

  /** State in memory: advances the watermark over this process's shards (at the end of input, to +∞). */
  protected advanceWatermark(batch: BatchContext, final: boolean): void {
    const wm = final
      ? Number.POSITIVE_INFINITY
      : this.ctx.watermarks.watermark(this.ooo, this.idle, this.ctx.scheduler.now());
    const before = this.wm;
    batch.afterFailure(() => {
      this.wm = before;
    });
    if (wm > this.wm) this.wm = wm;
  }

  /**
   * A window closes (fires) at end + allowedLateness. With a shared store a record is judged
   * late only past the store's retention: until then the store itself knows whether its window
   * was emitted (the record is late) or the record is a redelivery (already counted).
   */
  protected isClosed(end: number): boolean {
    return end + this.lateness + this.retention <= this.wm;
  }

  protected readKey(env: RecordEnvelope, batch: BatchContext): unknown {
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

  /**
   * Fills `this.values` with the record's aggregate inputs; false if one failed or is of a type
   * its aggregate does not take (the record is dead-lettered).
   */
  protected readInputs(env: RecordEnvelope, batch: BatchContext): boolean {
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
      // A value of the wrong type for its aggregate (text given to sum): the record is not added anywhere.
      const problem = this.aggregators[i]?.check?.(values[i]);
      if (problem !== undefined) {
        batch.deadLetter(
          env,
          this.name,
          'expression',
          `aggregate \`${(this.aggs[i] as CompiledAggregate).name}\`: ${problem}`,
        );
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
  protected assign(t: number, out: number[]): number {
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

  protected sendLate(env: RecordEnvelope, batch: BatchContext): void {
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

  protected isRedelivery(env: RecordEnvelope, batch: BatchContext): boolean {
    const seen = this.seen.get(grainOf(env, batch));
    return seen !== undefined && comparePositions(positionOf(env), seen) <= 0;
  }

  /**
   * Once the batch is durable, its records count as handled: a later delivery of one of them is a
   * redelivery (not reported late again). Not before: a failed batch's late records must be
   * reported again when it is retried.
   */
  protected markSeen(records: readonly RecordEnvelope[], batch: BatchContext): void {
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
  protected readonly acked = new Map<string, string>();

  protected noteSeen(shardId: string, p: string): void {
    const seen = this.seen.get(shardId);
    if (seen === undefined || comparePositions(p, seen) > 0) this.seen.set(shardId, p);
  }

  /**
   * Pre-aggregates `records` (of one shard, in order) into one delta per (key, window). With
   * `floors`, records at or below the position already applied to a window are left out of it.
   */
  protected preAggregate(
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

  /**
   * What the results of windows ending at `end` share. A window's end makes its sequence number
   * (and its key the partition key), so a replayed emission carries the same ones.
   */
  protected emission(end: number, batch: BatchContext): Emission {
    return {
      source: { partitionKey: '', sequenceNumber: String(end), arrivalTime: this.ctx.scheduler.now() },
      shardId: batch.shardId,
      eventTime: end - 1,
    };
  }

  /** Emits a window's output record `{ key, windowStart, windowEnd, ...aggregates }`. */
  protected emit(
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
}
