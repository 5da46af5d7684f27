/**
 * `tributary lambda-local pipeline.yaml --stream s`: the pipeline's Lambda handler, invoked in
 * process by the local event source (`LambdaSimulator`) on a Kinesis stream — kinesalite, or a
 * real one — until every shard has been idle for a few polls; then open windows are flushed.
 * Failed records go to the pipeline's dead-letter output (the on-failure destination).
 */
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { envelope, type Pipeline } from '@tributary/core';
import { createHandler, LambdaSimulator } from '@tributary/runtime-lambda';

export interface LambdaLocalOptions {
  stream: string;
  endpoint?: string;
  batchSize?: number;
  bisect?: boolean;
  maxRetries?: number;
  parallelization?: number;
  log?: (line: string) => void;
}

export async function lambdaLocal(pipeline: Pipeline, options: LambdaLocalOptions): Promise<string> {
  const client = new KinesisClient({
    requestHandler: new NodeHttpHandler(),
    ...(options.endpoint
      ? {
          endpoint: options.endpoint,
          region: process.env.AWS_REGION ?? 'us-east-1',
          ...(process.env.AWS_ACCESS_KEY_ID ? {} : { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
        }
      : {}),
  });
  let recordsIn = 0;
  let recordsOut = 0;
  let deadLettered = 0;
  const handler = createHandler(pipeline, {
    log: (line) => {
      const m = JSON.parse(line) as { RecordsIn?: number; RecordsOut?: number; DeadLettered?: number };
      recordsIn += m.RecordsIn ?? 0;
      recordsOut += m.RecordsOut ?? 0;
      deadLettered += m.DeadLettered ?? 0;
      options.log?.(line);
    },
  });
  const compiled = await handler.ready;
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
              error: f.error ?? f.reason,
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
  try {
    await sim.runUntilIdle();
    const final = await compiled.flush();
    recordsOut += final.recordsOut;
  } finally {
    await compiled.close();
    client.destroy();
  }
  return `${compiled.name}: ${sim.invocations} invocations, ${recordsIn} records in, ${recordsOut} written, ${deadLettered} dead-lettered, ${failed} sent to the on-failure destination`;
}
