// Window tests as timelines, in the spirit of RxJS marble tests: records with a shard and an
// event time go in, batch by batch, processing time passes, the input ends — and at each point
// the test states the windows emitted since the last look, the records reported late and the
// records dead-lettered. The real compiled pipeline runs on a VirtualTimeScheduler.
//
//   await timeline({ window: { key: 'event.user', tumbling: '1m', aggregate: { n: 'count()' } } })
//     .at('shard-0', '00:00:10', { user: 'a' })
//     .at('shard-1', '00:00:50', { user: 'a' })
//     .at('shard-0', '00:01:20', { user: 'a' })
//     .expectWindows([])
//     .end()
//     .expectWindows([{ key: 'a', start: '00:00', end: '00:01', n: 2 }, { key: 'a', start: '00:01', end: '00:02', n: 1 }])
//     .run();
//
// Records of one shard given one after another are one batch (`batch()` cuts one); `idle(d)`
// lets processing time pass and ticks; `watermark(shard, t)` advances a source's watermark;
// `redeliver(shard, from)` delivers records again (each is counted once).
// Times are milliseconds, clock text (`hh:mm`, `hh:mm:ss`, `hh:mm:ss.mmm`, a leading `-` before
// 0) or durations (`20s`). Every record gets its event time as the field `t` (the pipeline's
// eventTime is `event.t`), its shard's next sequence number (from 1) and its own partition key;
// a late record or dead letter must name its own shard and sequence number. `run()` fails if
// anything was emitted, late or dead-lettered that no expectation stated; after `end()`, with
// `emit: final` and a `count()` aggregate on tumbling or session windows, it also checks that
// every record is in exactly one place: the counts of the windows, plus the late records, plus
// the dead letters, make the input.
import type { Pipeline, SourceRecord } from '@tributary/core';
import { VirtualTimeScheduler } from 'rxjs';
import { expect } from 'vitest';
import { yamlPipeline } from './helpers.js';
import { harness } from './window-helpers.js';

export type Time = number | string;

/**
 * Milliseconds from a time: a number as is, `hh:mm`, `hh:mm:ss` or `hh:mm:ss.mmm` with an optional
 * leading `-`, or a duration such as `20s`, `1m`, `500ms`.
 */
export function ms(time: Time): number {
  if (typeof time === 'number') return time;
  const d = /^(\d+)(ms|s|m|h)$/.exec(time);
  if (d) return Number(d[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[d[2] as 'ms' | 's' | 'm' | 'h'];
  const m = /^(-)?(\d+):(\d\d)(?::(\d\d)(?:\.(\d{3}))?)?$/.exec(time);
  if (!m) throw new Error(`a timeline time is hh:mm, hh:mm:ss or hh:mm:ss.mmm, got ${JSON.stringify(time)}`);
  const [, minus, h, min, s, milli] = m;
  const value = ((Number(h) * 60 + Number(min)) * 60 + Number(s ?? 0)) * 1000 + Number(milli ?? 0);
  return minus ? -value : value;
}

/** An expected window: its key, start and end, and its aggregates by name. */
export type ExpectedWindow = { key: unknown; start: Time; end: Time } & Record<string, unknown>;

/** A record as given to `at`: shard, event time, value. */
export type TimelineRecord = [shard: string, time: Time, value: Record<string, unknown>];

/** A dead-lettered record: shard, event time, value, and the dead letter's reason (and step, when given). */
export type DeadRecord = [...TimelineRecord, why: { reason: string; step?: string }];

/** What a timeline runs: a pipeline, or the YAML window step (as an object) of a pipeline with `eventTime: event.t`. */
export type TimelineInput = Pipeline | { window: Record<string, unknown> };

type Action = (run: Run) => Promise<void> | void;

interface Run {
  h: ReturnType<typeof harness>;
  scheduler: VirtualTimeScheduler;
  seqs: Map<string, number>;
  /** Each record given, by `shard/sequence number`. */
  given: Map<string, SourceRecord>;
  pending: { shard: string; records: SourceRecord[] } | undefined;
  inputs: number;
  seen: { windows: number; late: number; dead: number };
  ended: boolean;
}

export function timeline(input: TimelineInput): Timeline {
  return new Timeline('spec' in input ? input : windowPipeline(input.window));
}

function windowPipeline(window: Record<string, unknown>): Pipeline {
  return yamlPipeline(
    `version: 1\nname: timeline\nsource: { file: { path: in.jsonl } }\neventTime: event.t\nsteps:\n  - window: ${JSON.stringify(window)}\n`,
  );
}

/** The window step's spec, when the pipeline's first window is in YAML form. */
function windowSpecOf(p: Pipeline): Record<string, unknown> | undefined {
  const steps = (p.spec as unknown as { steps?: Record<string, unknown>[] }).steps ?? [];
  return steps.find((s) => s.window !== undefined)?.window as Record<string, unknown> | undefined;
}

export class Timeline {
  private readonly actions: Action[] = [];

  constructor(private readonly pipeline: Pipeline) {}

  /** Makes shards known before they deliver (as a runtime registers the stream's shards). */
  shards(...ids: string[]): this {
    this.actions.push(({ h }) => {
      for (const id of ids) h.compiled.registerShard(id);
    });
    return this;
  }

  /**
   * A record of `shard` at event time `time`. Records of one shard given one after another are
   * one batch; a record of another shard, `batch()`, `idle()`, `end()` or an expectation ends it.
   */
  at(shard: string, time: Time, value: Record<string, unknown>, options: { arrival?: Time } = {}): this {
    this.actions.push(async (run) => {
      const seq = (run.seqs.get(shard) ?? 0) + 1;
      run.seqs.set(shard, seq);
      const record: SourceRecord = {
        value: { ...value, t: ms(time) },
        partitionKey: `${shard}/${seq}`,
        sequenceNumber: String(seq),
        arrivalTime: options.arrival === undefined ? 0 : ms(options.arrival),
      };
      run.given.set(`${shard}/${seq}`, record);
      run.inputs++;
      await this.push(run, shard, record);
    });
    return this;
  }

  /**
   * Delivers again the records of `shard` already given, from sequence number `from` (to `to`),
   * as the event source redelivers after a failure or re-cuts a batch. They join the batch being
   * built; records given after them in the same batch are new.
   */
  redeliver(shard: string, from: number, to = Number.POSITIVE_INFINITY): this {
    this.actions.push(async (run) => {
      for (let seq = from; seq <= Math.min(to, run.seqs.get(shard) ?? 0); seq++) {
        const given = run.given.get(`${shard}/${seq}`) as SourceRecord;
        await this.push(run, shard, { ...given, value: structuredClone(given.value) });
      }
    });
    return this;
  }

  /** Ends the batch being built: the next record starts a new batch, even of the same shard. */
  batch(): this {
    this.actions.push((run) => this.deliver(run));
    return this;
  }

  /** The source of `shard` says no record older than `time` will come (an empty batch with a watermark, as Beam's advanceWatermarkTo). */
  watermark(shard: string, time: Time): this {
    this.actions.push(async (run) => {
      await this.deliver(run);
      await run.h.process({ shardId: shard, records: [], watermark: ms(time) });
    });
    return this;
  }

  /** Processing time passes (virtual time); then the pipeline's tick runs, as a runtime's idle tick would. */
  idle(duration: Time): this {
    this.actions.push(async (run) => {
      await this.deliver(run);
      run.scheduler.schedule(() => {}, ms(duration));
      run.scheduler.flush();
      await run.h.tick();
    });
    return this;
  }

  /** The input ends: every open window is flushed. */
  end(): this {
    this.actions.push(async (run) => {
      await this.deliver(run);
      await run.h.flush();
      run.ended = true;
    });
    return this;
  }

  /** The windows emitted since the last `expectWindows`, in emission order. */
  expectWindows(windows: readonly ExpectedWindow[]): this {
    this.actions.push(async (run) => {
      await this.deliver(run);
      const emitted = run.h.out.slice(run.seen.windows);
      run.seen.windows = run.h.out.length;
      expect(emitted).toEqual(windows.map(windowRecord));
    });
    return this;
  }

  /** The records reported late (the late output) since the last `expectLate`, in order. */
  expectLate(records: readonly TimelineRecord[]): this {
    this.actions.push(async (run) => {
      await this.deliver(run);
      const late = run.h.late();
      const fresh = late.slice(run.seen.late);
      run.seen.late = late.length;
      expect(fresh.map((d) => [d.shardId, d.value])).toEqual(
        records.map(([shard, time, value]) => [shard, { ...value, t: ms(time) }]),
      );
      for (const d of fresh) {
        this.expectOwnPosition(run, d);
        expect(d.error).toMatch(/^too late: every window of event time .* had closed/);
      }
    });
    return this;
  }

  /** The records dead-lettered for another reason than lateness since the last `expectDeadLetters`, in order. */
  expectDeadLetters(records: readonly DeadRecord[]): this {
    this.actions.push(async (run) => {
      await this.deliver(run);
      const dead = this.deadOf(run);
      const fresh = dead.slice(run.seen.dead);
      run.seen.dead = dead.length;
      const got = fresh.map((d, i) => {
        const why = records[i]?.[3];
        return [
          d.shardId,
          d.value,
          why?.step === undefined ? { reason: d.reason } : { reason: d.reason, step: d.step },
        ];
      });
      expect(got).toEqual(records.map(([shard, time, value, why]) => [shard, { ...value, t: ms(time) }, why]));
      for (const d of fresh) this.expectOwnPosition(run, d);
    });
    return this;
  }

  /** Runs the timeline; fails if anything happened that no expectation stated. */
  async run(): Promise<void> {
    const scheduler = new VirtualTimeScheduler();
    const run: Run = {
      h: harness(this.pipeline, scheduler),
      scheduler,
      seqs: new Map(),
      given: new Map(),
      pending: undefined,
      inputs: 0,
      seen: { windows: 0, late: 0, dead: 0 },
      ended: false,
    };
    for (const action of this.actions) await action(run);
    await this.deliver(run);
    expect(run.h.out.slice(run.seen.windows), 'windows no expectation stated').toEqual([]);
    expect(run.h.late().slice(run.seen.late), 'late records no expectation stated').toEqual([]);
    expect(this.deadOf(run).slice(run.seen.dead), 'dead letters no expectation stated').toEqual([]);
    this.expectAccounted(run);
  }

  private deadOf(run: Run) {
    return run.h.dead.values.filter((d) => d.reason !== 'late');
  }

  private async push(run: Run, shard: string, record: SourceRecord): Promise<void> {
    if (run.pending && run.pending.shard !== shard) await this.deliver(run);
    run.pending ??= { shard, records: [] };
    run.pending.records.push(record);
  }

  /** A dead letter names the shard and sequence number of the record it carries. */
  private expectOwnPosition(run: Run, d: { shardId: string; sequenceNumber: string; value?: unknown }) {
    expect(
      run.given.get(`${d.shardId}/${d.sequenceNumber}`)?.value,
      "the record at the dead letter's position",
    ).toEqual(d.value);
  }

  private async deliver(run: Run): Promise<void> {
    const batch = run.pending;
    if (!batch) return;
    run.pending = undefined;
    await run.h.process({ shardId: batch.shard, records: batch.records });
  }

  /** Every record in exactly one place, where the window's counts can tell it. */
  private expectAccounted(run: Run): void {
    const w = windowSpecOf(this.pipeline);
    if (!run.ended || !w || (w.emit ?? 'final') !== 'final') return;
    if (w.tumbling === undefined && w.session === undefined) return;
    const count = Object.entries((w.aggregate ?? {}) as Record<string, unknown>).find(([, a]) => a === 'count()')?.[0];
    if (count === undefined) return;
    const inWindows = (run.h.out as Record<string, number>[]).reduce((n, o) => n + (o[count] ?? 0), 0);
    // A redelivered record is one record: late and dead letters are counted by position.
    const elsewhere = new Set(run.h.dead.values.map((d) => `${d.shardId}/${d.sequenceNumber}`));
    expect(inWindows + elsewhere.size, 'records in windows + late + dead-lettered').toBe(run.inputs);
  }
}

function windowRecord({ key, start, end, ...aggregates }: ExpectedWindow) {
  return { key, windowStart: ms(start), windowEnd: ms(end), ...aggregates };
}
