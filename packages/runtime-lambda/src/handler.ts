/**
 * `createHandler(pipeline | 'pipeline.yaml', options)`: one Lambda handler for Kinesis and
 * DynamoDB Streams events (it tells them apart) and for scheduled ticks.
 *
 * - Init outside the handler: the pipeline is loaded and compiled once per container (on the
 *   first invocation, or at module load with `await handler.ready`), clients and caches reused.
 * - Kinesis: base64 decoded, KPL aggregates de-aggregated (MD5 checked, sub-sequence numbers
 *   kept, user records outside the shard's hash range dropped when `hashRange` is given).
 *   DynamoDB Streams: the record's keys and images, unmarshalled.
 * - The event's records are processed in order, in chunks of `chunkSize`; each chunk is
 *   acknowledged by its sinks and state before the next starts. A chunk that fails (a sink or
 *   store that retrying can fix) ends the invocation with `{ batchItemFailures: [{ itemIdentifier:
 *   <its first sequence number> }] }` (ReportBatchItemFailures): Lambda delivers the event again
 *   from there, and state writes are idempotent, so nothing counts twice. Records sent to the
 *   dead-letter output are successes. Near the timeout (`getRemainingTimeInMillis` below
 *   `safetyMarginMs`) no new chunk is started and the rest is reported for retry the same way.
 * - A scheduled event (EventBridge rule) is a tick: watermarks advance by processing time and
 *   windows whose time has passed are emitted even when no record arrives.
 * - One CloudWatch Embedded Metric Format line per invocation (records in/out, dead-lettered,
 *   late, iterator age, duration), and structured JSON logs.
 */
import { loadPipelineFile, type Pipeline } from '@tributary/core';
import { createPipelineHandler, type Handler, type HandlerOptions } from './pipelineHandler.js';

export type { BatchItemFailure, Handler, HandlerOptions, HandlerResponse } from './pipelineHandler.js';

/** The Lambda handler of a pipeline, or of a pipeline file (loaded and validated at init). */
export function createHandler(pipeline: Pipeline | string, options: HandlerOptions = {}): Handler {
  return createPipelineHandler(typeof pipeline === 'string' ? loadPipelineFile(pipeline) : pipeline, options);
}
