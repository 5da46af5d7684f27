/**
 * The worker: a pipeline run, unchanged, by a long-running process over the shards of a Kinesis
 * stream it holds leases on. The pipeline is compiled once (as the Lambda handler compiles it);
 * one ShardReader runs per held lease; each page is processed by the compiled pipeline and, once
 * every sink and state store has acknowledged it, checkpointed on the lease (conditional on owner
 * and counter).
 *
 * Fencing: `mayWrite(shard)` is asked right before a batch starts processing (after it waited
 * its turn), inside it before its window-state, sink and dead-letter writes (the batch's
 * `mayWrite`: core stops it with a FencedError), and before its checkpoint; a shard whose lease
 * is no longer fresh stops at once. What remains is a write already in flight when the lease
 * goes stale, which the fencing margin covers.
 *
 * Batches of different shards go through one queue: the compiled pipeline processes one batch,
 * tick or flush at a time anyway (window steps judge a batch against the watermarks as of its
 * start), and the queue lets the fencing check run when the batch's turn comes, not when it was
 * read.
 *
 * Window state in memory is allowed only where each window is fed by one shard (the window key
 * is the partition key, `keyIsPartitionKey: true`); otherwise `start()` refuses, saying to keep
 * the state in DynamoDB or Redis. With it, the checkpoint is held back (`compiled.holdsCheckpoints`):
 *
 * - After each page the lease's `checkpoint` is the end of the last page wholly before the oldest
 *   record still in an open window of the shard (`compiled.shardCheckpointState`), or where this
 *   worker began the shard if that record is in its first page. A KCL consumer reading the table
 *   would therefore resume safely too (it reads those records again).
 * - The same conditional update writes `tributaryProcessed` (the last record processed) and
 *   `tributaryWindowState` (JSON: the pages since the checkpoint and the watermark each window
 *   step judged each of them against, and its watermark now); KCL ignores both.
 * - Whoever reads the shard next (after a restart, a lease taken or released) calls
 *   `compiled.resumeShard` before its first page: the records up to `tributaryProcessed` are
 *   replayed in their original pages, each judged against its original watermark, so they land in
 *   the same windows and sessions and are late or not as they were; a window that was emitted (or
 *   a record reported late, or dead-lettered) before the checkpoint is not produced again, since a
 *   replayed page's output is dropped. Records after it are processed as usual. Replaying by the
 *   saved watermark alone would not be exact: a session can hold a record whose own gap window the
 *   saved watermark has closed, and a record's fate depends on the page it came in.
 * - A stop (graceful or at once), a lease lost or released, and a shard whose reading failed
 *   emit nothing of the shard's open windows: `compiled.close()` does not flush them, and the
 *   shard's state is dropped here (`compiled.releaseShard`), so ticks do not fire them either. A
 *   shard read to SHARD_END closes its windows (`closeShard`, then a tick emits them) before
 *   SHARD_END is checkpointed.
 * - At least once stays at least once: windows emitted after the last checkpoint (by a page whose
 *   checkpoint did not land, or by a tick) are emitted again, with the same content, by the next
 *   reader. With `emit: updates`, replayed pages emit no updates; the open windows' updates go on
 *   from the first page after them. A shard first started at LATEST whose first page's windows are
 *   still open checkpoints LATEST (not exact: the next reader starts at the stream's tip).
 * - The replay state grows with the pages since the checkpoint: one longer than MAX_HELD_STATE (a
 *   window open for very long, such as a session that never ends) does not fit the lease item,
 *   so that page is checkpointed at its end, as without memory state, and an error is logged.
 *
 * With a shared store (DynamoDB, Redis) the checkpoint is each page's end, as without windows.
 *
 * Ticks (`compiled.tick()`, so idle windows close) belong to no shard and are not fenced.
 */

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type KinesisClient, ListShardsCommand, type Shard } from '@aws-sdk/client-kinesis';
import type { AwsClientOptions } from '@tributary/aws';
import { dynamoDbClient } from '@tributary/aws/dynamodb';
import { kinesisClient } from '@tributary/aws/kinesis';
import {
  type BatchResult,
  type CompiledPipeline,
  type CompileOptions,
  compile,
  type Pipeline,
  type WindowSpec,
} from '@tributary/core';
import {
  backoffDelay,
  ConfigError,
  describeError,
  FencedError,
  kinesisStreamName,
  PipelineValidationError,
  walkComponents,
} from '@tributary/core/spi';
import { LeaseCoordinator } from './leaseCoordinator.js';
import { DynamoDbLeaseTable } from './leaseTable.js';
import type { CheckpointPosition, Lease, LeaseHolder, LeaseSettings, WorkerMetrics } from './leaseTypes.js';
import { createLogger } from './log.js';
import { noMetrics } from './metrics.js';
import { type ReadBatch, ReaderStopped, ShardReader } from './shardReader.js';

/** A core position `sequence[:subSequence]` as a checkpoint. */
function positionOf(position: string): CheckpointPosition {
  const i = position.indexOf(':');
  return i < 0
    ? { sequenceNumber: position, subSequenceNumber: 0 }
    : { sequenceNumber: position.slice(0, i), subSequenceNumber: Number(position.slice(i + 1)) };
}

/** Lease coordination as the worker drives it: a LeaseHolder that is started and stopped. */
export interface LeaseCoordination extends LeaseHolder {
  start(): Promise<void>;
  /** No more leases are taken (a graceful stop's first step); held ones are still renewed. */
  stopTaking?(): void;
  /** Stops renewing and taking leases; `release` clears the owner of those held, so others take them at once. */
  stop(options: { release: boolean }): Promise<void>;
}

/** What lease coordination is created from (see WorkerOptions.leases). */
export interface LeaseCoordinationContext {
  /** The lease table's name: the application's (as KCL names it). */
  table: string;
  dynamodb: DynamoDBClient | AwsClientOptions | undefined;
  kinesis: KinesisClient;
  stream: string;
  workerId: string;
  settings: Partial<LeaseSettings>;
  /** Where a shard without a checkpoint starts. */
  initialPosition: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  metrics: WorkerMetrics;
}

/** The worker's log lines (default: `createLogger`'s JSON lines on standard error). */
export interface WorkerLog {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface WorkerOptions {
  /** The `leaseOwner` this worker writes (default: host name, process id and a random suffix). */
  workerId?: string;
  /** The application: the lease table is named after it, as KCL names it (default: the pipeline's name). */
  app?: string;
  /** A Kinesis client, or options for one (default: the source's endpoint and region). */
  kinesis?: KinesisClient | AwsClientOptions;
  /** A DynamoDB client for the lease table, or options for one. */
  dynamodb?: DynamoDBClient | AwsClientOptions;
  settings?: Partial<LeaseSettings>;
  /** The wait before reading a shard again after a read that returned nothing (ms, default 1000). */
  idleTimeBetweenReadsMs?: number;
  /** GetRecords Limit (default 10 000). */
  maxRecords?: number;
  /** How often `tick()` lets idle windows close (ms; default the pipeline's own tick interval, else 1000). */
  tickIntervalMs?: number;
  /** Backoff of a failed batch before it is processed again (ms; default base 200, max 10 000). */
  retry?: { baseDelay?: number; maxDelay?: number };
  log?: WorkerLog;
  metrics?: WorkerMetrics;
  /** Passed to compile (a scheduler, for tests). */
  compile?: CompileOptions;
  /**
   * Lease coordination, or how to create it. Default: the LeaseCoordinator over the DynamoDB
   * lease table named after `app`.
   */
  leases?: LeaseCoordination | ((context: LeaseCoordinationContext) => LeaseCoordination);
}

export type ShardState = 'waiting-for-parents' | 'reading' | 'ended' | 'lost' | 'fenced' | 'stopped';

export interface ShardStatus {
  shardId: string;
  state: ShardState;
  /** User records processed (and checkpointed or not) since this worker began the shard. */
  records: number;
  /** The last checkpoint written. */
  checkpoint: CheckpointPosition | undefined;
  millisBehindLatest: number | undefined;
}

export interface WorkerStatus {
  workerId: string;
  state: 'created' | 'starting' | 'running' | 'stopping' | 'stopped';
  shards: ShardStatus[];
  recordsIn: number;
  recordsOut: number;
  deadLettered: number;
  /** Batches that failed and were processed again. */
  retries: number;
}

export interface Worker {
  /** Compiles the pipeline, starts lease coordination and reads the held shards; resolves once running. */
  start(): Promise<void>;
  /**
   * Stops gracefully: no new leases, in-flight batches finish and are checkpointed, leases are
   * released, the pipeline is closed. A second call stops at once (nothing more is checkpointed).
   */
  stop(reason?: string): Promise<void>;
  status(): WorkerStatus;
  /** Settles when the worker has stopped (rejects if it failed). */
  readonly done: Promise<void>;
  /** The compiled pipeline (after `start()`). */
  readonly pipeline: CompiledPipeline | undefined;
}

/** What is said of each window step whose state in memory would be fed by several shards. */
const MEMORY_STATE =
  'window state in memory is kept by one worker process for the shards it holds: a window fed by several shards (or a shard whose lease moves to another worker) would be counted in parts — keep the state in DynamoDB or Redis (state: { dynamodb: { table } } or { redis: { url } }), or, when the window key is the stream partition key, declare keyIsPartitionKey: true';

/** JSON pointers of the window steps whose state is in memory and not per shard. */
export function sharedMemoryWindows(pipeline: Pick<Pipeline, 'spec'>): string[] {
  const out: string[] = [];
  for (const c of walkComponents(pipeline.spec)) {
    if (c.category !== 'step' || c.kind !== 'window') continue;
    const spec = c.spec as WindowSpec;
    const state = spec.state as unknown;
    const memory =
      state === undefined || state === 'memory' || (typeof state === 'object' && state !== null && 'memory' in state);
    if (memory && spec.keyIsPartitionKey !== true) out.push(c.path);
  }
  return out;
}

/** Throws a PipelineValidationError, at each such window step, for window state the worker cannot keep exact. */
export function checkWorkerWindowState(pipeline: Pick<Pipeline, 'spec' | 'file' | 'locate'>): void {
  const paths = sharedMemoryWindows(pipeline);
  if (paths.length === 0) return;
  throw new PipelineValidationError(
    paths.map((step) => {
      const path = `${step}/window`;
      return { file: pipeline.file, ...pipeline.locate?.(path), path, message: MEMORY_STATE };
    }),
  );
}

interface KinesisSourceSettings {
  stream?: string;
  streamArn?: string;
  startingPosition?: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  startingTimestamp?: string;
  region?: string;
  endpoint?: string;
}

/** The pipeline's `kinesis` source, or a ConfigError saying the worker reads only that. */
function kinesisSourceOf(pipeline: Pipeline): KinesisSourceSettings & { stream: string } {
  const source = pipeline.spec.source as Record<string, unknown>;
  const k = source.kinesis as KinesisSourceSettings | undefined;
  if (k === undefined) {
    const kind = Object.keys(source)[0] ?? 'none';
    throw new ConfigError(
      `the worker reads a Kinesis stream: pipeline \`${pipeline.spec.name}\`${pipeline.file ? ` (${pipeline.file})` : ''} has a ${kind} source; give it source: { kinesis: { stream } }`,
    );
  }
  const stream = kinesisStreamName(k);
  if (!stream) throw new ConfigError('the kinesis source names no stream');
  return { ...k, stream };
}

interface RunningShard {
  status: ShardStatus;
  reader: ShardReader | undefined;
  /** Settles when the shard's loop has ended. */
  loop: Promise<void>;
  /** Records processed since the last checkpoint. */
  lag: number;
  /** The loop has ended (a new one for the shard may start). */
  settled: boolean;
  /** Loops of the shard that failed in a row (reading fails: the next starts after a backoff). */
  failures: number;
  /** A failed shard is started again no earlier than this (ms). */
  retryAt: number;
  /** Its held-back checkpoint outgrew the lease item once (reported once). */
  oversized?: boolean;
}

/**
 * The largest `tributaryWindowState` written (characters; a DynamoDB item holds 400 KB in all).
 * Beyond it the checkpoint is the page's end (see processPage).
 */
const MAX_HELD_STATE = 300_000;

const isClient = (v: unknown): v is { send: unknown } =>
  typeof v === 'object' && v !== null && typeof (v as { send?: unknown }).send === 'function';

export function createWorker(pipeline: Pipeline, options: WorkerOptions = {}): Worker {
  const workerId = options.workerId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const metrics = options.metrics ?? noMetrics;
  const log = options.log ?? createLogger({ workerId });
  const retryPolicy = {
    maxAttempts: Number.POSITIVE_INFINITY,
    baseDelay: options.retry?.baseDelay ?? 200,
    maxDelay: options.retry?.maxDelay ?? 10_000,
  };
  let state: WorkerStatus['state'] = 'created';
  let compiled: CompiledPipeline | undefined;
  let coordination: LeaseCoordination | undefined;
  let kinesis: KinesisClient | undefined;
  let ownsKinesis = false;
  let source: ReturnType<typeof kinesisSourceOf> | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let reconciler: NodeJS.Timeout | undefined;
  /** Set by a second stop(): nothing more is processed or checkpointed. */
  let aborted = false;
  const shards = new Map<string, RunningShard>();
  const totals = { recordsIn: 0, recordsOut: 0, deadLettered: 0, retries: 0 };
  /** Batches and ticks, one at a time (see the file's comment). */
  let queue: Promise<unknown> = Promise.resolve();
  const wakers = new Set<() => void>();
  let settle!: { resolve: () => void; reject: (err: unknown) => void };
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  done.catch(() => {});

  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => {});
    return run;
  };

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      wakers.add(wake);
    });

  const count = (shardId: string, r: BatchResult) => {
    totals.recordsIn += r.recordsIn;
    totals.recordsOut += r.recordsOut;
    totals.deadLettered += r.deadLettered;
    if (shardId !== '') {
      metrics.recordsIn(shardId, r.recordsIn);
      metrics.recordsOut(shardId, r.recordsOut);
      metrics.deadLettered(shardId, r.deadLettered);
    }
  };

  /** Whether the shard's loop goes on (its lease held and fresh, the worker not stopping). */
  const goesOn = (s: RunningShard, holder: LeaseHolder): boolean => {
    if (aborted || state === 'stopping' || state === 'stopped') return false;
    if (s.status.state !== 'reading') return false;
    if (!holder.mayWrite(s.status.shardId)) {
      s.status.state = 'fenced';
      log.warn('lease not renewed in time: the shard stops before anyone may take it', { shardId: s.status.shardId });
      return false;
    }
    return true;
  };

  /**
   * Processes a page until it succeeds, or until the shard may no longer write (then undefined).
   * Resolves to what to checkpoint after it: the page's end, or with memory window state the
   * held-back position and what a replay needs (read right after the batch, before anything else
   * runs).
   */
  const processPage = async (
    s: RunningShard,
    holder: LeaseHolder,
    page: ReadBatch,
    start: CheckpointPosition,
  ): Promise<{ position: CheckpointPosition | undefined } | undefined> => {
    const c = compiled as CompiledPipeline;
    for (let attempt = 0; ; attempt++) {
      let fenced = false;
      try {
        const done = await serially(async () => {
          if (!goesOn(s, holder)) {
            fenced = true;
            return undefined;
          }
          // Fenced again inside the batch: before its state, sink and dead-letter writes (FencedError).
          const result = await c.process({ ...page.batch, mayWrite: () => holder.mayWrite(s.status.shardId) });
          return { result, held: c.shardCheckpointState(s.status.shardId) };
        });
        if (fenced || done === undefined) return undefined;
        count(s.status.shardId, done.result);
        const { held } = done;
        if (held === undefined) return { position: page.position };
        if (held.state.length > MAX_HELD_STATE) {
          // A window open for very long (a session that never ends) would outgrow the lease item:
          // the checkpoint goes to the page's end, as it would without memory state.
          if (!s.oversized) {
            s.oversized = true;
            log.error(
              'window state in memory holds the checkpoint back further than the lease item can carry: checkpointing at the page end (windows open now come out short after a restart or a lease move; keep the state in DynamoDB or Redis)',
              { shardId: s.status.shardId, bytes: held.state.length },
            );
          }
          return { position: page.position };
        }
        // Held back: after the last page wholly before the oldest record still in an open window
        // (none: where this worker began the shard), carrying how to replay up to the last processed.
        const after = held.retainedAfter === null ? start : positionOf(held.retainedAfter);
        return { position: { ...after, held: { processed: held.processed, state: held.state } } };
      } catch (err) {
        if (err instanceof FencedError) {
          // The lease went stale inside the batch: it stopped before writing more; no retry, no checkpoint.
          s.status.state = 'fenced';
          log.warn('lease not renewed in time: the batch stopped before its writes', { shardId: s.status.shardId });
          return undefined;
        }
        totals.retries++;
        metrics.call('sink', 'retry');
        log.error('batch failed; processing it again', {
          shardId: s.status.shardId,
          from: page.batch.records[0]?.sequenceNumber,
          error: describeError(err),
        });
        await pause(backoffDelay(retryPolicy, attempt + 1));
        if (!goesOn(s, holder)) return undefined;
      }
    }
  };

  const runShard = async (s: RunningShard, lease: Lease, holder: LeaseHolder): Promise<void> => {
    const shardId = lease.leaseKey;
    const src = source as NonNullable<typeof source>;
    const c = compiled as CompiledPipeline;
    /** Where this worker begins the shard (a held-back checkpoint with nothing before it stays here). */
    const start: CheckpointPosition = {
      sequenceNumber: lease.checkpoint,
      subSequenceNumber: lease.checkpointSubSequenceNumber,
    };
    await serially(async () => {
      // Memory window state of the shard left from an earlier loop is stale: the lease's checkpoint
      // is where it is recomputed from.
      c.releaseShard(shardId);
      c.registerShard(shardId);
      if (c.holdsCheckpoints && lease.held && lease.checkpoint !== 'SHARD_END') {
        try {
          c.resumeShard(shardId, lease.held);
        } catch (err) {
          log.error(
            'the lease carries window state this worker cannot read: the shard starts at its checkpoint without it',
            {
              shardId,
              error: describeError(err),
            },
          );
        }
      }
    });
    const hashRange =
      lease.startingHashKey !== undefined && lease.endingHashKey !== undefined
        ? { start: BigInt(lease.startingHashKey), end: BigInt(lease.endingHashKey) }
        : undefined;
    const reader = new ShardReader({
      kinesis: kinesis as KinesisClient,
      stream: src.stream,
      shardId,
      from: { checkpoint: lease.checkpoint, subSequenceNumber: lease.checkpointSubSequenceNumber },
      ...(src.startingTimestamp ? { startingTimestamp: new Date(src.startingTimestamp) } : {}),
      ...(hashRange ? { hashRange } : {}),
      ...(options.maxRecords !== undefined ? { maxRecords: options.maxRecords } : {}),
      ...(options.idleTimeBetweenReadsMs !== undefined
        ? { idleTimeBetweenReadsMs: options.idleTimeBetweenReadsMs }
        : {}),
      metrics,
      log: ({ level, msg, ...fields }) => (level === 'warn' ? log.warn : log.info)(String(msg), fields),
    });
    s.reader = reader;
    log.info('shard reading', {
      shardId,
      checkpoint: lease.checkpoint,
      subSequenceNumber: lease.checkpointSubSequenceNumber,
    });
    try {
      for (;;) {
        if (!goesOn(s, holder)) break;
        let page: ReadBatch;
        try {
          page = await reader.next();
        } catch (err) {
          if (err instanceof ReaderStopped) break;
          throw err;
        }
        s.status.millisBehindLatest = page.millisBehindLatest;
        if (page.batch.records.length > 0) {
          const processed = await processPage(s, holder, page, start);
          if (processed === undefined) break;
          s.status.records += page.batch.records.length;
          s.lag += page.batch.records.length;
          metrics.checkpointLag(shardId, s.lag);
          if (aborted || !holder.mayWrite(shardId)) {
            if (!aborted) s.status.state = 'fenced';
            break;
          }
          const position = processed.position;
          if (position !== undefined) {
            if (!(await holder.checkpoint(shardId, position))) {
              s.status.state = 'lost';
              log.warn('checkpoint refused: the lease was lost', { shardId });
              break;
            }
            const { held: _, ...checkpoint } = position;
            s.status.checkpoint = checkpoint;
            s.lag = 0;
            s.failures = 0;
            metrics.checkpointLag(shardId, 0);
          }
        }
        if (page.shardEnd) {
          if (aborted || !holder.mayWrite(shardId)) break;
          if (c.holdsCheckpoints) {
            // Memory window state: the shard's open windows are emitted before SHARD_END is
            // checkpointed (after it nobody would read their records again).
            await registerStreamShards().catch((err) =>
              log.warn('listing the shards after a shard ended failed', { shardId, error: describeError(err) }),
            );
            await serially(async () => {
              c.closeShard(shardId);
              count('', await c.tick());
            });
            if (aborted || !holder.mayWrite(shardId)) break;
          }
          const end: CheckpointPosition = { sequenceNumber: 'SHARD_END', subSequenceNumber: 0 };
          if (!(await holder.checkpoint(shardId, end))) {
            s.status.state = 'lost';
            break;
          }
          s.status.checkpoint = end;
          s.status.state = 'ended';
          if (!c.holdsCheckpoints) {
            // Its children hold the windows back from now on (before any of them is read), then
            // the closed shard stops holding them.
            await registerStreamShards().catch((err) =>
              log.warn('listing the shards after a shard ended failed', { shardId, error: describeError(err) }),
            );
            c.closeShard(shardId);
          }
          log.info('shard read to its end (SHARD_END checkpointed)', { shardId });
          // Its children may start now.
          reconcile();
          break;
        }
      }
    } catch (err) {
      s.status.state = 'stopped';
      s.failures++;
      s.retryAt = Date.now() + backoffDelay(retryPolicy, s.failures);
      log.error('shard reading failed; it is started again after a backoff', {
        shardId,
        error: describeError(err),
        failures: s.failures,
      });
    } finally {
      reader.stop();
      if (s.status.state === 'reading') s.status.state = 'stopped';
      // Memory window state of a shard this loop no longer reads is not emitted from here: whoever
      // reads the shard next (this worker again, or another) recomputes it from the held-back checkpoint.
      if (s.status.state !== 'ended' && c.holdsCheckpoints) await serially(async () => c.releaseShard(shardId));
      s.settled = true;
    }
  };

  /** Starts a loop for every held lease that has none and whose parents are done. */
  const reconcile = () => {
    const holder = coordination;
    if (!holder || state !== 'running' || aborted) return;
    for (const lease of holder.held()) {
      const id = lease.leaseKey;
      const current = shards.get(id);
      if (current && (!current.settled || current.status.state === 'ended')) continue;
      if (current && current.retryAt > Date.now()) continue;
      if (lease.checkpoint === 'SHARD_END') continue;
      if (current?.status.state === 'fenced' && !holder.mayWrite(id)) continue;
      if (!holder.parentsDone(lease)) {
        if (!current)
          shards.set(id, {
            status: {
              shardId: id,
              state: 'waiting-for-parents',
              records: 0,
              checkpoint: undefined,
              millisBehindLatest: undefined,
            },
            reader: undefined,
            loop: Promise.resolve(),
            lag: 0,
            settled: true,
            failures: 0,
            retryAt: 0,
          });
        continue;
      }
      // A lease just stolen may not be written yet (the previous owner is given time to stop).
      if (!holder.mayWrite(id)) continue;
      const s: RunningShard = {
        status: {
          shardId: id,
          state: 'reading',
          records: current?.status.records ?? 0,
          checkpoint: undefined,
          millisBehindLatest: undefined,
        },
        reader: undefined,
        loop: Promise.resolve(),
        lag: 0,
        settled: false,
        failures: current?.failures ?? 0,
        retryAt: 0,
      };
      shards.set(id, s);
      s.loop = runShard(s, lease, holder);
    }
  };

  const registerStreamShards = async () => {
    // With a shared store, every open shard of the stream holds the windows back until it has
    // delivered (others may hold their leases), as the Lambda handler registers them.
    const c = compiled as CompiledPipeline;
    if (!c.nodes.some((n) => n.kind === 'window')) return;
    const all: Shard[] = [];
    let next: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const res = await (kinesis as KinesisClient).send(
        new ListShardsCommand(next ? { NextToken: next } : { StreamName: (source as { stream: string }).stream }),
      );
      all.push(...(res.Shards ?? []));
      next = res.NextToken;
      if (!next) break;
    }
    for (const sh of all) if (!sh.SequenceNumberRange?.EndingSequenceNumber) c.registerShard(sh.ShardId as string);
  };

  /** A DynamoDB client the worker created for the lease table (destroyed on stop). */
  let ownedDynamoDb: DynamoDBClient | undefined;
  /** The LeaseCoordinator over the DynamoDB lease table named after the application. */
  const defaultLeases = (ctx: LeaseCoordinationContext): LeaseCoordination => {
    let client: DynamoDBClient;
    if (isClient(ctx.dynamodb)) client = ctx.dynamodb as DynamoDBClient;
    else {
      const src = source as NonNullable<typeof source>;
      client = dynamoDbClient({ ...(src.region ? { region: src.region } : {}), ...(ctx.dynamodb as AwsClientOptions) });
      ownedDynamoDb = client;
    }
    const coordinator = new LeaseCoordinator({
      table: new DynamoDbLeaseTable(client, ctx.table, { onCall: (outcome) => metrics.call('leases', outcome) }),
      kinesis: ctx.kinesis,
      streamName: ctx.stream,
      ...(source?.streamArn ? { streamArn: source.streamArn } : {}),
      workerId: ctx.workerId,
      settings: ctx.settings,
      initialPosition: ctx.initialPosition,
      metrics,
      onError: (err) => log.warn('lease pass failed; it is tried again', { error: describeError(err) }),
    });
    return coordinator as LeaseCoordination;
  };

  const worker: Worker = {
    get pipeline() {
      return compiled;
    },
    done,
    async start() {
      if (state !== 'created') throw new ConfigError(`the worker was started already (it is ${state})`);
      state = 'starting';
      try {
        checkWorkerWindowState(pipeline);
        source = kinesisSourceOf(pipeline);
        if (isClient(options.kinesis)) kinesis = options.kinesis as KinesisClient;
        else {
          kinesis = kinesisClient({
            ...(source.region ? { region: source.region } : {}),
            ...(source.endpoint ? { endpoint: source.endpoint } : {}),
            ...(options.kinesis as AwsClientOptions | undefined),
          });
          ownsKinesis = true;
        }
        // Memory window state: checkpoints are held back (see the file's comment).
        compiled = compile(pipeline, { ...options.compile, holdBackCheckpoints: true });
        await compiled.open();
        await registerStreamShards();
        const leases = options.leases ?? defaultLeases;
        coordination =
          typeof leases === 'function'
            ? leases({
                table: options.app ?? pipeline.spec.name,
                dynamodb: options.dynamodb,
                kinesis,
                stream: source.stream,
                workerId,
                settings: options.settings ?? {},
                initialPosition: source.startingPosition ?? 'TRIM_HORIZON',
                metrics,
              })
            : leases;
        coordination.onAcquired(() => reconcile());
        coordination.onLost((shardId, why) => {
          const s = shards.get(shardId);
          if (s && s.status.state === 'reading') {
            s.status.state = why === 'released' ? 'stopped' : 'lost';
            s.reader?.stop();
          }
          log.info('lease lost: the shard stops', { shardId, why });
        });
        await coordination.start();
        if (aborted) {
          // Stopped while starting: nothing was read.
          await coordination.stop({ release: true });
          await compiled.close();
          if (ownsKinesis) kinesis.destroy();
          return;
        }
        state = 'running';
        const tickMs = options.tickIntervalMs ?? compiled.tickInterval ?? 1000;
        ticker = setInterval(() => {
          if (state !== 'running' || aborted) return;
          serially(() => (compiled as CompiledPipeline).tick())
            .then((r) => count('', r))
            .catch((err) => log.error('tick failed', { error: describeError(err) }));
        }, tickMs);
        // Leases taken between passes, and children whose parents finished, are picked up here too.
        reconciler = setInterval(reconcile, Math.min(tickMs, 500));
        reconcile();
        log.info('worker running', { pipeline: pipeline.spec.name, stream: source.stream });
      } catch (err) {
        state = 'stopped';
        await compiled?.close().catch(() => {});
        if (ownsKinesis) kinesis?.destroy();
        ownedDynamoDb?.destroy();
        settle.reject(err);
        throw err;
      }
    },
    async stop(reason?: string) {
      if (state === 'stopped') return done;
      if (state === 'stopping' || state === 'created' || state === 'starting') {
        // The second stop (or one before running): at once. Nothing more is checkpointed; the
        // leases are left to expire; what the first stop still awaits goes on in the background.
        aborted = true;
        for (const s of shards.values()) s.reader?.stop();
        for (const wake of wakers) wake();
        clearInterval(ticker);
        clearInterval(reconciler);
        log.warn('worker stopped at once', { reason });
        state = 'stopped';
        settle.resolve();
        return done;
      }
      state = 'stopping';
      log.info('worker stopping', { reason });
      coordination?.stopTaking?.();
      clearInterval(reconciler);
      for (const s of shards.values()) s.reader?.stop();
      try {
        // In-flight batches finish and are checkpointed (unless a second stop aborts them).
        await Promise.all([...shards.values()].map((s) => s.loop));
        clearInterval(ticker);
        await queue;
        await coordination?.stop({ release: !aborted });
        await compiled?.close();
        if (ownsKinesis) kinesis?.destroy();
        ownedDynamoDb?.destroy();
        state = 'stopped';
        log.info('worker stopped', { reason });
        settle.resolve();
      } catch (err) {
        state = 'stopped';
        settle.reject(err);
      }
      return done;
    },
    status() {
      return {
        workerId,
        state,
        shards: [...shards.values()].map((s) => ({ ...s.status })),
        ...totals,
      };
    },
  };
  return worker;
}
