// The emulators every test runs on, and their clients: kinesalite (Kinesis), dynalite
// (DynamoDB), s3rver (S3), a loopback SQS and a real redis-server, reached through the real AWS
// SDK with a NodeHttpHandler. Stream creation waits for ACTIVE; table creation waits for nothing
// (the emulators create tables at once). The servers themselves live in servers.mjs and sqs.mjs,
// which the benchmarks import too.
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  type _Record as KinesisRecord,
  PutRecordsCommand,
  type PutRecordsResultEntry,
} from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createStateTable } from '@tributary/state';

export { type RedisServer, startDynalite, startKinesalite, startRedis, startS3 } from './servers.mjs';
export { type SqsEntry, startSqs } from './sqs.mjs';

/** An emulator on a loopback port. */
export interface Emulator {
  endpoint: string;
  close(): Promise<void>;
}

/** The SDK client configuration for an emulator: its endpoint, any region and credentials, a NodeHttpHandler. */
export function emulatorConfig(endpoint: string) {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    requestHandler: new NodeHttpHandler(),
  };
}

export const kinesisClient = (endpoint: string) => new KinesisClient(emulatorConfig(endpoint));
export const dynamoDbClient = (endpoint: string) => new DynamoDBClient(emulatorConfig(endpoint));
/** s3rver takes path-style addresses and the credentials S3RVER/S3RVER. */
export const s3Client = (endpoint: string) =>
  new S3Client({
    ...emulatorConfig(endpoint),
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });

// ---- Kinesis ------------------------------------------------------------------------------

/** A shard of a stream: its id, the first hash key of its range, and whether it is still open. */
export interface StreamShardInfo {
  shardId: string;
  hashKey: string;
  open: boolean;
}

/** The shards of a stream, once it is ACTIVE (after creation or a reshard). */
export async function streamShards(client: KinesisClient, stream: string): Promise<StreamShardInfo[]> {
  for (let i = 0; i < 100; i++) {
    const d = (await client.send(new DescribeStreamCommand({ StreamName: stream }))).StreamDescription;
    if (d?.StreamStatus === 'ACTIVE') {
      return (d.Shards ?? []).map((s) => ({
        shardId: s.ShardId as string,
        hashKey: s.HashKeyRange?.StartingHashKey as string,
        open: !s.SequenceNumberRange?.EndingSequenceNumber,
      }));
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`stream ${stream} did not become active`);
}

/** Creates a stream of `shards` shards and waits until it is ACTIVE; returns its shards. */
export async function createStream(client: KinesisClient, stream: string, shards = 1): Promise<StreamShardInfo[]> {
  await client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: shards }));
  return streamShards(client, stream);
}

/** Where Kinesis put a record. */
export interface Placed {
  shardId: string;
  sequenceNumber: string;
}

/**
 * Puts values as JSON, in order, 500 a call; the partition key (and, to aim at one shard, the
 * explicit hash key) come from the value. Returns where each record was put.
 */
export async function putJson<T>(
  client: KinesisClient,
  stream: string,
  values: readonly T[],
  keys: (value: T, i: number) => { partitionKey: string; explicitHashKey?: string },
): Promise<Placed[]> {
  const placed: Placed[] = [];
  for (let i = 0; i < values.length; i += 500) {
    const res = await client.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: values.slice(i, i + 500).map((v, j) => {
          const { partitionKey, explicitHashKey } = keys(v, i + j);
          return {
            Data: Buffer.from(JSON.stringify(v)),
            PartitionKey: partitionKey,
            ...(explicitHashKey ? { ExplicitHashKey: explicitHashKey } : {}),
          };
        }),
      }),
    );
    if (res.FailedRecordCount) throw new Error(`${res.FailedRecordCount} records not put`);
    for (const r of res.Records as PutRecordsResultEntry[]) {
      placed.push({ shardId: r.ShardId as string, sequenceNumber: r.SequenceNumber as string });
    }
  }
  return placed;
}

/** Every record of a shard from its start (TRIM_HORIZON), as GetRecords returns them. */
export async function shardRecords(client: KinesisClient, stream: string, shardId: string): Promise<KinesisRecord[]> {
  let iterator = (
    await client.send(
      new GetShardIteratorCommand({ StreamName: stream, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }),
    )
  ).ShardIterator;
  const out: KinesisRecord[] = [];
  for (let i = 0; i < 100 && iterator; i++) {
    const r = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
    out.push(...(r.Records ?? []));
    if ((r.Records ?? []).length === 0) break;
    iterator = r.NextShardIterator;
  }
  return out;
}

/** The data of every record of every shard of a stream, as text. */
export async function streamData(client: KinesisClient, stream: string): Promise<string[]> {
  const out: string[] = [];
  for (const shard of await streamShards(client, stream)) {
    for (const r of await shardRecords(client, stream, shard.shardId))
      out.push(Buffer.from(r.Data as Uint8Array).toString());
  }
  return out;
}

// ---- DynamoDB -----------------------------------------------------------------------------

/** Creates a table keyed by one string attribute (on demand). */
export async function createTable(client: DynamoDBClient, table: string, hashKey = 'id'): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: table,
      KeySchema: [{ AttributeName: hashKey, KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: hashKey, AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}

/** Creates Tributary's state table(s) on a DynamoDB emulator (the product's own `createStateTable`). */
export async function createStateTables(endpoint: string, ...tables: string[]): Promise<void> {
  const client = dynamoDbClient(endpoint);
  try {
    for (const t of tables) await createStateTable(client, t);
  } finally {
    client.destroy();
  }
}
