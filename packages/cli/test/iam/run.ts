// A synthesised bundle run on the emulators behind recorders: the pipeline is synthesised with
// `synth()` (inside the repository, so the SDK the bundle leaves out resolves from its
// node_modules as the Lambda runtime provides it), the SDK's endpoint variables point each
// service at its recorder, and the handler is invoked on Kinesis events of the source stream.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { synth } from '@tributary/cli/synth';
import { loadPipelineFile } from '@tributary/core';
import { kinesisEventRecord } from '../../../../test-support/lambdaEvents.js';
import { type Environment, resolver } from './policy.js';
import {
  ACCOUNT,
  type CustomerKeys,
  ENDPOINT_VARIABLE,
  type RecordedCall,
  type Recorder,
  type Service,
  startRecorder,
} from './recorder.js';

export const arn = {
  table: (t: string) => `arn:aws:dynamodb:${ACCOUNT.region}:${ACCOUNT.accountId}:table/${t}`,
  stream: (s: string) => `arn:aws:kinesis:${ACCOUNT.region}:${ACCOUNT.accountId}:stream/${s}`,
  queue: (q: string) => `arn:aws:sqs:${ACCOUNT.region}:${ACCOUNT.accountId}:${q}`,
};

/**
 * A queue URL as SQS gives it: the SQS sink's client keeps to `AWS_ENDPOINT_URL_SQS` (the SDK
 * would otherwise send to the URL's host), and the URL names the queue's region and account.
 */
export const queueUrl = (name: string) => `https://sqs.${ACCOUNT.region}.amazonaws.com/${ACCOUNT.accountId}/${name}`;

/** The shards events are spread over. */
export const SHARDS = 4;

/**
 * The events Lambda hands the function for `stream`: one per shard of `shards`, the values dealt
 * to them in turn (value i to shard i mod shards, at position ⌊i / shards⌋).
 */
export function kinesisEvents(stream: string, values: readonly unknown[], shards = SHARDS) {
  return Array.from({ length: shards }, (_, s) =>
    kinesisEvent(
      stream,
      values.filter((_, i) => i % shards === s),
      1,
      `shardId-${String(s).padStart(12, '0')}`,
    ),
  );
}

/** Kinesis event records of one shard of `stream` carrying these values as JSON. */
export function kinesisEvent(stream: string, values: readonly unknown[], first = 1, shardId = 'shardId-000000000000') {
  return {
    Records: values.map((v, i) =>
      kinesisEventRecord({
        shardId,
        arn: arn.stream(stream),
        sequenceNumber: String(first + i).padStart(21, '0'),
        partitionKey: String((v as { user?: string } | null)?.user ?? `k${i}`),
        data: Buffer.from(JSON.stringify(v)).toString('base64'),
        arrivalSeconds: 1_795_000_000,
      }),
    ),
  };
}

/**
 * ARNs for every resource of a template, as the stack would give them: a named resource by its
 * name, one with a generated name by `names[logicalId]` (else the logical id).
 */
export function templateEnvironment(
  template: { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> },
  names: Record<string, string> = {},
): Environment {
  const resources: NonNullable<Environment['resources']> = {};
  const { region, accountId } = ACCOUNT;
  for (const [id, r] of Object.entries(template.Resources)) {
    const p = r.Properties ?? {};
    const named = (key: string) => names[id] ?? (typeof p[key] === 'string' ? (p[key] as string) : id);
    switch (r.Type) {
      case 'AWS::DynamoDB::Table': {
        const t = named('TableName');
        resources[id] = { Arn: arn.table(t), Ref: t, StreamArn: `${arn.table(t)}/stream/2026-01-01T00:00:00.000` };
        break;
      }
      case 'AWS::Kinesis::Stream':
        resources[id] = { Arn: arn.stream(named('Name')), Ref: named('Name') };
        break;
      case 'AWS::SQS::Queue': {
        const q = named('QueueName');
        resources[id] = { Arn: arn.queue(q), Ref: queueUrl(q), QueueName: q };
        break;
      }
      case 'AWS::Kinesis::StreamConsumer': {
        const name = named('ConsumerName');
        const consumer = `arn:aws:kinesis:${region}:${accountId}:stream/${names[`${id}.stream`] ?? id}/consumer/${name}:1`;
        resources[id] = { Arn: consumer, ConsumerARN: consumer, Ref: consumer, ConsumerName: name };
        break;
      }
      case 'AWS::Logs::LogGroup':
        resources[id] = { Arn: `arn:aws:logs:${region}:${accountId}:log-group:/aws/lambda/${id}:*`, Ref: id };
        break;
      case 'AWS::KMS::Key':
        resources[id] = { Arn: `arn:aws:kms:${region}:${accountId}:key/${id}`, Ref: id };
        break;
      case 'AWS::SNS::Topic':
        resources[id] = {
          Arn: `arn:aws:sns:${region}:${accountId}:${id}`,
          Ref: `arn:aws:sns:${region}:${accountId}:${id}`,
        };
        break;
      default: {
        const service = r.Type.split('::')[1]?.toLowerCase() ?? 'unknown';
        resources[id] = { Arn: `arn:aws:${service}:${region}:${accountId}:${id}`, Ref: id };
      }
    }
  }
  return { resources };
}

export interface BundleRun {
  template: Record<string, unknown> & {
    Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  };
  /** Every request the bundle sent, by service. */
  calls: RecordedCall[];
  /** The handler's answers, one per event. */
  answers: unknown[];
  /** The physical names given to template resources with generated names. */
  names: Record<string, string>;
}

export interface RunOptions {
  /** Service → the emulator endpoint its recorder forwards to. */
  targets: Partial<Record<Service, string>>;
  /** The events the handler is invoked on, in turn. */
  events?: readonly unknown[];
  /** More to do while the recorders are open (it gets the handler and the template). */
  during?: (handler: (event: unknown) => Promise<unknown>, template: BundleRun['template']) => Promise<void>;
  /** Physical names of template resources with generated names (logical id → name), as the stack would make them. */
  names?: Record<string, string>;
  /** Bundle the AWS SDK (for clients the repository root does not resolve: Firehose, Secrets Manager). */
  bundleSdk?: boolean;
  /** Streams and queues encrypted with a customer managed key (ARN → key ARN; see the recorder). */
  keys?: CustomerKeys;
}

/**
 * Synthesises `yaml` (a pipeline file's text) and invokes its bundle on `events`, the services
 * of `targets` reached through recorders, with the function's environment as the template sets
 * it (`TRIBUTARY_STATE_TABLE_<i>`, the stream ARN, …, resolved with `names`).
 */
export async function runBundle(yaml: string, options: RunOptions): Promise<BundleRun> {
  const { targets, events = [], during, names = {}, bundleSdk, keys } = options;
  const root = join(import.meta.dirname, '..', '..', '..', '..', '.tributary');
  await mkdir(root, { recursive: true });
  const dir = await mkdtemp(join(root, 'iam-'));
  const recorders: Recorder[] = [];
  const saved = new Map<string, string | undefined>();
  const setEnv = (k: string, v: string) => {
    if (!saved.has(k)) saved.set(k, process.env[k]);
    process.env[k] = v;
  };
  try {
    await writeFile(join(dir, 'pipeline.yaml'), yaml);
    const p = await loadPipelineFile(join(dir, 'pipeline.yaml'));
    const r = await synth(p, { outDir: join(dir, 'dist'), bundleSdk });
    const template = r.templateBody as BundleRun['template'];
    for (const [service, target] of Object.entries(targets) as [Service, string][]) {
      const rec = await startRecorder(service, target, keys);
      recorders.push(rec);
      setEnv(ENDPOINT_VARIABLE[service], rec.endpoint);
    }
    // Every other service at a closed port: a call to one not recorded fails rather than leaving the machine.
    setEnv('AWS_ENDPOINT_URL', 'http://127.0.0.1:9');
    for (const [service, variable] of Object.entries(ENDPOINT_VARIABLE))
      if (!(service in targets)) setEnv(variable, 'http://127.0.0.1:9');
    // The function's environment, as Lambda gives it.
    const fn = Object.values(template.Resources).find((res) => res.Type === 'AWS::Lambda::Function');
    const variables = ((fn?.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)
      ?.Variables ?? {}) as Record<string, unknown>;
    const resolve = resolver(template as never, templateEnvironment(template, names));
    for (const [k, v] of Object.entries(variables)) if (k !== 'NODE_OPTIONS') setEnv(k, resolve.value(v));
    setEnv('AWS_REGION', ACCOUNT.region);
    // s3rver's credentials (the other emulators take any).
    setEnv('AWS_ACCESS_KEY_ID', 'S3RVER');
    setEnv('AWS_SECRET_ACCESS_KEY', 'S3RVER');
    const { handler } = (await import(pathToFileURL(r.bundle).href)) as {
      handler: (e: unknown) => Promise<unknown>;
    };
    const answers: unknown[] = [];
    for (const e of events) answers.push(await handler(e));
    if (during) await during(handler, template);
    return { template, calls: recorders.flatMap((rec) => rec.calls), answers, names };
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await Promise.all(recorders.map((rec) => rec.close()));
    await rm(dir, { recursive: true, force: true });
  }
}
