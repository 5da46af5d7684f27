// Hostile and malformed Lambda events (issue 12): a bad Kinesis or DynamoDB Streams record goes to
// the dead-letter output with its shard, sequence number (when known) and reason, and the rest of
// the batch goes on; an event of another shape (SQS, S3, SNS, `{}`, not an object) is refused with
// an error that names it; DynamoDB Streams sets, binaries and numbers reach every sink as JSON.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { marshall } from '@aws-sdk/util-dynamodb';
import { type DeadLetterRecord, FileSink, fileSource, pipeline } from '@tributary/core';
import { createHandler, deaggregate } from '@tributary/runtime-lambda';
import type { KinesisStreamRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ddbRecordMaker, kinesisRecordMaker, kplAggregate, protobufField } from '../../../test-support/lambdaEvents.js';
import { passThroughHandler } from './support.js';

const SHARD = 'shardId-000000000003';
const KINESIS_ARN = 'arn:aws:kinesis:us-east-1:000000000000:stream/hostile';
const DDB_ARN = 'arn:aws:dynamodb:us-east-1:000000000000:table/users/stream/2026-11-21T00:00:00.000';
const DDB_SHARD = 'shardId-00000001795000000000-0000abcd';
const kinesisRecord = kinesisRecordMaker({ shard: SHARD, arn: KINESIS_ARN });
const ddbRecord = ddbRecordMaker(DDB_ARN);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-hostile-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A pipeline that passes every value on, with memory outputs. */
const passThrough = () =>
  passThroughHandler('hostile', {
    log: () => {},
    describeDynamoDbStream: async () => [{ shardId: DDB_SHARD, start: '1' }],
  });

/** An `M` attribute nested `levels` maps deep, a string at the bottom. */
function nestedMap(levels: number): unknown {
  let v: unknown = { S: 'bottom' };
  for (let i = 0; i < levels; i++) v = { M: { a: v } };
  return v;
}
function nestedList(levels: number): unknown {
  let v: unknown = { N: '1' };
  for (let i = 0; i < levels; i++) v = { L: [v] };
  return v;
}

/** Depth of a JSON value (a scalar is 0, `{}` is 1). */
function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  return 1 + Math.max(0, ...Object.values(v).map(depthOf));
}

function expectNoRawError(text: string) {
  expect(text).not.toMatch(/TypeError|RangeError|SyntaxError|Cannot read prop|is not a function|BigInt/);
}

describe('lambda handler, hostile Kinesis records', () => {
  it('dead-letters a record without data, with `kinesis: null` or without eventID (decode); the records around them are processed', async () => {
    const { out, dead, handler } = passThrough();
    const noData = kinesisRecord('102', null);
    delete (noData.kinesis as { data?: string }).data;
    const nullKinesis = { ...kinesisRecord('104', null), kinesis: null } as unknown as KinesisStreamRecord;
    const noEventId = kinesisRecord('105', { n: 'no event id' });
    delete (noEventId as { eventID?: string }).eventID;
    const event = {
      Records: [
        kinesisRecord('101', { n: 1 }),
        noData,
        kinesisRecord('103', { n: 2 }),
        nullKinesis,
        noEventId,
        kinesisRecord('106', { n: 3 }),
      ],
    };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(dead.values.map((d) => [d.reason, d.step, d.shardId, d.sequenceNumber])).toEqual([
      ['decode', 'source', SHARD, '102'],
      ['decode', 'source', SHARD, '104'],
      ['decode', 'source', SHARD, '105'],
    ]);
    expect(dead.values[0]?.error).toMatch(/Kinesis record #1 .*has no `data`/);
    expect(dead.values[0]?.partitionKey).toBe('pk-102');
    expect(dead.values[1]?.error).toMatch(/Kinesis record #3 .*`kinesis` is null/);
    expect(dead.values[2]?.error).toMatch(/Kinesis record #4 .*no `eventID`/);
    for (const d of dead.values) expectNoRawError(d.error);
    // The dead letter carries the record as delivered, as text any sink can write.
    expect(JSON.parse(dead.values[1]?.data as string)).toMatchObject({ kinesis: null, eventID: `${SHARD}:104` });
  });

  it('dead-letters records of an event of only malformed records, and processes nothing else', async () => {
    const { out, dead, handler } = passThrough();
    const event = {
      Records: [
        { eventSource: 'aws:kinesis', kinesis: null },
        { eventSource: 'aws:kinesis', eventID: 7, kinesis: { data: 5, sequenceNumber: 9, partitionKey: {} } },
        { kinesis: { data: 'e30=', partitionKey: 'p', sequenceNumber: '12a' } },
      ],
    } as never;
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toEqual([]);
    expect(dead.values.map((d) => d.reason)).toEqual(['decode', 'decode', 'decode']);
    expect(dead.values.map((d) => d.shardId)).toEqual(['shardId-unknown', 'shardId-unknown', 'shardId-unknown']);
    expect(dead.values.map((d) => d.sequenceNumber)).toEqual(['', '', '12a']);
    expect(dead.values[2]?.error).toMatch(/sequence number/);
    for (const d of dead.values) expectNoRawError(d.error);
  });

  it('dead-letters a non-object record inside a Kinesis event (null, a string, `{}`) and goes on', async () => {
    const { out, dead, handler } = passThrough();
    const event = {
      Records: [kinesisRecord('201', { n: 1 }), null, 'x', {}, kinesisRecord('205', { n: 2 })],
    } as never;
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toEqual([{ n: 1 }, { n: 2 }]);
    expect(dead.values.map((d) => [d.reason, d.shardId])).toEqual([
      ['decode', SHARD],
      ['decode', SHARD],
      ['decode', SHARD],
    ]);
    expect(dead.values.map((d) => d.error)).toEqual([
      expect.stringMatching(/Kinesis record #1 .*not an object \(null\)/),
      expect.stringMatching(/Kinesis record #2 .*not an object \(a string\)/),
      expect.stringMatching(/Kinesis record #3 .*no `kinesis`/),
    ]);
  });

  it('keeps a KPL user record whose explicit hash key is not a number, instead of throwing', () => {
    // AggregatedRecord { partition_key_table: ['k'], explicit_hash_key_table: ['abc'], records: [{0, 0, 'x'}] }
    const field = protobufField;
    const user = Buffer.concat([Buffer.from([0x08, 0, 0x10, 0]), field(3, Buffer.from('{"a":1}'))]);
    const body = Buffer.concat([field(1, Buffer.from('k')), field(2, Buffer.from('abc')), field(3, user)]);
    const data = kplAggregate(body);
    const users = deaggregate(data, 'outer', { start: 0n, end: 10n });
    expect(users.map((u) => [u.partitionKey, u.data.toString(), u.subSequenceNumber])).toEqual([['k', '{"a":1}', 0]]);
  });
});

describe('lambda handler, hostile DynamoDB Streams records', () => {
  it('dead-letters a record with an unknown attribute type or a map/list nested 3,000 deep (decode); the rest goes on', async () => {
    const { out, dead, handler } = passThrough();
    const event = {
      Records: [
        ddbRecord('1001', { Keys: { id: { S: 'a' } } }),
        ddbRecord('1002', { Keys: { id: { S: 'b' } }, NewImage: { id: { S: 'b' }, q: { Q: 'what' } } }),
        ddbRecord('1003', { Keys: { id: { S: 'c' } }, NewImage: { deep: nestedMap(3000) } }),
        ddbRecord('1004', { Keys: { id: { S: 'd' } }, OldImage: { deep: nestedList(3000) } }),
        ddbRecord('1005', { Keys: { id: { S: 'e' } }, NewImage: { two: { S: 'x', N: '1' } } }),
        ddbRecord('1006', { Keys: { id: { S: 'f' } } }),
      ],
    };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values.map((v) => (v as { keys: { id: string } }).keys.id)).toEqual(['a', 'f']);
    expect(dead.values.map((d) => [d.reason, d.step, d.shardId, d.sequenceNumber])).toEqual([
      ['decode', 'source', DDB_SHARD, '1002'],
      ['decode', 'source', DDB_SHARD, '1003'],
      ['decode', 'source', DDB_SHARD, '1004'],
      ['decode', 'source', DDB_SHARD, '1005'],
    ]);
    expect(dead.values[0]?.error).toMatch(/NewImage\.q: unknown attribute type `Q`/);
    expect(dead.values[1]?.error).toMatch(/NewImage.*nested deeper than 512/);
    expect(dead.values[2]?.error).toMatch(/OldImage.*nested deeper than 512/);
    expect(dead.values[3]?.error).toMatch(
      /NewImage\.two: an attribute value must have exactly one type key, got "S", "N"/,
    );
    for (const d of dead.values) expectNoRawError(d.error);
    // The dead-lettered record is kept as text: no sink can be crashed by its depth.
    expect(typeof dead.values[1]?.data).toBe('string');
  });

  it('accepts a record value nested exactly 512 deep and dead-letters one 513 deep', async () => {
    const { out, dead, handler } = passThrough();
    // The record value is 1 level, an image 1 more, each M one more, the innermost map holds a string.
    const event = {
      Records: [
        ddbRecord('1101', { Keys: { id: { S: 'a' } }, NewImage: { deep: nestedMap(510) } }),
        ddbRecord('1102', { Keys: { id: { S: 'b' } }, NewImage: { deep: nestedMap(511) } }),
      ],
    };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toHaveLength(1);
    expect(depthOf(out.values[0])).toBe(512);
    expect(dead.values.map((d) => d.sequenceNumber)).toEqual(['1102']);
  });

  it('dead-letters a record whose `dynamodb` is missing or not an object, or whose image is not a map', async () => {
    const { out, dead, handler } = passThrough();
    const event = {
      Records: [
        { ...ddbRecord('1201', {}), dynamodb: null },
        ddbRecord('1202', { Keys: 'id' }),
        ddbRecord('1203', { NewImage: [{ S: 'x' }] }),
        ddbRecord('1204', { Keys: { id: { S: 'ok' } } }),
        null,
      ],
    } as never;
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toHaveLength(1);
    expect(dead.values.map((d) => [d.reason, d.sequenceNumber])).toEqual([
      ['decode', ''],
      ['decode', '1202'],
      ['decode', '1203'],
      ['decode', ''],
    ]);
    expect(dead.values[0]?.error).toMatch(/DynamoDB Streams record #0 .*`dynamodb` is null/);
    expect(dead.values[1]?.error).toMatch(/Keys: .*not a map/);
    expect(dead.values[3]?.error).toMatch(/DynamoDB Streams record #4 .*not an object \(null\)/);
    for (const d of dead.values) expectNoRawError(d.error);
  });

  it('turns SS/NS/BS into arrays and B/BS into base64 text, the same in every sink and the dead-letter file', async () => {
    const outPath = join(dir, 'sets-out.jsonl');
    const deadPath = join(dir, 'sets-dead.jsonl');
    const p = pipeline('sets')
      .source(fileSource<{ keys: { id: string } }>({ path: '-' }))
      .map((e) => {
        if (e.keys.id === 'boom') throw new Error('user code failed');
        return e;
      })
      .sink(new FileSink(outPath))
      .build();
    const handler = createHandler(p, { deadLetter: new FileSink(deadPath), log: () => {} });
    const bytes = Uint8Array.from([0, 1, 2, 253, 254, 255]);
    const image = {
      // marshall writes sets from JS Sets and B from bytes (as the SDK delivers them) ...
      ...(marshall({ ss: new Set(['a', 'b']), ns: new Set([1, 2.5]), bs: new Set([bytes]), b: bytes }) as object),
      // ... and a Lambda event, parsed from JSON, has B/BS as base64 text already.
      b64: { B: 'AAEC/f7/' },
      bs64: { BS: ['AAEC/f7/', 'aGk='] },
      nested: { L: [{ SS: ['x'] }, { M: { ns: { NS: ['9007199254740993', '3'] } } }] },
    };
    const expected = {
      ss: ['a', 'b'],
      ns: [1, 2.5],
      bs: ['AAEC/f7/'],
      b: 'AAEC/f7/',
      b64: 'AAEC/f7/',
      bs64: ['AAEC/f7/', 'aGk='],
      nested: [['x'], { ns: ['9007199254740993', 3] }],
    };
    const event = {
      Records: [
        ddbRecord('1301', { Keys: { id: { S: 'ok' } }, NewImage: image }),
        ddbRecord('1302', { Keys: { id: { S: 'boom' } }, NewImage: image }),
      ],
    };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    await (await handler.ready).close();
    const lines = (path: string) =>
      readFile(path, 'utf8').then((t) =>
        t
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l)),
      );
    const [written] = await lines(outPath);
    expect(written.newImage).toEqual(expected);
    const [deadLetter] = await lines(deadPath);
    expect(deadLetter).toMatchObject({ reason: 'function', sequenceNumber: '1302' });
    expect(deadLetter.value.newImage).toEqual(expected);
  });

  it('reads N as a number when a JS number holds it exactly, else as its exact decimal text; a malformed N is dead-lettered', async () => {
    const { out, dead, handler } = passThrough();
    const numbers: [string, unknown][] = [
      ['42', 42],
      ['-0.5', -0.5],
      ['0.1', 0.1],
      ['1E+2', 100],
      ['9007199254740991', 9007199254740991],
      ['9007199254740992', 9007199254740992],
      ['9007199254740993', '9007199254740993'],
      ['9007199254740992.5', '9007199254740992.5'],
      ['123456789012345678901234567890123456789', '123456789012345678901234567890123456789'],
      ['1e400', '1e400'],
      ['1e-400', '1e-400'],
      ['0.30000000000000000001', '0.30000000000000000001'],
      ['1.000', 1],
      ['00012', 12],
    ];
    const event = {
      Records: [
        ...numbers.map(([n], i) =>
          ddbRecord(String(2000 + i), { Keys: { id: { N: n } }, NewImage: { id: { N: n }, ns: { NS: [n] } } }),
        ),
        ddbRecord('2100', { Keys: { id: { N: 'abc' } } }),
        ddbRecord('2101', { Keys: { id: { N: '' } } }),
        ddbRecord('2102', { NewImage: { x: { N: '1.2.3' } } }),
        ddbRecord('2103', { NewImage: { x: { N: 5 } } }),
        ddbRecord('2104', { NewImage: { x: { NS: ['1', 'NaN'] } } }),
        ddbRecord('2105', { NewImage: { x: { N: 'Infinity' } } }),
        ddbRecord('2106', { NewImage: { x: { N: '0x10' } } }),
      ],
    };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    const values = out.values as { keys: { id: unknown }; newImage: { id: unknown; ns: unknown[] } }[];
    expect(values.map((v) => v.keys.id)).toEqual(numbers.map(([, v]) => v));
    expect(values.map((v) => v.newImage.id)).toEqual(numbers.map(([, v]) => v));
    expect(values.map((v) => v.newImage.ns[0])).toEqual(numbers.map(([, v]) => v));
    // The partition key is the keys' JSON (no BigInt to fail on).
    expect(out.records[6]?.partitionKey).toBe('{"id":"9007199254740993"}');
    expect(dead.values.map((d) => [d.reason, d.sequenceNumber])).toEqual(
      ['2100', '2101', '2102', '2103', '2104', '2105', '2106'].map((s) => ['decode', s]),
    );
    expect(dead.values[0]?.error).toMatch(/Keys\.id: N is not a number: "abc"/);
    expect(dead.values[4]?.error).toMatch(/NewImage\.x\[1\]: N is not a number: "NaN"/);
    for (const d of dead.values) expectNoRawError(d.error);
  });
});

describe('lambda handler, no raw TypeError or RangeError', () => {
  const withoutData = (): unknown => {
    const r = kinesisRecord('302', null);
    delete (r.kinesis as { data?: string }).data;
    return r;
  };
  const kinesisCases: [string, () => unknown, string][] = [
    ['without data', withoutData, '302'],
    ['kinesis: null', () => ({ ...kinesisRecord('302', 1), kinesis: null }), '302'],
    ['kinesis: a string', () => ({ ...kinesisRecord('302', 1), kinesis: 'x' }), '302'],
    ['no eventID', () => ({ ...kinesisRecord('302', 1), eventID: undefined }), '302'],
    ['eventID a number', () => ({ ...kinesisRecord('302', 1), eventID: 302 }), '302'],
    [
      'data a number',
      () => ({ ...kinesisRecord('302', 1), kinesis: { ...kinesisRecord('302', 1).kinesis, data: 7 } }),
      '302',
    ],
    [
      'no partitionKey',
      () => ({ ...kinesisRecord('302', 1), kinesis: { ...kinesisRecord('302', 1).kinesis, partitionKey: null } }),
      '302',
    ],
    [
      'sequenceNumber an object',
      () => ({ ...kinesisRecord('302', 1), kinesis: { ...kinesisRecord('302', 1).kinesis, sequenceNumber: {} } }),
      '302',
    ],
  ];
  for (const [name, make, seq] of kinesisCases) {
    it(`Kinesis record ${name}: dead-lettered, naming its shard and sequence number`, async () => {
      const { out, dead, handler } = passThrough();
      const event = { Records: [kinesisRecord('301', { ok: 1 }), make(), kinesisRecord('303', { ok: 2 })] } as never;
      expect(await handler(event)).toEqual({ batchItemFailures: [] });
      expect(out.values).toEqual([{ ok: 1 }, { ok: 2 }]);
      expect(dead.values).toHaveLength(1);
      const d = dead.values[0] as DeadLetterRecord;
      expect([d.reason, d.shardId, d.sequenceNumber]).toEqual(['decode', SHARD, seq]);
      expect(d.error).toContain(`Kinesis record #1 of the event (shard ${SHARD}, sequence number "${seq}")`);
      expectNoRawError(d.error);
    });
  }
  // Each case: the record's `dynamodb` fields, then `dead` or the value the record must come out as.
  const ddbCases: [string, Record<string, unknown>, unknown][] = [
    ['an unknown attribute type', { NewImage: { q: { Q: 1 } } }, 'dead'],
    ['a map nested 3,000 deep', { NewImage: { deep: nestedMap(3000) } }, 'dead'],
    ['a list nested 3,000 deep', { Keys: { deep: nestedList(3000) } }, 'dead'],
    [
      'an N beyond 2^53 with a fraction',
      { Keys: { id: { N: '9007199254740992.5' } }, NewImage: { n: { N: '18446744073709551617' } } },
      { keys: { id: '9007199254740992.5' }, newImage: { n: '18446744073709551617' } },
    ],
    ['a malformed N', { Keys: { id: { N: 'abc' } } }, 'dead'],
    ['an empty N', { Keys: { id: { N: '' } } }, 'dead'],
    ['an N that is a number', { Keys: { id: { N: 1 } } }, 'dead'],
    ['a B that is not base64', { NewImage: { b: { B: 'not base64!' } } }, 'dead'],
    ['an SS holding a number', { NewImage: { s: { SS: ['a', 1] } } }, 'dead'],
    ['an attribute value that is null', { NewImage: { s: null } }, 'dead'],
    ['an M that is a list', { NewImage: { s: { M: [] } } }, 'dead'],
    ['an image that is a string', { OldImage: 'x' }, 'dead'],
  ];
  for (const [name, dynamodb, expected] of ddbCases) {
    it(`DynamoDB Streams record with ${name}: never a raw error; ${expected === 'dead' ? 'dead-lettered, naming its shard and sequence number' : 'read exactly'}`, async () => {
      const { out, dead, handler } = passThrough();
      const event = {
        Records: [
          ddbRecord('3001', { Keys: { id: { S: 'a' } } }),
          ddbRecord('3002', dynamodb),
          ddbRecord('3003', { Keys: { id: { S: 'c' } } }),
        ],
      };
      expect(await handler(event)).toEqual({ batchItemFailures: [] });
      // Every JSON sink can write what came out.
      for (const v of out.values) expect(() => JSON.stringify(v)).not.toThrow();
      if (expected === 'dead') {
        expect(out.values).toHaveLength(2);
        expect(dead.values).toHaveLength(1);
        const d = dead.values[0] as DeadLetterRecord;
        expect([d.reason, d.shardId, d.sequenceNumber]).toEqual(['decode', DDB_SHARD, '3002']);
        expect(d.error).toContain(
          `DynamoDB Streams record #1 of the event (shard ${DDB_SHARD}, sequence number "3002")`,
        );
        expectNoRawError(d.error);
      } else {
        expect(dead.values).toEqual([]);
        expect(out.values[1]).toMatchObject(expected as object);
      }
    });
  }
});

describe('lambda handler, events of another shape', () => {
  const sqs = {
    Records: [
      {
        messageId: 'm1',
        receiptHandle: 'r',
        body: '{"a":1}',
        attributes: {},
        messageAttributes: {},
        md5OfBody: 'x',
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:q',
        awsRegion: 'us-east-1',
      },
    ],
  };
  const s3 = {
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: 'us-east-1',
        eventName: 'ObjectCreated:Put',
        s3: { bucket: { name: 'b' }, object: { key: 'k' } },
      },
    ],
  };
  const sns = { Records: [{ EventSource: 'aws:sns', EventVersion: '1.0', Sns: { Message: 'hi' } }] };
  const cases: [string, unknown, RegExp][] = [
    ['an SQS event', sqs, /expected a Kinesis or DynamoDB Streams event, got an SQS event/],
    ['an S3 event', s3, /expected a Kinesis or DynamoDB Streams event, got an S3 event/],
    ['an SNS event', sns, /expected a Kinesis or DynamoDB Streams event, got an SNS event/],
    ['records of no known shape', { Records: [{}, {}] }, /got an event whose records are of no known shape/],
    ['an event without Records', {}, /got an object without `Records`/],
    ['Records not an array', { Records: 'x' }, /`Records` is not an array \(a string\)/],
    ['null', null, /got null/],
    ['undefined', undefined, /got undefined/],
    ['a string', 'hello', /got a string/],
    ['an array', [1, 2], /got an array/],
    ['a number', 42, /got a number/],
  ];
  for (const [name, event, message] of cases) {
    it(`refuses ${name}: the invocation fails with an error naming the shape, nothing written`, async () => {
      const { out, dead, handler } = passThrough();
      const failure = await handler(event as never).then(
        () => undefined,
        (err: unknown) => err as Error,
      );
      expect(failure).toBeInstanceOf(Error);
      expect(failure?.name).toBe('LambdaEventError');
      expect(failure?.message).toMatch(message);
      expectNoRawError(failure?.message ?? '');
      expect(out.values).toEqual([]);
      expect(dead.values).toEqual([]);
    });
  }

  it('still treats a scheduled event as a tick and an empty Records list as nothing to do', async () => {
    const { handler } = passThrough();
    expect(await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event' })).toEqual({
      batchItemFailures: [],
    });
    expect(await handler({ Records: [] })).toEqual({ batchItemFailures: [] });
  });
});
