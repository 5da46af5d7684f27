// KPL aggregation by the Kinesis sink, checked with the de-aggregator AWS publishes
// (aws-kinesis-agg, an independent implementation) on records read back from kinesalite. The
// codec itself is core's (packages/core/test/kpl.test.ts).
import { createRequire } from 'node:module';
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { envelope, hashKeyOf } from '@tributary/core/spi';
import { kinesisSink } from '@tributary/sinks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKinesalite } from '../../../test-support/servers.mjs';

type UserRecord = { partitionKey: string; data: string };
const agg = createRequire(import.meta.url)('aws-kinesis-agg') as {
  deaggregateSync(
    record: { data: string; partitionKey: string; sequenceNumber: string },
    computeChecksums: boolean,
    done: (err: Error | null, records?: UserRecord[]) => void,
  ): void;
};

let kinesis: { endpoint: string; close: () => Promise<void> };
let client: KinesisClient;
beforeAll(async () => {
  kinesis = await startKinesalite();
  client = new KinesisClient({
    endpoint: kinesis.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    requestHandler: new NodeHttpHandler(),
  });
  await client.send(new CreateStreamCommand({ StreamName: 'agg', ShardCount: 4 }));
  for (let i = 0; i < 50; i++) {
    const d = await client.send(new DescribeStreamCommand({ StreamName: 'agg' }));
    if (d.StreamDescription?.StreamStatus === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 20));
  }
});
afterAll(async () => {
  client?.destroy();
  await kinesis?.close();
});

describe('kinesis sink: KPL aggregation', () => {
  it('packs records per shard; every user record de-aggregates (MD5 checked) on the shard its key belongs to', async () => {
    const values = Array.from({ length: 3000 }, (_, i) => ({ user: `u${i % 200}`, n: i }));
    const records = values.map((v, i) =>
      envelope({ partitionKey: v.user, sequenceNumber: String(i + 1), arrivalTime: 0 }, 'shardId-000000000000', v, 0),
    );
    const sink = kinesisSink({
      stream: 'agg',
      client,
      aggregate: true,
      partitionKey: (env) => (env.value as { user: string }).user,
    });
    await sink.write(records, { deadLetter: (_env, error) => expect.fail(String(error)) });
    expect(sink.metrics.records).toBe(3000);

    const d = await client.send(new DescribeStreamCommand({ StreamName: 'agg' }));
    const users: UserRecord[] = [];
    let kinesisRecords = 0;
    for (const shard of d.StreamDescription?.Shards ?? []) {
      const lo = BigInt(shard.HashKeyRange?.StartingHashKey as string);
      const hi = BigInt(shard.HashKeyRange?.EndingHashKey as string);
      const it0 = await client.send(
        new GetShardIteratorCommand({ StreamName: 'agg', ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
      );
      const res = await client.send(new GetRecordsCommand({ ShardIterator: it0.ShardIterator, Limit: 10_000 }));
      for (const r of res.Records ?? []) {
        kinesisRecords++;
        agg.deaggregateSync(
          {
            data: Buffer.from(r.Data as Uint8Array).toString('base64'),
            partitionKey: r.PartitionKey as string,
            sequenceNumber: r.SequenceNumber as string,
          },
          true,
          (err, out) => {
            if (err) throw err;
            for (const u of out ?? []) {
              const h = hashKeyOf({ partitionKey: u.partitionKey });
              expect(h >= lo && h <= hi).toBe(true); // on the shard its key hashes to
              users.push(u);
            }
          },
        );
      }
    }
    expect(kinesisRecords).toBeLessThanOrEqual(8); // ~60 KB per shard: one aggregate each
    const got = users.map((u) => JSON.parse(Buffer.from(u.data, 'base64').toString()) as { n: number });
    expect(got.sort((a, b) => a.n - b.n)).toEqual(values);
    expect(users.map((u) => u.partitionKey).sort()).toEqual(values.map((v) => v.user).sort());
  });
});
