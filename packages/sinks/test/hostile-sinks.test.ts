/**
 * Issue 12: no record can crash a sink or the dead-letter output. A value a `map` made circular,
 * nested thousands of levels deep or holding a BigInt is dead-lettered by the sink that cannot
 * write it (reason `sink`, the error saying why) and the rest of the batch is written; a sink used
 * as the dead-letter output (no dead-letter output of its own) receives a writable form of it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  compile,
  type DeadLetterRecord,
  envelope,
  fileSource,
  MemorySink,
  pipeline,
  type RecordEnvelope,
  type Sink,
} from '@tributary/core';
import { dynamoDbSink, httpSink, kinesisSink, redisSink, sqsSink } from '@tributary/sinks';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../../../test-support/servers.mjs';
import { startSqs } from '../../../test-support/sqs.mjs';

function deepValue(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return { id: 'deep', v };
}
function circular(): unknown {
  const o: Record<string, unknown> = { id: 'circular' };
  o.self = o;
  return o;
}
const hostile = { circular: circular(), deep: deepValue(6000) };

const env = (value: unknown, seq: number): RecordEnvelope =>
  envelope({ partitionKey: `k${seq}`, sequenceNumber: String(seq), arrivalTime: 0 }, 'shardId-0', value, 0);
/** Good records 1, 3, 5 around the hostile ones (2, 4). */
const batch = () => [
  env({ id: 'g1', n: 1 }, 1),
  env(hostile.circular, 2),
  env({ id: 'g3', n: 3 }, 3),
  env(hostile.deep, 4),
  env({ id: 'g5', n: 5 }, 5),
];
function collector() {
  const dead: { seq: string; error: string }[] = [];
  return {
    dead,
    context: {
      deadLetter: (e: RecordEnvelope, error: unknown) => dead.push({ seq: e.sequenceNumber, error: String(error) }),
    },
  };
}
const fast = { retry: { minDelay: 1, maxDelay: 10 } };

let redis: RedisServer;
let server: Server;
let httpBodies: unknown[] = [];
let httpUrl: string;
beforeAll(async () => {
  redis = await startRedis();
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      httpBodies.push(...(JSON.parse(body) as unknown[]));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  httpUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`;
});
afterAll(async () => {
  await redis?.close();
  await new Promise((r) => server?.close(r));
});

describe('hostile values: every JSON sink dead-letters what it cannot encode and writes the rest', () => {
  const expectDead = (dead: { seq: string; error: string }[], summary: string) =>
    expect(dead).toEqual([
      { seq: '2', error: `${summary}: EncodeFailed: the value cannot be written as JSON: it is circular` },
      { seq: '4', error: `${summary}: EncodeFailed: the value cannot be written as JSON: it is nested too deeply` },
    ]);

  it('sqs', async () => {
    const sqs = await startSqs();
    const sink = sqsSink({ queueUrl: sqs.queueUrl, endpoint: sqs.endpoint, ...fast });
    const { dead, context } = collector();
    await sink.write(batch(), context);
    expectDead(dead, 'sqs queue test-queue');
    expect(sqs.messages.map((m: { MessageBody: string }) => JSON.parse(m.MessageBody).id).sort()).toEqual([
      'g1',
      'g3',
      'g5',
    ]);
    await sink.close();
    await sqs.close();
  });

  it('http', async () => {
    httpBodies = [];
    const sink = httpSink({ url: httpUrl, ...fast });
    const { dead, context } = collector();
    await sink.write(batch(), context);
    expectDead(dead, `http ${new URL(httpUrl).host}`);
    expect(httpBodies).toEqual([
      { id: 'g1', n: 1 },
      { id: 'g3', n: 3 },
      { id: 'g5', n: 5 },
    ]);
  });

  it('kinesis', async () => {
    const sent: string[] = [];
    const client = {
      send: async (cmd: { input: { Records: { Data: Uint8Array }[] } }) => {
        for (const r of cmd.input.Records) sent.push(Buffer.from(r.Data).toString());
        return { FailedRecordCount: 0, Records: cmd.input.Records.map(() => ({ SequenceNumber: '1', ShardId: 's' })) };
      },
      destroy() {},
    } as unknown as KinesisClient;
    const sink = kinesisSink({ stream: 'out', client, ...fast });
    const { dead, context } = collector();
    await sink.write(batch(), context);
    expectDead(dead, 'kinesis stream out');
    expect(sent.map((s) => JSON.parse(s).id)).toEqual(['g1', 'g3', 'g5']);
  });

  it('redis', async () => {
    const sink = redisSink({ url: redis.url, command: 'set', key: (v) => (v as { id: string }).id, ...fast });
    const { dead, context } = collector();
    await sink.write(batch(), context);
    expectDead(dead, 'redis set');
    const r = new Redis(redis.url);
    expect(await r.mget('g1', 'g3', 'g5', 'circular', 'deep')).toEqual([
      '{"id":"g1","n":1}',
      '{"id":"g3","n":3}',
      '{"id":"g5","n":5}',
      null,
      null,
    ]);
    r.disconnect();
    await sink.close();
  });

  it('dynamodb: the items it cannot marshall are dead-lettered', async () => {
    const written: unknown[] = [];
    const client = {
      send: async (cmd: { input: { RequestItems: Record<string, { PutRequest: { Item: unknown } }[]> } }) => {
        for (const r of Object.values(cmd.input.RequestItems)[0] ?? []) written.push(r.PutRequest.Item);
        return { UnprocessedItems: {} };
      },
      destroy() {},
    } as unknown as DynamoDBClient;
    const sink = dynamoDbSink({ table: 't', client, ...fast });
    const { dead, context } = collector();
    await sink.write(batch(), context);
    expect(dead.map((d) => d.seq)).toEqual(['2', '4']);
    expect(dead.every((d) => d.error.startsWith('dynamodb table t: ValidationException: '))).toBe(true);
    expect(written).toHaveLength(3);
  });
});

describe('hostile values: an SQS dead-letter output', () => {
  it('receives a writable form of every dead letter, so a batch of them never fails (it would be delivered again for ever)', async () => {
    const sqs = await startSqs();
    const deadLetter: Sink = sqsSink({
      queueUrl: sqs.queueUrl,
      endpoint: sqs.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      requestHandler: new NodeHttpHandler(),
      ...fast,
    } as Parameters<typeof sqsSink>[0]);
    const out = new MemorySink();
    const made: Record<string, () => unknown> = {
      circular,
      deep: () => deepValue(6000),
      bigint: () => ({ id: 'bigint', n: 2n ** 70n }),
    };
    const p = pipeline('dlq')
      .source(fileSource<{ kind: string }>({ path: 'x' }))
      .map((e) => (made[e.kind] ?? (() => e))())
      .filter((v) => {
        if ((v as { id?: string }).id !== undefined) throw new Error('refused');
        return true;
      })
      .sink(out)
      .build();
    const c = compile(p, { deadLetter });
    const kinds = ['circular', 'plain', 'deep', 'bigint'];
    const result = await c.process({
      shardId: 's0',
      records: kinds.map((kind, i) => ({
        data: JSON.stringify({ kind }),
        partitionKey: 'k',
        sequenceNumber: String(i + 1),
        arrivalTime: 0,
      })),
    });
    await c.close();
    expect(result).toMatchObject({ recordsOut: 1, deadLettered: 3 });
    const letters = sqs.messages.map((m: { MessageBody: string }) => JSON.parse(m.MessageBody) as DeadLetterRecord);
    expect(letters.map((d) => [d.sequenceNumber, d.reason, d.error]).sort()).toEqual([
      ['1', 'function', 'refused'],
      ['3', 'function', 'refused'],
      ['4', 'function', 'refused'],
    ]);
    const byId = new Map(letters.map((d) => [(d.value as { id: string }).id, d.value]));
    expect(byId.get('circular')).toEqual({ id: 'circular', self: '[circular]' });
    expect(byId.get('bigint')).toEqual({ id: 'bigint', n: '1180591620717411303424' });
    expect(JSON.stringify(byId.get('deep'))).toContain('[nested deeper than 512 levels]');
    await sqs.close();
  });
});
