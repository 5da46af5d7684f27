// Every sink against a real (or protocol-speaking loopback) server, with transient failures
// injected: all records arrive exactly as sent (count and content), partial failures are retried
// only for the failed entries, and records that can never be written reach the dead-letter output.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type BatchWriteItemCommand, CreateTableCommand, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  type PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  compile,
  type DeadLetterRecord,
  envelope,
  MemorySink,
  parsePipelineYaml,
  type RecordEnvelope,
} from '@tributary/core';
import { dynamoDbSink, httpSink, kinesisSink, redisSink, SinkError, sqsSink } from '@tributary/sinks';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startDynalite, startKinesalite, startRedis } from '../../../test-support/servers.mjs';
import { startSqs } from '../../../test-support/sqs.mjs';

type Rec = { id: string; n: number; text: string };
const recordsOf = (count: number, prefix = 'r'): RecordEnvelope<Rec>[] =>
  Array.from({ length: count }, (_, i) =>
    envelope(
      { partitionKey: `${prefix}${i % 17}`, sequenceNumber: String(i + 1), arrivalTime: 0 },
      'shardId-000000000000',
      { id: `${prefix}${i}`, n: i, text: `record ${i} ${'x'.repeat(i % 50)}` },
      0,
    ),
  );

/** A dead-letter collector standing in for the pipeline's context. */
function deadLetters() {
  const dead: { env: RecordEnvelope; error: string }[] = [];
  return {
    dead,
    context: { deadLetter: (env: RecordEnvelope, error: unknown) => dead.push({ env, error: String(error) }) },
  };
}

const fast = { retry: { minDelay: 1, maxDelay: 10 } };
const local = (endpoint: string) => ({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  requestHandler: new NodeHttpHandler(),
});

let dynamo: { endpoint: string; close: () => Promise<void> };
let kinesis: { endpoint: string; close: () => Promise<void> };
let redis: RedisServer;
beforeAll(async () => {
  [dynamo, kinesis, redis] = await Promise.all([startDynalite(), startKinesalite(), startRedis()]);
});
afterAll(async () => {
  await Promise.all([dynamo?.close(), kinesis?.close(), redis?.close()]);
});

describe('kinesis sink (kinesalite)', () => {
  async function readAll(client: KinesisClient, stream: string): Promise<string[]> {
    const d = await client.send(new DescribeStreamCommand({ StreamName: stream }));
    const out: string[] = [];
    for (const shard of d.StreamDescription?.Shards ?? []) {
      let it = (
        await client.send(
          new GetShardIteratorCommand({
            StreamName: stream,
            ShardId: shard.ShardId,
            ShardIteratorType: 'TRIM_HORIZON',
          }),
        )
      ).ShardIterator;
      for (let i = 0; i < 100 && it; i++) {
        const r = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10_000 }));
        for (const rec of r.Records ?? []) out.push(Buffer.from(rec.Data as Uint8Array).toString());
        if ((r.Records ?? []).length === 0) break;
        it = r.NextShardIterator;
      }
    }
    return out;
  }

  it('writes every record once in calls of 500, retrying only the entries the answer failed', async () => {
    const client = new KinesisClient(local(kinesis.endpoint));
    await client.send(new CreateStreamCommand({ StreamName: 'out', ShardCount: 3 }));
    for (let i = 0; i < 50; i++) {
      const d = await client.send(new DescribeStreamCommand({ StreamName: 'out' }));
      if (d.StreamDescription?.StreamStatus === 'ACTIVE') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    // The real client, with every 7th entry of a first attempt failed as throttled.
    const sent: number[] = [];
    let retried = 0;
    const seen = new Set<string>();
    const stingy = {
      send: async (command: PutRecordsCommand) => {
        const entries = command.input.Records ?? [];
        sent.push(entries.length);
        const fail = entries.map((e, i) => {
          const body = Buffer.from(e.Data as Uint8Array).toString();
          if (seen.has(body)) retried++;
          const first = !seen.has(body);
          seen.add(body);
          return first && i % 7 === 0;
        });
        const ok = entries.filter((_, i) => !fail[i]);
        const res = ok.length
          ? await client.send(new (command.constructor as typeof PutRecordsCommand)({ StreamName: 'out', Records: ok }))
          : { Records: [] };
        let j = 0;
        return {
          FailedRecordCount: fail.filter(Boolean).length,
          Records: fail.map((f) =>
            f ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'slow down' } : res.Records?.[j++],
          ),
        };
      },
      destroy() {},
    } as unknown as KinesisClient;
    const sink = kinesisSink({ stream: 'out', client: stingy, partitionKey: (env) => env.partitionKey, ...fast });
    const records = recordsOf(1200);
    const { dead, context } = deadLetters();
    await sink.write(records, context);
    expect(dead).toEqual([]);
    // One call at a time (the default, for per-key order): each call, then the retry of its throttled entries.
    expect(sent).toEqual([500, 72, 500, 72, 200, 29]);
    const failedFirst = records.filter((_, i) => (i % 500) % 7 === 0).length;
    expect(retried).toBe(failedFirst); // only the failed entries were sent again
    const got = await readAll(client, 'out');
    expect(got.sort()).toEqual(records.map((r) => JSON.stringify(r.value)).sort());
    expect(sink.metrics).toMatchObject({ records: 1200, deadLettered: 0 });
    expect(sink.metrics.retries).toBeGreaterThan(0);
    client.destroy();
  });

  it('dead-letters a record over 1 MiB and one the stream refuses for good, naming the sink and the code', async () => {
    const client = new KinesisClient(local(kinesis.endpoint));
    const refusing = {
      send: async (command: PutRecordsCommand) => ({
        FailedRecordCount: 1,
        Records: (command.input.Records ?? []).map((_, i) =>
          i === 0
            ? { ErrorCode: 'KMSAccessDeniedException', ErrorMessage: 'no key' }
            : { SequenceNumber: '1', ShardId: 's' },
        ),
      }),
      destroy() {},
    } as unknown as KinesisClient;
    const sink = kinesisSink({ stream: 'out', client: refusing, ...fast });
    const big = envelope(
      { partitionKey: 'k', sequenceNumber: '9', arrivalTime: 0 },
      's',
      { blob: 'x'.repeat(1_100_000) },
      0,
    );
    const { dead, context } = deadLetters();
    await sink.write([...recordsOf(3), big], context);
    expect(dead.map((d) => d.error)).toEqual([
      `kinesis stream out: RecordTooLarge: record of ${JSON.stringify(big.value).length + 1} bytes is over the 1 MiB limit`,
      'kinesis stream out: KMSAccessDeniedException: no key',
    ]);
    client.destroy();
  });
});

describe('dynamodb sink (dynalite)', () => {
  let client: DynamoDBClient;
  beforeAll(async () => {
    client = new DynamoDBClient(local(dynamo.endpoint));
    for (const t of ['items', 'counters']) {
      await client.send(
        new CreateTableCommand({
          TableName: t,
          KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
          AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
    }
  });
  afterAll(() => client?.destroy());

  it('puts every item in calls of 25; UnprocessedItems are sent again alone; an item over 400 KB is dead-lettered', async () => {
    const sizes: number[] = [];
    const stingy = {
      send: async (command: BatchWriteItemCommand) => {
        const requests = command.input.RequestItems?.items ?? [];
        sizes.push(requests.length);
        // Process the first half; hand the rest back as unprocessed, as DynamoDB does under load.
        const half = sizes.length <= 3 ? Math.ceil(requests.length / 2) : requests.length;
        await client.send(
          new (command.constructor as typeof BatchWriteItemCommand)({
            RequestItems: { items: requests.slice(0, half) },
          }),
        );
        return { UnprocessedItems: half < requests.length ? { items: requests.slice(half) } : {} };
      },
      destroy() {},
    } as unknown as DynamoDBClient;
    const sink = dynamoDbSink({ table: 'items', client: stingy, concurrency: 1, ...fast });
    const records = recordsOf(120);
    const big = envelope(
      { partitionKey: 'k', sequenceNumber: '999', arrivalTime: 0 },
      's',
      { id: 'big', blob: 'x'.repeat(420_000) },
      0,
    );
    const { dead, context } = deadLetters();
    await sink.write([...records, big], context);
    expect(dead.map((d) => d.error)).toEqual([
      expect.stringMatching(/^dynamodb table items: ItemTooLarge: item of about \d+ bytes is over the 400 KB limit$/),
    ]);
    // The first call's unprocessed halves are sent again alone (12, then 6, then 3), then the rest.
    expect(sizes).toEqual([25, 12, 6, 3, 25, 25, 25, 20]);
    const scan = await client.send(new ScanCommand({ TableName: 'items' }));
    const items = (scan.Items ?? []).map((i) => unmarshall(i));
    expect(items.sort((a, b) => a.n - b.n)).toEqual(records.map((r) => r.value));
  });

  it('one invalid item in a call: the others are written, only it is dead-lettered', async () => {
    const sink = dynamoDbSink({ table: 'items', endpoint: dynamo.endpoint, ...fast });
    const values = [1, 2, 3, 4, 5].map((i) => ({ id: i === 3 ? '' : `v${i}`, n: 1000 + i })); // an empty key is invalid
    const envs = values.map((v, i) =>
      envelope({ partitionKey: 'k', sequenceNumber: String(i), arrivalTime: 0 }, 's', v, 0),
    );
    const { dead, context } = deadLetters();
    await sink.write(envs, context);
    await sink.close();
    expect(dead.map((d) => [d.env.sequenceNumber, d.error.split(':')[0] + ':' + d.error.split(':')[1]])).toEqual([
      ['2', 'dynamodb table items: ValidationException'],
    ]);
    const scan = await client.send(new ScanCommand({ TableName: 'items' }));
    const ns = (scan.Items ?? []).map((i) => unmarshall(i).n).filter((n) => n > 1000);
    expect(ns.sort()).toEqual([1001, 1002, 1004, 1005]);
  });

  it('update mode adds counters and sets the other attributes', async () => {
    const sink = dynamoDbSink({
      table: 'counters',
      mode: 'update',
      key: ['id'],
      add: ['clicks'],
      endpoint: dynamo.endpoint,
      ...fast,
    });
    const events = Array.from({ length: 30 }, (_, i) => ({ id: `u${i % 4}`, clicks: 1 + (i % 3), last: i }));
    const envs = events.map((v, i) =>
      envelope({ partitionKey: v.id, sequenceNumber: String(i), arrivalTime: 0 }, 's', v, 0),
    );
    await sink.write(envs, deadLetters().context);
    await sink.close();
    const scan = await client.send(new ScanCommand({ TableName: 'counters' }));
    const got = Object.fromEntries((scan.Items ?? []).map((i) => unmarshall(i)).map((i) => [i.id, i]));
    const expected: Record<string, { id: string; clicks: number; last: number }> = {};
    for (const e of events) {
      const cur = expected[e.id] ?? { id: e.id, clicks: 0, last: 0 };
      expected[e.id] = { id: e.id, clicks: cur.clicks + e.clicks, last: e.last };
    }
    expect(got).toEqual(expected);
  });
});

describe('redis sink (redis-server)', () => {
  it('set, hset, zadd and xadd write every record, one pipeline per call', async () => {
    const records = recordsOf(2500, 'q');
    const check = new Redis(redis.url);
    for (const command of ['set', 'hset', 'zadd', 'xadd'] as const) {
      const sink = redisSink({
        url: redis.url,
        command,
        key: (v) => (command === 'set' ? `set:${(v as Rec).id}` : `${command}:all`),
        field: command === 'hset' ? (v) => (v as Rec).id : undefined,
        score: command === 'zadd' ? (v) => (v as Rec).n : undefined,
        ...fast,
      });
      await sink.write(records, deadLetters().context);
      expect(sink.metrics.calls).toBe(3); // 1000 commands per pipeline
      await sink.close();
    }
    const values = records.map((r) => JSON.stringify(r.value));
    expect(await check.mget(...records.map((r) => `set:${r.value.id}`))).toEqual(values);
    expect(Object.values(await check.hgetall('hset:all')).sort()).toEqual([...values].sort());
    expect(await check.zrange('zadd:all', '0', '-1')).toEqual(values); // by score n
    const stream = await check.xrange('xadd:all', '-', '+');
    expect(stream.map(([, fields]) => fields[1])).toEqual(values);
    check.disconnect();
  });
});

describe('failures that say nothing about the records', () => {
  it('a record that cannot be encoded is dead-lettered; a call refused for good fails the write instead of dead-lettering its records', async () => {
    const sqs = await startSqs();
    const sink = sqsSink({ queueUrl: sqs.queueUrl, endpoint: sqs.endpoint, ...fast });
    const bigint = envelope({ partitionKey: 'k', sequenceNumber: '1', arrivalTime: 0 }, 's', { n: 1n }, 0);
    const { dead, context } = deadLetters();
    await sink.write([bigint, ...recordsOf(3)], context);
    expect(dead.map((d) => d.error)).toEqual([expect.stringMatching(/^sqs queue test-queue: EncodeFailed: .*BigInt/)]);
    expect(sqs.messages).toHaveLength(3);
    await sink.close();
    await sqs.close();
    const denied = {
      send: async () => {
        throw Object.assign(new Error('User is not authorized to perform: kinesis:PutRecords'), {
          name: 'AccessDeniedException',
        });
      },
      destroy() {},
    } as unknown as KinesisClient;
    const k = kinesisSink({ stream: 'out', client: denied, ...fast });
    const none = deadLetters();
    await expect(k.write(recordsOf(5), none.context)).rejects.toThrow(/kinesis stream out: AccessDeniedException/);
    expect(none.dead).toEqual([]);
  });
});

describe('redis sink: transient failures', () => {
  it('a pipeline lost to a dropped connection is sent again; every record arrives once', async () => {
    const real = new Redis(redis.url);
    let drops = 0;
    // The real client, whose first two pipelines fail as a reset connection would.
    const flaky = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== 'pipeline') return Reflect.get(target, prop, receiver);
        return (commands: unknown[]) => {
          const p = target.pipeline(commands as never);
          if (drops >= 2) return p;
          drops++;
          return {
            exec: async () => Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })),
          };
        };
      },
    });
    const sink = redisSink({ client: flaky, command: 'set', key: (v) => `flaky:${(v as Rec).id}`, ...fast });
    const records = recordsOf(1500, 'f');
    await sink.write(records, deadLetters().context);
    expect(drops).toBe(2);
    expect(sink.metrics.retries).toBe(2);
    expect(await real.mget(...records.map((r) => `flaky:${r.value.id}`))).toEqual(
      records.map((r) => JSON.stringify(r.value)),
    );
    real.disconnect();
  });
});

describe('sqs sink (loopback SQS JSON protocol)', () => {
  it('sends every record once in batches of 10; transient entry failures are retried alone, sender faults dead-lettered', async () => {
    const sqs = await startSqs({
      fail: (entry, attempt) => {
        const n = (JSON.parse(entry.MessageBody) as Rec).n;
        if (n % 11 === 0 && attempt === 1) return { code: 'ServiceUnavailable', senderFault: false };
        if (n === 7) return { code: 'InvalidParameterValue', senderFault: true };
        return undefined;
      },
    });
    const sink = sqsSink({ queueUrl: sqs.queueUrl, endpoint: sqs.endpoint, ...fast });
    const records = recordsOf(95);
    const big = envelope(
      { partitionKey: 'k', sequenceNumber: '999', arrivalTime: 0 },
      's',
      { blob: 'x'.repeat(270_000) },
      0,
    );
    const { dead, context } = deadLetters();
    await sink.write([...records, big], context);
    await sink.close();
    expect(dead.map((d) => d.error)).toEqual([
      expect.stringMatching(/^sqs queue test-queue: MessageTooLong: message of \d+ bytes is over the 256 KiB limit$/),
      'sqs queue test-queue: InvalidParameterValue: InvalidParameterValue',
    ]);
    const expected = records.filter((r) => r.value.n !== 7);
    expect(sqs.messages.map((m) => m.MessageBody).sort()).toEqual(expected.map((r) => JSON.stringify(r.value)).sort());
    expect(sqs.messages.map((m) => m.MessageAttributes?.['tributary-record-id']?.StringValue).sort()).toEqual(
      expected.map((r) => `shardId-000000000000/${r.sequenceNumber}`).sort(),
    );
    // 95 records in 10 calls; each of the 9 calls with a throttled entry retries that entry alone.
    expect(sqs.calls).toBe(10 + 9);
    await sqs.close();
  });
});

describe('http sink (loopback server injecting 500s, 429s and slow replies)', () => {
  it('delivers every record; retries honour Retry-After; the idempotency key lets the server drop a replayed request', async () => {
    const received = new Map<string, unknown[]>(); // by Idempotency-Key, as a receiving server would de-duplicate
    let requests = 0;
    const waits: number[] = [];
    let lastAt = 0;
    const server: Server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        requests++;
        const now = performance.now();
        if (lastAt) waits.push(now - lastAt);
        lastAt = now;
        const key = req.headers['idempotency-key'] as string;
        if (requests === 1) return res.writeHead(500).end();
        if (requests === 2) return res.writeHead(429, { 'retry-after': '0.2' }).end();
        if (requests === 3) {
          // Stored, but answered too late: the sink times out and sends it again.
          received.set(key, JSON.parse(body));
          setTimeout(() => res.writeHead(200).end(), 300);
          return;
        }
        received.set(key, JSON.parse(body));
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const sink = httpSink({
      url: `http://127.0.0.1:${port}/ingest`,
      batchSize: 40,
      timeout: 100,
      concurrency: 1,
      ...fast,
    });
    const records = recordsOf(200);
    await sink.write(records, deadLetters().context);
    const all = [...received.values()].flat();
    expect(all.sort((a, b) => (a as Rec).n - (b as Rec).n)).toEqual(records.map((r) => r.value));
    expect(requests).toBeGreaterThanOrEqual(5 + 3);
    expect(waits[1]).toBeGreaterThanOrEqual(190); // after the 429, Retry-After (0.2 s) was honoured
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('413: a request too large for the server is split until it fits; a single record still too large is dead-lettered', async () => {
    const received: unknown[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        if (body.length > 2000) return res.writeHead(413, 'Payload Too Large').end();
        received.push(...JSON.parse(body));
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const records = recordsOf(60);
    const huge = envelope(
      { partitionKey: 'k', sequenceNumber: '999', arrivalTime: 0 },
      's',
      { id: 'huge', text: 'h'.repeat(3000) },
      0,
    );
    const { dead, context } = deadLetters();
    await httpSink({ url: `http://127.0.0.1:${port}/`, batchSize: 60, ...fast }).write([...records, huge], context);
    expect((received as Rec[]).sort((a, b) => a.n - b.n)).toEqual(records.map((r) => r.value));
    expect(dead.map((d) => d.error)).toEqual([`http 127.0.0.1:${port}: HTTP 413: Payload Too Large`]);
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('a status that retrying cannot fix dead-letters the request; a destination down for good fails the write', async () => {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(400, 'Bad Request').end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const { dead, context } = deadLetters();
    await httpSink({ url: `http://127.0.0.1:${port}/`, batchSize: 10, ...fast }).write(recordsOf(15), context);
    expect(dead.map((d) => d.error)).toEqual(Array(15).fill('http 127.0.0.1:' + port + ': HTTP 400: Bad Request'));
    await new Promise<void>((r) => server.close(() => r()));
    const down = httpSink({ url: `http://127.0.0.1:${port}/`, retry: { maxAttempts: 3, minDelay: 1, maxDelay: 2 } });
    await expect(down.write(recordsOf(2), context)).rejects.toBeInstanceOf(SinkError);
  });
});

describe('sinks in a pipeline', () => {
  it('records a sink cannot write reach the dead-letter output with the sink and error; the rest is written', async () => {
    const sqs = await startSqs({
      fail: (e) =>
        (JSON.parse(e.MessageBody) as Rec).n === 3 ? { code: 'InvalidMessageContents', senderFault: true } : undefined,
    });
    const parsed = parsePipelineYaml(
      `version: 1\nname: sinks\nsource: { file: { path: in.jsonl } }\nsteps:\n  - sink: { sqs: { queueUrl: '${sqs.queueUrl}', endpoint: '${sqs.endpoint}' }, name: to-queue }\n`,
      'p.yaml',
    );
    if (!parsed.spec) throw new Error(parsed.issues.map((i) => i.message).join('\n'));
    const dead = new MemorySink<DeadLetterRecord>();
    const c = compile({ spec: parsed.spec, bindings: new Map(), baseDir: '.' }, { deadLetter: dead });
    const result = await c.process({
      shardId: 's0',
      records: recordsOf(6).map((r) => ({
        value: r.value,
        partitionKey: r.partitionKey,
        sequenceNumber: r.sequenceNumber,
        arrivalTime: 0,
      })),
    });
    await c.close();
    expect(sqs.messages).toHaveLength(5);
    expect(result).toMatchObject({ recordsOut: 5, deadLettered: 1 });
    expect(dead.values).toEqual([
      expect.objectContaining({
        reason: 'sink',
        step: 'to-queue',
        sequenceNumber: '4',
        error: 'sqs queue test-queue: InvalidMessageContents: InvalidMessageContents',
      }),
    ]);
    await sqs.close();
  });

  it('bounds the bytes in flight: a slow destination makes writes wait instead of piling up', async () => {
    let peak = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.writeHead(200).end(), 20));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const sink = httpSink({
      url: `http://127.0.0.1:${port}/`,
      batchSize: 10,
      concurrency: 8,
      maxInFlightBytes: 4096,
      ...fast,
    });
    const timer = setInterval(() => {
      peak = Math.max(peak, sink.inFlightBytes);
    }, 1);
    await Promise.all([
      sink.write(recordsOf(100), deadLetters().context),
      sink.write(recordsOf(100, 'b'), deadLetters().context),
    ]);
    clearInterval(timer);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(4096);
    expect(sink.metrics.records).toBe(200);
    await new Promise<void>((r) => server.close(() => r()));
  });
});
