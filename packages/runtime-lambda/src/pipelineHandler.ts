/**
 * The Lambda handler of a loaded pipeline (see `handler.ts` for what it does). Kept apart from
 * the pipeline file loader so a synthesised bundle, whose spec is inline and validated, carries
 * neither the YAML parser nor the validator.
 */
import { type BatchResult, type CompiledPipeline, type CompileOptions, compile, type Pipeline } from '@tributary/core';
import {
  type DeadLetterRecord,
  describeError,
  envelope,
  type Ordering,
  type SourceBatch,
  type SourceRecord,
} from '@tributary/core/spi';
import type { Context, DynamoDBRecord, KinesisStreamRecord } from 'aws-lambda';
import { dynamoDbStreamDescriber } from './dynamoDbStreams.js';
import {
  type Decoded,
  decodeDynamoDbRecord,
  decodeKinesisRecord,
  dynamoDbSequenceNumber,
  kinesisEventShard,
  type RejectedRecord,
  wellFormedKinesisRecord,
} from './eventRecords.js';
import { type EventShape, eventShape } from './eventShape.js';
import { checkLambdaWindowState } from './memoryState.js';
import { type DescribeDynamoDbStream, kindOfArn, kinesisShardLister, type ListShards, StreamShards } from './shards.js';

export interface HandlerOptions extends CompileOptions {
  /**
   * The event source mapping's ParallelizationFactor (default: env `TRIBUTARY_PARALLELIZATION_FACTOR`,
   * else 1). Above 1, Lambda runs several batches of a shard at once, in order only per partition
   * key: window state then applies records exactly once per partition key, not per shard.
   */
  parallelizationFactor?: number;
  /** Records per chunk (each acknowledged before the next). Default 500. */
  chunkSize?: number;
  /** Start no new chunk with less than this many ms left. Default 5000. */
  safetyMarginMs?: number;
  /** The hash range of a Kinesis shard, to drop de-aggregated records that belong to another shard. */
  hashRange?: (shardId: string) => { start: bigint; end: bigint } | undefined;
  /**
   * Shards to register before the first batch (with shared window state: every shard of the
   * stream). Not given, a pipeline with a window step lists the stream's shards itself (see
   * `listShards`) and registers the open ones.
   */
  shards?: readonly string[];
  /**
   * The ARN of the stream the function consumes, to list its shards at init rather than on the
   * first event (default: the `TRIBUTARY_STREAM_ARN` environment variable; else the first
   * event's `eventSourceARN`).
   */
  streamArn?: string;
  /**
   * Every shard of a Kinesis stream, by stream ARN (default: `ListShards` through the AWS SDK).
   * Read on the first event and again when a batch comes from a shard it did not hold (at most
   * once a minute per such shard); a failure is logged and the invocation goes on.
   */
  listShards?: ListShards;
  /**
   * Every shard of a DynamoDB stream with its sequence number range, by stream ARN (default:
   * `DescribeStream` through the AWS SDK): maps each record to its shard, since DynamoDB Streams
   * events do not name it. If it fails, the stream ARN stands for the shard (logged).
   */
  describeDynamoDbStream?: DescribeDynamoDbStream;
  /** Where log and metric lines go (default: standard output, one JSON object per line). */
  log?: (line: string) => void;
  /** CloudWatch metric namespace (default `Tributary`). */
  metricNamespace?: string;
}

export interface BatchItemFailure {
  itemIdentifier: string;
}
export interface HandlerResponse {
  batchItemFailures: BatchItemFailure[];
}

type Event = {
  Records?: (KinesisStreamRecord | DynamoDBRecord)[];
  source?: string;
  'detail-type'?: string;
  tributary?: string;
};

export interface Handler {
  (event: Event, context?: Pick<Context, 'getRemainingTimeInMillis' | 'awsRequestId'>): Promise<HandlerResponse>;
  /** Resolves when the pipeline is compiled (use at module load to init outside the handler). */
  readonly ready: Promise<CompiledPipeline>;
}

interface Chunk {
  batch: SourceBatch;
  /** The event record each source record came from: its sequence number is what Lambda retries from. */
  firstItem: string;
  /** Records of the chunk that could not be decoded: dead-lettered with it. */
  rejected: RejectedRecord[];
  /** De-aggregated user records of the chunk dropped as belonging to another shard. */
  otherShard: number;
}

/** Records of one shard, in event order, cut into chunks of at most `chunkSize` event records. */
class Chunker {
  readonly chunks: Chunk[] = [];
  private current: Chunk | undefined;
  private count = 0;
  constructor(
    private readonly chunkSize: number,
    private readonly ordering: Ordering,
  ) {}
  /** The chunk an event record of `shardId` (sequence number `seq`) goes in. */
  private chunkFor(shardId: string, seq: string): Chunk {
    let c = this.current;
    if (!c || c.batch.shardId !== shardId || this.count >= this.chunkSize) {
      c = {
        batch: { shardId, records: [], ordering: this.ordering },
        firstItem: seq,
        rejected: [],
        otherShard: 0,
      };
      this.chunks.push(c);
      this.current = c;
      this.count = 0;
    }
    this.count++;
    return c;
  }
  /** An event record that is one source record (see `wellFormedKinesisRecord`). */
  addRecord(shardId: string, src: SourceRecord): void {
    (this.chunkFor(shardId, src.sequenceNumber).batch.records as SourceRecord[]).push(src);
  }
  add(d: Decoded): void {
    const c = this.chunkFor(d.shardId, d.sequenceNumber);
    if ('rejected' in d) c.rejected.push(d.rejected);
    else {
      for (const r of d.records) (c.batch.records as SourceRecord[]).push(r);
      if (d.dropped !== undefined) c.otherShard += d.dropped;
    }
  }
}

/**
 * Kinesis event records → source batches per shard, in order, de-aggregated; malformed records
 * rejected. Each chunk is decoded as it is taken, so only one chunk's records are alive at once.
 */
function* kinesisChunks(records: readonly unknown[], options: HandlerOptions, chunkSize: number): Generator<Chunk> {
  const chunker = new Chunker(chunkSize, parallelization(options) > 1 ? 'partitionKey' : 'shard');
  const chunks = chunker.chunks;
  const eventShard = kinesisEventShard(records);
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    const src = eventShard === undefined ? undefined : wellFormedKinesisRecord(r, eventShard);
    if (src !== undefined) chunker.addRecord(eventShard as string, src);
    else chunker.add(decodeKinesisRecord(r, i, eventShard, options.hashRange));
    // The record just added began a new chunk: the one before it is complete.
    if (chunks.length > 1) yield chunks.shift() as Chunk;
  }
  yield* chunks;
}

/** The ParallelizationFactor the handler runs under (see HandlerOptions.parallelizationFactor). */
function parallelization(options: HandlerOptions): number {
  const n = options.parallelizationFactor ?? Number(process.env.TRIBUTARY_PARALLELIZATION_FACTOR || 1);
  return Number.isFinite(n) ? n : 1;
}

/** What stands for a DynamoDB Streams record's shard when its real shard is not known. */
function fallbackShard(arn: unknown): string {
  return (typeof arn === 'string' ? arn : 'dynamodb').split('/stream/')[0] || 'dynamodb';
}

/**
 * DynamoDB Streams event records → source batches: consecutive records of one shard (`shardIds`,
 * by record; the fallback where undefined) form a chunk; malformed records are rejected.
 */
function dynamoChunks(
  records: readonly unknown[],
  shardIds: readonly (string | undefined)[],
  eventArn: string | undefined,
  chunkSize: number,
): Chunk[] {
  // DynamoDB Streams keeps each item's records in order (a record's shard is only inferred).
  const chunker = new Chunker(chunkSize, 'partitionKey');
  records.forEach((r, i) => {
    const arn = arnOf(r) ?? eventArn;
    chunker.add(decodeDynamoDbRecord(r, i, shardIds[i] ?? fallbackShard(arn)));
  });
  return chunker.chunks;
}

/** The dead letters of records the handler could not decode (reason `decode`, step `source`). */
function deadLettersOf(rejected: readonly RejectedRecord[], pipeline: string, now: number) {
  const time = new Date(now).toISOString();
  return rejected.map((r) => {
    const dead: DeadLetterRecord = {
      reason: 'decode',
      step: 'source',
      error: r.error,
      shardId: r.shardId,
      sequenceNumber: r.sequenceNumber,
      partitionKey: r.partitionKey,
      data: r.data,
      pipeline,
      time,
    };
    const source: SourceRecord = {
      data: r.data,
      partitionKey: r.partitionKey,
      sequenceNumber: r.sequenceNumber,
      arrivalTime: r.arrivalTime,
    };
    return envelope(source, r.shardId, dead, r.arrivalTime);
  });
}

/** The `eventSourceARN` of an event record, if it gives one. */
function arnOf(r: unknown): string | undefined {
  const arn = (r as { eventSourceARN?: unknown } | null)?.eventSourceARN;
  return typeof arn === 'string' && arn !== '' ? arn : undefined;
}

/** The first `eventSourceARN` the event's records give (one pass, no array: this runs per event). */
function firstArn(records: readonly unknown[]): string | undefined {
  for (let i = 0; i < records.length; i++) {
    const arn = arnOf(records[i]);
    if (arn !== undefined) return arn;
  }
  return undefined;
}

/** The stream ARN of a Kinesis event record (an enhanced fan-out consumer's ARN names its stream). */
function kinesisStreamArn(eventSourceArn: string | undefined): string | undefined {
  if (!eventSourceArn) return undefined;
  const consumer = eventSourceArn.indexOf('/consumer/');
  return consumer < 0 ? eventSourceArn : eventSourceArn.slice(0, consumer);
}

/**
 * The handler for a pipeline already loaded (or being loaded). `createHandler` adds loading a
 * pipeline file; a synthesised bundle calls this directly with its inline spec, so it carries no
 * YAML loader.
 */
export function createPipelineHandler(pipeline: Pipeline | Promise<Pipeline>, options: HandlerOptions = {}): Handler {
  const chunkSize = options.chunkSize ?? 500;
  const margin = options.safetyMarginMs ?? 5000;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const namespace = options.metricNamespace ?? 'Tributary';
  const now = () => options.scheduler?.now() ?? Date.now();
  const initArn = options.streamArn ?? (process.env.TRIBUTARY_STREAM_ARN || undefined);
  // In Lambda the metrics are also kept per function (Lambda's own variable), so that two stacks
  // of one pipeline have alarms of their own (the template's DeadLettered alarm names both).
  const functionName = process.env.AWS_LAMBDA_FUNCTION_NAME || undefined;
  // Window state in memory dies with the container: refused unless the pipeline opts in.
  if (!(pipeline instanceof Promise)) checkLambdaWindowState(pipeline);
  const init = (async () => {
    const p = await pipeline;
    checkLambdaWindowState(p);
    const compiled = compile(p, options);
    await compiled.open();
    for (const s of options.shards ?? []) compiled.registerShard(s);
    // Windows need every shard of the stream known before they close (unless given).
    const registersShards = options.shards === undefined && compiled.nodes.some((n) => n.kind === 'window');
    const shards = new StreamShards({
      listShards: options.listShards ?? kinesisShardLister(),
      describeDynamoDbStream: options.describeDynamoDbStream ?? dynamoDbStreamDescriber(),
      ...(registersShards
        ? {
            register: (shardId: string) => compiled.registerShard(shardId),
            close: (shardId: string) => compiled.closeShard(shardId),
          }
        : {}),
      log,
      now,
    });
    const listAtInit = initArn !== undefined && (registersShards || kindOfArn(initArn) === 'dynamodb');
    if (listAtInit) await shards.init(initArn);
    return { compiled, shards, registersShards, listAtInit };
  })();
  const ready = init.then((i) => i.compiled);
  ready.catch(() => {}); // reported by the first invocation

  const handler = async (event: Event, context?: Pick<Context, 'getRemainingTimeInMillis' | 'awsRequestId'>) => {
    const t0 = Date.now();
    const requestId = context?.awsRequestId;
    let shape: EventShape;
    try {
      // A misconfigured trigger (an SQS, S3 or SNS event, not an event at all): refused, nothing written.
      shape = eventShape(event);
    } catch (err) {
      log(JSON.stringify({ level: 'error', msg: 'event refused', error: describeError(err), requestId }));
      throw err;
    }
    const { compiled, shards, registersShards, listAtInit } = await init;
    // A listing at init that failed is tried again (after its back-off).
    if (listAtInit) await shards.init(initArn as string, requestId);
    const totals = { recordsIn: 0, recordsOut: 0, deadLettered: 0, filtered: 0, late: 0, otherShard: 0 };
    const add = (r: BatchResult) => {
      totals.recordsIn += r.recordsIn;
      totals.recordsOut += r.recordsOut;
      totals.deadLettered += r.deadLettered;
      totals.filtered += r.filtered;
    };
    const failures: BatchItemFailure[] = [];
    let oldest = Number.POSITIVE_INFINITY;
    const kind = shape.kind;
    if (shape.kind === 'tick') add(await compiled.tick());
    else if (shape.kind !== 'empty') {
      const records = shape.records;
      const eventArn = firstArn(records);
      let chunks: Iterable<Chunk>;
      // The shards that delivered records (a malformed record does not name a shard to wait for):
      // each is made known before its first chunk is processed.
      let beforeShard: ((shardId: string) => Promise<void>) | undefined;
      if (shape.kind === 'kinesis') {
        chunks = kinesisChunks(records, options, chunkSize);
        const arn = kinesisStreamArn(eventArn);
        if (registersShards && arn) {
          const delivering = new Set<string>();
          beforeShard = async (shardId) => {
            if (delivering.has(shardId)) return;
            delivering.add(shardId);
            await shards.beforeKinesisBatches(arn, [shardId], requestId);
          };
        }
      } else {
        const sequenceNumbers = records.map(dynamoDbSequenceNumber);
        const shardIds = eventArn
          ? await shards.dynamoDbShardsOf(eventArn, sequenceNumbers, requestId)
          : records.map(() => undefined);
        const unmapped = shardIds.filter((id, i) => id === undefined && sequenceNumbers[i] !== undefined).length;
        if (unmapped > 0) {
          log(
            JSON.stringify({
              level: 'warn',
              msg: 'the shard of some records is not known: the stream ARN stands for it; exactly-once across shards is not guaranteed for this batch',
              stream: eventArn,
              records: unmapped,
              from: sequenceNumbers.find((n, i) => n !== undefined && shardIds[i] === undefined),
              requestId,
            }),
          );
        }
        chunks = dynamoChunks(records, shardIds, eventArn, chunkSize);
      }
      for (const c of chunks) {
        for (const r of c.batch.records) if (r.arrivalTime > 0 && r.arrivalTime < oldest) oldest = r.arrivalTime;
        if (context && context.getRemainingTimeInMillis() < margin) {
          failures.push({ itemIdentifier: c.firstItem });
          log(
            JSON.stringify({
              level: 'warn',
              msg: 'stopping near the timeout; the rest is retried',
              from: c.firstItem,
              requestId,
            }),
          );
          break;
        }
        try {
          // A chunk of malformed records only is not a batch of its shard (which may not be known).
          if (c.batch.records.length > 0) {
            if (beforeShard !== undefined) await beforeShard(c.batch.shardId);
            add(await compiled.process(c.batch));
          }
          if (c.rejected.length > 0) {
            await compiled.deadLetterOutput.write(deadLettersOf(c.rejected, compiled.name, now()));
            totals.recordsIn += c.rejected.length;
            totals.deadLettered += c.rejected.length;
          }
          // Not records of this shard (a reshard): neither in, out, filtered nor dead-lettered.
          if (c.otherShard > 0) {
            totals.otherShard += c.otherShard;
            log(
              JSON.stringify({
                level: 'info',
                msg: 'de-aggregated user records of another shard dropped (after a reshard, as the KCL drops them)',
                shardId: c.batch.shardId,
                from: c.firstItem,
                records: c.otherShard,
                requestId,
              }),
            );
          }
        } catch (err) {
          failures.push({ itemIdentifier: c.firstItem });
          log(
            JSON.stringify({
              level: 'error',
              msg: 'batch failed; Lambda will retry from here',
              from: c.firstItem,
              shardId: c.batch.shardId,
              error: describeError(err),
              requestId,
            }),
          );
          break;
        }
      }
    }
    const end = Date.now();
    log(
      JSON.stringify({
        _aws: {
          Timestamp: end,
          CloudWatchMetrics: [
            {
              Namespace: namespace,
              Dimensions: functionName ? [['Pipeline'], ['Pipeline', 'FunctionName']] : [['Pipeline']],
              Metrics: [
                { Name: 'RecordsIn', Unit: 'Count' },
                { Name: 'RecordsOut', Unit: 'Count' },
                { Name: 'DeadLettered', Unit: 'Count' },
                { Name: 'Filtered', Unit: 'Count' },
                { Name: 'IteratorAge', Unit: 'Milliseconds' },
                { Name: 'Duration', Unit: 'Milliseconds' },
                { Name: 'FailedBatches', Unit: 'Count' },
                { Name: 'OtherShardDropped', Unit: 'Count' },
              ],
            },
          ],
        },
        Pipeline: compiled.name,
        ...(functionName ? { FunctionName: functionName } : {}),
        Event: kind,
        RecordsIn: totals.recordsIn,
        RecordsOut: totals.recordsOut,
        DeadLettered: totals.deadLettered,
        Filtered: totals.filtered,
        IteratorAge: oldest === Number.POSITIVE_INFINITY ? 0 : Math.max(0, end - oldest),
        Duration: end - t0,
        FailedBatches: failures.length,
        OtherShardDropped: totals.otherShard,
        ...compiled.stats(),
      }),
    );
    return { batchItemFailures: failures };
  };
  return Object.assign(handler, { ready }) as Handler;
}
