/**
 * What every sink of this package shares: records are encoded one by one (a record that can never
 * be written — too large, not encodable — goes to the dead-letter output at once), packed into
 * calls within the destination's limits (records and bytes per call), sent with bounded
 * concurrency and bounded in-flight bytes, and retried:
 *
 * - a whole call that fails transiently (throttling, connection reset, 5xx) is sent again;
 * - entries a destination reports failed in a partial answer (UnprocessedItems,
 *   FailedRecordCount, Failed) are sent again alone if their error is transient, and go to the
 *   dead-letter output, naming the sink and the error code, if it is permanent;
 * - retries wait a jittered exponential backoff with a cap; entries still failing after
 *   `maxAttempts` fail the write, so the batch is not acknowledged and is delivered again.
 *
 * `write` resolves only when every record is durable or dead-lettered.
 */

import { createHash } from 'node:crypto';
import {
  type BackoffPolicy,
  backoff,
  ConfigError,
  isTransient,
  type RecordEnvelope,
  type Sink,
  type SinkContext,
} from '@tributary/core/spi';
import { SinkError } from './errors.js';

/** An error the destination returned for one entry (or a whole call). */
export interface EntryFailure {
  /** The destination's error code, e.g. `ProvisionedThroughputExceededException` or `HTTP 503`. */
  code: string;
  message: string;
  /** Whether sending it again may succeed. */
  transient: boolean;
  /** Milliseconds the destination asked to wait (HTTP Retry-After). */
  retryAfter?: number;
}

export interface SinkRetryOptions {
  /** Attempts per entry, the first included (default 8). */
  maxAttempts?: number;
  /** First backoff in ms (default 50), doubled per attempt, jittered, capped at `maxDelay`. */
  minDelay?: number;
  /** Backoff cap in ms (default 5000). */
  maxDelay?: number;
}

export interface BatchSinkOptions {
  retry?: SinkRetryOptions;
  /** Calls in flight at once (default 4). */
  concurrency?: number;
  /** Bytes of encoded records in flight at once, over all writes of this sink (default 8 MiB): beyond it, writes wait. */
  maxInFlightBytes?: number;
  /** Adds the record id (`<shardId>/<sequenceNumber>[:<subSequence>]`) to each written JSON object under this field. */
  idField?: string;
}

/** Counters of one sink. */
export interface SinkMetrics {
  records: number;
  bytes: number;
  /** Calls made to the destination (retries included). */
  calls: number;
  retries: number;
  deadLettered: number;
  /** Total and highest call latency, ms. */
  latencyMs: number;
  maxLatencyMs: number;
}

/** Zeroed counters for a new sink. */
export function emptyMetrics(): SinkMetrics {
  return { records: 0, bytes: 0, calls: 0, retries: 0, deadLettered: 0, latencyMs: 0, maxLatencyMs: 0 };
}

/** An encoded record ready to send. */
export interface Encoded<P> {
  env: RecordEnvelope;
  payload: P;
  bytes: number;
  /** The records an entry carries when it packs several (e.g. a KPL aggregate); default: `env` alone. */
  members?: RecordEnvelope[];
}

/**
 * The id of a record: `<shardId>/<sequenceNumber>[:<subSequence>]`. Records made from one source
 * record (flatMap results, the window results of one firing) share it; content hashes below tell
 * those apart.
 */
export function recordId(env: RecordEnvelope): string {
  const sub = env.subSequenceNumber;
  return `${env.shardId}/${env.sequenceNumber}${sub === undefined ? '' : `:${sub}`}`;
}

/** A short, deterministic hash of some text (the same content gives the same value in a replay). */
export function contentHash(text: string, length = 32): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/**
 * A counting semaphore, FIFO (calls in flight, bytes in flight): a request larger than the whole
 * budget waits for all of it.
 */
class Semaphore {
  private used = 0;
  private readonly waiting: { n: number; resolve: () => void }[] = [];
  constructor(private readonly limit: number) {}
  async acquire(n: number): Promise<void> {
    const want = Math.min(n, this.limit);
    if (this.used + want <= this.limit && this.waiting.length === 0) {
      this.used += want;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push({ n: want, resolve }));
  }
  release(n: number): void {
    this.used -= Math.min(n, this.limit);
    while (this.waiting.length > 0) {
      const head = this.waiting[0] as { n: number; resolve: () => void };
      if (this.used + head.n > this.limit) break;
      this.waiting.shift();
      this.used += head.n;
      head.resolve();
    }
  }
  get inUse(): number {
    return this.used;
  }
}

/** Describes a thrown error as an entry failure (transient or not). */
export function failureOf(err: unknown): EntryFailure {
  const e = err as { name?: string; code?: string; message?: string };
  return {
    code: e?.name && e.name !== 'Error' ? e.name : (e?.code ?? 'Error'),
    message: e?.message ?? String(err),
    transient: isTransient(err),
  };
}

export abstract class BatchSink<P> implements Sink {
  /** What the sink writes to, for messages: `kinesis stream clicks`. */
  abstract readonly summary: string;
  /** Most records per call. */
  protected abstract readonly maxRecordsPerCall: number;
  /** Most bytes per call. */
  protected abstract readonly maxBytesPerCall: number;
  /**
   * Encodes a record; returns a failure (it goes to the dead-letter output) when the record can
   * never be written, e.g. it is over the destination's size limit.
   */
  protected abstract encode(env: RecordEnvelope): Encoded<P> | EntryFailure;
  /**
   * Sends one call. Returns, per entry, `undefined` if it is durable or its failure; throws if
   * the whole call failed.
   */
  protected abstract send(entries: readonly Encoded<P>[]): Promise<(EntryFailure | undefined)[]>;

  /** Packs encoded records into entries (default: one entry per record). */
  protected async pack(encoded: Encoded<P>[]): Promise<Encoded<P>[]> {
    return encoded;
  }

  readonly metrics: SinkMetrics = emptyMetrics();
  /** Calls in flight (`concurrency`). */
  private readonly slots: Semaphore;
  /** Bytes in flight (`maxInFlightBytes`). */
  private readonly budget: Semaphore;
  /** Attempts per entry and the backoff between them (`retry`). */
  private readonly retryPolicy: BackoffPolicy;

  constructor(protected readonly options: BatchSinkOptions = {}) {
    const r = options.retry ?? {};
    this.retryPolicy = { maxAttempts: r.maxAttempts ?? 8, baseDelay: r.minDelay ?? 50, maxDelay: r.maxDelay ?? 5000 };
    const concurrency = options.concurrency ?? 4;
    if (!((Number.isInteger(concurrency) || concurrency === Number.POSITIVE_INFINITY) && concurrency > 0)) {
      throw new ConfigError('Expected `concurrency` to be a number from 1 and up');
    }
    this.slots = new Semaphore(concurrency);
    this.budget = new Semaphore(options.maxInFlightBytes ?? 8 * 1024 * 1024);
  }

  /** Bytes of encoded records in flight now (for tests of backpressure). */
  get inFlightBytes(): number {
    return this.budget.inUse;
  }

  /** The JSON object written for a record: its value, with the record id under `idField` if set. */
  protected valueOf(env: RecordEnvelope): unknown {
    const field = this.options.idField;
    if (field === undefined || env.value === null || typeof env.value !== 'object' || Array.isArray(env.value)) {
      return env.value;
    }
    return { ...(env.value as object), [field]: recordId(env) };
  }

  async write(records: readonly RecordEnvelope[], context?: SinkContext): Promise<void> {
    const deadLetter = (env: RecordEnvelope, f: EntryFailure) => {
      this.metrics.deadLettered++;
      const error = `${this.summary}: ${f.code}: ${f.message}`;
      if (!context) throw new SinkError(`${error} (and no dead-letter output to send the record to)`);
      context.deadLetter(env, error);
    };
    const calls: Encoded<P>[][] = [];
    let current: Encoded<P>[] = [];
    let bytes = 0;
    const encoded: Encoded<P>[] = [];
    for (const env of records) {
      let e: Encoded<P> | EntryFailure;
      try {
        e = this.encode(env);
      } catch (err) {
        e = { ...failureOf(err), code: 'EncodeFailed', transient: false };
      }
      if ('payload' in e) encoded.push(e);
      else deadLetter(env, e);
    }
    for (const e of await this.pack(encoded)) {
      if (current.length > 0 && (current.length >= this.maxRecordsPerCall || bytes + e.bytes > this.maxBytesPerCall)) {
        calls.push(current);
        current = [];
        bytes = 0;
      }
      current.push(e);
      bytes += e.bytes;
    }
    if (current.length > 0) calls.push(current);
    await Promise.all(calls.map((entries) => this.deliver(entries, deadLetter)));
  }

  /** Sends one call's entries until each is durable or dead-lettered. */
  private async deliver(
    entries: Encoded<P>[],
    deadLetter: (env: RecordEnvelope, f: EntryFailure) => void,
  ): Promise<void> {
    await this.slots.acquire(1);
    const size = entries.reduce((n, e) => n + e.bytes, 0);
    await this.budget.acquire(size);
    try {
      let pending = entries;
      let last: EntryFailure | undefined;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt >= this.retryPolicy.maxAttempts) {
          throw new SinkError(
            `${this.summary}: ${pending.length} record(s) still failing after ${attempt} attempts (${last?.code}: ${last?.message}); the batch will be retried`,
          );
        }
        if (attempt > 0) {
          this.metrics.retries++;
          // A destination's Retry-After is honoured up to 30 s: beyond that the write fails and the
          // batch is retried later, rather than holding its slot and budget.
          await backoff(this.retryPolicy, attempt, Math.min(last?.retryAfter ?? 0, 30_000));
        }
        const t0 = performance.now();
        let results: (EntryFailure | undefined)[];
        this.metrics.calls++;
        try {
          results = await this.send(pending);
        } catch (err) {
          const f = failureOf(err);
          // A whole call refused for good (credentials, access, a missing stream) says nothing
          // about the records: fail the write, so the batch is retried, rather than dead-letter them.
          if (!f.transient) {
            throw new SinkError(`${this.summary}: ${f.code}: ${f.message}`, { cause: err });
          }
          results = pending.map(() => f);
        } finally {
          const ms = performance.now() - t0;
          this.metrics.latencyMs += ms;
          if (ms > this.metrics.maxLatencyMs) this.metrics.maxLatencyMs = ms;
        }
        const again: Encoded<P>[] = [];
        for (let i = 0; i < pending.length; i++) {
          const e = pending[i] as Encoded<P>;
          const f = results[i];
          if (f === undefined) {
            this.metrics.records += e.members?.length ?? 1;
            this.metrics.bytes += e.bytes;
          } else if (f.transient) {
            last = f;
            again.push(e);
          } else for (const env of e.members ?? [e.env]) deadLetter(env, f);
        }
        pending = again;
      }
    } finally {
      this.budget.release(size);
      this.slots.release(1);
    }
  }

  async close(): Promise<void> {}
}
