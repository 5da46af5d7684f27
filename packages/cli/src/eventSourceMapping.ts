/**
 * The event source mapping a pipeline's source stands for: its settings with the defaults filled
 * in, one place read by `tributary synth` (the template's `AWS::Lambda::EventSourceMapping`) and
 * `tributary lambda-local` (the simulator), so a local run retries, cuts and bisects batches as
 * the deployed function's mapping will.
 *
 * | source option      | mapping setting                | default (kinesis / dynamodbStream) |
 * | ------------------ | ------------------------------ | ---------------------------------- |
 * | `startingPosition` | StartingPosition               | TRIM_HORIZON                       |
 * | `startingTimestamp`| StartingPositionTimestamp      | —                                  |
 * | `batchSize`        | BatchSize                      | 500 / 100                          |
 * | `batchingWindow`   | MaximumBatchingWindowInSeconds | 1s                                 |
 * | `parallelization`  | ParallelizationFactor          | 1                                  |
 * | `maxRetries`       | MaximumRetryAttempts           | 10                                 |
 * | `maxRecordAge`     | MaximumRecordAgeInSeconds      | 1d                                 |
 * | `bisect`           | BisectBatchOnFunctionError     | true                               |
 * | `consumer: efo`    | an AWS::Kinesis::StreamConsumer as the EventSourceArn | —           |
 *
 * A pipeline whose source is a file (a local pipeline) gets the Kinesis defaults.
 */
import type { PipelineSpec } from '@tributary/core';
import { durationMs, kindOf } from '@tributary/core/spi';

export interface MappingSettings {
  /** What the mapping reads. */
  kind: 'kinesis' | 'dynamodbStream';
  /** The Kinesis stream by name, or the table whose stream is read (dynamodbStream). */
  name?: string;
  /** The stream's ARN, when the source gives one. */
  streamArn?: string;
  startingPosition: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  /** With AT_TIMESTAMP: seconds since the epoch. */
  startingPositionTimestamp?: number;
  batchSize: number;
  maximumBatchingWindowInSeconds: number;
  parallelizationFactor: number;
  maximumRetryAttempts: number;
  maximumRecordAgeInSeconds: number;
  bisectBatchOnFunctionError: boolean;
  /** Enhanced fan-out: the mapping reads through a registered stream consumer. */
  efo: boolean;
  /** The endpoint the source names for local runs. */
  endpoint?: string;
  region?: string;
}

/** The defaults, as the template writes them and lambda-local applies them. */
export const MAPPING_DEFAULTS = {
  kinesis: { batchSize: 500 },
  dynamodbStream: { batchSize: 100 },
  maximumBatchingWindowInSeconds: 1,
  parallelizationFactor: 1,
  maximumRetryAttempts: 10,
  maximumRecordAgeInSeconds: 86_400,
  bisectBatchOnFunctionError: true,
} as const;

interface StreamSourceOptions {
  stream?: string;
  table?: string;
  streamArn?: string;
  startingPosition?: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  startingTimestamp?: string;
  consumer?: 'efo';
  batchSize?: number;
  batchingWindow?: string | number;
  parallelization?: number;
  maxRetries?: number;
  maxRecordAge?: string | number;
  bisect?: boolean;
  endpoint?: string;
  region?: string;
}

const seconds = (d: string | number | undefined): number | undefined =>
  d === undefined ? undefined : Math.round(durationMs(d) / 1000);

/** The mapping settings of `spec`'s source (the Kinesis defaults for a file source). */
export function mappingSettings(spec: PipelineSpec): MappingSettings {
  const kind = kindOf(spec.source);
  const o: StreamSourceOptions =
    kind === 'kinesis' || kind === 'dynamodbStream'
      ? ((spec.source as unknown as Record<string, StreamSourceOptions>)[kind] ?? {})
      : {};
  const k = kind === 'dynamodbStream' ? 'dynamodbStream' : 'kinesis';
  const out: MappingSettings = {
    kind: k,
    startingPosition: o.startingPosition ?? 'TRIM_HORIZON',
    batchSize: o.batchSize ?? MAPPING_DEFAULTS[k].batchSize,
    maximumBatchingWindowInSeconds: seconds(o.batchingWindow) ?? MAPPING_DEFAULTS.maximumBatchingWindowInSeconds,
    parallelizationFactor: o.parallelization ?? MAPPING_DEFAULTS.parallelizationFactor,
    maximumRetryAttempts: o.maxRetries ?? MAPPING_DEFAULTS.maximumRetryAttempts,
    maximumRecordAgeInSeconds: seconds(o.maxRecordAge) ?? MAPPING_DEFAULTS.maximumRecordAgeInSeconds,
    bisectBatchOnFunctionError: o.bisect ?? MAPPING_DEFAULTS.bisectBatchOnFunctionError,
    efo: o.consumer === 'efo',
  };
  const name = o.stream ?? o.table;
  if (name !== undefined) out.name = name;
  if (o.streamArn !== undefined) out.streamArn = o.streamArn;
  if (o.startingTimestamp !== undefined) out.startingPositionTimestamp = Date.parse(o.startingTimestamp) / 1000;
  if (o.endpoint !== undefined) out.endpoint = o.endpoint;
  if (o.region !== undefined) out.region = o.region;
  return out;
}
