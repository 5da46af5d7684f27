// The fast path for a well-formed Kinesis record (wellFormedKinesisRecord) against the general
// one (decodeKinesisRecord) as the oracle: for any payload — random bytes, ill-formed UTF-8
// (surrogates, overlong forms, truncated sequences), a byte order mark, U+FFFD as such, text that
// is not strict base64, KPL aggregates — the fast path either declines the record or gives the
// source record the general path gives, with the payload as the text a fatal UTF-8 decoder makes
// of its bytes.
import { aggregateUserRecords } from '@tributary/core/spi';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeKinesisRecord, wellFormedKinesisRecord, withNativeCodecs } from '../src/eventRecords.js';

const SHARD = 'shardId-000000000001';
const fatal = new TextDecoder('utf-8', { fatal: true });

const record = (data: string, seq = '49600000000000000001') => ({
  eventID: `${SHARD}:${seq}`,
  eventSource: 'aws:kinesis',
  kinesis: { partitionKey: 'pk', sequenceNumber: seq, data, approximateArrivalTimestamp: 1795000000.25 },
});

/** Byte sequences a UTF-8 decoder must refuse or treat with care. */
const tricky = fc.constantFrom(
  [0xef, 0xbb, 0xbf], // byte order mark
  [0xef, 0xbf, 0xbd], // U+FFFD itself
  [0xed, 0xa0, 0x80], // an encoded surrogate
  [0xc0, 0xaf], // overlong '/'
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0xe2, 0x82], // truncated
  [0xff],
  [0x80],
  [0xf0, 0x9f, 0x92, 0xa7], // a well-formed 4-byte character
);

const payload = fc.oneof(
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc
    .array(
      fc.oneof(
        fc.uint8Array({ maxLength: 8 }).map((b) => [...b]),
        tricky,
      ),
      { maxLength: 8 },
    )
    .map((parts) => Buffer.from(parts.flat())),
);

/** The payload's base64 text, sometimes made not strict (url alphabet, junk, lost padding). */
const text = fc.tuple(payload, fc.integer({ min: 0, max: 5 })).map(([bytes, how]) => {
  const b64 = bytes.toString('base64');
  if (how === 1) return bytes.toString('base64url');
  if (how === 2) return `${b64.slice(0, 2)}!${b64.slice(2)}`;
  if (how === 3) return b64.replace(/=+$/, '');
  return b64;
});

/** What the fast path must give for `r`, from the general path: a source record or nothing. */
function expected(r: unknown) {
  const d = decodeKinesisRecord(r, 0, SHARD, undefined);
  if (!('records' in d) || d.records.length !== 1) return undefined;
  const src = d.records[0];
  if (src === undefined || src.subSequenceNumber !== undefined || !(src.data instanceof Uint8Array)) return undefined;
  let payloadText: string;
  try {
    payloadText = fatal.decode(src.data);
  } catch {
    return undefined; // not UTF-8: the general path keeps the bytes (decoding dead-letters them)
  }
  return { ...src, data: payloadText };
}

describe('wellFormedKinesisRecord', () => {
  it('gives what the general path gives, or declines the record', () => {
    fc.assert(
      fc.property(text, (data) => {
        const r = record(data);
        const fast = wellFormedKinesisRecord(r, SHARD);
        const oracle = expected(r);
        if (fast === undefined) {
          // Declined: only a record the general path rejects, or keeps as bytes.
          expect(oracle).toBeUndefined();
        } else expect(fast).toEqual(oracle);
      }),
      { numRuns: 2000 },
    );
  });

  it('drops a leading byte order mark, as a fatal UTF-8 decoder does, and keeps U+FFFD that is in the payload', () => {
    const bom = wellFormedKinesisRecord(record(Buffer.from('\ufeff{"a":1}').toString('base64')), SHARD);
    expect(bom?.data).toBe('{"a":1}');
    const replacement = wellFormedKinesisRecord(record(Buffer.from('"\ufffd"').toString('base64')), SHARD);
    expect(replacement?.data).toBe('"\ufffd"');
  });

  it('declines ill-formed UTF-8, text that is not strict base64, a KPL aggregate and a payload over its buffer', () => {
    expect(wellFormedKinesisRecord(record(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]).toString('base64')), SHARD)).toBe(
      undefined,
    );
    expect(wellFormedKinesisRecord(record('eyJhIjox_Q=='), SHARD)).toBeUndefined();
    expect(wellFormedKinesisRecord(record('eyJhIjoxfQ'), SHARD)).toBeUndefined();
    const aggregate = aggregateUserRecords([{ partitionKey: 'pk', data: Buffer.from('{"a":1}') }]);
    expect(wellFormedKinesisRecord(record(Buffer.from(aggregate).toString('base64')), SHARD)).toBeUndefined();
    const large = Buffer.from(JSON.stringify({ a: 'x'.repeat(100_000) })).toString('base64');
    expect(wellFormedKinesisRecord(record(large), SHARD)).toBeUndefined();
    expect(expected(record(large))?.data).toBe(JSON.stringify({ a: 'x'.repeat(100_000) }));
  });

  it('declines a sequence number that is not decimal, as the general path rejects it', () => {
    for (const seq of ['', '12a', '-1', '1.5', '١٢']) {
      expect(wellFormedKinesisRecord(record('e30=', seq), SHARD)).toBeUndefined();
      expect('rejected' in decodeKinesisRecord(record('e30=', seq), 0, SHARD, undefined)).toBe(true);
    }
  });
});

describe('withNativeCodecs', () => {
  it('gives a buffer without Node’s native codecs stand-ins that decode the same', () => {
    const native = withNativeCodecs(Buffer.alloc(64));
    const bare = Buffer.alloc(64);
    Object.defineProperty(bare, 'base64Write', { value: undefined, writable: true });
    Object.defineProperty(bare, 'utf8Slice', { value: undefined, writable: true });
    const standIn = withNativeCodecs(bare);
    expect(standIn.base64Write).not.toBe(native.base64Write);
    const texts = [
      Buffer.from('{"a":1}').toString('base64'),
      Buffer.from([0xef, 0xbb, 0xbf, 0x41, 0xc3, 0x28, 0xff]).toString('base64'), // BOM, ill-formed, 0xff
      'ab$c=',
      '',
    ];
    for (const text of texts) {
      const n = native.base64Write(text, 0, 64);
      expect(standIn.base64Write(text, 0, 64)).toBe(n);
      expect(standIn.subarray(0, n)).toEqual(native.subarray(0, n));
      expect(standIn.utf8Slice(0, n)).toBe(native.utf8Slice(0, n));
    }
  });
});
