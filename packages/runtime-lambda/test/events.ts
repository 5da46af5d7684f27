// Lambda event records as the event source mapping hands them over, for the handler tests.
import type { DynamoDBRecord, KinesisStreamRecord } from 'aws-lambda';

/**
 * A maker of Kinesis event records of `shard` on stream `arn`: the value is sent as JSON (with
 * `rawStrings`, a string is taken as the base64 `data` itself).
 */
export function kinesisRecordMaker(defaults: { shard: string; arn: string; rawStrings?: boolean }) {
  return (seq: string, value: unknown, shard = defaults.shard): KinesisStreamRecord => ({
    eventID: `${shard}:${seq}`,
    eventName: 'aws:kinesis:record',
    eventSource: 'aws:kinesis',
    eventSourceARN: defaults.arn,
    eventVersion: '1.0',
    invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
    awsRegion: 'us-east-1',
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: `pk-${seq}`,
      sequenceNumber: seq,
      data:
        defaults.rawStrings && typeof value === 'string'
          ? value
          : Buffer.from(JSON.stringify(value)).toString('base64'),
      approximateArrivalTimestamp: 1_795_000_000,
    },
  });
}

/** A maker of DynamoDB Streams INSERT records on stream `arn`; `base(seq)` fills the `dynamodb` part first. */
export function ddbRecordMaker(arn: string, base: (seq: string) => Record<string, unknown> = () => ({})) {
  return (seq: string, dynamodb: Record<string, unknown> = {}): DynamoDBRecord => ({
    eventID: `ev-${seq}`,
    eventName: 'INSERT',
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    eventSourceARN: arn,
    dynamodb: {
      ApproximateCreationDateTime: 1_795_000_000,
      SequenceNumber: seq,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
      ...base(seq),
      ...dynamodb,
    } as never,
  });
}
