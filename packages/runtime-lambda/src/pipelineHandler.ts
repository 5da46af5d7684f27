/**
 * The Lambda handler of a loaded pipeline (see `handler.ts` for what it does). Kept apart from
 * the pipeline file loader so a synthesised bundle, whose spec is inline and validated, carries
 * neither the YAML parser nor the validator.
 */
import { unmarshall } from '@aws-sdk/util-dynamodb';
import {
  type BatchResult,
  type CompiledPipeline,
  type CompileOptions,
  compile,
  describeError,
  type Pipeline,
  type SourceBatch,
  type SourceRecord,
} from '@tributary/core';
import type { Context, DynamoDBRecord, KinesisStreamRecord } from 'aws-lambda';
import { deaggregate } from './deaggregate.js';
import { checkLambdaWindowState } from './memoryState.js';
import {
  type DescribeDynamoDbStream,
  dynamoDbStreamDescriber,
  kindOfArn,
  kinesisShardLister,
  type ListShards,
  StreamShards,
} from './shards.js';

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
}

/** Kinesis event records → source batches per shard, in order, de-aggregated. */
function kinesisChunks(records: KinesisStreamRecord[], options: HandlerOptions, chunkSize: number): Chunk[] {
  const chunks: Chunk[] = [];
  const ordering = parallelization(options) > 1 ? ('partitionKey' as const) : ('shard' as const);
  let current: { shardId: string; records: SourceRecord[]; firstItem: string; count: number } | undefined;
  for (const r of records) {
    const k = r.kinesis;
    // Records of one invocation nearly always share a shard: compare the prefix before slicing it.
    const id = r.eventID;
    const shardId =
      current !== undefined && id.startsWith(current.shardId) && id.charCodeAt(current.shardId.length) === 58
        ? current.shardId
        : id.slice(0, id.indexOf(':')) || 'shardId-unknown';
    if (!current || current.shardId !== shardId || current.count >= chunkSize) {
      if (current)
        chunks.push({
          batch: { shardId: current.shardId, records: current.records, ordering },
          firstItem: current.firstItem,
        });
      current = { shardId, records: [], firstItem: k.sequenceNumber, count: 0 };
    }
    current.count++;
    const arrivalTime = Math.round(k.approximateArrivalTimestamp * 1000);
    const data = Buffer.from(k.data, 'base64');
    if (!isAggregate(data)) {
      current.records.push({ data, partitionKey: k.partitionKey, sequenceNumber: k.sequenceNumber, arrivalTime });
      continue;
    }
    for (const u of deaggregate(data, k.partitionKey, options.hashRange?.(shardId))) {
      const src: SourceRecord = {
        data: u.data,
        partitionKey: u.partitionKey,
        sequenceNumber: k.sequenceNumber,
        arrivalTime,
      };
      if (u.subSequenceNumber !== undefined) src.subSequenceNumber = u.subSequenceNumber;
      current.records.push(src);
    }
  }
  if (current) {
    chunks.push({
      batch: { shardId: current.shardId, records: current.records, ordering },
      firstItem: current.firstItem,
    });
  }
  return chunks;
}

/** The ParallelizationFactor the handler runs under (see HandlerOptions.parallelizationFactor). */
function parallelization(options: HandlerOptions): number {
  const n = options.parallelizationFactor ?? Number(process.env.TRIBUTARY_PARALLELIZATION_FACTOR || 1);
  return Number.isFinite(n) ? n : 1;
}

/** Whether data starts with the KPL magic bytes (checked without slicing: this runs per record). */
function isAggregate(data: Buffer): boolean {
  return data.length > 20 && data[0] === 0xf3 && data[1] === 0x89 && data[2] === 0x9a && data[3] === 0xc2;
}

/** What stands for a DynamoDB Streams record's shard when its real shard is not known. */
function fallbackShard(r: DynamoDBRecord): string {
  return (r.eventSourceARN ?? 'dynamodb').split('/stream/')[0] || 'dynamodb';
}

/**
 * DynamoDB Streams event records → source batches: consecutive records of one shard (`shardIds`,
 * by record; the fallback where undefined) form a chunk.
 */
function dynamoChunks(
  records: DynamoDBRecord[],
  shardIds: readonly (string | undefined)[],
  chunkSize: number,
): Chunk[] {
  const chunks: Chunk[] = [];
  const image = (x: unknown) => (x ? unmarshall(x as never) : undefined);
  let current: { shardId: string; records: SourceRecord[]; ordering: 'partitionKey' } | undefined;
  records.forEach((r, i) => {
    const d = r.dynamodb ?? {};
    const shardId = shardIds[i] ?? fallbackShard(r);
    if (!current || current.shardId !== shardId || current.records.length >= chunkSize) {
      // DynamoDB Streams keeps each item's records in order (a record's shard is only inferred).
      current = { shardId, records: [], ordering: 'partitionKey' as const };
      chunks.push({ firstItem: d.SequenceNumber ?? '', batch: current });
    }
    const keys = image(d.Keys);
    current.records.push({
      value: { eventName: r.eventName, keys, newImage: image(d.NewImage), oldImage: image(d.OldImage) },
      partitionKey: JSON.stringify(keys ?? null),
      sequenceNumber: d.SequenceNumber ?? '0',
      arrivalTime: Math.round((d.ApproximateCreationDateTime ?? 0) * 1000),
    });
  });
  return chunks;
}

/** The stream ARN of a Kinesis event record (an enhanced fan-out consumer's ARN names its stream). */
function kinesisStreamArn(eventSourceArn: string | undefined): string | undefined {
  if (!eventSourceArn) return undefined;
  const consumer = eventSourceArn.indexOf('/consumer/');
  return consumer < 0 ? eventSourceArn : eventSourceArn.slice(0, consumer);
}

function isTick(event: Event): boolean {
  return (
    !event.Records &&
    (event.source === 'aws.events' || event['detail-type'] === 'Scheduled Event' || event.tributary === 'tick')
  );
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
  // Window state in memory dies with the container: refused unless the pipeline opts in.
  if (!(pipeline instanceof Promise)) checkLambdaWindowState(pipeline.spec, pipeline.file);
  const init = (async () => {
    const p = await pipeline;
    checkLambdaWindowState(p.spec, p.file);
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
    const { compiled, shards, registersShards, listAtInit } = await init;
    const requestId = context?.awsRequestId;
    // A listing at init that failed is tried again (after its back-off).
    if (listAtInit) await shards.init(initArn as string, requestId);
    const totals = { recordsIn: 0, recordsOut: 0, deadLettered: 0, filtered: 0, late: 0 };
    const add = (r: BatchResult) => {
      totals.recordsIn += r.recordsIn;
      totals.recordsOut += r.recordsOut;
      totals.deadLettered += r.deadLettered;
      totals.filtered += r.filtered;
    };
    const failures: BatchItemFailure[] = [];
    let oldest = Number.POSITIVE_INFINITY;
    let kind = 'tick';
    if (isTick(event)) add(await compiled.tick());
    else {
      const records = event.Records ?? [];
      const first = records[0];
      kind = first && 'kinesis' in first ? 'kinesis' : 'dynamodb';
      let chunks: Chunk[];
      if (kind === 'kinesis') {
        chunks = kinesisChunks(records as KinesisStreamRecord[], options, chunkSize);
        const arn = kinesisStreamArn(first?.eventSourceARN);
        if (registersShards && arn) {
          await shards.beforeKinesisBatches(arn, new Set(chunks.map((c) => c.batch.shardId)), requestId);
        }
      } else {
        const items = records as DynamoDBRecord[];
        const arn = first?.eventSourceARN;
        const shardIds = arn
          ? await shards.dynamoDbShardsOf(
              arn,
              items.map((r) => r.dynamodb?.SequenceNumber),
              requestId,
            )
          : items.map(() => undefined);
        const unmapped = shardIds.filter((id) => id === undefined).length;
        if (unmapped > 0) {
          log(
            JSON.stringify({
              level: 'warn',
              msg: 'the shard of some records is not known: the stream ARN stands for it; exactly-once across shards is not guaranteed for this batch',
              stream: arn,
              records: unmapped,
              from: items[shardIds.indexOf(undefined)]?.dynamodb?.SequenceNumber,
              requestId,
            }),
          );
        }
        chunks = dynamoChunks(items, shardIds, chunkSize);
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
          add(await compiled.process(c.batch));
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
    const now = Date.now();
    log(
      JSON.stringify({
        _aws: {
          Timestamp: now,
          CloudWatchMetrics: [
            {
              Namespace: namespace,
              Dimensions: [['Pipeline']],
              Metrics: [
                { Name: 'RecordsIn', Unit: 'Count' },
                { Name: 'RecordsOut', Unit: 'Count' },
                { Name: 'DeadLettered', Unit: 'Count' },
                { Name: 'Filtered', Unit: 'Count' },
                { Name: 'IteratorAge', Unit: 'Milliseconds' },
                { Name: 'Duration', Unit: 'Milliseconds' },
                { Name: 'FailedBatches', Unit: 'Count' },
              ],
            },
          ],
        },
        Pipeline: compiled.name,
        Event: kind,
        RecordsIn: totals.recordsIn,
        RecordsOut: totals.recordsOut,
        DeadLettered: totals.deadLettered,
        Filtered: totals.filtered,
        IteratorAge: oldest === Number.POSITIVE_INFINITY ? 0 : Math.max(0, now - oldest),
        Duration: now - t0,
        FailedBatches: failures.length,
        ...compiled.stats(),
      }),
    );
    return { batchItemFailures: failures };
  };
  return Object.assign(handler, { ready }) as Handler;
}
