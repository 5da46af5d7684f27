import Type, { type Static } from 'typebox';
import type { Sink, SinkDefinition } from '../compile/types.js';
import type { RecordEnvelope } from '../envelope.js';
import { register } from '../registry.js';
import { toJsonLine } from './json.js';

export const stdoutSinkSchema = Type.Object(
  { pretty: Type.Optional(Type.Boolean({ description: 'indent each record (default false: one line each)' })) },
  { additionalProperties: false },
);
export type StdoutSinkSpec = Static<typeof stdoutSinkSchema>;

/** Writes JSON Lines to a stream, waiting for it to drain. */
export class StreamSink implements Sink {
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly pretty = false,
  ) {}
  write(records: readonly RecordEnvelope[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    let text = '';
    for (const r of records) text += `${this.pretty ? JSON.stringify(r.value, null, 2) : toJsonLine(r.value)}\n`;
    return new Promise((resolve, reject) => {
      this.stream.write(text, (err) => (err ? reject(err) : resolve()));
    });
  }
  async close(): Promise<void> {}
}

export const stdoutSink: SinkDefinition<StdoutSinkSpec> = register({
  kind: 'stdout',
  category: 'sink',
  schema: stdoutSinkSchema,
  description: 'Writes each record as JSON to standard output.',
  summary: () => 'standard output',
  create: (spec) => new StreamSink(process.stdout, spec.pretty ?? false),
});

export const stderrSink: SinkDefinition<StdoutSinkSpec> = register({
  kind: 'stderr',
  category: 'sink',
  schema: stdoutSinkSchema,
  description: 'Writes each record as JSON to standard error (the default dead-letter output).',
  summary: () => 'standard error',
  create: (spec) => new StreamSink(process.stderr, spec.pretty ?? false),
});
