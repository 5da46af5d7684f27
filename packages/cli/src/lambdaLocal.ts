/**
 * `tributary lambda-local pipeline.yaml --stream s`: the pipeline's Lambda handler, invoked in
 * process by the local event source (`LambdaSimulator`) on a Kinesis stream — kinesalite, or a
 * real one — until every shard has been idle for a few polls; then open windows are flushed.
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
 * error the handler logged for them; any such record makes the run a failure (`failed > 0`).
 */
import { kinesisClient } from '@tributary/aws/kinesis';
import type { Pipeline } from '@tributary/core';
import { describeError, envelope } from '@tributary/core/spi';
import { createHandler, LambdaSimulator } from '@tributary/runtime-lambda';

export interface LambdaLocalOptions {
  stream: string;
  endpoint?: string;
  batchSize?: number;
  bisect?: boolean;
  maxRetries?: number;
  parallelization?: number;
  log?: (line: string) => void;
  /** Stops the run after the invocations in flight; its reason (e.g. `SIGINT`) is named in the summary. */
  signal?: AbortSignal;
}

export interface LambdaLocalResult {
  /** One line: invocations, records in, written, dead-lettered, sent to the on-failure destination. */
  summary: string;
  /** Records that exhausted their retries (or aged out) and went to the on-failure destination, +1 if the final flush failed. */
  failed: number;
  /** Whether `signal` stopped the run before the stream was idle. */
  interrupted: boolean;
}

export async function lambdaLocal(pipeline: Pipeline, options: LambdaLocalOptions): Promise<LambdaLocalResult> {
  // The SDK's own attempts (3): the simulator's polls have no retry of their own.
  const client = kinesisClient({ endpoint: options.endpoint, region: process.env.AWS_REGION, maxAttempts: 3 });
  let recordsIn = 0;
  let recordsOut = 0;
  let deadLettered = 0;
  /** Per shard, the last error the handler logged (what the on-failure destination is told). */
  const lastError = new Map<string, string>();
  const probe = new LambdaSimulator(async () => undefined, { client, stream: options.stream });
  let shards: string[];
  try {
    shards = await probe.shards();
  } catch (err) {
    client.destroy();
    throw err;
  }
  const handler = createHandler(pipeline, {
    shards,
    parallelizationFactor: options.parallelization ?? 1,
    log: (line) => {
      const m = JSON.parse(line) as {
        level?: string;
        shardId?: string;
        error?: string;
        RecordsIn?: number;
        RecordsOut?: number;
        DeadLettered?: number;
      };
      if (m.level === 'error' && m.shardId !== undefined && m.error !== undefined) lastError.set(m.shardId, m.error);
      recordsIn += m.RecordsIn ?? 0;
      recordsOut += m.RecordsOut ?? 0;
      deadLettered += m.DeadLettered ?? 0;
      options.log?.(line);
    },
  });
  let compiled: Awaited<typeof handler.ready>;
  try {
    compiled = await handler.ready;
  } catch (err) {
    client.destroy();
    throw err;
  }
  let failed = 0;
  const sim = new LambdaSimulator(handler, {
    client,
    stream: options.stream,
    mapping: {
      batchSize: options.batchSize ?? 100,
      bisectBatchOnFunctionError: options.bisect ?? false,
      maximumRetryAttempts: options.maxRetries ?? 3,
      parallelizationFactor: options.parallelization ?? 1,
    },
    // The on-failure destination: the pipeline's dead-letter output.
    onFailure: async (f) => {
      failed += f.records.length;
      const dead = compiled.deadLetterOutput;
      const error = f.error ?? lastError.get(f.shardId) ?? f.reason;
      await dead.write(
        f.records.map((r) =>
          envelope(
            {
              partitionKey: r.kinesis.partitionKey,
              sequenceNumber: r.kinesis.sequenceNumber,
              arrivalTime: 0,
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
              time: new Date().toISOString(),
            },
            0,
          ),
        ),
      );
    },
  });
  const stop = () => sim.stop();
  options.signal?.addEventListener('abort', stop, { once: true });
  if (options.signal?.aborted) sim.stop();
  let flushError: string | undefined;
  try {
    await sim.runUntilIdle();
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
    ...(failed > 0 ? ['FAILED: their retries ran out'] : []),
    ...(flushError ? [`FAILED: the end-of-stream flush: ${flushError}`] : []),
  ];
  return {
    summary: `${compiled.name}: ${interrupted ? `interrupted by ${String(options.signal?.reason ?? 'a signal')}: ` : ''}${sim.invocations} invocations, ${recordsIn} records handled, ${recordsOut} written, ${deadLettered} dead-lettered, ${failed} sent to the on-failure destination${problems.length > 0 ? ` (${problems.join('; ')})` : ''}`,
    failed: failed + (flushError ? 1 : 0),
    interrupted,
  };
}
