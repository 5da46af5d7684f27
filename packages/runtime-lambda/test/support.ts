// What the handler tests share: a handler of a pipeline that passes every value it reads on.
import { type DeadLetterRecord, fileSource, MemorySink, pipeline } from '@tributary/core';
import { createHandler, type HandlerOptions } from '@tributary/runtime-lambda';

/**
 * A handler of the pipeline `name` that writes every value it reads to `out` and its dead
 * letters to `dead`; it logs to `lines` unless `options` say otherwise, and `metric()` is the
 * metrics line it logged (Embedded Metric Format).
 */
export function passThroughHandler(name: string, options: HandlerOptions = {}) {
  const out = new MemorySink<unknown>();
  const dead = new MemorySink<DeadLetterRecord>();
  const lines: string[] = [];
  const p = pipeline(name)
    .source(fileSource({ path: '-' }))
    .sink(out)
    .build();
  const handler = createHandler(p, { deadLetter: dead, log: (l) => lines.push(l), ...options });
  const metric = () => lines.map((l) => JSON.parse(l)).find((m) => m._aws !== undefined);
  return { out, dead, handler, lines, metric };
}
