/**
 * Reads one shard of a Kinesis stream for the worker, as the Kinesis Client Library's shard
 * consumer does: a shard iterator from the lease's checkpoint, then a GetRecords loop whose next
 * call is already under way while the caller processes a batch (at most one call ahead).
 *
 * - Where it starts: from a sequence-number checkpoint (seq, subSequence), at that record
 *   (AT_SEQUENCE_NUMBER), skipping its user records up to and including the sub-sequence (a plain
 *   record has sub-sequence 0: skipped), as the KCL does — it writes (seq, 0) after the first user
 *   record of an aggregate, so the rest of that aggregate is still read; TRIM_HORIZON, LATEST, or
 *   AT_TIMESTAMP (with `startingTimestamp`) for a shard without a checkpoint.
 * - A call that returns no records: the next waits `idleTimeBetweenReadsMs` (KCL's
 *   idleTimeBetweenReadsInMillis, default 1 s).
 * - ProvisionedThroughputExceededException, LimitExceededException and other transient
 *   failures: retried after exponential backoff with full jitter (core's backoff).
 * - ExpiredIteratorException: a fresh iterator after the last record handed over (or from the
 *   start position, when none was), so nothing is skipped and nothing read twice.
 * - No NextShardIterator: the shard is closed and read to its end (SHARD_END).
 * - KPL aggregates are de-aggregated; user records whose hash key is outside the shard's hash key
 *   range are dropped, as the KCL drops them (they belong to a child shard after a reshard).
 */
import {
  ExpiredIteratorException,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type GetShardIteratorCommandInput,
  type KinesisClient,
  type _Record as KinesisRecord,
} from '@aws-sdk/client-kinesis';
import {
  type BackoffPolicy,
  backoffDelay,
  ConfigError,
  deaggregateRecord,
  describeError,
  type HashKeyRange,
  isTransient,
  type SourceBatch,
  type SourceRecord,
} from '@tributary/core/spi';
import { ReaderStopped } from './errors.js';
import type { CheckpointPosition, WorkerMetrics } from './leaseTypes.js';

/** Where a shard is read from: a lease's checkpoint (a sequence number or a special one) and its sub-sequence. */
export interface ReadPosition {
  checkpoint: string;
  subSequenceNumber: number;
}

export interface ShardReaderOptions {
  kinesis: KinesisClient;
  /** The stream name (or give `streamArn`). */
  stream?: string;
  streamArn?: string;
  shardId: string;
  /** The lease's checkpoint. `TRIM_HORIZON`, `LATEST` and `AT_TIMESTAMP` start a shard without one. */
  from: ReadPosition;
  /** With `AT_TIMESTAMP`: the time to start at. */
  startingTimestamp?: Date;
  /** The shard's hash key range: de-aggregated user records outside it are dropped. */
  hashRange?: HashKeyRange;
  /** GetRecords `Limit` (1 to 10 000, default 10 000). */
  maxRecords?: number;
  /** The wait before the next GetRecords after one that returned no records (ms, default 1000). */
  idleTimeBetweenReadsMs?: number;
  /** Backoff of throttled and transiently failed calls (default base 200 ms, max 5 s; attempts are unbounded). */
  backoff?: Partial<Pick<BackoffPolicy, 'baseDelay' | 'maxDelay' | 'random'>>;
  metrics?: WorkerMetrics;
  /** Called for what the reader absorbed (a retried call, a renewed iterator, dropped user records). */
  log?: (entry: Record<string, unknown>) => void;
}

/** One GetRecords page of a shard, de-aggregated. */
export interface ReadBatch {
  /** The records, as the pipeline takes them (shard order). */
  batch: SourceBatch;
  /** The position after the batch's last user record: what a checkpoint of the batch writes. */
  position: CheckpointPosition | undefined;
  /** The shard is closed and this is its last page (it may hold no records). */
  shardEnd: boolean;
  /** GetRecords' MillisBehindLatest. */
  millisBehindLatest: number | undefined;
  /** User records dropped as belonging to another shard's hash key range. */
  otherShard: number;
}

/** The special checkpoints that start a shard without a sequence number. */
const STARTS = new Set(['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP']);

const THROTTLED = new Set(['ProvisionedThroughputExceededException', 'LimitExceededException']);

/** Whether a GetRecords or GetShardIterator failure is throttling (the call is retried after a backoff). */
export function isThrottled(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === 'string' && THROTTLED.has(name);
}

function isExpired(err: unknown): boolean {
  return (
    err instanceof ExpiredIteratorException || (err as { name?: unknown } | null)?.name === 'ExpiredIteratorException'
  );
}

export { ReaderStopped };

export class ShardReader {
  readonly shardId: string;
  private readonly maxRecords: number;
  private readonly idleMs: number;
  private readonly policy: BackoffPolicy;
  private iterator: string | undefined;
  /** The last Kinesis record handed over (a fresh iterator starts after it). */
  private lastSequence: string | undefined;
  /** A KPL checkpoint inside an aggregate: its user records up to this sub-sequence are skipped. */
  private skip: { sequenceNumber: string; subSequenceNumber: number } | undefined;
  private pending: Promise<ReadBatch> | undefined;
  private lastWasEmpty = false;
  private ended = false;
  private stopped = false;
  private readonly wakers = new Set<() => void>();

  constructor(private readonly options: ShardReaderOptions) {
    this.shardId = options.shardId;
    const max = options.maxRecords ?? 10_000;
    if (!Number.isInteger(max) || max < 1 || max > 10_000)
      throw new ConfigError(`Expected \`maxRecords\` to be an integer from 1 to 10000, got ${max}`);
    this.maxRecords = max;
    const idle = options.idleTimeBetweenReadsMs ?? 1000;
    if (!Number.isFinite(idle) || idle < 0)
      throw new ConfigError(`Expected \`idleTimeBetweenReadsMs\` to be a number of ms ≥ 0, got ${idle}`);
    this.idleMs = idle;
    if (options.stream === undefined && options.streamArn === undefined)
      throw new ConfigError('Expected `stream` or `streamArn` for the shard reader');
    const { checkpoint, subSequenceNumber } = options.from;
    if (checkpoint === 'SHARD_END')
      throw new ConfigError(`shard ${options.shardId} is checkpointed at SHARD_END: there is nothing left to read`);
    if (checkpoint === 'AT_TIMESTAMP' && options.startingTimestamp === undefined)
      throw new ConfigError('Expected `startingTimestamp` with a checkpoint of AT_TIMESTAMP');
    // As the KCL resumes: at the checkpoint's record, skipping what is at or before (seq, subSequence)
    // (a plain record there has sub-sequence 0: skipped whole).
    if (!STARTS.has(checkpoint)) this.skip = { sequenceNumber: checkpoint, subSequenceNumber };
    this.policy = {
      maxAttempts: Number.POSITIVE_INFINITY,
      baseDelay: options.backoff?.baseDelay ?? 200,
      maxDelay: options.backoff?.maxDelay ?? 5000,
      ...(options.backoff?.random ? { random: options.backoff.random } : {}),
    };
  }

  /**
   * The next page with records (or the shard's end). The call after it starts at once, while the
   * caller processes this one. Rejects with ReaderStopped once `stop()` was called, and with a
   * call's failure that is neither throttling, an expired iterator nor transient.
   */
  async next(): Promise<ReadBatch> {
    if (this.ended) throw new ReaderStopped(`shard ${this.shardId} was read to its end`);
    for (;;) {
      const page = await (this.pending ?? this.read());
      this.pending = undefined;
      if (page.shardEnd) {
        this.ended = true;
        return page;
      }
      // Prefetch: the next call runs while this page is processed (its failure is seen by the next `next()`).
      this.pending = this.read();
      this.pending.catch(() => {});
      if (page.batch.records.length > 0) return page;
    }
  }

  /** Stops reading: a wait ends at once, and pending and later `next()` calls reject with ReaderStopped. */
  stop(): void {
    this.stopped = true;
    for (const wake of this.wakers) wake();
    this.wakers.clear();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.reject(new ReaderStopped(`reading shard ${this.shardId} stopped`));
    return new Promise((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        if (this.stopped) reject(new ReaderStopped(`reading shard ${this.shardId} stopped`));
        else resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  private checkStopped(): void {
    if (this.stopped) throw new ReaderStopped(`reading shard ${this.shardId} stopped`);
  }

  /** The GetShardIterator request: after the last record handed over, else from the start position. */
  private iteratorRequest(): GetShardIteratorCommandInput {
    const o = this.options;
    const base: GetShardIteratorCommandInput = {
      ShardId: o.shardId,
      ...(o.streamArn ? { StreamARN: o.streamArn } : { StreamName: o.stream }),
      ShardIteratorType: 'TRIM_HORIZON',
    };
    if (this.lastSequence !== undefined)
      return { ...base, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: this.lastSequence };
    const { checkpoint } = o.from;
    if (checkpoint === 'TRIM_HORIZON' || checkpoint === 'LATEST') return { ...base, ShardIteratorType: checkpoint };
    if (checkpoint === 'AT_TIMESTAMP')
      return { ...base, ShardIteratorType: 'AT_TIMESTAMP', Timestamp: o.startingTimestamp };
    return { ...base, ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: checkpoint };
  }

  /** One GetRecords page (getting an iterator first when there is none), retried until it succeeds or stops. */
  private async read(): Promise<ReadBatch> {
    if (this.lastWasEmpty && this.idleMs > 0) await this.sleep(this.idleMs);
    for (let retry = 0; ; retry++) {
      this.checkStopped();
      try {
        if (this.iterator === undefined) {
          const res = await this.options.kinesis.send(new GetShardIteratorCommand(this.iteratorRequest()));
          this.checkStopped();
          this.iterator = res.ShardIterator;
          if (this.iterator === undefined) return this.endOfShard(undefined);
        }
        const res = await this.options.kinesis.send(
          new GetRecordsCommand({ ShardIterator: this.iterator, Limit: this.maxRecords }),
        );
        this.checkStopped();
        this.options.metrics?.call('kinesis', 'ok');
        return this.page(res);
      } catch (err) {
        if (err instanceof ReaderStopped || this.stopped) throw err;
        if (isExpired(err)) {
          // The iterator lived past its 5 minutes: a fresh one after the last record handed over.
          this.iterator = undefined;
          this.options.metrics?.call('kinesis', 'retry');
          this.options.log?.({
            level: 'info',
            msg: 'shard iterator expired; getting a fresh one',
            shardId: this.shardId,
          });
          continue;
        }
        if (!isThrottled(err) && !isTransient(err)) {
          this.options.metrics?.call('kinesis', 'error');
          throw err;
        }
        this.options.metrics?.call('kinesis', 'retry');
        const delay = backoffDelay(this.policy, retry + 1);
        this.options.log?.({
          level: 'warn',
          msg: isThrottled(err) ? 'GetRecords throttled; backing off' : 'GetRecords failed; retrying',
          shardId: this.shardId,
          error: describeError(err),
          delayMs: Math.round(delay),
        });
        await this.sleep(delay);
      }
    }
  }

  private endOfShard(millisBehindLatest: number | undefined): ReadBatch {
    return {
      batch: { shardId: this.shardId, records: [], ordering: 'shard' },
      position: undefined,
      shardEnd: true,
      millisBehindLatest,
      otherShard: 0,
    };
  }

  /** A GetRecords answer → a page of user records (and the iterator moved on). */
  private page(res: GetRecordsCommandOutput): ReadBatch {
    const got: KinesisRecord[] = res.Records ?? [];
    this.iterator = res.NextShardIterator;
    const millis = res.MillisBehindLatest;
    if (millis !== undefined) this.options.metrics?.iteratorAge(this.shardId, millis);
    this.lastWasEmpty = got.length === 0;
    const records: SourceRecord[] = [];
    let otherShard = 0;
    let position: CheckpointPosition | undefined;
    for (const r of got) {
      const seq = r.SequenceNumber as string;
      const partitionKey = r.PartitionKey as string;
      const arrivalTime = r.ApproximateArrivalTimestamp?.getTime() ?? Date.now();
      const data = Buffer.from(r.Data ?? new Uint8Array());
      const d = deaggregateRecord(data, partitionKey, this.options.hashRange);
      otherShard += d.dropped;
      const skip = this.skip !== undefined && this.skip.sequenceNumber === seq ? this.skip.subSequenceNumber : -1;
      for (const u of d.users) {
        // At the checkpoint's record: its user records up to the sub-sequence were processed (a
        // record that is no aggregate was processed whole).
        if (skip >= 0 && (u.subSequenceNumber ?? 0) <= skip) continue;
        const rec: SourceRecord = { data: u.data, partitionKey: u.partitionKey, sequenceNumber: seq, arrivalTime };
        if (d.aggregate) rec.subSequenceNumber = u.subSequenceNumber ?? 0;
        records.push(rec);
        position = { sequenceNumber: seq, subSequenceNumber: rec.subSequenceNumber ?? 0 };
      }
      this.lastSequence = seq;
    }
    // The skip applies to the first record read only (the one the checkpoint names).
    if (got.length > 0) this.skip = undefined;
    if (otherShard > 0)
      this.options.log?.({
        level: 'info',
        msg: 'de-aggregated user records of another shard dropped (after a reshard, as the KCL drops them)',
        shardId: this.shardId,
        records: otherShard,
      });
    return {
      batch: { shardId: this.shardId, records, ordering: 'shard' },
      position,
      shardEnd: this.iterator === undefined || this.iterator === null,
      millisBehindLatest: millis,
      otherShard,
    };
  }
}
