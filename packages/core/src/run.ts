/** Runs a compiled pipeline over its own source (the file runner behind `tributary run`). */
import { from, lastValueFrom, reduce, tap } from 'rxjs';
import type { BatchResult, CompiledPipeline } from './compile/compile.js';
import type { Source } from './compile/types.js';

export interface RunSummary {
  batches: number;
  recordsIn: number;
  recordsOut: number;
  deadLettered: number;
  filtered: number;
  durationMs: number;
}

export async function runPipeline(
  compiled: CompiledPipeline,
  options: { source?: Source; onBatch?: (result: BatchResult, total: RunSummary) => void } = {},
): Promise<RunSummary> {
  const source = options.source ?? compiled.createSource();
  const started = performance.now();
  const total: RunSummary = { batches: 0, recordsIn: 0, recordsOut: 0, deadLettered: 0, filtered: 0, durationMs: 0 };
  await compiled.open();
  try {
    await lastValueFrom(
      from(source.batches()).pipe(
        compiled.operator(),
        tap((r) => {
          total.batches++;
          total.recordsIn += r.recordsIn;
          total.recordsOut += r.recordsOut;
          total.deadLettered += r.deadLettered;
          total.filtered += r.filtered;
          total.durationMs = performance.now() - started;
          options.onBatch?.(r, total);
        }),
        reduce((n) => n + 1, 0),
      ),
      { defaultValue: 0 },
    );
  } finally {
    await source.close?.();
    await compiled.close();
  }
  total.durationMs = performance.now() - started;
  return total;
}
