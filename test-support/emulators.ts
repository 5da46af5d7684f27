// The emulators every test runs on, and their clients: kinesalite (Kinesis), dynalite
// (DynamoDB), s3rver (S3), a loopback SQS and a real redis-server, reached through the real AWS
// SDK with a NodeHttpHandler. Stream creation waits for ACTIVE; table creation waits for nothing
// (the emulators create tables at once). kinesalite, dynalite, s3rver and redis-server are started
// by servers.mjs, which the benchmarks import too.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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
import { afterAll, beforeAll } from 'vitest';

import { startDynalite, startKinesalite } from './servers.mjs';

export { type RedisServer, startDynalite, startKinesalite, startRedis, startS3 } from './servers.mjs';

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

/** A record to put: its data, its partition key and, to aim at one shard, an explicit hash key. */
export interface PutEntry {
  data: Uint8Array;
  partitionKey: string;
  explicitHashKey?: string;
}

/** Puts records in order, 500 a call; returns where each was put. */
export async function putRecords(
  client: KinesisClient,
  stream: string,
  entries: readonly PutEntry[],
): Promise<Placed[]> {
  const placed: Placed[] = [];
  for (let i = 0; i < entries.length; i += 500) {
    const res = await client.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: entries.slice(i, i + 500).map((e) => ({
          Data: e.data,
          PartitionKey: e.partitionKey,
          ...(e.explicitHashKey ? { ExplicitHashKey: e.explicitHashKey } : {}),
        })),
      }),
    );
    if (res.FailedRecordCount) throw new Error(`${res.FailedRecordCount} records not put`);
    for (const r of res.Records as PutRecordsResultEntry[]) {
      placed.push({ shardId: r.ShardId as string, sequenceNumber: r.SequenceNumber as string });
    }
  }
  return placed;
}

/** Puts values as JSON, in order; the partition key (and explicit hash key) come from the value. */
export function putJson<T>(
  client: KinesisClient,
  stream: string,
  values: readonly T[],
  keys: (value: T, i: number) => { partitionKey: string; explicitHashKey?: string },
): Promise<Placed[]> {
  return putRecords(
    client,
    stream,
    values.map((v, i) => ({ data: Buffer.from(JSON.stringify(v)), ...keys(v, i) })),
  );
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

// ---- SQS ----------------------------------------------------------------------------------

export interface SqsEntry {
  Id: string;
  MessageBody: string;
  MessageAttributes?: Record<string, { DataType: string; StringValue?: string }>;
  MessageDeduplicationId?: string;
  MessageGroupId?: string;
}

/**
 * A loopback server speaking the SQS JSON protocol (AWS JSON 1.0) — enough of SendMessageBatch
 * for the SQS sink: it keeps the messages it accepted, and `fail(entry, attempt)` may fail an
 * entry (as SQS does in a partial answer) with a code and whether the sender is at fault.
 */
export async function startSqs(
  options: { fail?: (entry: SqsEntry, attempt: number) => { code: string; senderFault: boolean } | undefined } = {},
) {
  const messages: SqsEntry[] = [];
  const attempts = new Map<string, number>();
  let calls = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      calls++;
      const target = req.headers['x-amz-target'];
      const reply = (status: number, obj: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify(obj));
      };
      if (target !== 'AmazonSQS.SendMessageBatch') {
        return reply(400, { __type: 'com.amazonaws.sqs#InvalidAction', message: `unsupported ${target}` });
      }
      const input = JSON.parse(body) as { Entries: SqsEntry[] };
      const Successful: unknown[] = [];
      const Failed: unknown[] = [];
      for (const entry of input.Entries) {
        const key = entry.MessageBody;
        const attempt = (attempts.get(key) ?? 0) + 1;
        attempts.set(key, attempt);
        const failure = options.fail?.(entry, attempt);
        if (failure) {
          Failed.push({ Id: entry.Id, Code: failure.code, Message: failure.code, SenderFault: failure.senderFault });
          continue;
        }
        messages.push(entry);
        Successful.push({
          Id: entry.Id,
          MessageId: `m${messages.length}`,
          MD5OfMessageBody: createHash('md5').update(entry.MessageBody).digest('hex'),
        });
      }
      reply(200, { Successful, Failed });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    queueUrl: `http://127.0.0.1:${port}/000000000000/test-queue`,
    messages,
    get calls() {
      return calls;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// ---- a stream and its state --------------------------------------------------------------

/** kinesalite with a client, and dynalite with a window state table: what a runtime test of a Kinesis pipeline runs on. */
export interface StreamServers {
  kinesis: Emulator;
  dynamo: Emulator;
  client: KinesisClient;
  close(): Promise<void>;
}

export async function startStreamServers(stateTable: string): Promise<StreamServers> {
  const [kinesis, dynamo] = await Promise.all([startKinesalite(), startDynalite()]);
  const client = kinesisClient(kinesis.endpoint);
  await createStateTables(dynamo.endpoint, stateTable);
  return {
    kinesis,
    dynamo,
    client,
    close: async () => {
      client.destroy();
      await Promise.all([kinesis.close(), dynamo.close()]);
    },
  };
}

/**
 * Servers for the tests of one file: `start` runs before the first test and the servers close
 * after the last; the object returned is filled in by the time a test runs.
 */
export function useServers<T extends { close(): Promise<void> }>(start: () => Promise<T>): T {
  const servers = {} as T;
  beforeAll(async () => {
    Object.assign(servers, await start());
  });
  afterAll(async () => {
    await servers.close?.();
  });
  return servers;
}
