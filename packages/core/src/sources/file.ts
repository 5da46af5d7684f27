import { createReadStream } from 'node:fs';
import Type, { type Static } from 'typebox';
import { markOversized } from '../compile/decode.js';
import type { Source, SourceDefinition } from '../compile/types.js';
import { MAX_RECORD_BYTES, type SourceBatch, type SourceRecord } from '../envelope.js';
import { register } from '../registry.js';
import { fileSourcePath } from './path.js';

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

declare module '../index.js' {
  interface SourceKinds {
    file: FileSourceSpec;
  }
}

// ignoreBOM: a U+FEFF is kept as it is (a chunk may start mid-file); a BOM starting line 1 is removed by hand.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** How much of a line over {@link MAX_RECORD_BYTES} is kept, for its dead letter. */
export const OVERSIZED_PREFIX_BYTES = 1024;

/** The first `n` bytes of `bytes`, cut back to a UTF-8 character boundary. */
function prefixOf(bytes: Buffer, n: number): Uint8Array {
  let end = Math.min(n, bytes.length);
  // Not in the middle of a character: back to the start of the one the cut falls in.
  for (let k = 0; k < 3 && end > 0 && end < bytes.length && ((bytes[end] as number) & 0xc0) === 0x80; k++) end--;
  return new Uint8Array(bytes.subarray(0, end));
}

/**
 * `next`, or `stop` when `signal` aborts first, or `time` after `ms`. (A fresh promise each time,
 * with its listener and timer removed after: racing a long-lived promise would keep every chunk.)
 */
function nextOrWake<T>(
  next: Promise<T>,
  signal: AbortSignal | undefined,
  ms: number | undefined,
): Promise<T | 'stop' | 'time'> {
  return new Promise((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => done('stop');
    const done = (v: T | 'stop' | 'time') => {
      signal?.removeEventListener('abort', onAbort);
      if (timer !== undefined) clearTimeout(timer);
      resolve(v);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (ms !== undefined) timer = setTimeout(() => done('time'), ms);
    next.then(done, (err: unknown) => {
      signal?.removeEventListener('abort', onAbort);
      if (timer !== undefined) clearTimeout(timer);
      reject(err);
    });
  });
}

/** Options of {@link readJsonLines}. */
export interface ReadJsonLinesOptions {
  batchSize: number;
  shardId: string;
  now: () => number;
  /**
   * Hand over a batch when this many milliseconds have passed since its first line arrived, even
   * if it has fewer than `batchSize` lines (slow streaming input, e.g. standard input). Default: off.
   */
  maxWaitMs?: number;
  /** When it aborts, the complete lines read so far are handed over (a last batch) and reading ends. */
  stop?: AbortSignal;
}

/**
 * Reads a JSON Lines file in batches. Each line is one record whose sequence number is its line
 * number, so a dead letter names the line. Blank lines are skipped (but counted); a UTF-8 BOM
 * starting the first line is removed. Lines are cut at newline bytes and decoded one by one: a line
 * that is not valid UTF-8 keeps its bytes (it is dead-lettered at decode, reason `decode`, with its
 * data in base64) rather than being rewritten with U+FFFD. A line over {@link MAX_RECORD_BYTES} is
 * never held whole: the rest of it is skipped up to its newline, and it becomes a record holding
 * its first {@link OVERSIZED_PREFIX_BYTES} bytes that decoding dead-letters (`record exceeds …`).
 * Memory stays bounded (about the record limit plus one chunk) whatever the input.
 */
export async function* readJsonLines(
  input: NodeJS.ReadableStream,
  options: ReadJsonLinesOptions,
): AsyncGenerator<SourceBatch> {
  const { batchSize, shardId, now, maxWaitMs, stop } = options;
  let records: SourceRecord[] = [];
  let lineNo = 0;
  const record = (data: string | Uint8Array): SourceRecord => ({
    data,
    partitionKey: shardId,
    sequenceNumber: String(lineNo),
    line: lineNo,
    arrivalTime: now(),
  });
  /** A line over the limit: a record of its first bytes that decoding dead-letters. */
  const takeOversized = (prefix: Uint8Array, bytes: number) => {
    const r = record(prefix);
    markOversized(r, bytes, prefix.byteLength);
    records.push(r);
  };
  const take = (line: string) => {
    lineNo++;
    let text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (lineNo === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') return;
    if (text.length * 3 > MAX_RECORD_BYTES) {
      const bytes = Buffer.from(text, 'utf8');
      if (bytes.length > MAX_RECORD_BYTES) return takeOversized(prefixOf(bytes, OVERSIZED_PREFIX_BYTES), bytes.length);
    }
    records.push(record(text));
  };
  /** A line whose bytes are not UTF-8 (a trailing CR removed). */
  const takeBytes = (bytes: Buffer) => {
    lineNo++;
    const start = lineNo === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
    const end = bytes.length > start && bytes[bytes.length - 1] === 13 ? bytes.length - 1 : bytes.length;
    if (end - start > MAX_RECORD_BYTES) return takeOversized(prefixOf(bytes, OVERSIZED_PREFIX_BYTES), end - start);
    records.push(record(new Uint8Array(bytes.subarray(start, end))));
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
  /** Every record held, in batches of at most `batchSize`. */
  function* rest(): Generator<SourceBatch> {
    yield* full();
    if (records.length > 0) yield { shardId, records };
    records = [];
  }

  // The bytes of an unfinished line (at most the record limit plus its CR), or, once it is longer,
  // only its first bytes and its length while the rest of it is skipped.
  const limit = MAX_RECORD_BYTES + 1;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let skipping: { prefix: Uint8Array; bytes: number } | undefined;
  const hold = (b: Buffer) => {
    if (b.length === 0) return;
    pending.push(b);
    pendingBytes += b.length;
    if (pendingBytes > limit) {
      const prefix = Buffer.concat(pending, Math.min(OVERSIZED_PREFIX_BYTES + 4, pendingBytes));
      skipping = { prefix: prefixOf(prefix, OVERSIZED_PREFIX_BYTES), bytes: pendingBytes };
      pending = [];
      pendingBytes = 0;
    }
  };
  const endSkipped = () => {
    const s = skipping as { prefix: Uint8Array; bytes: number };
    skipping = undefined;
    lineNo++;
    takeOversized(s.prefix, s.bytes);
  };
  const consume = (bytes: Buffer) => {
    let pos = 0;
    if (skipping) {
      const nl = bytes.indexOf(10);
      if (nl < 0) {
        skipping.bytes += bytes.length;
        return;
      }
      skipping.bytes += nl;
      endSkipped();
      pos = nl + 1;
    }
    const last = bytes.lastIndexOf(10);
    if (last < pos) {
      hold(bytes.subarray(pos));
      return;
    }
    const head = bytes.subarray(pos, last + 1);
    const complete = pending.length === 0 ? head : Buffer.concat([...pending, head]);
    pending = [];
    pendingBytes = 0;
    lines(complete, false);
    hold(bytes.subarray(last + 1));
  };

  const it = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  let next: Promise<IteratorResult<Buffer | string>> | undefined;
  let firstAt = 0; // when the oldest record held arrived (Date.now), for maxWaitMs
  let ended = false;
  try {
    for (;;) {
      if (stop?.aborted) break;
      next ??= it.next();
      const ms =
        maxWaitMs !== undefined && records.length > 0 ? Math.max(0, firstAt + maxWaitMs - Date.now()) : undefined;
      const got = stop === undefined && ms === undefined ? await next : await nextOrWake(next, stop, ms);
      if (got === 'stop') break;
      if (got === 'time') {
        yield* rest();
        continue;
      }
      next = undefined;
      if (got.done) {
        ended = true;
        break;
      }
      const chunk = got.value;
      const before = records.length;
      consume(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
      if (records.length > 0 && (before === 0 || records.length >= batchSize)) firstAt = Date.now();
      yield* full();
    }
    if (ended) {
      if (skipping) endSkipped();
      else if (pending.length > 0) lines(Buffer.concat(pending), true);
    }
    // Stopped: the complete lines held are handed over; an unfinished line is dropped.
    yield* rest();
  } finally {
    if (!ended) {
      // A read in progress (standard input waiting for a line) is left behind, not awaited.
      const done = it.return?.();
      if (next === undefined) await done?.catch(() => {});
      else done?.catch(() => {});
    }
  }
}

/** How long a batch read from standard input waits for more lines before it is handed over. */
export const STDIN_MAX_WAIT_MS = 1000;

export const fileSourceDefinition: SourceDefinition<FileSourceSpec> = register({
  kind: 'file',
  category: 'source',
  module: './sources/file.js',
  schema: fileSourceSchema,
  description:
    "Reads a JSON Lines file (one JSON value per line) in batches. A record's sequence number is its line number; lines that are not valid JSON (or not UTF-8: their data is then base64) go to the dead-letter output with their line number.",
  summary: (spec) => spec.path,
  create(spec, ctx) {
    const path = fileSourcePath(spec, ctx.baseDir);
    const stop = new AbortController();
    const options: ReadJsonLinesOptions = {
      batchSize: spec.batchSize ?? 1000,
      shardId: spec.shardId ?? 'file',
      now: () => ctx.scheduler.now(),
      // Standard input may trickle: a batch waits at most a second for more lines.
      maxWaitMs: path === '-' ? STDIN_MAX_WAIT_MS : undefined,
      stop: stop.signal,
    };
    return {
      batches: () =>
        readJsonLines(path === '-' ? process.stdin : createReadStream(path, { highWaterMark: 1 << 20 }), options),
      /** Ends the reading: the complete lines read so far are handed over as a last batch. */
      stop: () => stop.abort(),
    } as Source;
  },
});
