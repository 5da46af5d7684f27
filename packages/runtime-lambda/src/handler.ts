/**
 * `createHandler(pipeline | 'pipeline.yaml', options)`: one Lambda handler for Kinesis and
 * DynamoDB Streams events (it tells them apart) and for scheduled ticks.
 *
 * - Init outside the handler: the pipeline is loaded and compiled once per container (on the
 *   first invocation, or at module load with `await handler.ready`), clients and caches reused.
 * - Kinesis: base64 decoded, KPL aggregates de-aggregated (MD5 checked, sub-sequence numbers
 *   kept, user records outside the shard's hash range dropped when `hashRange` is given).
 *   DynamoDB Streams: the record's keys and images as plain JSON (`dynamoDbImage.ts`): sets as
 *   arrays, `B`/`BS` as base64 text, `N` as a number when a JS number holds it exactly, else its
 *   exact decimal text.
 * - Bad input (`eventRecords.ts`): a record that cannot be read — a Kinesis record without
 *   `data`, `eventID` or a decimal sequence number, `kinesis: null`, a DynamoDB Streams record
 *   with an unknown attribute type, a malformed `N` or `B`, maps/lists nested deeper than
 *   `MAX_NESTING` (512) — goes to the dead-letter output (reason `decode`, step `source`, with its
 *   shard, sequence number if known, and the record as JSON text); the rest of the event goes on,
 *   and the record is not reported in `batchItemFailures`. An event that is not a Kinesis or
 *   DynamoDB Streams event (SQS, S3, SNS, no `Records`, not an object: a misconfigured trigger)
 *   is refused with a `LambdaEventError` naming what it got; nothing is written.
 * - The event's records are processed in order, in chunks of `chunkSize`; each chunk is
 *   acknowledged by its sinks and state before the next starts. A chunk that fails (a sink or
 *   store that retrying can fix) ends the invocation with `{ batchItemFailures: [{ itemIdentifier:
 *   <its first sequence number> }] }` (ReportBatchItemFailures): Lambda delivers the event again
 *   from there, and state writes are idempotent, so nothing counts twice. Records sent to the
 *   dead-letter output are successes. Near the timeout (`getRemainingTimeInMillis` below
 *   `safetyMarginMs`) no new chunk is started and the rest is reported for retry the same way.
 * - Shards: a pipeline with a window step lists the stream's shards (`ListShards`) on the first
 *   event, or at init when `streamArn` / `TRIBUTARY_STREAM_ARN` names the stream, and registers
 *   the open ones, so a shard that has not delivered yet holds windows back; a batch from a shard
 *   not listed (resharding) lists again, at most once a minute per shard (unless `shards` is
 *   given). DynamoDB Streams records are mapped to their shard by sequence number range
 *   (`DescribeStream`); if that fails, the stream stands for the shard and a warning is logged.
 * - A scheduled event (EventBridge rule) is a tick: watermarks advance by processing time and
 *   windows whose time has passed are emitted even when no record arrives.
 * - One CloudWatch Embedded Metric Format line per invocation (records in/out, dead-lettered,
 *   late, iterator age, duration), and structured JSON logs.
 *
 * This module is also the entry `@tributary/runtime-lambda/handler`: the lean one, that registers
 * only core's components (the bundle `tributary synth` builds enters through it, importing the
 * modules of the components its pipeline uses and nothing else). A pipeline file naming a sink,
 * state store or lookup of another package (`kinesis`, `dynamodb`, ...) needs that package
 * loaded: import `@tributary/runtime-lambda` (which loads `@tributary/sinks` and
 * `@tributary/state`) or the package that provides the kind; when none is, the refusal of an
 * unknown kind says so.
 */
import { loadPipelineFile, type Pipeline, PipelineValidationError, type ValidationIssue } from '@tributary/core';
import { type ComponentCategory, definitions } from '@tributary/core/spi';
import { createPipelineHandler, type Handler, type HandlerOptions } from './pipelineHandler.js';

export { MAX_NESTING } from './dynamoDbImage.js';
export { LambdaEventError } from './errors.js';
export type { BatchItemFailure, Handler, HandlerOptions, HandlerResponse } from './pipelineHandler.js';

/** The Lambda handler of a pipeline, or of a pipeline file (loaded and validated at init). */
export function createHandler(pipeline: Pipeline | string, options: HandlerOptions = {}): Handler {
  return createPipelineHandler(
    typeof pipeline === 'string' ? loadPipelineFile(pipeline).catch(withPackageHint) : pipeline,
    options,
  );
}

const CATEGORIES: readonly ComponentCategory[] = ['step', 'source', 'sink', 'lookup', 'store'];
/** How the validation of a pipeline refuses a kind no registration has (`unknown sink \`kinesis\`; ...`). */
const UNKNOWN_KIND = /^unknown (step|source|sink|lookup|state store) `/;
const PACKAGE_HINT =
  " — no package that registers it is loaded (only core's components are registered): import `@tributary/runtime-lambda` (which loads `@tributary/sinks` and `@tributary/state`) or the package that provides it";

/**
 * `err` with the issues of unknown kinds saying what to import, when no package but core has
 * registered a component in this process (as when only this entry is imported).
 */
function withPackageHint(err: unknown): never {
  const onlyCore = CATEGORIES.every((c) => definitions(c).every((d) => d.module.startsWith('.')));
  if (!(err instanceof PipelineValidationError) || !onlyCore || !err.issues.some((i) => UNKNOWN_KIND.test(i.message)))
    throw err;
  const issues: ValidationIssue[] = err.issues.map((i) =>
    UNKNOWN_KIND.test(i.message) ? { ...i, message: i.message + PACKAGE_HINT } : i,
  );
  throw new PipelineValidationError(issues, { cause: err.cause ?? err });
}
