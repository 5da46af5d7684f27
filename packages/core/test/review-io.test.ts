/**
 * Issue 12 review, the file source and the line outputs: a line over the record limit is never
 * held whole (dead-lettered with a bounded prefix), a leading BOM is removed, a stop hands over the
 * complete lines read, slow input is handed over after `maxWaitMs`, numbers JSON.parse makes
 * infinite are dead-lettered, and write errors name the output.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import {
  compile,
  type DeadLetterRecord,
  FileSink,
  readJsonLines,
  runPipeline,
  type SourceBatch,
  type SourceRecord,
  StreamSink,
} from '@tributary/core';
import { envelope } from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';
import { decodeRecord } from '../src/compile/decode.js';
import { MAX_RECORD_BYTES } from '../src/envelope.js';
import { fileCopyPipeline } from './helpers.js';

const options = { batchSize: 1000, shardId: 'file', now: () => 0 };

async function collect(input: NodeJS.ReadableStream, batchSize = 1000): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const b of readJsonLines(input, { ...options, batchSize })) out.push(...b.records);
  return out;
}

/** `count` chunks of `size` bytes of `x` (made as they are read, never held together). */
function xs(count: number, size = 1 << 20, byte = 0x78): Readable {
  const chunk = Buffer.alloc(size, byte);
  let i = 0;
  return new Readable({
    read() {
      this.push(i++ < count ? chunk : null);
    },
  });
}

function concatStreams(...parts: (string | Readable)[]): Readable {
  return Readable.from(
    (async function* () {
      for (const p of parts) {
        if (typeof p === 'string') yield Buffer.from(p);
        else for await (const c of p) yield c as Buffer;
      }
    })(),
  );
}

const text = (d: SourceRecord['data']) => (typeof d === 'string' ? d : Buffer.from(d as Uint8Array).toString('utf8'));

describe('review: lines over the record limit', () => {
  it('a 100 MiB line is skipped to its newline: one record of its first 1024 bytes, dead-lettered at decode with its size', async () => {
    const records = await collect(concatStreams('{"n":1}\n{"a":"', xs(100), '"}\n{"n":3}\n'));
    expect(records.map((r) => r.line)).toEqual([1, 2, 3]);
    expect(records[0]?.data).toBe('{"n":1}');
    expect(records[2]?.data).toBe('{"n":3}');
    const big = records[1] as SourceRecord;
    expect(text(big.data)).toBe(`{"a":"${'x'.repeat(1024 - 6)}`);
    expect(() => decodeRecord(big)).toThrow(
      `record exceeds 1048576 bytes (${100 * 2 ** 20 + 8} bytes; data holds its first 1024 bytes)`,
    );
  });

  it('input with no newline at all (as /dev/zero): one bounded record at the end', async () => {
    const records = await collect(xs(300, 1 << 20, 0));
    expect(records).toHaveLength(1);
    expect(((records[0] as SourceRecord).data as Uint8Array).byteLength).toBe(1024);
    expect(() => decodeRecord(records[0] as SourceRecord)).toThrow(
      `record exceeds 1048576 bytes (${300 * 2 ** 20} bytes`,
    );
  });

  it('the limit is exact, whatever the chunk sizes: MAX_RECORD_BYTES (with a CR) is a record, one more byte is not', async () => {
    const ok = `"${'y'.repeat(MAX_RECORD_BYTES - 2)}"`;
    const over = `"${'y'.repeat(MAX_RECORD_BYTES - 1)}"`;
    const input = Buffer.from(`${ok}\r\n${over}\n${ok}`);
    for (const size of [1 << 16, 1 << 20, 3 << 20, 777_777]) {
      const parts: Buffer[] = [];
      for (let i = 0; i < input.length; i += size) parts.push(input.subarray(i, i + size));
      const records = await collect(Readable.from(parts));
      expect(
        records.map((r) => text(r.data).length),
        `chunks of ${size}`,
      ).toEqual([MAX_RECORD_BYTES, 1024, MAX_RECORD_BYTES]);
      expect(decodeRecord(records[0] as SourceRecord)).toBe(JSON.parse(ok));
      expect(() => decodeRecord(records[1] as SourceRecord)).toThrow(/^record exceeds 1048576 bytes \(1048577 bytes/);
    }
  });

  it('through a run: the dead letter has reason decode, the line number and the 1 KiB prefix; the good records of the batch are written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-review-io-'));
    await writeFile(join(dir, 'in.jsonl'), `{"n":1}\n{"a":"${'€'.repeat(2 * MAX_RECORD_BYTES)}"}\n{"n":3}\n`);
    const p = fileCopyPipeline('big', dir);
    expect(await runPipeline(compile(p))).toMatchObject({ recordsIn: 3, recordsOut: 2, deadLettered: 1 });
    expect(await readFile(join(dir, 'out.jsonl'), 'utf8')).toBe('{"n":1}\n{"n":3}\n');
    const dead = JSON.parse(await readFile(join(dir, 'dead.jsonl'), 'utf8')) as DeadLetterRecord;
    expect([dead.reason, dead.step, dead.line, dead.error]).toEqual([
      'decode',
      'source',
      2,
      `record exceeds 1048576 bytes (${6 * MAX_RECORD_BYTES + 8} bytes; data holds its first 1023 bytes)`,
    ]);
    expect(dead.data).toBe(`{"a":"${'€'.repeat(339)}`); // cut at a character boundary
  });
});

describe('review: a BOM', () => {
  it('starting the first line is removed (text and non-UTF-8 lines); elsewhere it is kept', async () => {
    const bom = '\uFEFF';
    expect((await collect(Readable.from([Buffer.from(`${bom}{"n":1}\n${bom}{"n":2}\n`)]))).map((r) => r.data)).toEqual([
      '{"n":1}',
      `${bom}{"n":2}`,
    ]);
    // split inside the BOM
    const b = Buffer.from(`${bom}{"n":1}\n`);
    expect(
      (await collect(Readable.from([b.subarray(0, 1), b.subarray(1, 2), b.subarray(2)]))).map((r) => r.data),
    ).toEqual(['{"n":1}']);
    const bytes = await collect(Readable.from([Buffer.from([0xef, 0xbb, 0xbf, 0x22, 0xff, 0x22, 0x0a])]));
    expect(bytes.map((r) => Buffer.from(r.data as Uint8Array))).toEqual([Buffer.from([0x22, 0xff, 0x22])]);
  });
});

describe('review: stopping and slow input', () => {
  const ticks = async (n = 20) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };

  it('on stop, the complete lines read are handed over as a last batch (the unfinished one is dropped) and reading ends', async () => {
    const input = new PassThrough();
    const stop = new AbortController();
    const gen = readJsonLines(input, { ...options, stop: stop.signal });
    const first = gen.next();
    input.write('{"n":1}\n{"n":2}\n{"n":3}\n{"n":');
    await ticks();
    stop.abort();
    const batch = (await first).value as SourceBatch;
    expect(batch.records.map((r) => r.data)).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
    expect((await gen.next()).done).toBe(true);
  });

  it('with maxWaitMs, lines that trickle in are handed over before the batch is full or the input ends', async () => {
    const input = new PassThrough();
    const gen = readJsonLines(input, { ...options, batchSize: 100, maxWaitMs: 20 });
    input.write('{"n":1}\n{"n":2}\n');
    const batch = (await gen.next()).value as SourceBatch;
    expect(batch.records.map((r) => r.data)).toEqual(['{"n":1}', '{"n":2}']);
    input.end('{"n":3}\n');
    expect(((await gen.next()).value as SourceBatch).records.map((r) => r.data)).toEqual(['{"n":3}']);
    expect((await gen.next()).done).toBe(true);
  });
});

describe('review: numbers out of range', () => {
  const decode = (data: string) => decodeRecord({ data, partitionKey: 'k', sequenceNumber: '1', arrivalTime: 0 });
  it('1e999, -1e999, 1E+400 and 309 digits are dead-lettered at decode, naming where; finite numbers and text are not', () => {
    expect(() => decode('1e999')).toThrow('number out of range (beyond ±1.8e308)');
    expect(() => decode('{"i":-1e999}')).toThrow('number out of range at /i (beyond ±1.8e308)');
    expect(() => decode('{"a":[1,{"b/c":1E+400}]}')).toThrow('number out of range at /a/1/b~1c (beyond ±1.8e308)');
    expect(() => decode(`[${'9'.repeat(309)}]`)).toThrow('number out of range at /0');
    expect(decode('{"i":1e308,"s":"e999","t":1e-999}')).toEqual({ i: 1e308, s: 'e999', t: 0 });
    expect(decode(`[0.${'0'.repeat(400)}1]`)).toEqual([0]);
  });
});

describe('review: write errors name the output', () => {
  const rec = envelope({ partitionKey: 'k', sequenceNumber: '1', arrivalTime: 0 }, 's', { n: 1 }, 0);
  it('a file sink on /dev/full: "cannot write output /dev/full: ENOSPC …"', async () => {
    const sink = new FileSink('/dev/full');
    await expect(sink.write([rec])).rejects.toThrow(/^cannot write output \/dev\/full: ENOSPC/);
    await sink.close();
  });
  it('a stream sink: "cannot write standard output: …"', async () => {
    const broken = new Writable({ write: (_c, _e, cb) => cb(new Error('ENOSPC: no space left on device, write')) });
    broken.on('error', () => {});
    const sink = new StreamSink(broken, false, 'standard output');
    await expect(sink.write([rec])).rejects.toThrow(
      'cannot write standard output: ENOSPC: no space left on device, write',
    );
  });
});
