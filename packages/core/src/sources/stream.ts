/**
 * The stream sources: `kinesis` and `dynamodbStream`. A pipeline names the stream it consumes
 * and how (the event source mapping's settings for Lambda; the worker's reading for the Node
 * runtime). They are read by the runtimes — a deployed function, `tributary lambda-local`, the
 * worker — not by `tributary run`, which reads a file (`--input <file>` puts one in their place).
 */
import Type, { type Static } from 'typebox';
import type { SourceDefinition } from '../compile/types.js';
import { ConfigError } from '../errors.js';
import { register } from '../registry.js';
import { DurationSchema, X_EXPECTED, X_TIMESTAMP } from '../schema.js';
import { DYNAMODB_STREAM_ARN, KINESIS_STREAM_ARN } from './streamArn.js';

const clientFields = {
  region: Type.Optional(Type.String({ minLength: 1, description: 'AWS region (default: from the environment)' })),
  endpoint: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'endpoint URL for local runs (e.g. an emulator); `AWS_ENDPOINT_URL_KINESIS` does the same',
    }),
  ),
};

/** The settings both stream sources share: how batches are cut and retried. */
const mappingFields = (defaultBatch: number) => ({
  batchSize: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 10_000,
      description: `records per batch at most (BatchSize; default ${defaultBatch})`,
    }),
  ),
  batchingWindow: Type.Optional(
    DurationSchema(
      'how long records are gathered before a batch is handed over, whole seconds from 0s to 300s (MaximumBatchingWindowInSeconds; default 1s)',
      { max: 300_000, step: 1000, text: "of whole seconds from 0s to 300s (Lambda's MaximumBatchingWindowInSeconds)" },
    ),
  ),
  parallelization: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 10,
      description: 'batches of one shard processed at once (ParallelizationFactor; default 1)',
    }),
  ),
  maxRetries: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 10_000,
      description:
        'retries of a failing batch before its records go to the on-failure destination (MaximumRetryAttempts; default 10)',
    }),
  ),
  maxRecordAge: Type.Optional(
    DurationSchema(
      'records older than this are not retried but sent to the on-failure destination, whole seconds from 60s to 7d (MaximumRecordAgeInSeconds; default 1d)',
      {
        min: 60_000,
        max: 604_800_000,
        step: 1000,
        text: "of whole seconds from 60s to 7d (Lambda's MaximumRecordAgeInSeconds)",
      },
    ),
  ),
  bisect: Type.Optional(
    Type.Boolean({
      description: 'split a failing batch in two and retry each half (BisectBatchOnFunctionError; default true)',
    }),
  ),
});

export const kinesisSourceSchema = Type.Object(
  {
    stream: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-zA-Z0-9_.-]+$', description: 'stream name' }),
    ),
    streamArn: Type.Optional(
      Type.String({ pattern: KINESIS_STREAM_ARN, description: 'stream ARN (instead of `stream`)' }),
    ),
    startingPosition: Type.Optional(
      Type.Union([Type.Literal('TRIM_HORIZON'), Type.Literal('LATEST'), Type.Literal('AT_TIMESTAMP')], {
        description: 'where a new consumer starts (StartingPosition; default TRIM_HORIZON)',
      }),
    ),
    startingTimestamp: Type.Optional(
      Type.String({
        pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2})$',
        [X_TIMESTAMP]: { notFuture: true },
        description:
          'with `startingPosition: AT_TIMESTAMP`: the time to start at (ISO 8601), not in the future (Lambda refuses one)',
      }),
    ),
    consumer: Type.Optional(
      Type.Literal('efo', {
        description: 'read through an enhanced fan-out consumer registered for the pipeline (SubscribeToShard)',
      }),
    ),
    ...mappingFields(500),
    ...clientFields,
  },
  {
    additionalProperties: false,
    oneOf: [{ required: ['stream'] }, { required: ['streamArn'] }],
    [X_EXPECTED]: 'exactly one of stream, streamArn',
    if: { properties: { startingPosition: { const: 'AT_TIMESTAMP' } }, required: ['startingPosition'] },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then
    then: { required: ['startingTimestamp'] },
    dependencies: {
      startingTimestamp: {
        properties: { startingPosition: { const: 'AT_TIMESTAMP' } },
        required: ['startingPosition'],
      },
    },
  },
);
export type KinesisSourceSpec = Static<typeof kinesisSourceSchema>;

export const dynamodbStreamSourceSchema = Type.Object(
  {
    table: Type.Optional(
      Type.String({
        minLength: 3,
        maxLength: 255,
        pattern: '^[A-Za-z0-9_.-]+$',
        description: 'table whose stream is read',
      }),
    ),
    streamArn: Type.Optional(
      Type.String({ pattern: DYNAMODB_STREAM_ARN, description: 'stream ARN (instead of `table`)' }),
    ),
    startingPosition: Type.Optional(
      Type.Union([Type.Literal('TRIM_HORIZON'), Type.Literal('LATEST')], {
        description: 'where a new consumer starts (StartingPosition; default TRIM_HORIZON)',
      }),
    ),
    ...mappingFields(100),
    ...clientFields,
  },
  {
    additionalProperties: false,
    oneOf: [{ required: ['table'] }, { required: ['streamArn'] }],
    [X_EXPECTED]: 'exactly one of table, streamArn',
  },
);
export type DynamodbStreamSourceSpec = Static<typeof dynamodbStreamSourceSchema>;

declare module '../index.js' {
  interface SourceKinds {
    kinesis: KinesisSourceSpec;
    dynamodbStream: DynamodbStreamSourceSpec;
  }
}

const notRunnable = (kind: string) =>
  new ConfigError(
    `a ${kind} source is read by a runtime (a deployed Lambda function, \`tributary lambda-local\`, \`tributary worker\`); \`tributary run\` reads a file: give \`--input <file>\``,
  );

export const kinesisSourceDefinition: SourceDefinition<KinesisSourceSpec> = register({
  kind: 'kinesis',
  category: 'source',
  module: './sources/stream.js',
  schema: kinesisSourceSchema,
  description:
    'A Kinesis data stream, consumed by the Lambda runtime (its event source mapping: `batchSize`, `batchingWindow`, `parallelization`, `maxRetries`, `maxRecordAge`, `bisect`, `startingPosition` map to the mapping settings of the same names) or by the worker. `consumer: efo` reads through an enhanced fan-out consumer. `tributary run` reads a file instead (`--input`).',
  summary: (spec) =>
    `${spec.stream ?? spec.streamArn} from ${spec.startingPosition ?? 'TRIM_HORIZON'}${spec.consumer ? ' (enhanced fan-out)' : ''}`,
  permissions(spec) {
    const stream = spec.streamArn
      ? { type: 'kinesis-stream' as const, arn: spec.streamArn }
      : { type: 'kinesis-stream' as const, name: spec.stream };
    const read = {
      actions: [
        'kinesis:GetRecords',
        'kinesis:GetShardIterator',
        'kinesis:DescribeStream',
        'kinesis:DescribeStreamSummary',
        'kinesis:ListShards',
      ],
      resource: stream,
    };
    if (spec.consumer !== 'efo') return [read];
    return [
      read,
      {
        actions: ['kinesis:SubscribeToShard', 'kinesis:DescribeStreamConsumer'],
        resource: { type: 'kinesis-consumer', stream: spec.stream, streamArn: spec.streamArn, consumer: '*' },
      },
    ];
  },
  create() {
    throw notRunnable('kinesis');
  },
});

export const dynamodbStreamSourceDefinition: SourceDefinition<DynamodbStreamSourceSpec> = register({
  kind: 'dynamodbStream',
  category: 'source',
  module: './sources/stream.js',
  schema: dynamodbStreamSourceSchema,
  description:
    "A DynamoDB table's stream (change data capture), consumed by the Lambda runtime through its event source mapping (settings as for `kinesis`). Each record's value is the change as the service sends it (`eventName`, `dynamodb.Keys`, `NewImage`, `OldImage`, …). `tributary run` reads a file instead (`--input`).",
  summary: (spec) => `${spec.table ?? spec.streamArn} from ${spec.startingPosition ?? 'TRIM_HORIZON'}`,
  permissions(spec) {
    return [
      {
        actions: [
          'dynamodb:DescribeStream',
          'dynamodb:GetRecords',
          'dynamodb:GetShardIterator',
          'dynamodb:ListStreams',
        ],
        resource: spec.streamArn
          ? { type: 'dynamodb-stream', arn: spec.streamArn }
          : { type: 'dynamodb-stream', table: spec.table },
      },
    ];
  },
  create() {
    throw notRunnable('dynamodbStream');
  },
});
