import {
  type BatchResult,
  type CompiledPipeline,
  compile,
  type DeadLetterRecord,
  MemorySink,
  type Pipeline,
  type SourceBatch,
  type SourceRecord,
} from '@tributary/core';
import type { SchedulerLike, VirtualTimeScheduler } from 'rxjs';

export type Ev = { k: string; t: number; v: number };

/**
 * Advances a virtual scheduler (TestScheduler or VirtualTimeScheduler) to `frame`, then lets the
 * promises of the batches and ticks it started settle.
 */
export function virtualClock(scheduler: VirtualTimeScheduler) {
  return async (frame: number) => {
    scheduler.maxFrames = frame;
    scheduler.flush();
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
}

/** A batch of one shard with explicit sequence numbers. */
export function batch(
  shardId: string,
  events: readonly Ev[],
  firstSeq: number,
  extra: Partial<SourceBatch> = {},
): SourceBatch {
  const records: SourceRecord[] = events.map((e, i) => ({
    value: e,
    partitionKey: e.k,
    sequenceNumber: String(firstSeq + i),
    arrivalTime: 0,
  }));
  return { shardId, records, ...extra };
}

/** Compiles with memory dead-letter and tail collection, and runs batches through `process` (no flush). */
export function harness(p: Pipeline, scheduler?: SchedulerLike) {
  const dead = new MemorySink<DeadLetterRecord>();
  const compiled: CompiledPipeline = compile(p, { deadLetter: dead, collectTail: true, scheduler });
  const out: unknown[] = [];
  const collect = (r: BatchResult) => {
    for (const e of r.tail ?? []) out.push(e.value);
    return r;
  };
  return {
    compiled,
    out,
    dead,
    late: () => dead.values.filter((d) => d.reason === 'late'),
    process: async (b: SourceBatch) => collect(await compiled.process(b)),
    tick: async () => collect(await compiled.tick()),
    flush: async () => collect(await compiled.flush()),
  };
}
