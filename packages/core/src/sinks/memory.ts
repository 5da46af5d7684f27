import Type from 'typebox';
import { boundObject } from '../bindings.js';
import type { Sink, SinkDefinition } from '../compile/types.js';
import type { RecordEnvelope } from '../envelope.js';
import { register } from '../registry.js';

declare module '../index.js' {
  interface SinkKinds {
    ref: string;
  }
}

/** Keeps records in memory: for tests, benchmarks and embedding. */
export class MemorySink<T = unknown> implements Sink {
  readonly records: RecordEnvelope<T>[] = [];
  batches = 0;
  get values(): T[] {
    return this.records.map((r) => r.value);
  }
  async write(records: readonly RecordEnvelope[]): Promise<void> {
    this.batches++;
    for (const r of records) this.records.push(r as RecordEnvelope<T>);
  }
  clear(): void {
    this.records.length = 0;
    this.batches = 0;
  }
  async close(): Promise<void> {}
}

export const refSinkSchema = Type.String({
  minLength: 1,
  description: 'name of a sink object bound by the TypeScript builder',
});

/** `ref`: a sink object supplied in code (the builder binds it by name). */
export const refSinkDefinition: SinkDefinition<string> = register({
  kind: 'ref',
  category: 'sink',
  module: './sinks/memory.js',
  schema: refSinkSchema,
  description: 'A sink object supplied in TypeScript (`.sink(new MemorySink())` binds it under a generated name).',
  summary: (name) => name,
  create: (name, ctx) =>
    boundObject(ctx.bindings, name, 'sink', (v): v is Sink => !!v && typeof (v as Sink).write === 'function'),
});
