// The offline policy check: per component kind, a pipeline using it is synthesised with `synth()`
// and its bundle run on the emulators behind recorders of every AWS request it sends (see
// iam/recorder.ts); each request's IAM action on its resource must be allowed by the template
// role's statements (iam/policy.ts evaluates them), and the component's own statement must name
// that component's resource. What each run wrote is checked against its input, so a bundle that
// sent nothing cannot pass.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { awsClientConfig } from '@tributary/aws';
import { loadPipelineFile, type PipelineSpec, PipelineValidationError } from '@tributary/core';
import { type ComponentCategory, deaggregate, definitions } from '@tributary/core/spi';
import { LambdaSimulator } from '@tributary/runtime-lambda';
import '@tributary/sinks';
import '@tributary/state';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import {
  createStateTables,
  createStream,
  createTable,
  dynamoDbClient,
  kinesisClient,
  putJson,
  s3Client,
  shardRecords,
  startDynalite,
  startKinesalite,
  startRedis,
  startS3,
  startSqs,
  streamData,
  streamShards,
  useServers,
} from '../../../test-support/emulators.js';
import { componentStatements, sidOf } from '../src/synth/iam.js';
import { allowing, arnMatch, denied, globMatch, roleStatements } from './iam/policy.js';
import { ACCOUNT, type RecordedCall } from './iam/recorder.js';
import { arn, type BundleRun, kinesisEvents, queueUrl, runBundle, SHARDS, templateEnvironment } from './iam/run.js';
import { startFirehose, startSecretsManager } from './iam/servers.js';

const servers = useServers(async () => {
  const [kinesis, dynamo, s3] = await Promise.all([startKinesalite(), startDynalite(), startS3()]);
  const clients = {
    kinesisClient: kinesisClient(kinesis.endpoint),
    ddb: dynamoDbClient(dynamo.endpoint),
    s3Client: s3Client(s3.endpoint),
  };
  return {
    kinesis,
    dynamo,
    s3,
    ...clients,
    close: async () => {
      for (const c of Object.values(clients)) c.destroy();
      await Promise.all([kinesis.close(), dynamo.close(), s3.close()]);
    },
  };
});

const STREAM_KEY = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const QUEUE_KEY = `arn:aws:kms:${ACCOUNT.region}:${ACCOUNT.accountId}:key/mrk-5e6f7a8b9c0d`;
const keyArn = (id: string) =>
  id.startsWith('arn:') ? id : `arn:aws:kms:${ACCOUNT.region}:${ACCOUNT.accountId}:key/${id}`;

const needs = (calls: readonly RecordedCall[]) => calls.flatMap((c) => c.needs);
const operations = (calls: readonly RecordedCall[]) =>
  [...new Set(calls.map((c) => `${c.service}:${c.operation}`))].sort();
const scan = async (table: string) =>
  ((await servers.ddb.send(new ScanCommand({ TableName: table }))).Items ?? []).map((i) => unmarshall(i));

/**
 * The check itself: every recorded request allowed by the role, each one answered by the
 * emulator (a request the emulator refused would prove nothing), and the statements of the
 * component at `path` naming exactly `resources` (no wildcard in place of its resource). The
 * checker can fail: with any one recorded action taken out of the role, that action is denied.
 * Returns the component's statements and what they grant that the run did not use
 * (`action on resource`), for the test to list: a grant no run needs is visible.
 */
function checkRun(
  run: BundleRun,
  path: string,
  resources: string[],
  options: {
    /** Physical names of template resources with generated names (logical id → name). */
    names?: Record<string, string>;
    /** Operations the emulator is known to refuse (still requests to authorise). */
    refused?: string[];
    /** What the component's statements grant that this run does not use. */
    unused?: string[];
  } = {},
) {
  const { refused = [] } = options;
  const names = { ...run.names, ...options.names };
  const statements = roleStatements(run.template as never, templateEnvironment(run.template, names));
  expect(run.calls.length).toBeGreaterThan(0);
  expect(
    run.calls.filter((c) => c.status >= 300 && !refused.includes(c.operation)).map((c) => `${c.operation} ${c.status}`),
  ).toEqual([]);
  expect(denied(statements, needs(run.calls))).toEqual([]);
  // No data action on "*": only the actions AWS takes no resource for (X-Ray, the VPC's network interfaces).
  for (const st of statements)
    if (st.Resource.includes('*'))
      expect((Array.isArray(st.Action) ? st.Action : [st.Action]).filter((a) => !/^(xray|ec2):/.test(a))).toEqual([]);
  const sid = sidOf(path);
  const own = statements.filter((s) => s.Sid === sid || new RegExp(`^${sid}\\d+(x\\d+)?$`).test(s.Sid ?? ''));
  expect(own.flatMap((s) => s.Resource).sort()).toEqual([...resources].sort());
  for (const action of new Set(needs(run.calls).map((n) => n.action))) {
    const without = statements.map((st) => ({
      ...st,
      Action: (Array.isArray(st.Action) ? st.Action : [st.Action]).filter((a) => !globMatch(a, action, true)),
    }));
    const need = needs(run.calls).find((n) => n.action === action) as (typeof run.calls)[number]['needs'][number];
    expect(denied(without, [need])).toEqual([`${need.action} on ${need.resource}`]);
  }
  const unused: string[] = [];
  for (const st of own)
    for (const a of Array.isArray(st.Action) ? st.Action : [st.Action])
      for (const r of st.Resource)
        if (!needs(run.calls).some((n) => globMatch(a, n.action, true) && arnMatch(r, n.resource)))
          unused.push(`${a} on ${r}`);
  expect(unused.sort()).toEqual([...(options.unused ?? [])].sort());
  return { statements, own };
}

/** The events with value `at`'s record made undecodable (not JSON: it is dead-lettered at decode). */
function withUndecodable(events: ReturnType<typeof kinesisEvents>, at: number) {
  const event = events[at % SHARDS] as (typeof events)[number];
  const r = event.Records[Math.floor(at / SHARDS)] as (typeof event.Records)[number];
  r.kinesis.data = Buffer.from('not json {').toString('base64');
  return events;
}

/** Every shard's batch handled in full. */
const ALL_HANDLED = Array.from({ length: SHARDS }, () => ({ batchItemFailures: [] }));

describe('the role of a synthesised template allows every AWS request its bundle sends', () => {
  it('dynamodb sink, put: BatchWriteItem on its table', async () => {
    await createTable(servers.ddb, 'iam-orders');
    await createStream(servers.kinesisClient, 'iam-orders-in', SHARDS);
    const values = Array.from({ length: 30 }, (_, i) => ({ id: `o${i}`, amount: i }));
    const run = await runBundle(
      `version: 1
name: iam-ddb-put
source: { kinesis: { stream: iam-orders-in } }
steps:
  - sink: { dynamodb: { table: iam-orders } }
`,
      {
        targets: { dynamodb: servers.dynamo.endpoint, kinesis: servers.kinesis.endpoint },
        events: kinesisEvents('iam-orders-in', values),
      },
    );
    expect(run.answers).toEqual(ALL_HANDLED);
    expect((await scan('iam-orders')).sort((a, b) => a.amount - b.amount)).toEqual(values);
    expect(operations(run.calls)).toEqual(['dynamodb:BatchWriteItem']);
    const { own } = checkRun(run, '/steps/0/sink', [arn.table('iam-orders')]);
    expect(own.flatMap((s) => s.Action)).toEqual(['dynamodb:BatchWriteItem']);
  });

  it('dynamodb sink, update: UpdateItem on its table; an sqs dead-letter output: SendMessage on its queue', async () => {
    await createTable(servers.ddb, 'iam-totals', 'user');
    const sqs = await startSqs();
    try {
      const values = Array.from({ length: 12 }, (_, i) => ({ user: `u${i % 3}`, n: 1, last: i }));
      const events = withUndecodable(kinesisEvents('iam-totals-in', values), 5);
      const run = await runBundle(
        `version: 1
name: iam-ddb-update
source: { kinesis: { stream: iam-totals-in } }
deadLetter: { sqs: { queueUrl: ${queueUrl('iam-dead')} } }
steps:
  - sink: { dynamodb: { table: iam-totals, mode: update, key: [user], add: [n] } }
`,
        { targets: { dynamodb: servers.dynamo.endpoint, sqs: sqs.endpoint }, events },
      );
      expect(run.answers).toEqual(ALL_HANDLED);
      // Oracle: the counts and last values recomputed without the undecodable record.
      // The events are handled shard after shard: the last value of a user is the last in that order.
      const kept = values
        .map((v, i) => ({ v, i }))
        .filter(({ i }) => i !== 5)
        .sort((a, b) => (a.i % SHARDS) - (b.i % SHARDS) || a.i - b.i)
        .map(({ v }) => v);
      const expected = new Map<string, { user: string; n: number; last: number }>();
      for (const v of kept) {
        const t = expected.get(v.user) ?? { user: v.user, n: 0, last: 0 };
        t.n += v.n;
        t.last = v.last;
        expected.set(v.user, t);
      }
      expect((await scan('iam-totals')).sort((a, b) => a.user.localeCompare(b.user))).toEqual(
        [...expected.values()].sort((a, b) => a.user.localeCompare(b.user)),
      );
      expect(sqs.messages.map((m) => JSON.parse(m.MessageBody).data)).toEqual(['not json {']);
      expect(operations(run.calls)).toEqual(['dynamodb:UpdateItem', 'sqs:SendMessageBatch']);
      const sink = checkRun(run, '/steps/0/sink', [arn.table('iam-totals')]);
      expect(sink.own.flatMap((s) => s.Action)).toEqual(['dynamodb:UpdateItem']);
      const dead = checkRun(run, '/deadLetter', [arn.queue('iam-dead')]);
      expect(dead.own.flatMap((s) => s.Action)).toEqual(['sqs:SendMessage']);
    } finally {
      await sqs.close();
    }
  });

  it('kinesis sink: PutRecords on its stream (GenerateDataKey on the customer key of an encrypted one); with aggregate, ListShards too; a dynamodb dead-letter output: BatchWriteItem on its table', async () => {
    await createStream(servers.kinesisClient, 'iam-out', SHARDS);
    await createStream(servers.kinesisClient, 'iam-packed', SHARDS);
    await createTable(servers.ddb, 'iam-dead', 'sequenceNumber');
    const values = Array.from({ length: 40 }, (_, i) => ({ user: `u${i % 7}`, i }));
    const run = await runBundle(
      `version: 1
name: iam-kinesis
source: { kinesis: { stream: iam-kinesis-in } }
deadLetter: { dynamodb: { table: iam-dead } }
steps:
  - sink: { kinesis: { stream: iam-out, partitionKey: event.user, kmsKeyId: ${STREAM_KEY} } }
  - sink: { kinesis: { stream: iam-packed, partitionKey: event.user, aggregate: true } }
`,
      {
        targets: { kinesis: servers.kinesis.endpoint, dynamodb: servers.dynamo.endpoint },
        events: withUndecodable(kinesisEvents('iam-kinesis-in', values), 0),
        keys: { [arn.stream('iam-out')]: keyArn(STREAM_KEY) },
      },
    );
    expect(run.answers).toEqual(ALL_HANDLED);
    const kept = values.slice(1);
    expect(
      (await streamData(servers.kinesisClient, 'iam-out')).map((d) => JSON.parse(d)).sort((a, b) => a.i - b.i),
    ).toEqual(kept);
    const packed: unknown[] = [];
    for (const shard of await streamShards(servers.kinesisClient, 'iam-packed'))
      for (const r of await shardRecords(servers.kinesisClient, 'iam-packed', shard.shardId))
        for (const u of deaggregate(Buffer.from(r.Data as Uint8Array), r.PartitionKey as string))
          packed.push(JSON.parse(Buffer.from(u.data).toString()));
    expect((packed as { i: number }[]).sort((a, b) => a.i - b.i)).toEqual(kept);
    expect((await scan('iam-dead')).map((d) => d.data)).toEqual(['not json {']);
    expect(operations(run.calls)).toEqual(['dynamodb:BatchWriteItem', 'kinesis:ListShards', 'kinesis:PutRecords']);
    // The stream iam-out is encrypted with a customer managed key: Kinesis generates data keys as the writer.
    expect(needs(run.calls)).toContainEqual({ action: 'kms:GenerateDataKey', resource: keyArn(STREAM_KEY) });
    const plain = checkRun(run, '/steps/0/sink', [arn.stream('iam-out'), keyArn(STREAM_KEY)]);
    expect(plain.own.map((s) => s.Action)).toEqual([['kinesis:PutRecords'], ['kms:GenerateDataKey']]);
    const aggregating = checkRun(run, '/steps/1/sink', [arn.stream('iam-packed')]);
    expect(aggregating.own.flatMap((s) => s.Action)).toEqual(['kinesis:ListShards', 'kinesis:PutRecords']);
    const dead = checkRun(run, '/deadLetter', [arn.table('iam-dead')]);
    expect(dead.own.flatMap((s) => s.Action)).toEqual(['dynamodb:BatchWriteItem']);
  });

  it('s3 sink with a KMS key: PutObject (multipart too) under its prefix and processing-failed/, GenerateDataKey and Decrypt on the key', async () => {
    await servers.s3Client.send(new CreateBucketCommand({ Bucket: 'iam-lake' }));
    const key = '1234abcd-12ab-34cd-56ef-1234567890ab';
    // ~7.2 MiB of records in each shard's event: its first object goes over 5 MiB (a multipart
    // upload), the rest is a plain put.
    const pad = 'x'.repeat(800_000);
    const values = Array.from({ length: 9 * SHARDS }, (_, i) => ({ i, pad }));
    const run = await runBundle(
      `version: 1
name: iam-s3
source: { kinesis: { stream: iam-s3-in } }
steps:
  - sink: { s3: { bucket: iam-lake, prefix: events/, forcePathStyle: true, kmsKeyId: ${key}, bufferSize: 5767168, bufferInterval: 1s } }
`,
      { targets: { s3: servers.s3.endpoint }, events: kinesisEvents('iam-s3-in', values) },
    );
    expect(run.answers).toEqual(ALL_HANDLED);
    const listed = await servers.s3Client.send(new ListObjectsV2Command({ Bucket: 'iam-lake' }));
    const lines: { i: number }[] = [];
    for (const o of listed.Contents ?? []) {
      expect(o.Key?.startsWith('events/')).toBe(true);
      const body = await (
        await servers.s3Client.send(new GetObjectCommand({ Bucket: 'iam-lake', Key: o.Key }))
      ).Body?.transformToString();
      for (const l of (body ?? '').trim().split('\n')) lines.push(JSON.parse(l));
    }
    expect(lines.sort((a, b) => a.i - b.i)).toEqual(values);
    expect(operations(run.calls)).toEqual([
      's3:CompleteMultipartUpload',
      's3:CreateMultipartUpload',
      's3:PutObject',
      's3:UploadPart',
    ]);
    const keyArn = `arn:aws:kms:${ACCOUNT.region}:${ACCOUNT.accountId}:key/${key}`;
    // The recorder saw what S3 asks KMS for on the caller's behalf.
    expect(needs(run.calls).filter((n) => n.action.startsWith('kms:'))).toEqual(
      expect.arrayContaining([
        { action: 'kms:GenerateDataKey', resource: keyArn },
        { action: 'kms:Decrypt', resource: keyArn },
      ]),
    );
    // Granted for a failed upload (AbortMultipartUpload) and for records that cannot be
    // serialised (processing-failed/), which this run has none of.
    const { own } = checkRun(
      run,
      '/steps/0/sink',
      ['arn:aws:s3:::iam-lake/events/*', 'arn:aws:s3:::iam-lake/processing-failed/*', keyArn],
      {
        unused: [
          's3:AbortMultipartUpload on arn:aws:s3:::iam-lake/events/*',
          's3:AbortMultipartUpload on arn:aws:s3:::iam-lake/processing-failed/*',
          's3:PutObject on arn:aws:s3:::iam-lake/processing-failed/*',
        ],
      },
    );
    expect([...new Set(own.flatMap((s) => s.Action))].sort()).toEqual([
      'kms:Decrypt',
      'kms:GenerateDataKey',
      's3:AbortMultipartUpload',
      's3:PutObject',
    ]);
  });

  it('sqs sink: SendMessage on its queue (GenerateDataKey and Decrypt on the customer key of an encrypted one)', async () => {
    const sqs = await startSqs();
    try {
      const values = Array.from({ length: 25 }, (_, i) => ({ i }));
      const run = await runBundle(
        `version: 1
name: iam-sqs
source: { kinesis: { stream: iam-sqs-in } }
steps:
  - sink: { sqs: { queueUrl: ${queueUrl('iam-events')}, kmsKeyId: ${QUEUE_KEY} } }
`,
        {
          targets: { sqs: sqs.endpoint },
          events: kinesisEvents('iam-sqs-in', values),
          keys: { [arn.queue('iam-events')]: keyArn(QUEUE_KEY) },
        },
      );
      expect(run.answers).toEqual(ALL_HANDLED);
      expect(sqs.messages.map((m) => JSON.parse(m.MessageBody)).sort((a, b) => a.i - b.i)).toEqual(values);
      expect(operations(run.calls)).toEqual(['sqs:SendMessageBatch']);
      // The queue is encrypted with a customer managed key: SQS uses it as the sender.
      const { own } = checkRun(run, '/steps/0/sink', [arn.queue('iam-events'), keyArn(QUEUE_KEY)]);
      expect(own.map((s) => s.Action)).toEqual([['sqs:SendMessage'], ['kms:Decrypt', 'kms:GenerateDataKey']]);
    } finally {
      await sqs.close();
    }
  });

  it('dynamodb lookup: BatchGetItem on its table', async () => {
    await createTable(servers.ddb, 'iam-users');
    const tiers = ['gold', 'silver', 'bronze'];
    for (const [i, tier] of tiers.entries())
      await servers.ddb.send(
        new PutItemCommand({ TableName: 'iam-users', Item: { id: { S: `u${i}` }, tier: { S: tier } } }),
      );
    const sqs = await startSqs();
    try {
      const values = Array.from({ length: 20 }, (_, i) => ({ user: `u${i % 4}`, i }));
      const run = await runBundle(
        `version: 1
name: iam-lookup
source: { kinesis: { stream: iam-lookup-in } }
steps:
  - enrich: { lookup: { dynamodb: { table: iam-users, key: { id: event.user } } }, as: profile, onMissing: keep }
  - sink: { sqs: { queueUrl: ${queueUrl('iam-enriched')} } }
`,
        {
          targets: { dynamodb: servers.dynamo.endpoint, sqs: sqs.endpoint },
          events: kinesisEvents('iam-lookup-in', values),
        },
      );
      expect(run.answers).toEqual(ALL_HANDLED);
      const out = sqs.messages.map((m) => JSON.parse(m.MessageBody) as { i: number; profile?: { tier: string } });
      expect(out.sort((a, b) => a.i - b.i).map((o) => o.profile?.tier ?? null)).toEqual(
        values.map((v) => tiers[Number(v.user.slice(1))] ?? null),
      );
      expect(operations(run.calls)).toEqual(['dynamodb:BatchGetItem', 'sqs:SendMessageBatch']);
      const { own } = checkRun(run, '/steps/0/enrich/lookup', [arn.table('iam-users')]);
      expect(own.flatMap((s) => s.Action)).toEqual(['dynamodb:BatchGetItem']);
    } finally {
      await sqs.close();
    }
  });

  it('firehose sink: PutRecordBatch on its delivery stream', async () => {
    const firehose = await startFirehose();
    try {
      const values = Array.from({ length: 30 }, (_, i) => ({ i }));
      const run = await runBundle(
        `version: 1
name: iam-firehose
source: { kinesis: { stream: iam-firehose-in } }
steps:
  - sink: { firehose: { deliveryStream: iam-delivery } }
`,
        {
          targets: { firehose: firehose.endpoint },
          events: kinesisEvents('iam-firehose-in', values),
          bundleSdk: true,
        },
      );
      expect(run.answers).toEqual(ALL_HANDLED);
      const delivered = (firehose.delivered.get('iam-delivery') ?? []).map((line) => JSON.parse(line) as { i: number });
      expect(delivered.sort((a, b) => a.i - b.i)).toEqual(values);
      expect(operations(run.calls)).toEqual(['firehose:PutRecordBatch']);
      const { own } = checkRun(run, '/steps/0/sink', [
        `arn:aws:firehose:${ACCOUNT.region}:${ACCOUNT.accountId}:deliverystream/iam-delivery`,
      ]);
      expect(own.flatMap((s) => s.Action)).toEqual(['firehose:PutRecordBatch']);
    } finally {
      await firehose.close();
    }
  });

  it('redis sink with its AUTH token in Secrets Manager: GetSecretValue on that secret', async () => {
    const redis = await startRedis();
    const secrets = await startSecretsManager({ 'iam/redis-token': 'iam-token-0123' });
    const check = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true });
    try {
      await check.connect();
      await check.config('SET', 'requirepass', 'iam-token-0123');
      const values = Array.from({ length: 12 }, (_, i) => ({ user: `u${i}`, i }));
      const run = await runBundle(
        `version: 1
name: iam-redis
source: { kinesis: { stream: iam-redis-in } }
steps:
  - sink: { redis: { url: ${redis.url}, authTokenSecret: iam/redis-token, command: set, key: event.user } }
`,
        {
          targets: { secretsmanager: secrets.endpoint },
          events: kinesisEvents('iam-redis-in', values),
          bundleSdk: true,
        },
      );
      expect(run.answers).toEqual(ALL_HANDLED);
      await check.auth('iam-token-0123');
      for (const v of values) expect(JSON.parse((await check.get(v.user)) ?? 'null')).toEqual(v);
      expect(operations(run.calls)).toEqual(['secretsmanager:GetSecretValue']);
      const { own } = checkRun(run, '/steps/0/sink', [
        `arn:aws:secretsmanager:${ACCOUNT.region}:${ACCOUNT.accountId}:secret:iam/redis-token-??????`,
      ]);
      expect(own.flatMap((s) => s.Action)).toEqual(['secretsmanager:GetSecretValue']);
    } finally {
      check.disconnect();
      await secrets.close();
      await redis.close();
    }
  });

  it('dynamodb window store, and the kinesis source as the event source mapping reads it (lambda-local’s simulator) and the handler lists its shards', async () => {
    // The stack's table (its name generated, reaching the store as TRIBUTARY_STATE_TABLE_0); the
    // pipeline file's table does not exist.
    await createStateTables(servers.dynamo.endpoint, 'iam-stack-window-state');
    await createStream(servers.kinesisClient, 'iam-clicks', SHARDS);
    await createStream(servers.kinesisClient, 'iam-counts', SHARDS);
    const base = 1_800_000_000_000;
    const values = Array.from({ length: 90 }, (_, i) => ({ user: `u${i % 3}`, ts: base + i * 2000 }));
    // Partition keys beyond the users, so every shard has records (a shard that never delivers holds windows back).
    await putJson(servers.kinesisClient, 'iam-clicks', values, (v, i) => ({ partitionKey: `${v.user}-${i}` }));
    const run = await runBundle(
      `version: 1
name: iam-window
source: { kinesis: { stream: iam-clicks } }
eventTime: event.ts
steps:
  - window: { key: event.user, tumbling: 1m, aggregate: { n: count() }, state: { dynamodb: { table: iam-window-state } } }
  - sink: { kinesis: { stream: iam-counts, partitionKey: event.key } }
`,
      {
        targets: { kinesis: servers.kinesis.endpoint, dynamodb: servers.dynamo.endpoint },
        names: { StateTable0: 'iam-stack-window-state', Stream: 'iam-clicks' },
        during: async (handler, template) => {
          // The mapping's reads through the recorder, as the function's role would be used for them.
          const client = new KinesisClient(awsClientConfig({ region: ACCOUNT.region }));
          try {
            const sim = new LambdaSimulator(handler as never, {
              client,
              stream: 'iam-clicks',
              mapping: { batchSize: 30 },
            });
            await sim.runUntilIdle();
          } finally {
            client.destroy();
          }
          // A tick of the schedule rule (the template's Input): windows due are read from the store and emitted.
          const rule = Object.values(template.Resources).find((r) => r.Type === 'AWS::Events::Rule');
          const input = (rule?.Properties?.Targets as { Input?: string }[] | undefined)?.[0]?.Input;
          expect(input).toBeDefined();
          await handler(JSON.parse(input as string));
        },
      },
    );
    // Oracle: the windows closed by the watermark (the last minute stays open), recomputed.
    const counts = (await streamData(servers.kinesisClient, 'iam-counts')).map(
      (d) => JSON.parse(d) as { key: string; windowStart: number; n: number },
    );
    const expected = new Map<string, number>();
    for (const v of values) {
      const start = v.ts - (v.ts % 60_000);
      expected.set(`${v.user}|${start}`, (expected.get(`${v.user}|${start}`) ?? 0) + 1);
    }
    expect(counts.length).toBeGreaterThan(0);
    for (const c of counts) expect(c.n).toBe(expected.get(`${c.key}|${c.windowStart}`));
    const ops = operations(run.calls);
    for (const op of ['kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:ListShards', 'kinesis:PutRecords'])
      expect(ops).toContain(op);
    expect(ops.filter((o) => o.startsWith('dynamodb:')).length).toBeGreaterThan(0);
    expect((await scan('iam-stack-window-state')).length).toBeGreaterThan(0);
    const state = checkRun(run, '/steps/0/window/state', [arn.table('iam-stack-window-state')]);
    expect(state.own.flatMap((s) => s.Action)).not.toContain('dynamodb:CreateTable');
    // Lambda's own reading calls DescribeStreamSummary as well (AWS's list for the execution
    // role); the simulator describes the stream with DescribeStream only.
    const source = checkRun(run, '/source', [arn.stream('iam-clicks')], {
      unused: [`kinesis:DescribeStreamSummary on ${arn.stream('iam-clicks')}`],
    });
    expect(source.own.flatMap((s) => s.Action).sort()).toEqual([
      'kinesis:DescribeStream',
      'kinesis:DescribeStreamSummary',
      'kinesis:GetRecords',
      'kinesis:GetShardIterator',
      'kinesis:ListShards',
    ]);
  });

  it('dynamodb store with createTable: CreateTable, DescribeTable and UpdateTimeToLive as well', async () => {
    await createStream(servers.kinesisClient, 'iam-create-in', SHARDS);
    const run = await runBundle(
      `version: 1
name: iam-create
source: { kinesis: { stream: iam-create-in } }
eventTime: event.ts
steps:
  - window: { key: event.user, tumbling: 1m, aggregate: { n: count() }, state: { dynamodb: { table: iam-created-state, createTable: true } } }
  - sink: { dynamodb: { table: iam-created-out } }
`,
      {
        targets: { dynamodb: servers.dynamo.endpoint, kinesis: servers.kinesis.endpoint },
        events: kinesisEvents(
          'iam-create-in',
          Array.from({ length: SHARDS }, (_, i) => ({ user: `u${i}`, ts: 1_800_000_000_000 + i })),
        ),
        names: { StateTable0: 'iam-stack-created-state', Stream: 'iam-create-in' },
      },
    );
    const ops = operations(run.calls);
    for (const op of ['dynamodb:CreateTable', 'dynamodb:DescribeTable', 'dynamodb:UpdateTimeToLive'])
      expect(ops).toContain(op);
    // dynalite has no TTL (UpdateTimeToLive is answered UnknownOperationException, which the store accepts).
    const { own } = checkRun(run, '/steps/0/window/state', [arn.table('iam-stack-created-state')], {
      refused: ['UpdateTimeToLive'],
    });
    expect(own.flatMap((s) => s.Action)).toEqual(
      expect.arrayContaining(['dynamodb:CreateTable', 'dynamodb:UpdateTimeToLive']),
    );
  });
});

/** Statements outside a template, their `Fn::Sub`s resolved in the test's account. */
function resolvedAlone(statements: readonly object[]) {
  return roleStatements({
    Resources: {
      Role: { Type: 'AWS::IAM::Role', Properties: { Policies: [{ PolicyDocument: { Statement: statements } }] } },
    },
  });
}

/** A spec naming every AWS-calling component kind (not run: its statements are checked). */
const EVERY_KIND = {
  version: 1,
  name: 'iam-every-kind',
  source: { kinesis: { streamArn: 'arn:aws:kinesis:eu-west-1:111122223333:stream/clicks', consumer: 'efo' } },
  deadLetter: { sqs: { queueUrl: 'https://sqs.eu-west-1.amazonaws.com/111122223333/dead' } },
  steps: [
    { enrich: { lookup: { dynamodb: { table: 'users', key: { id: 'event.user' } } }, as: 'profile' } },
    {
      window: {
        key: 'event.user',
        tumbling: '1m',
        aggregate: { n: 'count()' },
        state: { dynamodb: { table: 'window-state' } },
      },
    },
    { sink: { dynamodb: { table: 'totals' } } },
    { sink: { kinesis: { stream: 'out', partitionKey: 'event.key', aggregate: true } } },
    { sink: { s3: { bucket: 'lake', prefix: 'totals/', kmsKeyId: 'mrk-0123456789abcdef' } } },
    { sink: { sqs: { queueUrl: 'https://sqs.eu-west-1.amazonaws.com/111122223333/totals' } } },
  ],
} as unknown as PipelineSpec;

describe('the statements components declare', () => {
  it('no statement with a data action is on "Resource": "*", in the statements of every kind and in the template', async () => {
    const { template } = await import('@tributary/cli/synth');
    const statements = componentStatements(EVERY_KIND);
    expect(statements.length).toBeGreaterThanOrEqual(9);
    const t = template(EVERY_KIND) as BundleRun['template'];
    const resolved = roleStatements(t as never, templateEnvironment(t));
    for (const st of [...statements, ...resolved]) {
      const data = (Array.isArray(st.Action) ? st.Action : [st.Action]).filter((a) => !a.startsWith('logs:'));
      if (data.length === 0) continue;
      for (const r of st.Resource as unknown[]) {
        expect(r).not.toBe('*');
        // Not a whole service's resources either (`…:table/*`, `…:stream/*`).
        if (typeof r === 'string') expect(r).not.toMatch(/:(table|stream|deliverystream|key)\/\*$|:::\*$|:\*$/);
      }
    }
    // The components' own resources, by ARN (a resource of another account and region as given).
    const byId = Object.fromEntries(resolvedAlone(statements).map((st) => [st.Sid, st]));
    expect(byId[`${sidOf('/source')}0`]?.Resource).toEqual(['arn:aws:kinesis:eu-west-1:111122223333:stream/clicks']);
    expect(byId[`${sidOf('/source')}1`]).toMatchObject({
      Action: ['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard'],
      Resource: ['arn:aws:kinesis:eu-west-1:111122223333:stream/clicks/consumer/*:*'],
    });
    expect(byId[sidOf('/deadLetter')]?.Resource).toEqual(['arn:aws:sqs:eu-west-1:111122223333:dead']);
    expect(byId[sidOf('/steps/5/sink')]?.Resource).toEqual(['arn:aws:sqs:eu-west-1:111122223333:totals']);
    expect(byId[`${sidOf('/steps/4/sink')}2`]).toMatchObject({
      Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
      Resource: [`arn:aws:kms:${ACCOUNT.region}:${ACCOUNT.accountId}:key/mrk-0123456789abcdef`],
    });
    expect(byId[sidOf('/steps/0/enrich/lookup')]?.Resource).toEqual([arn.table('users')]);
  });

  it('a KMS key named by alias is refused at its line and column (IAM grants keys, not aliases)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-iam-kms-'));
    try {
      const file = join(dir, 'p.yaml');
      await writeFile(
        file,
        'version: 1\nname: kms\nsource: { file: { path: in.jsonl } }\nsteps:\n  - sink: { s3: { bucket: lake, kmsKeyId: alias/lake } }\n',
      );
      const err = await loadPipelineFile(file).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PipelineValidationError);
      const issues = (err as PipelineValidationError).issues;
      expect(issues).toHaveLength(1);
      expect(issues[0]).toMatchObject({ file, line: 5, path: '/steps/0/sink/s3/kmsKeyId' });
      expect(issues[0]?.column).toBe(43);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a declaration that names no resource is refused, naming the component, rather than granted on every resource', () => {
    // A spec past validation would not hold these: built by hand, as a component's bug would make them.
    const of =
      (source: object, steps: object[] = [{ sink: { stdout: {} } }]) =>
      () =>
        componentStatements({ version: 1, name: 'bad', source, steps } as never);
    expect(of({ kinesis: {} })).toThrow(
      'source kinesis at /source declares kinesis:GetRecords, kinesis:GetShardIterator, kinesis:DescribeStream, kinesis:DescribeStreamSummary, kinesis:ListShards on a kinesis-stream it does not name',
    );
    expect(of({ file: { path: 'in.jsonl' } }, [{ sink: { dynamodb: {} } }])).toThrow(
      'sink dynamodb at /steps/0/sink declares dynamodb:BatchWriteItem on a dynamodb-table it does not name',
    );
    expect(of({ file: { path: 'in.jsonl' } }, [{ sink: { sqs: {} } }])).toThrow(
      /sink sqs at \/steps\/0\/sink declares sqs:SendMessage/,
    );
  });

  it('a DynamoDB stream source: the stream actions on that table’s streams (or the ARN given)', () => {
    const of = (source: object) =>
      componentStatements({ version: 1, name: 'cdc', source, steps: [{ sink: { stdout: {} } }] } as never).map(
        (st) => ({ Action: st.Action, Resource: st.Resource }),
      );
    const actions = [
      'dynamodb:DescribeStream',
      'dynamodb:GetRecords',
      'dynamodb:GetShardIterator',
      'dynamodb:ListStreams',
    ];
    expect(of({ dynamodbStream: { table: 'users' } })).toEqual([
      {
        Action: actions,
        Resource: [
          { 'Fn::Sub': `arn:\${AWS::Partition}:dynamodb:\${AWS::Region}:\${AWS::AccountId}:table/users/stream/*` },
        ],
      },
    ]);
    const streamArn = 'arn:aws:dynamodb:eu-west-1:111122223333:table/users/stream/2026-01-01T00:00:00.000';
    expect(of({ dynamodbStream: { streamArn } })).toEqual([{ Action: actions, Resource: [streamArn] }]);
  });

  it('a queue URL names its queue’s region and account; an emulator’s, the stack’s region', async () => {
    const { queueArn } = await import('../src/synth/iam.js');
    const resolve = (v: unknown) =>
      resolvedAlone([{ Effect: 'Allow', Action: 'sqs:SendMessage', Resource: v }])[0]?.Resource;
    expect(resolve(queueArn({ url: 'https://sqs.eu-west-1.amazonaws.com/111122223333/q1' }))).toEqual([
      'arn:aws:sqs:eu-west-1:111122223333:q1',
    ]);
    expect(resolve(queueArn({ url: 'https://ap-south-1.queue.amazonaws.com/111122223333/q2.fifo' }))).toEqual([
      'arn:aws:sqs:ap-south-1:111122223333:q2.fifo',
    ]);
    expect(resolve(queueArn({ url: 'https://queue.amazonaws.com/111122223333/q3' }))).toEqual([
      'arn:aws:sqs:us-east-1:111122223333:q3',
    ]);
    // A loopback emulator's URL: the region is the stack's (its host is no region).
    expect(resolve(queueArn({ url: 'http://127.0.0.1:4566/000000000000/local' }))).toEqual([
      `arn:aws:sqs:${ACCOUNT.region}:000000000000:local`,
    ]);
    expect(resolve(queueArn({ name: 'named' }))).toEqual([`arn:aws:sqs:${ACCOUNT.region}:${ACCOUNT.accountId}:named`]);
  });

  it('the evaluator matches as IAM does: action wildcards ignoring case, ARN wildcards per segment', () => {
    expect(globMatch('dynamodb:Get*', 'dynamodb:GetItem', true)).toBe(true);
    expect(globMatch('dynamodb:get*', 'dynamodb:GetItem', true)).toBe(true);
    expect(globMatch('dynamodb:Get?tem', 'dynamodb:GetItem', true)).toBe(true);
    expect(globMatch('dynamodb:Get*', 'dynamodb:BatchGetItem', true)).toBe(false);
    expect(arnMatch('arn:aws:s3:::lake/events/*', 'arn:aws:s3:::lake/events/2026/01/x.jsonl')).toBe(true);
    expect(arnMatch('arn:aws:s3:::lake/events/*', 'arn:aws:s3:::lake/other/x.jsonl')).toBe(false);
    expect(arnMatch('arn:aws:dynamodb:*:*:table/t', 'arn:aws:dynamodb:us-east-1:000000000000:table/t')).toBe(true);
    // A wildcard in the region does not reach into the account.
    expect(arnMatch('arn:aws:sqs:*:q', 'arn:aws:sqs:us-east-1:000000000000:q')).toBe(false);
    expect(
      arnMatch(
        'arn:aws:dynamodb:us-east-1:000000000000:table/t',
        'arn:aws:dynamodb:us-east-1:000000000000:table/t/index/i',
      ),
    ).toBe(false);
    const st = [
      { Sid: 'A', Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: ['arn:aws:sqs:us-east-1:000000000000:q'] },
    ];
    expect(allowing(st, { action: 'sqs:SendMessage', resource: 'arn:aws:sqs:us-east-1:000000000000:q' })).toHaveLength(
      1,
    );
    expect(denied(st, [{ action: 'sqs:SendMessage', resource: 'arn:aws:sqs:us-east-1:000000000000:other' }])).toEqual([
      'sqs:SendMessage on arn:aws:sqs:us-east-1:000000000000:other',
    ]);
  });
});

/** The source file of a registered module (`@tributary/sinks/kinesis`, core's `./sources/stream.js`). */
async function moduleFile(module: string): Promise<string> {
  const root = join(import.meta.dirname, '..', '..', '..');
  if (module.startsWith('.')) return join(root, 'packages', 'core', 'src', module.replace(/\.js$/, '.ts'));
  const m = /^@tributary\/([^/]+)(?:\/(.+))?$/.exec(module);
  if (!m) throw new Error(`not a Tributary module: ${module}`);
  const dir = join(root, 'packages', m[1] as string);
  const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as {
    exports: Record<string, { source?: string }>;
  };
  const source = pkg.exports[m[2] ? `./${m[2]}` : '.']?.source;
  if (!source) throw new Error(`${module}: no source export`);
  return join(dir, source);
}

describe('a component that calls AWS cannot ship without its permissions', () => {
  it('every registered source, sink, lookup and store kind whose module imports an AWS SDK client declares permissions', async () => {
    const calling: string[] = [];
    const missing: string[] = [];
    // An SDK client, or one of @tributary/aws's client entries (its root entry is configuration only).
    const AWS_IMPORT = /(?:from\s+|import\s*\(\s*)['"](@aws-sdk\/client-[^'"]+|@tributary\/aws\/[^'"]+)['"]/;
    /** Whether a module, or a module of its own package it imports (transitively), imports an AWS client. */
    const importsAws = async (file: string, seen = new Set<string>()): Promise<boolean> => {
      if (seen.has(file)) return false;
      seen.add(file);
      const text = await readFile(file, 'utf8');
      if (AWS_IMPORT.test(text)) return true;
      for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)\.js['"]/g))
        if (await importsAws(join(dirname(file), `${m[1]}.ts`), seen)) return true;
      return false;
    };
    for (const category of ['source', 'sink', 'lookup', 'store'] as ComponentCategory[]) {
      for (const d of definitions(category)) {
        if (!(await importsAws(await moduleFile(d.module))) && !d.permissions) continue;
        calling.push(`${category}:${d.kind}`);
        if (typeof d.permissions !== 'function') missing.push(`${category}:${d.kind} (${d.module})`);
      }
    }
    expect(missing).toEqual([]);
    // The check sees the AWS components (it is not vacuous).
    expect(calling).toEqual(
      expect.arrayContaining([
        'source:kinesis',
        'source:dynamodbStream',
        'sink:dynamodb',
        'sink:kinesis',
        'sink:s3',
        'sink:sqs',
        'sink:firehose',
        'sink:redis',
        'store:redis',
        'lookup:dynamodb',
        'store:dynamodb',
      ]),
    );
    // The kinds calling no AWS API are not among them (the check tells the two apart).
    expect(calling).not.toContain('sink:stdout');
    expect(calling).not.toContain('sink:http');
    expect(calling).not.toContain('store:memory');
  });
});
