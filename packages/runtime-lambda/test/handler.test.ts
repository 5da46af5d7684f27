// The Lambda handler on events built from real kinesalite GetRecords output — plain records,
// KPL aggregates written by the Kinesis sink, and aggregates written by AWS's own aws-kinesis-agg
// (an independent encoder) — plus partial batch failures, the timeout margin, ticks, DynamoDB
// Streams events and the metric lines.
import { createRequire } from 'node:module';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { marshall } from '@aws-sdk/util-dynamodb';
import {
  count,
  fileSource,
  MemorySink,
  PipelineValidationError,
  pipeline,
  type RecordEnvelope,
  sum,
} from '@tributary/core';
import { envelope } from '@tributary/core/spi';
import { createHandler, kinesisShardLister } from '@tributary/runtime-lambda';
import { kinesisSink } from '@tributary/sinks';
import type { DynamoDBStreamEvent, KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createStream,
  type Emulator,
  kinesisClient,
  putJson,
  putRecords,
  startKinesalite,
} from '../../../test-support/emulators.js';
import { kinesisEventOf } from '../../../test-support/lambdaEvents.js';

const agg = createRequire(import.meta.url)('aws-kinesis-agg') as {
  aggregate(
    records: { partitionKey: string; data: Buffer }[],
    onEncoded: (encoded: { partitionKey: string; data: Buffer }, done: (err?: Error) => void) => void,
    afterAll: () => void,
    onError: (err: Error) => void,
  ): void;
};

type Click = { user: string; amount: number; t: number };

let kinesis: Emulator;
let client: KinesisClient;
beforeAll(async () => {
  kinesis = await startKinesalite();
  client = kinesisClient(kinesis.endpoint);
});
afterAll(async () => {
  client?.destroy();
  await kinesis?.close();
});

/** What Lambda would hand the function for the records of the stream's one shard. */
async function eventFrom(stream: string): Promise<KinesisStreamEvent> {
  return kinesisEventOf(client, stream, 'shardId-000000000000');
}

function clicks(n: number, from = 0): Click[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    return { user: `u${i % 7}`, amount: (i * 13) % 50, t: 1000 + i * 10 };
  });
}

/** The oracle: per user, count and sum over the input. */
function totals(cs: Click[]) {
  const m: Record<string, { n: number; s: number }> = {};
  for (const c of cs) {
    const cur = m[c.user] ?? { n: 0, s: 0 };
    m[c.user] = { n: cur.n + 1, s: cur.s + c.amount };
  }
  return m;
}

/** Per user, the count and sum of the amounts, in one window as long as a test (state in memory, volatile). */
const totalsPerUser = {
  key: (e: Click) => e.user,
  tumbling: 1_000_000,
  aggregate: { n: count(), s: sum((e: Click) => e.amount) },
  state: { memory: { volatile: true } },
};

function windowPipeline(out: MemorySink<{ key: string; n: number; s: number }>, name = 'lambda-test') {
  return pipeline(name)
    .source(fileSource<Click>({ path: '-' }))
    .eventTime((e) => e.t)
    .filter((e) => e.amount >= 0)
    .window(totalsPerUser)
    .sink(out)
    .build();
}

const byUser = (vs: { key: string; n: number; s: number }[]) =>
  Object.fromEntries(vs.map((v) => [v.key, { n: v.n, s: v.s }]));

const STATE_LOST =
  'window state in memory would be lost whenever a Lambda container ends (at any time, without notice) — keep it in a shared store (state: { dynamodb: { table } } or { redis: { url } }), or accept the loss with state: { memory: { volatile: true } }';

describe('lambda handler: window state', () => {
  it('refuses window state in memory (it dies with the container) unless the pipeline opts in to volatile state', async () => {
    const build = (state?: { memory: { volatile?: boolean } }) =>
      pipeline('mem')
        .source(fileSource<{ user: string }>({ path: '-' }))
        .window({ key: (e) => e.user, tumbling: 1000, aggregate: { n: count() }, ...(state ? { state } : {}) })
        .sink(new MemorySink())
        .build();
    for (const p of [build(), build({ memory: {} }), build({ memory: { volatile: false } })]) {
      let refused: unknown;
      try {
        createHandler(p, { log: () => {} });
      } catch (err) {
        refused = err;
      }
      // One issue at the window step (a pipeline built in TypeScript has no file or position).
      expect(refused).toBeInstanceOf(PipelineValidationError);
      expect((refused as PipelineValidationError).issues).toEqual([
        { file: undefined, path: '/steps/0/window', message: STATE_LOST },
      ]);
    }
    // A pipeline still loading is checked when it has loaded: the invocation fails, saying why.
    const later = createHandler(Promise.resolve(build()) as never, { log: () => {} });
    await expect(later.ready).rejects.toThrow(/volatile: true/);
    const ok = createHandler(build({ memory: { volatile: true } }), { log: () => {} });
    await expect(ok.ready).resolves.toBeDefined();
    await (await ok.ready).close();
  });
});

describe('lambda handler: Kinesis events', () => {
  it('counts plain records, sink-aggregated and aws-kinesis-agg-aggregated records exactly; a tick closes the windows', async () => {
    await createStream(client, 'mixed');
    const all = clicks(900);
    const [plain, ours, theirs] = [all.slice(0, 300), all.slice(300, 600), all.slice(600)];
    await putJson(client, 'mixed', plain, (c) => ({ partitionKey: c.user }));
    const sink = kinesisSink({
      stream: 'mixed',
      client,
      aggregate: true,
      partitionKey: (e) => (e.value as Click).user,
    });
    await sink.write(
      ours.map((c, i) => envelope({ partitionKey: c.user, sequenceNumber: String(i), arrivalTime: 0 }, 's', c, 0)),
    );
    const encoded: { partitionKey: string; data: Buffer }[] = [];
    await new Promise<void>((resolve, reject) =>
      agg.aggregate(
        theirs.map((c) => ({ partitionKey: c.user, data: Buffer.from(JSON.stringify(c)) })),
        (e, done) => {
          encoded.push(e);
          done();
        },
        resolve,
        reject,
      ),
    );
    await putRecords(
      client,
      'mixed',
      encoded.map((e) => ({ data: e.data, partitionKey: e.partitionKey })),
    );

    const event = await eventFrom('mixed');
    expect(event.Records.length).toBeLessThan(320); // the aggregates arrive as a few Kinesis records
    const out = new MemorySink<{ key: string; n: number; s: number }>();
    const lines: string[] = [];
    // The window lists the stream's shards itself: here through kinesalite.
    const handler = createHandler(windowPipeline(out), {
      log: (l) => lines.push(l),
      listShards: kinesisShardLister(client),
    });
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toEqual([]); // the window is open
    expect(await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event' })).toEqual({
      batchItemFailures: [],
    });
    expect(out.values).toEqual([]); // nothing has passed the window yet (its end is far ahead)
    const compiled = await handler.ready;
    await compiled.flush();
    expect(byUser(out.values)).toEqual(totals(all));
    const metric = JSON.parse(lines[0] as string);
    expect(metric).toMatchObject({ Pipeline: 'lambda-test', Event: 'kinesis', RecordsIn: 900, FailedBatches: 0 });
    expect(metric._aws.CloudWatchMetrics[0].Metrics.map((m: { Name: string }) => m.Name)).toContain('IteratorAge');
  });

  it('a failure that retrying can fix reports the first sequence number of the failed chunk; the redelivery adds nothing twice', async () => {
    await createStream(client, 'flaky');
    const all = clicks(250);
    await putJson(client, 'flaky', all, (c) => ({ partitionKey: c.user }));
    const event = await eventFrom('flaky');
    let writes = 0;
    const out = new MemorySink<{ key: string; n: number; s: number }>();
    const results: RecordEnvelope[] = [];
    const failing = {
      async write(records: readonly RecordEnvelope[]) {
        writes++;
        if (writes === 3) throw new Error('sink unavailable'); // the third chunk fails once
        results.push(...records);
      },
      async close() {},
    };
    const p = pipeline('flaky')
      .source(fileSource<Click>({ path: '-' }))
      .eventTime((e) => e.t)
      .sink(failing)
      .window(totalsPerUser)
      .sink(out)
      .build();
    const handler = createHandler(p, { chunkSize: 50, log: () => {} });
    const first = await handler(event);
    const third = event.Records[100]?.kinesis.sequenceNumber as string;
    expect(first).toEqual({ batchItemFailures: [{ itemIdentifier: third }] });
    // Lambda delivers again from the reported record (ReportBatchItemFailures).
    const again = { Records: event.Records.slice(100) };
    expect(await handler(again)).toEqual({ batchItemFailures: [] });
    await (await handler.ready).flush();
    expect(byUser(out.values)).toEqual(totals(all));
    expect(results).toHaveLength(250); // the pass-through sink got every record once
  });

  it('decodes each chunk as it takes it: one chunk of records is alive at a time', async () => {
    const event = await eventFrom('flaky');
    let read = 0;
    // Each event record counts the first read of its payload (what decoding it does).
    const Records = event.Records.map((r) => {
      let counted = false;
      const kinesis = { ...r.kinesis };
      const data = kinesis.data;
      Object.defineProperty(kinesis, 'data', {
        enumerable: true,
        get() {
          if (!counted) read++;
          counted = true;
          return data;
        },
      });
      return { ...r, kinesis };
    });
    const readAtWrite: number[] = [];
    const out = {
      async write(records: readonly RecordEnvelope[]) {
        if (records.length > 0) readAtWrite.push(read);
      },
      async close() {},
    };
    const p = pipeline('lazy')
      .source(fileSource<Click>({ path: '-' }))
      .sink(out)
      .build();
    const handler = createHandler(p, { chunkSize: 50, log: () => {} });
    expect(await handler({ Records })).toEqual({ batchItemFailures: [] });
    // 250 records in 5 chunks: when chunk k is written, k chunks have been decoded, and the one
    // record that told chunk k was complete (it begins chunk k + 1).
    expect(readAtWrite).toEqual(Array.from({ length: 5 }, (_, k) => Math.min(250, 50 * (k + 1) + 1)));
  });

  it('starts no chunk near the timeout and reports the rest for retry', async () => {
    const event = await eventFrom('flaky');
    const handler = createHandler(windowPipeline(new MemorySink()), {
      chunkSize: 100,
      safetyMarginMs: 1000,
      log: () => {},
    });
    let left = 1500;
    const context = { awsRequestId: 'r1', getRemainingTimeInMillis: () => (left -= 400) };
    const r = await handler(event, context);
    // 1100 ms left before the first chunk (processed), 700 before the second: stop there.
    expect(r).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[100]?.kinesis.sequenceNumber }] });
  });
});

describe('lambda handler: DynamoDB Streams events', () => {
  it('unmarshals keys and images; a failure reports the record to retry from', async () => {
    const out = new MemorySink<unknown>();
    const p = pipeline('ddb')
      .source(fileSource<{ eventName: string; newImage?: { id: string; clicks: number } }>({ path: '-' }))
      .filter((e) => e.eventName !== 'REMOVE')
      .map((e) => ({ id: e.newImage?.id, clicks: e.newImage?.clicks }))
      .sink(out)
      .build();
    const handler = createHandler(p, { log: () => {} });
    const event: DynamoDBStreamEvent = {
      Records: [1, 2, 3].map((i) => ({
        eventID: `e${i}`,
        eventName: i === 3 ? 'REMOVE' : 'INSERT',
        eventSource: 'aws:dynamodb',
        eventSourceARN: 'arn:aws:dynamodb:us-east-1:000000000000:table/users/stream/2026-11-21T00:00:00.000',
        dynamodb: {
          Keys: marshall({ id: `u${i}` }) as never,
          NewImage: i === 3 ? undefined : (marshall({ id: `u${i}`, clicks: i * 10 }) as never),
          SequenceNumber: String(100 + i),
          ApproximateCreationDateTime: 1_795_000_000,
          StreamViewType: 'NEW_AND_OLD_IMAGES',
        },
      })),
    };
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(out.values).toEqual([
      { id: 'u1', clicks: 10 },
      { id: 'u2', clicks: 20 },
    ]);
  });
});
