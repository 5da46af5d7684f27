/**
 * Test harness: runs a pipeline over in-memory input, with the dead-letter output and the
 * records reaching the end of the main steps collected. Uses the same compiled operators as the
 * runtimes.
 */
import { from, lastValueFrom, type SchedulerLike, toArray } from 'rxjs';
import { type BatchResult, compile, type Pipeline } from './compile/compile.js';
import type { DeadLetterRecord, SourceBatch, SourceRecord } from './envelope.js';
import { MemorySink } from './sinks/memory.js';

export interface TestRun<T = unknown> {
  /** Values that reached the end of the main steps. */
  output: T[];
  deadLetters: DeadLetterRecord[];
  results: BatchResult[];
}

export interface BatchOptions {
  shardId?: string;
  batchSize?: number;
  /** Deliver each value as JSON text (`data`) instead of a decoded `value`. Default true. */
  encode?: boolean;
  /** Arrival time of every record. Default 0. */
  arrivalTime?: number;
}

/** Cuts values into source batches of one shard, with sequence numbers 1, 2, 3… */
export function toBatches(values: readonly unknown[], options: BatchOptions = {}): SourceBatch[] {
  const shardId = options.shardId ?? 'shard-0';
  const size = options.batchSize ?? 1000;
  const encode = options.encode ?? true;
  const batches: SourceBatch[] = [];
  for (let i = 0; i < values.length; i += size) {
    const records: SourceRecord[] = values.slice(i, i + size).map((v, j) => {
      const r: SourceRecord = {
        partitionKey: shardId,
        sequenceNumber: String(i + j + 1),
        arrivalTime: options.arrivalTime ?? 0,
      };
      if (encode) r.data = typeof v === 'string' ? v : JSON.stringify(v);
      else r.value = v;
      return r;
    });
    batches.push({ shardId, records });
  }
  return batches;
}

/** Runs `pipeline` over `input` (values, or prepared batches) and collects what came out. */
export async function testPipeline<T = unknown>(
  pipeline: Pipeline,
  input: readonly unknown[] | { batches: readonly SourceBatch[] },
  options: BatchOptions & { scheduler?: SchedulerLike } = {},
): Promise<TestRun<T>> {
  const deadLetter = new MemorySink<DeadLetterRecord>();
  const compiled = compile(pipeline, { deadLetter, collectTail: true, scheduler: options.scheduler });
  const batches = Array.isArray(input) ? toBatches(input, options) : (input as { batches: SourceBatch[] }).batches;
  await compiled.open();
  try {
    const results = await lastValueFrom(from(batches).pipe(compiled.operator(), toArray()));
    return {
      output: results.flatMap((r) => (r.tail ?? []).map((e) => e.value as T)),
      deadLetters: deadLetter.values,
      results,
    };
  } finally {
    await compiled.close();
  }
}
