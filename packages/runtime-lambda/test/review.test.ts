// Review of issue 12 (hostile input) in the Lambda handler: nothing an event carries disappears.
// An empty KPL aggregate and data that is not base64 are dead-lettered with the payload as
// delivered; a record without a usable arrival time is dead-lettered on both paths (Kinesis and
// DynamoDB Streams) alike; user records of another shard's hash range are dropped, but counted.

import { type DeadLetterRecord, fileSource, MemorySink, pipeline } from '@tributary/core';
import { createHandler, deaggregate } from '@tributary/runtime-lambda';
import { describe, expect, it } from 'vitest';
import { ddbRecordMaker, kinesisRecordMaker, kplAggregate, protobufField } from '../../../test-support/lambdaEvents.js';
import { passThroughHandler } from './support.js';

const SHARD = 'shardId-000000000007';
const KINESIS_ARN = 'arn:aws:kinesis:us-east-1:000000000000:stream/review';
const DDB_ARN = 'arn:aws:dynamodb:us-east-1:000000000000:table/users/stream/2026-11-21T00:00:00.000';
const DDB_SHARD = 'shardId-00000001795000000000-0000abcd';
const kinesisRecord = kinesisRecordMaker({ shard: SHARD, arn: KINESIS_ARN, rawStrings: true });
const ddbRecord = ddbRecordMaker(DDB_ARN, (seq) => ({ Keys: { id: { S: `k${seq}` } } }));

const passThrough = (options: { hashRange?: (s: string) => { start: bigint; end: bigint } | undefined } = {}) =>
  passThroughHandler('review', {
    describeDynamoDbStream: async () => [{ shardId: DDB_SHARD, start: '1' }],
    ...options,
  });

/** A KPL aggregate of a protobuf body, in base64. */
const aggregate = (body: Buffer): string => kplAggregate(body).toString('base64');
const field = protobufField;

describe('review: KPL aggregates', () => {
  it('dead-letters a KPL aggregate of no user records (decode), with its shard, sequence number and data', async () => {
    const { out, dead, handler, metric } = passThrough();
    const empties = [Buffer.from([0x0a, 0x01, 0x61]), Buffer.from([0x09, 0x01]), Buffer.alloc(0)].map(aggregate);
    const event = {
      Records: [
        kinesisRecord('301', { n: 1 }),
        kinesisRecord('302', empties[0] as string),
        kinesisRecord('303', empties[1] as string),
        kinesisRecord('304', empties[2] as string),
        kinesisRecord('305', { n: 2 }),
      ],
    };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toEqual([{ n: 1 }, { n: 2 }]);
    expect(dead.values.map((d) => [d.reason, d.step, d.shardId, d.sequenceNumber, d.partitionKey, d.data])).toEqual([
      ['decode', 'source', SHARD, '302', 'pk-302', empties[0]],
      ['decode', 'source', SHARD, '303', 'pk-303', empties[1]],
      ['decode', 'source', SHARD, '304', 'pk-304', empties[2]],
    ]);
    expect(dead.values[0]?.error).toBe(
      `Kinesis record #1 of the event (shard ${SHARD}, sequence number "302"): KPL aggregate holds no user records`,
    );
    expect(metric()).toMatchObject({ RecordsIn: 5, RecordsOut: 2, DeadLettered: 3, OtherShardDropped: 0 });
  });

  it('drops user records of another shard’s hash range, and counts them in the metric line and a log line', async () => {
    const { out, dead, handler, lines, metric } = passThrough({ hashRange: () => ({ start: 100n, end: 200n }) });
    // AggregatedRecord { partition_key_table: ['k'], explicit_hash_key_table: ['5', '150'], records }
    const user = (hash: number, json: string) =>
      field(3, Buffer.concat([Buffer.from([0x08, 0, 0x10, hash]), field(3, Buffer.from(json))]));
    const keys = Buffer.concat([field(1, Buffer.from('k')), field(2, Buffer.from('5')), field(2, Buffer.from('150'))]);
    const allOther = aggregate(Buffer.concat([keys, user(0, '{"o":1}'), user(0, '{"o":2}')]));
    const mixed = aggregate(Buffer.concat([keys, user(0, '{"o":3}'), user(1, '{"m":1}')]));
    const event = {
      Records: [kinesisRecord('401', { n: 1 }), kinesisRecord('402', allOther), kinesisRecord('403', mixed)],
    };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toEqual([{ n: 1 }, { m: 1 }]);
    expect(dead.values).toEqual([]);
    expect(metric()).toMatchObject({ RecordsIn: 2, RecordsOut: 2, DeadLettered: 0, OtherShardDropped: 3 });
    expect(metric()._aws.CloudWatchMetrics[0].Metrics).toContainEqual({ Name: 'OtherShardDropped', Unit: 'Count' });
    const info = lines.map((l) => JSON.parse(l)).find((l) => l.msg?.includes('another shard'));
    expect(info).toMatchObject({ level: 'info', shardId: SHARD, from: '401', records: 3 });
    // The exported deaggregate() is unchanged: an empty aggregate gives no user records.
    expect(deaggregate(Buffer.from(aggregate(Buffer.from([0x0a, 0x01, 0x61])), 'base64'), 'p')).toEqual([]);
  });
});

describe('review: Kinesis data that is not base64', () => {
  it('dead-letters data that is not strict base64 as `decode` "data is not base64", with the text as delivered', async () => {
    const { out, dead, handler } = passThrough();
    const bad = ['!!!@@@###', 'eyJuIjoxfQ', 'eyJu-joxfQ==', 'eyJu_joxfQ==', 'eyJuIjoxfQ=A', 'eyJuIjox fQ==', 'A==='];
    const event = {
      Records: [
        kinesisRecord('501', Buffer.from('{"n":1}').toString('base64')),
        ...bad.map((d, i) => kinesisRecord(String(502 + i), d)),
        kinesisRecord('509', { n: 2 }),
      ],
    };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toEqual([{ n: 1 }, { n: 2 }]);
    expect(dead.values.map((d) => [d.reason, d.step, d.shardId, d.sequenceNumber, d.data])).toEqual(
      bad.map((d, i) => ['decode', 'source', SHARD, String(502 + i), d]),
    );
    const prefix = (i: number) =>
      `Kinesis record #${i + 1} of the event (shard ${SHARD}, sequence number "${502 + i}"): `;
    expect(dead.values.map((d) => d.error)).toEqual([
      `${prefix(0)}data is not base64 ("!" at offset 0)`,
      `${prefix(1)}data is not base64 (its length, 10, is not a multiple of 4)`,
      `${prefix(2)}data is not base64 ("-" at offset 4)`,
      `${prefix(3)}data is not base64 ("_" at offset 4)`,
      `${prefix(4)}data is not base64 (misplaced "=" at offset 10)`,
      `${prefix(5)}data is not base64 (" " at offset 8)`,
      `${prefix(6)}data is not base64 (misplaced "=" at offset 1)`,
    ]);
  });
});

describe('review: records without a usable arrival time are dead-lettered alike on both paths', () => {
  it('Kinesis: absent, text, null or out-of-range `approximateArrivalTimestamp` → decode', async () => {
    const { out, dead, handler } = passThrough();
    const broken = [undefined, '1795000000', null, 1e300].map((t, i) => {
      const r = kinesisRecord(String(602 + i), { n: `bad ${i}` });
      if (t === undefined) delete (r.kinesis as { approximateArrivalTimestamp?: number }).approximateArrivalTimestamp;
      else (r.kinesis as { approximateArrivalTimestamp: unknown }).approximateArrivalTimestamp = t;
      return r;
    });
    const event = { Records: [kinesisRecord('601', { n: 1 }), ...broken, kinesisRecord('606', { n: 2 })] };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toEqual([{ n: 1 }, { n: 2 }]);
    expect(dead.values.map((d) => [d.reason, d.step, d.shardId, d.sequenceNumber])).toEqual(
      broken.map((_, i) => ['decode', 'source', SHARD, String(602 + i)]),
    );
    const prefix = (i: number) =>
      `Kinesis record #${i + 1} of the event (shard ${SHARD}, sequence number "${602 + i}"): `;
    expect(dead.values.map((d) => d.error)).toEqual([
      `${prefix(0)}has no \`approximateArrivalTimestamp\``,
      `${prefix(1)}\`approximateArrivalTimestamp\` is not a number (a string)`,
      `${prefix(2)}\`approximateArrivalTimestamp\` is not a number (null)`,
      `${prefix(3)}\`approximateArrivalTimestamp\` is not epoch seconds within ±8.64e12 (1e+300)`,
    ]);
    // The dead letter carries the event record as delivered.
    expect(JSON.parse(dead.values[1]?.data as string)).toMatchObject({ eventID: `${SHARD}:603` });
  });

  it('Kinesis: the same with an event-time pipeline (the arrival time was NaN there, and passed)', async () => {
    const out = new MemorySink<unknown>();
    const dead = new MemorySink<DeadLetterRecord>();
    const p = pipeline('review-et')
      .source(fileSource<{ ts: number }>({ path: '-' }))
      .eventTime((e) => e.ts)
      .sink(out)
      .build();
    const handler = createHandler(p, { deadLetter: dead, log: () => {} });
    const noArrival = kinesisRecord('702', { ts: 1_795_000_000_000 });
    delete (noArrival.kinesis as { approximateArrivalTimestamp?: number }).approximateArrivalTimestamp;
    await handler({ Records: [kinesisRecord('701', { ts: 1_795_000_000_000 }), noArrival] });
    expect(out.values).toEqual([{ ts: 1_795_000_000_000 }]);
    expect(dead.values.map((d) => [d.reason, d.sequenceNumber, d.error])).toEqual([
      [
        'decode',
        '702',
        `Kinesis record #1 of the event (shard ${SHARD}, sequence number "702"): has no \`approximateArrivalTimestamp\``,
      ],
    ]);
  });

  it('DynamoDB Streams: absent, text or null `ApproximateCreationDateTime` → decode (it became arrival time 0)', async () => {
    const { out, dead, handler } = passThrough();
    const broken = [undefined, '1795000000', null].map((t, i) => {
      const r = ddbRecord(String(802 + i));
      const d = r.dynamodb as { ApproximateCreationDateTime?: unknown };
      if (t === undefined) delete d.ApproximateCreationDateTime;
      else d.ApproximateCreationDateTime = t;
      return r;
    });
    const event = { Records: [ddbRecord('801'), ...broken, ddbRecord('805')] };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values.map((v) => (v as { keys: { id: string } }).keys.id)).toEqual(['k801', 'k805']);
    expect(dead.values.map((d) => [d.reason, d.step, d.shardId, d.sequenceNumber])).toEqual(
      broken.map((_, i) => ['decode', 'source', DDB_SHARD, String(802 + i)]),
    );
    const prefix = (i: number) =>
      `DynamoDB Streams record #${i + 1} of the event (shard ${DDB_SHARD}, sequence number "${802 + i}"): `;
    expect(dead.values.map((d) => d.error)).toEqual([
      `${prefix(0)}has no \`ApproximateCreationDateTime\``,
      `${prefix(1)}\`ApproximateCreationDateTime\` is not a number (a string)`,
      `${prefix(2)}\`ApproximateCreationDateTime\` is not a number (null)`,
    ]);
  });
});
