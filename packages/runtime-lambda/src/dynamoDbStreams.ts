/**
 * The shards of a DynamoDB stream, described through the AWS SDK: only a function fed by DynamoDB
 * Streams needs it (a bundle whose event source is a Kinesis stream leaves it out).
 */
import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { type DescribeDynamoDbStream, type DynamoDbStreamShard, LISTING_CLIENT, regionOf } from './shards.js';

/**
 * DynamoDB Streams `DescribeStream` through the AWS SDK, every page (`ExclusiveStartShardId`).
 * With no client, one per region is created on first use.
 */
export function dynamoDbStreamDescriber(client?: DynamoDBStreamsClient): DescribeDynamoDbStream {
  const clients = new Map<string, Promise<DynamoDBStreamsClient>>();
  const clientFor = (arn: string): Promise<DynamoDBStreamsClient> => {
    if (client) return Promise.resolve(client);
    const region = regionOf(arn) ?? '';
    let c = clients.get(region);
    if (!c) {
      c = import('@tributary/aws/dynamodb-streams').then((aws) =>
        aws.dynamoDbStreamsClient({ ...LISTING_CLIENT, region }),
      );
      clients.set(region, c);
      c.catch(() => clients.delete(region));
    }
    return c;
  };
  return async (streamArn) => {
    const [streams, { DescribeStreamCommand }] = await Promise.all([
      clientFor(streamArn),
      import('@aws-sdk/client-dynamodb-streams'),
    ]);
    const shards: DynamoDbStreamShard[] = [];
    let after: string | undefined;
    do {
      const res = await streams.send(
        new DescribeStreamCommand({ StreamArn: streamArn, ...(after ? { ExclusiveStartShardId: after } : {}) }),
      );
      const d = res.StreamDescription;
      for (const s of d?.Shards ?? []) {
        const start = s.SequenceNumberRange?.StartingSequenceNumber;
        if (!s.ShardId || !start) continue;
        const shard: DynamoDbStreamShard = { shardId: s.ShardId, start };
        const end = s.SequenceNumberRange?.EndingSequenceNumber;
        if (end) shard.end = end;
        if (s.ParentShardId) shard.parent = s.ParentShardId;
        shards.push(shard);
      }
      after = d?.LastEvaluatedShardId;
    } while (after);
    return shards;
  };
}
