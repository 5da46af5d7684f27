/**
 * Issue 12, row "a non-UTF-8 line in a file input": the line is dead-lettered (reason `decode`)
 * with its bytes as base64 `data`, as the Lambda runtime does for a Kinesis record — not rewritten
 * with U+FFFD and passed on.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { compile, type DeadLetterRecord, readJsonLines, runPipeline, type SourceBatch } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { fileCopyPipeline, jsonLinesOf } from './helpers.js';

const bytes = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

async function readAll(input: Buffer, chunkSize: number, batchSize = 1000): Promise<SourceBatch[]> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunkSize) chunks.push(input.subarray(i, i + chunkSize));
  const out: SourceBatch[] = [];
  for await (const b of readJsonLines(Readable.from(chunks), { batchSize, shardId: 'file', now: () => 0 })) out.push(b);
  return out;
}

/** The oracle: lines cut at newline bytes, each UTF-8 text if it decodes, else its bytes. */
function expectedRecords(input: Buffer): { line: number; data: string | Uint8Array }[] {
  const out: { line: number; data: string | Uint8Array }[] = [];
  let start = 0;
  let line = 0;
  while (start < input.length) {
    let end = input.indexOf(10, start);
    if (end < 0) end = input.length;
    line++;
    let raw = input.subarray(start, end);
    if (raw[raw.length - 1] === 13) raw = raw.subarray(0, raw.length - 1);
    start = end + 1;
    let text: string | undefined;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
    } catch {
      out.push({ line, data: new Uint8Array(raw) });
      continue;
    }
    if (text.trim() !== '') out.push({ line, data: text });
  }
  return out;
}

describe('hostile input: non-UTF-8 lines in a file', () => {
  // Good lines, an invalid byte (0xFF), a truncated 2-byte sequence, an overlong encoding,
  // multi-byte characters, CRLF, a blank line, and a last line with no newline.
  const input = bytes(
    '{"n":1,"s":"é€😀"}\n',
    '{"n":2,"s":"',
    [0xff],
    '"}\n',
    '\r\n',
    '{"n":4,"s":"',
    [0xc3],
    '"}\r\n',
    '{"n":5,"s":"',
    [0xc0, 0xaf],
    '"}\n',
    '{"n":6,"s":"ü"}\r\n',
    '{"n":7}',
  );

  it('keeps the bytes of a line that is not UTF-8, at every chunk boundary, and decodes the others exactly', async () => {
    const expected = expectedRecords(input);
    expect(expected.map((r) => [r.line, typeof r.data])).toEqual([
      [1, 'string'],
      [2, 'object'],
      [4, 'object'],
      [5, 'object'],
      [6, 'string'],
      [7, 'string'],
    ]);
    for (const chunkSize of [1, 2, 3, 5, 7, 16, input.length]) {
      const batches = await readAll(input, chunkSize, 2);
      const records = batches.flatMap((b) => b.records);
      expect(
        records.map((r) => ({ line: r.line, data: r.data })),
        `chunks of ${chunkSize}`,
      ).toEqual(expected);
      expect(records.map((r) => r.sequenceNumber)).toEqual(expected.map((r) => String(r.line)));
      expect(batches.map((b) => b.records.length)).toEqual([2, 2, 2]);
    }
  });

  it('dead-letters such a line (reason decode) with its base64 bytes and line number; the rest of the batch goes on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-utf8-'));
    await writeFile(join(dir, 'in.jsonl'), input);
    const p = fileCopyPipeline('utf8', dir);
    const summary = await runPipeline(compile(p));
    expect(summary).toMatchObject({ recordsIn: 6, recordsOut: 3, deadLettered: 3 });
    const out = (await readFile(join(dir, 'out.jsonl'), 'utf8')).trimEnd().split('\n');
    expect(out.map((l) => JSON.parse(l))).toEqual([{ n: 1, s: 'é€😀' }, { n: 6, s: 'ü' }, { n: 7 }]);
    expect(out.join('')).not.toContain('\uFFFD');
    const dead = (await jsonLinesOf(join(dir, 'dead.jsonl'))) as DeadLetterRecord[];
    expect(dead.map((d) => [d.line, d.sequenceNumber, d.shardId, d.reason, d.step, d.error])).toEqual([
      [2, '2', 'file', 'decode', 'source', 'record is not valid UTF-8'],
      [4, '4', 'file', 'decode', 'source', 'record is not valid UTF-8'],
      [5, '5', 'file', 'decode', 'source', 'record is not valid UTF-8'],
    ]);
    expect(Buffer.from(dead[0]?.data as string, 'base64')).toEqual(bytes('{"n":2,"s":"', [0xff], '"}'));
    expect(Buffer.from(dead[1]?.data as string, 'base64')).toEqual(bytes('{"n":4,"s":"', [0xc3], '"}'));
  });
});
