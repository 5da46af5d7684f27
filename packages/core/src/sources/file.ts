import { createReadStream } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import Type, { type Static } from 'typebox';
import type { SourceDefinition } from '../compile/types.js';
import type { SourceBatch, SourceRecord } from '../envelope.js';
import { register } from '../registry.js';

export const fileSourceSchema = Type.Object(
  {
    path: Type.String({
      minLength: 1,
      description: 'JSON Lines file, relative to the pipeline file; `-` reads standard input',
    }),
    batchSize: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100_000, description: 'records per batch (default 1000)' }),
    ),
    shardId: Type.Optional(
      Type.String({ minLength: 1, description: 'shard id given to the records (default `file`)' }),
    ),
  },
  { additionalProperties: false },
);
export type FileSourceSpec = Static<typeof fileSourceSchema>;

/**
 * Reads a JSON Lines file in batches. Each line is one record whose sequence number is its line
 * number, so a dead letter names the line. Blank lines are skipped (but counted).
 */
export async function* readJsonLines(
  input: NodeJS.ReadableStream,
  options: { batchSize: number; shardId: string; now: () => number },
): AsyncGenerator<SourceBatch> {
  const { batchSize, shardId, now } = options;
  let records: SourceRecord[] = [];
  let lineNo = 0;
  let rest = '';
  const take = (line: string) => {
    lineNo++;
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (text.trim() === '') return;
    records.push({
      data: text,
      partitionKey: shardId,
      sequenceNumber: String(lineNo),
      line: lineNo,
      arrivalTime: now(),
    });
  };
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const text = rest + (typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
    let start = 0;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', start)) {
      take(text.slice(start, i));
      start = i + 1;
      if (records.length >= batchSize) {
        yield { shardId, records };
        records = [];
      }
    }
    rest = text.slice(start);
  }
  if (rest !== '') take(rest);
  if (records.length > 0) yield { shardId, records };
}

export const fileSource: SourceDefinition<FileSourceSpec> = register({
  kind: 'file',
  category: 'source',
  schema: fileSourceSchema,
  description:
    "Reads a JSON Lines file (one JSON value per line) in batches. A record's sequence number is its line number; lines that are not valid JSON go to the dead-letter output with their line number.",
  summary: (spec) => spec.path,
  create(spec, ctx) {
    const path = spec.path === '-' ? '-' : isAbsolute(spec.path) ? spec.path : resolve(ctx.baseDir, spec.path);
    const options = {
      batchSize: spec.batchSize ?? 1000,
      shardId: spec.shardId ?? 'file',
      now: () => ctx.scheduler.now(),
    };
    return {
      batches: () =>
        readJsonLines(path === '-' ? process.stdin : createReadStream(path, { highWaterMark: 1 << 20 }), options),
    };
  },
});
