// Fuzz of the Lambda handler with arbitrary Kinesis and DynamoDB Streams records: valid records
// with fields replaced by anything (missing, null, wrong types, odd text), payloads of random
// bytes, DynamoDB images of arbitrary attribute values (unknown types, sets, huge numbers, deep
// maps). Property: the invocation ends without failing, reports no batch item failure, and every
// record is either written or dead-lettered (once, naming its shard and reason); every value
// written has a JSON form.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dynamoDbEventRecord, kinesisEventRecord } from '../../../test-support/lambdaEvents.js';
import { passThroughHandler } from './support.js';

const SHARD = 'shardId-000000000001';
const KINESIS_ARN = 'arn:aws:kinesis:us-east-1:000000000000:stream/fuzz';
const DDB_ARN = 'arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-12-01T00:00:00.000';
const DDB_SHARD = 'shardId-00000001795000000000-0000fuzz';

const handlerWithOutputs = () =>
  passThroughHandler('fuzz', {
    log: () => {},
    listShards: async () => [{ shardId: SHARD, closed: false }],
    describeDynamoDbStream: async () => [{ shardId: DDB_SHARD, start: '1' }],
  });

/** Anything a field could be replaced by. */
const junk = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.string(),
  fc.integer(),
  fc.boolean(),
  fc.constant({}),
  fc.constant([]),
  fc.constantFrom('AAAA', '!!!not base64', '', '8J+Sp', Buffer.from([0xff, 0xfe, 0x00]).toString('base64')),
);

const payload = fc.oneof(
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
  fc.integer({ min: 510, max: 3000 }).map((d) => Buffer.from(`${'['.repeat(d)}${']'.repeat(d)}`)),
);

const kinesisField = fc.constantFrom('kinesis', 'data', 'eventID', 'partitionKey', 'sequenceNumber', 'record');

const kinesisRecord = (i: number) =>
  fc.record({ data: payload, broken: fc.option(fc.tuple(kinesisField, junk), { freq: 3 }) }).map(({ data, broken }) => {
    const seq = String(49_000_000_000_000_000_000n + BigInt(i));
    const r = kinesisEventRecord({
      shardId: SHARD,
      arn: KINESIS_ARN,
      sequenceNumber: seq,
      partitionKey: `pk-${i}`,
      data: data.toString('base64'),
    }) as unknown as Record<string, unknown>;
    const k = r.kinesis as Record<string, unknown>;
    if (broken) {
      const [field, v] = broken;
      if (field === 'kinesis' || field === 'eventID') r[field] = v;
      // A record of no known shape; the first stays a Kinesis record, so the event keeps its
      // shape (an event of only such records is refused whole: a misconfigured trigger).
      else if (field === 'record') {
        if (i > 0) return v;
      } else k[field] = v;
    }
    return r;
  });

/** DynamoDB attribute values, valid and not. */
const attribute: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  a: fc.oneof(
    { depthSize: 'small' },
    fc.string().map((S) => ({ S })),
    fc
      .constantFrom('1', '-0', '9007199254740993', '9007199254740992.5', '1e400', 'abc', '', '0x10')
      .map((N) => ({ N })),
    fc.boolean().map((BOOL) => ({ BOOL })),
    fc.constant({ NULL: true }),
    fc.array(fc.string(), { maxLength: 3 }).map((SS) => ({ SS })),
    fc.array(fc.constantFrom('1', '2.5', 'x'), { maxLength: 3 }).map((NS) => ({ NS })),
    fc.constantFrom('AAEC', 'not base64!').map((B) => ({ B })),
    fc.constant({ BS: ['AAEC', 'AQ=='] }),
    fc.array(tie('a'), { maxLength: 3 }).map((L) => ({ L })),
    fc.dictionary(fc.string({ maxLength: 4 }), tie('a'), { maxKeys: 3 }).map((M) => ({ M })),
    fc.constantFrom({ Q: 1 }, {}, { S: 'a', N: '1' }, null, 'text', { S: 5 }),
  ),
})).a;

const deepMap = fc.integer({ min: 500, max: 3000 }).map((d) => {
  let v: unknown = { S: 'x' };
  for (let i = 0; i < d; i++) v = { M: { k: v } };
  return v;
});

const ddbRecord = (i: number) =>
  fc
    .record({
      image: fc.dictionary(
        fc.string({ maxLength: 5 }),
        fc.oneof({ arbitrary: attribute, weight: 9 }, { arbitrary: deepMap, weight: 1 }),
        {
          maxKeys: 4,
        },
      ),
      broken: fc.option(
        fc.tuple(fc.constantFrom('dynamodb', 'SequenceNumber', 'NewImage', 'Keys', 'eventName'), junk),
        {
          freq: 4,
        },
      ),
    })
    .map(({ image, broken }) => {
      const r = dynamoDbEventRecord({
        arn: DDB_ARN,
        eventID: `ev-${i}`,
        dynamodb: { SequenceNumber: String(100 + i), Keys: { id: { S: `k${i}` } }, NewImage: image },
      }) as unknown as Record<string, unknown>;
      const d = r.dynamodb as Record<string, unknown>;
      if (broken) {
        const [field, v] = broken;
        if (field === 'dynamodb' || field === 'eventName') r[field] = v;
        else d[field] = v;
      }
      return r;
    });

const recordsOf = (make: (i: number) => fc.Arbitrary<unknown>) =>
  fc.integer({ min: 1, max: 12 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => make(i))));

describe('fuzz: no Kinesis or DynamoDB Streams record fails an invocation or is lost', () => {
  for (const [source, make] of [
    ['Kinesis', kinesisRecord],
    ['DynamoDB Streams', ddbRecord],
  ] as const) {
    it(`${source}: every record written or dead-lettered, no batch item failure`, async () => {
      await fc.assert(
        fc.asyncProperty(recordsOf(make), async (records) => {
          const { out, dead, handler } = handlerWithOutputs();
          const result = await handler({ Records: records } as never);
          expect(result?.batchItemFailures ?? []).toEqual([]);
          expect(out.values.length + dead.values.length).toBe(records.length);
          for (const v of out.values) expect(() => JSON.stringify(v)).not.toThrow();
          for (const d of dead.values) {
            expect(d.reason).toBe('decode');
            expect(d.shardId).not.toBe('');
            expect(typeof d.sequenceNumber).toBe('string');
            expect(d.error).not.toMatch(/TypeError|RangeError|BigInt|undefined \(reading/);
          }
          await (await handler.ready).close();
        }),
        { numRuns: Number(process.env.FUZZ_RUNS ?? 150), seed: Number(process.env.FUZZ_SEED ?? 20261203) },
      );
    }, 120_000);
  }
});
