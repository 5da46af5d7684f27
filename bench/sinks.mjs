// Sinks: 100k records (~150 B of JSON each) written to Kinesis (kinesalite), DynamoDB (dynalite)
// and Redis (redis-server) through the sinks, in 10k-record batches as a pipeline hands them
// over, against a naive writer making one awaited call per record. Reports calls and records/s.
// The naive writers run on the first 10k records (100k awaited calls take minutes against the
// emulators) and are reported per record; calls scale exactly, time is scaled linearly.
import { BatchWriteItemCommand, CreateTableCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateStreamCommand, DescribeStreamCommand, KinesisClient, PutRecordCommand } from '@aws-sdk/client-kinesis';
import { marshall } from '@aws-sdk/util-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { envelope } from '@tributary/core/spi';
import { dynamoDbSink, kinesisSink, redisSink } from '@tributary/sinks';
import { Redis } from 'ioredis';
import { startDynalite, startKinesalite, startRedis } from '../test-support/servers.mjs';
import { fmt, random, table } from './lib.mjs';

export const name = 'sinks';

function makeRecords(n) {
  const rand = random(3);
  return Array.from({ length: n }, (_, i) =>
    envelope(
      { partitionKey: `u${i % 1000}`, sequenceNumber: String(i + 1), arrivalTime: 0 },
      'shardId-000000000000',
      {
        id: `e${i}`,
        user: `u${Math.floor(rand() * 1000)}`,
        amount: Math.round(rand() * 10000) / 100,
        page: `/p/${i % 97}`,
        ts: 1_700_000_000_000 + i,
      },
      0,
    ),
  );
}

const local = (endpoint) => ({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  requestHandler: new NodeHttpHandler(),
});

async function timed(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function run({ records = 100_000, batchSize = 10_000, naiveSample = 10_000 } = {}) {
  const all = makeRecords(records);
  const sample = all.slice(0, Math.min(naiveSample, records));
  const [dyn, kin, red] = await Promise.all([startDynalite(), startKinesalite(), startRedis()]);
  const rows = [];
  const summary = {
    records,
    batchSize,
    naiveSample: sample.length,
    targets: { fewerCalls: 50, faster: 10 },
    sinks: {},
  };
  let pass = true;
  const dead = [];
  const context = { deadLetter: (env, error) => dead.push({ env, error }) };
  const through = async (sink) => {
    const ms = await timed(async () => {
      for (let i = 0; i < all.length; i += batchSize) await sink.write(all.slice(i, i + batchSize), context);
    });
    return { ms, calls: sink.metrics.calls };
  };
  try {
    // Kinesis
    const kc = new KinesisClient(local(kin.endpoint));
    await kc.send(new CreateStreamCommand({ StreamName: 'bench', ShardCount: 4 }));
    for (let i = 0; i < 100; i++) {
      const d = await kc.send(new DescribeStreamCommand({ StreamName: 'bench' }));
      if (d.StreamDescription.StreamStatus === 'ACTIVE') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const kNaive = await timed(async () => {
      for (const r of sample) {
        await kc.send(
          new PutRecordCommand({
            StreamName: 'bench',
            Data: Buffer.from(JSON.stringify(r.value)),
            PartitionKey: r.partitionKey,
          }),
        );
      }
    });
    const kSink = kinesisSink({ stream: 'bench', endpoint: kin.endpoint, concurrency: 4 });
    const kTrib = await through(kSink);
    await kSink.close();
    kc.destroy();

    // DynamoDB
    const dc = new DynamoDBClient(local(dyn.endpoint));
    await dc.send(
      new CreateTableCommand({
        TableName: 'bench',
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    const dNaive = await timed(async () => {
      for (const r of sample) await dc.send(new PutItemCommand({ TableName: 'bench', Item: marshall(r.value) }));
    });
    const dSink = dynamoDbSink({ table: 'bench', endpoint: dyn.endpoint, concurrency: 8 });
    const dTrib = await through(dSink);
    await dSink.close();
    // BatchWriteItem takes at most 25 items, so no writer makes fewer than records/25 calls; and
    // the emulator has a ceiling of its own: a bare BatchWriteItem loop (no sink) measures it.
    const marshalled = all.map((r) => marshall({ ...r.value, id: `bare-${r.value.id}` }));
    let next = 0;
    const dBare = await timed(() =>
      Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < marshalled.length) {
            const chunk = marshalled.slice(next, next + 25);
            next += 25;
            await dc.send(
              new BatchWriteItemCommand({ RequestItems: { bench: chunk.map((Item) => ({ PutRequest: { Item } })) } }),
            );
          }
        }),
      ),
    );
    dc.destroy();

    // Redis
    const rc = new Redis(red.url);
    const rNaive = await timed(async () => {
      for (const r of sample) await rc.set(`naive:${r.value.id}`, JSON.stringify(r.value));
    });
    const rSink = redisSink({ url: red.url, command: 'set', key: (v) => `sink:${v.id}`, concurrency: 4 });
    const rTrib = await through(rSink);
    await rSink.close();
    const written = await rc.dbsize();
    rc.disconnect();
    if (written !== sample.length + records)
      throw new Error(`redis holds ${written} keys, expected ${sample.length + records}`);

    for (const [sinkName, naiveMs, trib] of [
      ['kinesis', kNaive, kTrib],
      ['dynamodb', dNaive, dTrib],
      ['redis', rNaive, rTrib],
    ]) {
      const naiveRate = (sample.length / naiveMs) * 1000;
      const tribRate = (records / trib.ms) * 1000;
      const fewerCalls = records / trib.calls;
      const faster = tribRate / naiveRate;
      const entry = { naiveCalls: records, calls: trib.calls, naiveRate, rate: tribRate, fewerCalls, faster };
      if (sinkName === 'dynamodb') {
        // Targets capped by the API (25 items per call) and the emulator's own ceiling.
        entry.bareBatchRate = (records / dBare) * 1000;
        entry.ofCeiling = tribRate / entry.bareBatchRate;
        entry.apiMaxFewerCalls = 25;
        if (fewerCalls < 25 || entry.ofCeiling < 0.8) pass = false;
      } else if (fewerCalls < 50 || faster < 10) pass = false;
      summary.sinks[sinkName] = entry;
      rows.push(
        {
          sink: sinkName,
          variant: `naive: one awaited call per record (first ${fmt(sample.length)})`,
          calls: fmt(records),
          'records/s': fmt(naiveRate),
          ratio: '1x',
        },
        {
          sink: sinkName,
          variant: 'tributary sink (batched, retried)',
          calls: fmt(trib.calls),
          'records/s': fmt(tribRate),
          ratio: `${fmt(fewerCalls)}x fewer calls, ${faster.toFixed(1)}x faster`,
        },
      );
      if (sinkName === 'dynamodb') {
        rows.push({
          sink: sinkName,
          variant: 'bare BatchWriteItem loop, 25 per call (ceiling)',
          calls: fmt(Math.ceil(records / 25)),
          'records/s': fmt(entry.bareBatchRate),
          ratio: `sink = ${entry.ofCeiling.toFixed(2)}x of it`,
        });
      }
    }
    if (dead.length > 0) throw new Error(`${dead.length} records were dead-lettered: ${dead[0].error}`);
  } finally {
    await Promise.all([dyn.close(), kin.close(), red.close()]);
  }
  summary.pass = pass;
  const k = summary.sinks.kinesis;
  const d = summary.sinks.dynamodb;
  const r = summary.sinks.redis;
  const line = [
    `kinesis: ${fmt(k.fewerCalls)}x fewer calls, ${k.faster.toFixed(1)}x faster`,
    `redis: ${fmt(r.fewerCalls)}x fewer calls, ${r.faster.toFixed(1)}x faster (targets >= 50x and >= 10x)`,
    `dynamodb: ${fmt(d.fewerCalls)}x fewer calls (BatchWriteItem takes 25 items: no writer can do better) and ${d.faster.toFixed(1)}x faster, ${d.ofCeiling.toFixed(2)}x the emulator's bare batched ceiling (target >= 0.8x): the issue's 50x/10x are out of reach here`,
  ].join('\n');
  return {
    text: `${table(rows, ['sink', 'variant', 'calls', 'records/s', 'ratio'])}\n\n(naive calls for all ${fmt(records)} records: one per record)\n${line}\n${pass ? 'PASS' : 'FAIL'}`,
    summary,
  };
}
