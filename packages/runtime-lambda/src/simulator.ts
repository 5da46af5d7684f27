/**
 * A local Kinesis event source for a Lambda handler: polls each shard of a stream (kinesalite
 * locally, or a real stream) and invokes the handler in process with the event source mapping's
 * semantics, so a pipeline can be tested locally, then deployed.
 *
 * Modelled: BatchSize, MaximumBatchingWindowInSeconds (a batch waits for more records up to the
 * window), ReportBatchItemFailures (retry from the lowest reported sequence number),
 * BisectBatchOnFunctionError (a failing batch is split in two and each half retried; a single
 * record that keeps failing is isolated), MaximumRetryAttempts (then the failed records go to the
 * on-failure destination and the shard moves on), MaximumRecordAgeInSeconds (older records go to
 * the destination without an invocation), the on-failure destination (a function: an SQS sink,
 * a file, ...), ParallelizationFactor (up to 10 concurrent batches per shard, records of one
 * partition key always in the same lane, in order), StartingPosition (TRIM_HORIZON, LATEST,
 * AT_TIMESTAMP with StartingPositionTimestamp: the shard iterator a shard without a checkpoint
 * starts from). Checkpoints are kept in a `CheckpointStore` (memory by default), so a simulator
 * stopped mid-run and started again resumes where the last fully handled batch ended.
 *
 * `runUntilIdle` ends when every shard has been empty for a few polls in a row (drained);
 * `follow` keeps polling the drained shards (as the service does) until `stop()`.
 *
 * Differences from the real service (documented in the README): one process polls every shard;
 * retries happen at once (no backoff); the destination receives the records themselves rather
 * than the metadata-only invocation record Lambda sends; tumbling windows of the event source
 * mapping itself (`TumblingWindowInSeconds`) are not modelled — Tributary's windows replace them.
 */
import {
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  type _Record as KinesisRecord,
} from '@aws-sdk/client-kinesis';
import { ConfigError, compareSequenceNumbers, hashKeyOf, TributaryError } from '@tributary/core/spi';
import type { KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { HandlerResponse } from './handler.js';

export interface EventSourceMapping {
  batchSize?: number;
  maximumBatchingWindowInSeconds?: number;
  bisectBatchOnFunctionError?: boolean;
  reportBatchItemFailures?: boolean;
  /** −1 (default): retry until the records expire. */
  maximumRetryAttempts?: number;
  /** −1 (default): never too old. */
  maximumRecordAgeInSeconds?: number;
  parallelizationFactor?: number;
  /** Where a shard without a checkpoint starts (default TRIM_HORIZON). */
  startingPosition?: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  /** With AT_TIMESTAMP: seconds since the epoch; the first record read arrived at or after it. */
  startingPositionTimestamp?: number;
}

export interface FailedBatch {
  shardId: string;
  records: KinesisStreamRecord[];
  reason: 'RetryAttemptsExhausted' | 'RecordAgeExceeded';
  /**
   * The error the handler threw, if it threw (a reported batch item failure carries none: the
   * handler logged it), or why the records were too old.
   */
  error?: string;
}

export interface CheckpointStore {
  get(shardId: string): Promise<string | undefined>;
  set(shardId: string, sequenceNumber: string): Promise<void>;
}

export class MemoryCheckpoints implements CheckpointStore {
  readonly map = new Map<string, string>();
  async get(shardId: string) {
    return this.map.get(shardId);
  }
  async set(shardId: string, sequenceNumber: string) {
    this.map.set(shardId, sequenceNumber);
  }
}

export interface SimulatorOptions {
  client: KinesisClient;
  stream: string;
  mapping?: EventSourceMapping;
  checkpoints?: CheckpointStore;
  /** The on-failure destination. */
  onFailure?: (failed: FailedBatch) => Promise<void>;
  /** Delay between polls of a shard that had nothing (ms, default 50). */
  pollIntervalMs?: number;
  /** With `follow`: delay between polls of a drained shard (ms, default 1000, as Lambda polls an idle shard once a second). */
  idleIntervalMs?: number;
  /** The clock (ms since the epoch) the record age and the batching window are measured on; default `Date.now`. */
  now?: () => number;
}

type Invoke = (event: KinesisStreamEvent) => Promise<HandlerResponse | undefined>;

/**
 * One container per concurrent lane, as Lambda runs them: each (shard, lane) gets its own
 * handler from `container()` (its own memory), created at its first batch; `recycleAfter`
 * replaces a lane's container after that many invocations (Lambda recycles containers at any time).
 */
export interface Containers {
  container: () => Invoke;
  recycleAfter?: number;
}

export class LambdaSimulator {
  private readonly mapping: Required<Omit<EventSourceMapping, 'startingPositionTimestamp'>> &
    Pick<EventSourceMapping, 'startingPositionTimestamp'>;
  private readonly checkpoints: CheckpointStore;
  private readonly now: () => number;
  private stopped = false;
  /** Wakes the polls that wait (so `stop()` ends a wait at once). */
  private readonly sleepers = new Set<() => void>();
  /** Invocations made (for tests and logs). */
  invocations = 0;
  /**
   * Records handed to the handler at least once, each counted once however often it was retried
   * (records sent to the destination for their age without an invocation are not counted).
   */
  recordsDelivered = 0;

  /** Per lane (`shard#lane`): its container and how many invocations it has served. */
  private readonly lanes = new Map<string, { invoke: Invoke; served: number }>();
  /** Containers created (for tests). */
  containersStarted = 0;

  constructor(
    private readonly handler: Invoke | Containers,
    private readonly options: SimulatorOptions,
  ) {
    const m = options.mapping ?? {};
    this.mapping = {
      batchSize: m.batchSize ?? 100,
      maximumBatchingWindowInSeconds: m.maximumBatchingWindowInSeconds ?? 0,
      bisectBatchOnFunctionError: m.bisectBatchOnFunctionError ?? false,
      reportBatchItemFailures: m.reportBatchItemFailures ?? true,
      maximumRetryAttempts: m.maximumRetryAttempts ?? -1,
      maximumRecordAgeInSeconds: m.maximumRecordAgeInSeconds ?? -1,
      parallelizationFactor: m.parallelizationFactor ?? 1,
      startingPosition: m.startingPosition ?? 'TRIM_HORIZON',
      ...(m.startingPositionTimestamp === undefined ? {} : { startingPositionTimestamp: m.startingPositionTimestamp }),
    };
    if (this.mapping.startingPosition === 'AT_TIMESTAMP' && !Number.isFinite(this.mapping.startingPositionTimestamp)) {
      throw new ConfigError('Expected `startingPositionTimestamp` (seconds since the epoch) with AT_TIMESTAMP');
    }
    this.now = options.now ?? Date.now;
    if (this.mapping.batchSize < 1 || this.mapping.batchSize > 10_000) {
      throw new ConfigError(`Expected \`batchSize\` to be an integer from 1 to 10000, got ${this.mapping.batchSize}`);
    }
    if (this.mapping.parallelizationFactor < 1 || this.mapping.parallelizationFactor > 10) {
      throw new ConfigError(
        `Expected \`parallelizationFactor\` to be an integer from 1 to 10, got ${this.mapping.parallelizationFactor}`,
      );
    }
    this.checkpoints = options.checkpoints ?? new MemoryCheckpoints();
  }

  /** Stops after the batches in flight (a killed simulator: nothing more is checkpointed). */
  stop(): void {
    this.stopped = true;
    for (const wake of this.sleepers) wake();
    this.sleepers.clear();
  }

  /**
   * Polls every shard until each has been empty for `idlePolls` polls in a row, handling what
   * arrives. Resolves when done or stopped; rejects when a shard is still not drained after
   * `maxPolls` polls (a bound for tests; `Infinity` polls until drained).
   */
  async runUntilIdle({ idlePolls = 2, maxPolls = 10_000 } = {}): Promise<void> {
    const shards = await this.shards();
    // Every shard's polling ends before the run does (one shard's failure does not leave the
    // others running); then the first failure is the run's.
    const ended = await Promise.allSettled(shards.map((shardId) => this.pollShard(shardId, idlePolls, maxPolls)));
    const failed = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * Polls every shard (those the stream has at the start) until `stop()`, handling what arrives:
   * a shard drained (empty for `idlePolls` polls in a row) is polled every `idleIntervalMs`.
   * `onDrained` is called each time every shard has become drained (after the start, and again
   * after records arrived and were handled).
   */
  async follow({ idlePolls = 2, onDrained }: { idlePolls?: number; onDrained?: () => void } = {}): Promise<void> {
    const shards = await this.shards();
    const drained = new Set<string>();
    const follow = {
      drained: (shardId: string) => {
        if (drained.has(shardId)) return;
        drained.add(shardId);
        if (drained.size === shards.length) onDrained?.();
      },
      busy: (shardId: string) => drained.delete(shardId),
    };
    await Promise.all(shards.map((shardId) => this.pollShard(shardId, idlePolls, Number.POSITIVE_INFINITY, follow)));
  }

  /** Waits `ms`, or less if `stop()` is called. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** The ids of the stream's shards (DescribeStream, every page). */
  async shards(): Promise<string[]> {
    const ids: string[] = [];
    let from: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const d = await this.options.client.send(
        new DescribeStreamCommand({
          StreamName: this.options.stream,
          ...(from ? { ExclusiveStartShardId: from } : {}),
        }),
      );
      const got = (d.StreamDescription?.Shards ?? []).map((s) => s.ShardId as string);
      ids.push(...got);
      if (!d.StreamDescription?.HasMoreShards || got.length === 0) break;
      from = got[got.length - 1];
    }
    return ids;
  }

  private async iterator(shardId: string): Promise<string | undefined> {
    const after = await this.checkpoints.get(shardId);
    const res = await this.options.client.send(
      new GetShardIteratorCommand({
        StreamName: this.options.stream,
        ShardId: shardId,
        ...(after
          ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after }
          : this.mapping.startingPosition === 'AT_TIMESTAMP'
            ? {
                ShardIteratorType: 'AT_TIMESTAMP',
                Timestamp: new Date((this.mapping.startingPositionTimestamp as number) * 1000),
              }
            : { ShardIteratorType: this.mapping.startingPosition }),
      }),
    );
    return res.ShardIterator;
  }

  /**
   * Polls one shard: until it is drained (`idlePolls` empty polls in a row), or with `follow`
   * on and on, telling `follow` when the shard is drained and when it has records again.
   */
  private async pollShard(
    shardId: string,
    idlePolls: number,
    maxPolls: number,
    follow?: { drained: (shardId: string) => void; busy: (shardId: string) => void },
  ): Promise<void> {
    let it = await this.iterator(shardId);
    let idle = 0;
    const pending: KinesisRecord[] = [];
    let windowStart = 0;
    let poll = 0;
    for (; poll < maxPolls && !this.stopped && it; poll++) {
      const res = await this.options.client.send(
        new GetRecordsCommand({ ShardIterator: it, Limit: this.mapping.batchSize - pending.length }),
      );
      it = res.NextShardIterator;
      const got = res.Records ?? [];
      if (got.length === 0 && pending.length === 0) {
        if (++idle >= idlePolls) {
          if (!follow) return;
          follow.drained(shardId);
          await this.sleep(this.options.idleIntervalMs ?? 1000);
          continue;
        }
        await this.sleep(this.options.pollIntervalMs ?? 50);
        continue;
      }
      idle = 0;
      follow?.busy(shardId);
      if (pending.length === 0) windowStart = this.now();
      pending.push(...got);
      const windowOpen = this.now() - windowStart < this.mapping.maximumBatchingWindowInSeconds * 1000;
      if (pending.length < this.mapping.batchSize && windowOpen && got.length > 0) continue; // wait for more
      const batch = pending.splice(0);
      await this.handleBatch(
        shardId,
        batch.map((r) => this.toEventRecord(shardId, r)),
      );
      if (this.stopped) return;
      await this.checkpoints.set(shardId, batch[batch.length - 1]?.SequenceNumber as string);
    }
    // A closed shard read to its end (after a reshard) is drained for good.
    if (follow && it === undefined && !this.stopped) follow.drained(shardId);
    // The bound reached before the shard drained: its remaining records (and any gathered into a
    // batch not yet handed over) were not handled, which must not pass for a drained stream.
    if (!follow && !this.stopped && it !== undefined && poll >= maxPolls)
      throw new TributaryError(
        `shard ${shardId} of stream ${this.options.stream} was not drained within ${maxPolls} polls (${pending.length} records gathered and not handled); its checkpoint is at the last batch handled`,
      );
  }

  private toEventRecord(shardId: string, r: KinesisRecord): KinesisStreamRecord {
    return {
      eventID: `${shardId}:${r.SequenceNumber}`,
      eventName: 'aws:kinesis:record',
      eventSource: 'aws:kinesis',
      eventSourceARN: `arn:aws:kinesis:us-east-1:000000000000:stream/${this.options.stream}`,
      eventVersion: '1.0',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/tributary-local',
      awsRegion: 'us-east-1',
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: r.PartitionKey as string,
        sequenceNumber: r.SequenceNumber as string,
        data: Buffer.from(r.Data as Uint8Array).toString('base64'),
        approximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime() ?? this.now()) / 1000,
      },
    };
  }

  /** One polled batch of a shard, split into lanes by partition key (ParallelizationFactor). */
  private async handleBatch(shardId: string, records: KinesisStreamRecord[]): Promise<void> {
    const n = this.mapping.parallelizationFactor;
    if (n === 1) return this.deliver(shardId, 0, records);
    const lanes: KinesisStreamRecord[][] = Array.from({ length: n }, () => []);
    for (const r of records) {
      // The top 32 bits of the record's hash key (its partition key's MD5), as Kinesis hashes it.
      const h = Number(hashKeyOf({ partitionKey: r.kinesis.partitionKey }) >> 96n);
      (lanes[h % n] as KinesisStreamRecord[]).push(r);
    }
    await Promise.all(lanes.map((l, lane) => (l.length > 0 ? this.deliver(shardId, lane, l) : undefined)));
  }

  /** The handler of a lane: the one handler, or the lane's container (see Containers). */
  private invoker(shardId: string, lane: number): Invoke {
    const h = this.handler;
    if (typeof h === 'function') return h;
    const id = `${shardId}#${lane}`;
    let c = this.lanes.get(id);
    if (c === undefined || (h.recycleAfter !== undefined && c.served >= h.recycleAfter)) {
      c = { invoke: h.container(), served: 0 };
      this.containersStarted++;
      this.lanes.set(id, c);
    }
    c.served++;
    return c.invoke;
  }

  /** Delivers records with retries, partial-failure retry, bisection and the destination. */
  private async deliver(shardId: string, lane: number, all: KinesisStreamRecord[]): Promise<void> {
    const maxAge = this.mapping.maximumRecordAgeInSeconds;
    let records = all;
    if (maxAge >= 0) {
      const cutoff = this.now() / 1000 - maxAge;
      const old = records.filter((r) => r.kinesis.approximateArrivalTimestamp < cutoff);
      if (old.length > 0) {
        await this.options.onFailure?.({
          shardId,
          records: old,
          reason: 'RecordAgeExceeded',
          error: `older than the maximum record age (MaximumRecordAgeInSeconds ${maxAge})`,
        });
        records = records.filter((r) => r.kinesis.approximateArrivalTimestamp >= cutoff);
      }
    }
    if (records.length > 0 && !this.stopped) this.recordsDelivered += records.length;
    await this.attempt(shardId, lane, records, 0);
  }

  private async attempt(shardId: string, lane: number, records: KinesisStreamRecord[], retries: number): Promise<void> {
    if (records.length === 0 || this.stopped) return;
    this.invocations++;
    let failedFrom: number | undefined;
    let error: string | undefined;
    let threw = false;
    try {
      const res = await this.invoker(shardId, lane)({ Records: records });
      const failures = this.mapping.reportBatchItemFailures ? (res?.batchItemFailures ?? []) : [];
      if (failures.length > 0) {
        const lowest = failures
          .map((f) => f.itemIdentifier)
          .reduce((a, b) => (compareSequenceNumbers(a, b) > 0 ? b : a));
        failedFrom = records.findIndex((r) => r.kinesis.sequenceNumber === lowest);
        if (failedFrom < 0) failedFrom = 0; // an unknown identifier fails the whole batch
        error = undefined; // reported, not thrown: the handler's log says why
      }
    } catch (err) {
      if (this.stopped) return;
      threw = true;
      failedFrom = 0;
      error = (err as Error).message;
    }
    if (failedFrom === undefined || this.stopped) return;
    const rest = records.slice(failedFrom);
    if (threw && this.mapping.bisectBatchOnFunctionError && rest.length > 1) {
      const half = Math.ceil(rest.length / 2);
      await this.attempt(shardId, lane, rest.slice(0, half), retries);
      await this.attempt(shardId, lane, rest.slice(half), retries);
      return;
    }
    const max = this.mapping.maximumRetryAttempts;
    if (max >= 0 && retries >= max) {
      await this.options.onFailure?.({ shardId, records: rest, reason: 'RetryAttemptsExhausted', error });
      return;
    }
    await this.attempt(shardId, lane, rest, retries + 1);
  }
}
