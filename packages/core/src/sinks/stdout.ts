import Type, { type Static } from 'typebox';
import type { Sink, SinkContext, SinkDefinition } from '../compile/types.js';
import type { RecordEnvelope } from '../envelope.js';
import { describeError, TributaryError } from '../errors.js';
import { register } from '../registry.js';
import { jsonLines, toJsonLine } from './json.js';

export const stdoutSinkSchema = Type.Object(
  { pretty: Type.Optional(Type.Boolean({ description: 'indent each record (default false: one line each)' })) },
  { additionalProperties: false },
);
export type StdoutSinkSpec = Static<typeof stdoutSinkSchema>;

declare module '../index.js' {
  interface SinkKinds {
    stdout: StdoutSinkSpec;
    stderr: StdoutSinkSpec;
  }
}

/**
 * Writes JSON Lines to a stream, waiting for it to drain. A record with no JSON form is
 * dead-lettered (reason `sink`), or written in a writable form when there is no dead-letter
 * output to send it to (the sink is itself one).
 */
export class StreamSink implements Sink {
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly pretty = false,
    /** What the stream is, for errors (`standard output`). */
    private readonly name = 'output stream',
  ) {}
  write(records: readonly RecordEnvelope[], context?: SinkContext): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    const text = jsonLines(records, context, this.pretty ? prettyJson : toJsonLine);
    if (text === '') return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.stream.write(text, (err) =>
        err
          ? reject(new TributaryError(`cannot write ${this.name}: ${describeError(err)}`, { cause: err }))
          : resolve(),
      );
    });
  }
  async close(): Promise<void> {}
}

/** Indented JSON text (throws, as toJsonLine does, when the value has no JSON form). */
function prettyJson(value: unknown): string {
  const line = toJsonLine(value); // checks the value can be written
  return line === 'null' ? line : (JSON.stringify(JSON.parse(line), null, 2) ?? 'null');
}

export const stdoutSinkDefinition: SinkDefinition<StdoutSinkSpec> = register({
  kind: 'stdout',
  category: 'sink',
  module: './sinks/stdout.js',
  schema: stdoutSinkSchema,
  description: 'Writes each record as JSON to standard output.',
  summary: () => 'standard output',
  create: (spec) => new StreamSink(process.stdout, spec.pretty ?? false, 'standard output'),
});

export const stderrSinkDefinition: SinkDefinition<StdoutSinkSpec> = register({
  kind: 'stderr',
  category: 'sink',
  module: './sinks/stdout.js',
  schema: stdoutSinkSchema,
  description: 'Writes each record as JSON to standard error (the default dead-letter output).',
  summary: () => 'standard error',
  create: (spec) => new StreamSink(process.stderr, spec.pretty ?? false, 'standard error'),
});
