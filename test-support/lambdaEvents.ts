// Lambda event records as the event source mapping hands them over — Kinesis and DynamoDB
// Streams — built by hand or from what kinesalite's GetRecords returns, and hand-made KPL
// aggregates (for aggregates no encoder would write).
import { createHash } from 'node:crypto';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { DynamoDBRecord, DynamoDBStreamEvent, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import { shardRecords } from './emulators.js';

/** The ARN of a Kinesis stream of the local account. */
export const kinesisStreamArn = (stream: string) => `arn:aws:kinesis:us-east-1:000000000000:stream/${stream}`;

/** The approximate arrival time (epoch seconds) of records built by hand. */
export const ARRIVAL_SECONDS = 1_795_000_000;

/** One Kinesis event record; `data` is the base64 text as delivered. */
export function kinesisEventRecord(r: {
  shardId: string;
  arn: string;
  sequenceNumber: string;
  partitionKey: string;
  data: string;
  arrivalSeconds?: number;
}): KinesisStreamRecord {
  return {
    eventID: `${r.shardId}:${r.sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    eventSource: 'aws:kinesis',
    eventSourceARN: r.arn,
    eventVersion: '1.0',
    invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
    awsRegion: 'us-east-1',
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: r.partitionKey,
      sequenceNumber: r.sequenceNumber,
      data: r.data,
      approximateArrivalTimestamp: r.arrivalSeconds ?? ARRIVAL_SECONDS,
    },
  };
}

/**
 * A maker of Kinesis event records of `shard` on stream `arn`: the value is sent as JSON (with
 * `rawStrings`, a string is taken as the base64 `data` itself); the partition key is `pk-<seq>`.
 */
export function kinesisRecordMaker(defaults: { shard: string; arn: string; rawStrings?: boolean }) {
  return (seq: string, value: unknown, shard = defaults.shard): KinesisStreamRecord =>
    kinesisEventRecord({
      shardId: shard,
      arn: defaults.arn,
      sequenceNumber: seq,
      partitionKey: `pk-${seq}`,
      data:
        defaults.rawStrings && typeof value === 'string'
          ? value
          : Buffer.from(JSON.stringify(value)).toString('base64'),
    });
}

/** The event Lambda hands the function for one shard: its records from the start, as GetRecords returns them. */
export async function kinesisEventOf(
  client: KinesisClient,
  stream: string,
  shardId: string,
): Promise<KinesisStreamEvent> {
  const records = await shardRecords(client, stream, shardId);
  return {
    Records: records.map((r) =>
      kinesisEventRecord({
        shardId,
        arn: kinesisStreamArn(stream),
        sequenceNumber: r.SequenceNumber as string,
        partitionKey: r.PartitionKey as string,
        data: Buffer.from(r.Data as Uint8Array).toString('base64'),
        arrivalSeconds: (r.ApproximateArrivalTimestamp?.getTime() ?? 0) / 1000,
      }),
    ),
  };
}

/** One DynamoDB Streams event record (NEW_AND_OLD_IMAGES); `dynamodb` holds the keys, images and sequence number. */
export function dynamoDbEventRecord(r: {
  arn: string;
  eventID: string;
  eventName?: 'INSERT' | 'MODIFY' | 'REMOVE';
  dynamodb: Record<string, unknown>;
}): DynamoDBRecord {
  return {
    eventID: r.eventID,
    eventName: r.eventName ?? 'INSERT',
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    eventSourceARN: r.arn,
    dynamodb: {
      ApproximateCreationDateTime: ARRIVAL_SECONDS,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
      ...r.dynamodb,
    } as never,
  };
}

/** A maker of DynamoDB Streams INSERT records on stream `arn`; `base(seq)` fills the `dynamodb` part first. */
export function ddbRecordMaker(arn: string, base: (seq: string) => Record<string, unknown> = () => ({})) {
  return (seq: string, dynamodb: Record<string, unknown> = {}): DynamoDBRecord =>
    dynamoDbEventRecord({ arn, eventID: `ev-${seq}`, dynamodb: { SequenceNumber: seq, ...base(seq), ...dynamodb } });
}

export type { DynamoDBRecord, DynamoDBStreamEvent, KinesisStreamEvent, KinesisStreamRecord };

// ---- hand-made KPL aggregates -------------------------------------------------------------

/** A length-delimited protobuf field (wire type 2) of a body under 128 bytes. */
export const protobufField = (n: number, body: Buffer) =>
  Buffer.concat([Buffer.from([(n << 3) | 2, body.length]), body]);

/** A KPL aggregate of a protobuf body: the magic bytes, the body, its MD5. */
export function kplAggregate(body: Buffer): Buffer {
  const md5 = createHash('md5').update(body).digest();
  return Buffer.concat([Buffer.from([0xf3, 0x89, 0x9a, 0xc2]), body, md5]);
}
