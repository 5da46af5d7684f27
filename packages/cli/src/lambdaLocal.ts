/**
 * `tributary lambda-local pipeline.yaml`: the pipeline's Lambda handler, invoked in process by the
 * local event source (`LambdaSimulator`) on the Kinesis stream of the pipeline's `kinesis` source
 * (or `--stream`) — kinesalite, or a real one — with the event source mapping's settings of that
 * source and the template's defaults (`mappingSettings`): a local run cuts, retries, bisects and
 * ages out batches as the deployed function's mapping will. It ends when every shard has been
 * idle for a few polls (drained), or, with `follow`, when `signal` stops it; then open windows
 * are flushed.
 *
 * Before the first batch the handler is told every shard of the stream (DescribeStream), so a
 * shard that has not delivered yet holds windows back. One container serves every shard here,
 * one invocation at a time. At the end of the stream the shards' input ends: every window no
 * other consumer's shard still feeds is emitted; with a shared store the shards are marked
 * ended, not closed, so a later run over more of the stream goes on from their progress.
 *
 * `signal` stops the run (SIGINT in the CLI): the invocations in flight finish, nothing more is
 * polled, and the run ends as at the end of the stream — open windows are flushed, the outputs
 * closed — with the summary marked interrupted.
 *
 * Failed records go to the pipeline's dead-letter output (the on-failure destination) with the
 * error the handler logged for the failed batch (or threw); any such record makes the run a
 * failure (`failed > 0`).
 */
import { kinesisClient } from '@tributary/aws/kinesis';
import { ConfigError, type Pipeline } from '@tributary/core';
import { describeError, envelope, kinesisStreamName } from '@tributary/core/spi';
import { createHandler, type Handler, LambdaSimulator } from '@tributary/runtime-lambda';
import { mappingSettings } from './eventSourceMapping.js';

export type StartingPosition = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';

export interface LambdaLocalOptions {
  /** The Kinesis stream to read (default: the pipeline's `kinesis` source's). */
  stream?: string;
  /**
   * The Kinesis endpoint (default: the source's `endpoint`, else the SDK's `AWS_ENDPOINT_URL_KINESIS`,
   * else `AWS_ENDPOINT_URL`, else AWS's). With an endpoint (one of the variables: on this machine)
   * and no AWS credentials in the environment, local ones are used (emulators take any).
   */
  endpoint?: string;
  /** The mapping's settings, each over the source's (and the template's defaults). */
  batchSize?: number;
  bisect?: boolean;
  maxRetries?: number;
  parallelization?: number;
  /** Where a shard starts (StartingPosition) over the source's. */
  from?: StartingPosition;
  /** With `from: AT_TIMESTAMP`: ms since the epoch (default: the source's `startingTimestamp`). */
  timestamp?: number;
  /** Keep polling when every shard is drained, until `signal` stops the run. */
  follow?: boolean;
  /** With `follow`: called each time every shard has become drained, with the records in so far. */
  onDrained?: (recordsIn: number) => void;
  /** With `follow`: ms between polls of a drained shard (default 1000). */
  idleIntervalMs?: number;
  log?: (line: string) => void;
  /** Stops the run after the invocations in flight; its reason (e.g. `SIGINT`) is named in the summary. */
  signal?: AbortSignal;
}

export interface LambdaLocalResult {
  /**
   * One line: invocations, records in (each record handed to the handler counted once, however
   * often it was retried), written, dead-lettered, sent to the on-failure destination.
   */
  summary: string;
  /** Records that exhausted their retries (or aged out) and went to the on-failure destination, +1 if the final flush failed. */
  failed: number;
  /** Whether `signal` stopped the run before the stream was idle. */
  interrupted: boolean;
  /** The counts of the summary. */
  counts: { invocations: number; recordsIn: number; written: number; deadLettered: number; onFailure: number };
}

/** The region of a stream ARN (`arn:aws:kinesis:<region>:...`). */
const regionOfArn = (arn: string | undefined): string | undefined => arn?.split(':')[3] || undefined;

export async function lambdaLocal(pipeline: Pipeline, options: LambdaLocalOptions = {}): Promise<LambdaLocalResult> {
  const settings = mappingSettings(pipeline.spec);
  if (settings.kind === 'dynamodbStream') {
    throw new ConfigError(
      'lambda-local reads Kinesis streams only: a dynamodbStream source is not simulated (run it with `tributary run --input <file>` on change records, or deployed)',
    );
  }
  const stream = options.stream ?? kinesisStreamName({ stream: settings.name, streamArn: settings.streamArn });
  if (stream === undefined) throw new ConfigError('lambda-local needs a stream: the pipeline has no kinesis source');
  const from = options.from ?? settings.startingPosition;
  const timestampMs =
    options.timestamp ??
    (settings.startingPositionTimestamp === undefined ? undefined : settings.startingPositionTimestamp * 1000);
  if (from === 'AT_TIMESTAMP' && (timestampMs === undefined || !Number.isFinite(timestampMs)))
    throw new ConfigError('starting AT_TIMESTAMP needs a timestamp');
  // Without an endpoint, the SDK's AWS_ENDPOINT_URL_KINESIS (else AWS_ENDPOINT_URL) applies, with
  // local credentials when it is an emulator on this machine (see @tributary/aws's client config).
  const endpoint = options.endpoint ?? settings.endpoint;
  // The SDK's own attempts (3): the simulator's polls have no retry of their own.
  const client = kinesisClient({
    ...(endpoint === undefined ? {} : { endpoint }),
    region: settings.region ?? regionOfArn(settings.streamArn) ?? process.env.AWS_REGION,
    maxAttempts: 3,
  });
  let recordsOut = 0;
  let deadLettered = 0;
  /**
   * The error the handler logged for a failed chunk, by `shard/first record`: the record it
   * reports as the batch item failure, so the failed batch that starts there is told its error.
   */
  const chunkErrors = new Map<string, string>();
  /** Per shard, the last error the handler logged (when a failure cannot be matched to its chunk). */
  const lastError = new Map<string, string>();
  const probe = new LambdaSimulator(async () => undefined, { client, stream });
  let shards: string[];
  try {
    shards = await probe.shards();
  } catch (err) {
    client.destroy();
    throw err;
  }
  let handler: Handler;
  try {
    handler = createHandler(pipeline, {
      shards,
      parallelizationFactor: options.parallelization ?? settings.parallelizationFactor,
      log: (line) => {
        const m = JSON.parse(line) as {
          level?: string;
          shardId?: string;
          from?: string;
          error?: string;
          RecordsOut?: number;
          DeadLettered?: number;
        };
        if (m.level === 'error' && m.shardId !== undefined && m.error !== undefined) {
          lastError.set(m.shardId, m.error);
          if (m.from !== undefined) chunkErrors.set(`${m.shardId}/${m.from}`, m.error);
        }
        recordsOut += m.RecordsOut ?? 0;
        deadLettered += m.DeadLettered ?? 0;
        options.log?.(line);
      },
    });
  } catch (err) {
    client.destroy();
    throw err;
  }
  let compiled: Awaited<typeof handler.ready>;
  try {
    compiled = await handler.ready;
  } catch (err) {
    client.destroy();
    throw err;
  }
  let failed = 0;
  const failedBy = { RetryAttemptsExhausted: 0, RecordAgeExceeded: 0 };
  let sim: LambdaSimulator;
  try {
    sim = new LambdaSimulator(handler, {
      client,
      stream,
      mapping: {
        batchSize: options.batchSize ?? settings.batchSize,
        maximumBatchingWindowInSeconds: settings.maximumBatchingWindowInSeconds,
        bisectBatchOnFunctionError: options.bisect ?? settings.bisectBatchOnFunctionError,
        maximumRetryAttempts: options.maxRetries ?? settings.maximumRetryAttempts,
        maximumRecordAgeInSeconds: settings.maximumRecordAgeInSeconds,
        parallelizationFactor: options.parallelization ?? settings.parallelizationFactor,
        startingPosition: from,
        ...(timestampMs === undefined ? {} : { startingPositionTimestamp: timestampMs / 1000 }),
      },
      ...(options.idleIntervalMs === undefined ? {} : { idleIntervalMs: options.idleIntervalMs }),
      // The on-failure destination: the pipeline's dead-letter output.
      onFailure: async (f) => {
        failed += f.records.length;
        failedBy[f.reason] += f.records.length;
        const dead = compiled.deadLetterOutput;
        const first = f.records[0]?.kinesis.sequenceNumber;
        const error =
          f.error ?? chunkErrors.get(`${f.shardId}/${first}`) ?? lastError.get(f.shardId) ?? 'the batch failed';
        const time = new Date().toISOString();
        await dead.write(
          f.records.map((r) => {
            const arrivalTime = Math.round(r.kinesis.approximateArrivalTimestamp * 1000);
            return envelope(
              {
                partitionKey: r.kinesis.partitionKey,
                sequenceNumber: r.kinesis.sequenceNumber,
                arrivalTime,
                data: r.kinesis.data,
              },
              f.shardId,
              {
                reason: f.reason,
                step: 'lambda',
                error,
                shardId: f.shardId,
                sequenceNumber: r.kinesis.sequenceNumber,
                partitionKey: r.kinesis.partitionKey,
                data: r.kinesis.data,
                pipeline: compiled.name,
                time,
              },
              arrivalTime,
            );
          }),
        );
      },
    });
  } catch (err) {
    await compiled.close().catch(() => {});
    client.destroy();
    throw err;
  }
  const stop = () => sim.stop();
  options.signal?.addEventListener('abort', stop, { once: true });
  if (options.signal?.aborted) sim.stop();
  let flushError: string | undefined;
  try {
    const onDrained = options.onDrained;
    if (options.follow) await sim.follow(onDrained ? { onDrained: () => onDrained(sim.recordsDelivered) } : {});
    // Until drained, however many polls that takes: the simulator's default bound (10,000 polls
    // a shard) ended a run with `--batch-size 1` over a larger shard early, as if it were drained.
    else await sim.runUntilIdle({ maxPolls: Number.POSITIVE_INFINITY });
    try {
      const final = await compiled.flush({ shards });
      recordsOut += final.recordsOut;
      deadLettered += final.deadLettered;
    } catch (err) {
      // The windows still open stay in the store (a later run emits them); the run failed.
      flushError = describeError(err);
    }
  } finally {
    options.signal?.removeEventListener('abort', stop);
    await compiled.close();
    client.destroy();
  }
  const interrupted = options.signal?.aborted === true;
  const problems = [
    ...(failedBy.RetryAttemptsExhausted > 0 ? ['FAILED: their retries ran out'] : []),
    ...(failedBy.RecordAgeExceeded > 0
      ? [`FAILED: ${failedBy.RecordAgeExceeded} were older than the maximum record age`]
      : []),
    ...(flushError ? [`FAILED: the end-of-stream flush: ${flushError}`] : []),
  ];
  const counts = {
    invocations: sim.invocations,
    recordsIn: sim.recordsDelivered,
    written: recordsOut,
    deadLettered,
    onFailure: failed,
  };
  return {
    summary: `${compiled.name}: ${interrupted ? `interrupted by ${String(options.signal?.reason ?? 'a signal')}: ` : ''}${counts.invocations} invocations, ${counts.recordsIn} records in (each once, retries not counted), ${counts.written} written, ${counts.deadLettered} dead-lettered, ${counts.onFailure} sent to the on-failure destination${problems.length > 0 ? ` (${problems.join('; ')})` : ''}`,
    failed: failed + (flushError ? 1 : 0),
    interrupted,
    counts,
  };
}
