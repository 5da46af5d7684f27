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

// ignoreBOM: a U+FEFF is kept as it is (a chunk may start mid-file), as Buffer#toString kept it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads a JSON Lines file in batches. Each line is one record whose sequence number is its line
 * number, so a dead letter names the line. Blank lines are skipped (but counted). Lines are cut
 * at newline bytes and decoded one by one: a line that is not valid UTF-8 keeps its bytes (it is
 * dead-lettered at decode, reason `decode`, with its data in base64) rather than being rewritten
 * with U+FFFD.
 */
export async function* readJsonLines(
  input: NodeJS.ReadableStream,
  options: { batchSize: number; shardId: string; now: () => number },
): AsyncGenerator<SourceBatch> {
  const { batchSize, shardId, now } = options;
  let records: SourceRecord[] = [];
  let lineNo = 0;
  const record = (data: string | Uint8Array): SourceRecord => ({
    data,
    partitionKey: shardId,
    sequenceNumber: String(lineNo),
    line: lineNo,
    arrivalTime: now(),
  });
  const take = (line: string) => {
    lineNo++;
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (text.trim() === '') return;
    records.push(record(text));
  };
  /** A line whose bytes are not UTF-8 (a trailing CR removed). */
  const takeBytes = (bytes: Buffer) => {
    lineNo++;
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 13 ? bytes.length - 1 : bytes.length;
    records.push(record(new Uint8Array(bytes.subarray(0, end))));
  };
  /**
   * The lines of `bytes`, each ended by a newline (`final`: the last may end at the end of the
   * input instead). Decoded as a whole when they are all UTF-8 (the common case), else line by line.
   */
  const lines = (bytes: Buffer, final: boolean) => {
    let text: string | undefined;
    try {
      text = utf8.decode(bytes);
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      let start = 0;
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', start)) {
        take(text.slice(start, i));
        start = i + 1;
      }
      if (final && start < text.length) take(text.slice(start));
      return;
    }
    for (let start = 0; start < bytes.length; ) {
      let end = bytes.indexOf(10, start);
      if (end < 0) {
        if (!final) break;
        end = bytes.length;
      }
      const line = bytes.subarray(start, end);
      let lineText: string | undefined;
      try {
        lineText = utf8.decode(line);
      } catch {
        lineText = undefined;
      }
      if (lineText === undefined) takeBytes(line);
      else take(lineText);
      start = end + 1;
    }
  };
  /** Full batches of the records read so far (the rest waits for more). */
  function* full(): Generator<SourceBatch> {
    if (records.length < batchSize) return;
    let i = 0;
    for (; records.length - i >= batchSize; i += batchSize) yield { shardId, records: records.slice(i, i + batchSize) };
    records = records.slice(i);
  }
  let pending: Buffer[] = [];
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const last = bytes.lastIndexOf(10);
    if (last < 0) {
      pending.push(bytes);
      continue;
    }
    const head = bytes.subarray(0, last + 1);
    const complete = pending.length === 0 ? head : Buffer.concat([...pending, head]);
    pending = last + 1 < bytes.length ? [bytes.subarray(last + 1)] : [];
    lines(complete, false);
    yield* full();
  }
  if (pending.length > 0) lines(Buffer.concat(pending), true);
  yield* full();
  if (records.length > 0) yield { shardId, records };
}

/** The file a file source reads: its path resolved against `baseDir`, or `-` (standard input). */
export function fileSourcePath(spec: FileSourceSpec, baseDir: string): string {
  return spec.path === '-' ? '-' : isAbsolute(spec.path) ? spec.path : resolve(baseDir, spec.path);
}

export const fileSource: SourceDefinition<FileSourceSpec> = register({
  kind: 'file',
  category: 'source',
  schema: fileSourceSchema,
  description:
    "Reads a JSON Lines file (one JSON value per line) in batches. A record's sequence number is its line number; lines that are not valid JSON (or not UTF-8: their data is then base64) go to the dead-letter output with their line number.",
  summary: (spec) => spec.path,
  create(spec, ctx) {
    const path = fileSourcePath(spec, ctx.baseDir);
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
