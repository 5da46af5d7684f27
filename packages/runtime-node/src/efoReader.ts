/**
 * Reads one shard of a Kinesis stream through an enhanced fan-out consumer (SubscribeToShard), as
 * the Kinesis Client Library's fan-out publisher does, with the interface of the polling
 * ShardReader (`next()`, `stop()`, the same pages), so the worker runs either.
 *
 * - The consumer: `registerStreamConsumer` registers one named after the application
 *   (RegisterStreamConsumer; one already registered is reused) and waits, bounded, until it is
 *   ACTIVE (DescribeStreamConsumer). One consumer serves every shard of the stream.
 * - Where a subscription starts: as the polling reader starts (after the checkpoint; at it for a
 *   KPL checkpoint inside an aggregate, skipping its user records up to the sub-sequence;
 *   TRIM_HORIZON, LATEST, AT_TIMESTAMP), and, once an event came, after the last event's
 *   ContinuationSequenceNumber, so nothing is skipped and nothing read twice.
 * - A subscription lasts at most 5 minutes (Kinesis ends it): it is renewed when it ends, after
 *   `subscriptionMs` (default 5 minutes), and when no event came for `idleTimeoutMs` (a
 *   connection that died without a word). Kinesis sends events on an idle shard too, so an idle
 *   shard keeps its subscription.
 * - ResourceInUseException (the previous subscription of this consumer to the shard is still
 *   open, or another reader holds one), LimitExceededException (one subscription a second per
 *   shard and consumer), throttling and transient failures: subscribed again after exponential
 *   backoff with full jitter (core's backoff). Any other failure is thrown by `next()`.
 * - An event without a ContinuationSequenceNumber (it names the child shards) is the shard's end.
 *   With `kinesis` and the stream given, a reader that is caught up (an event of no records,
 *   MillisBehindLatest 0) asks ListShards, at most every `closedCheckMs`, whether the shard is
 *   closed: a closed shard read to its tip has ended too, for a server that never sends that event.
 * - Backpressure: at most `maxBufferedEvents` events wait for `next()`; past that the event
 *   stream is not read (HTTP/2 flow control holds Kinesis back) until the caller takes a page.
 * - KPL aggregates are de-aggregated; user records outside the shard's hash key range are dropped.
 *
 * SubscribeToShard needs HTTP/2: `efoSubscriptionClient` makes a Kinesis client for it. Its HTTP/2
 * handler opens one connection per subscription, keeps it until the event stream ends (some
 * servers fail a stream whose connection is told to close while it is open) and sets no
 * inactivity timeout of its own: an idle subscription is the reader's to judge (`idleTimeoutMs`).
 */
import http2 from 'node:http2';
import type { Readable } from 'node:stream';
import {
  DescribeStreamConsumerCommand,
  DescribeStreamSummaryCommand,
  type KinesisClient,
  type KinesisClientConfig,
  type _Record as KinesisRecord,
  KinesisClient as KinesisSdkClient,
  ListShardsCommand,
  RegisterStreamConsumerCommand,
  type StartingPosition,
  SubscribeToShardCommand,
  type SubscribeToShardEvent,
} from '@aws-sdk/client-kinesis';
import { type AwsClientOptions, awsClientConfig } from '@tributary/aws';
import {
  type BackoffPolicy,
  backoffDelay,
  ConfigError,
  deaggregateRecord,
  describeError,
  type HashKeyRange,
  isTransient,
  type SourceRecord,
} from '@tributary/core/spi';
import { ReaderStopped, StreamConsumerError } from './errors.js';
import type { CheckpointPosition, WorkerMetrics } from './leaseTypes.js';
import { isThrottled, type ReadBatch, type ReadPosition } from './shardReader.js';

// ---- the consumer --------------------------------------------------------------------------

export interface StreamConsumerOptions {
  /** A Kinesis client for the control calls (HTTP/1.1 is fine). */
  kinesis: KinesisClient;
  /** The stream name (or give `streamArn`). */
  stream?: string;
  streamArn?: string;
  /** The consumer's name: the application's. */
  consumerName: string;
  /** How many times DescribeStreamConsumer is asked before giving up on ACTIVE (default 120). */
  maxPolls?: number;
  /** The wait between them (ms, default 1000). */
  pollMs?: number;
  log?: (entry: Record<string, unknown>) => void;
}

/** A registered, ACTIVE stream consumer. */
export interface StreamConsumer {
  consumerName: string;
  consumerArn: string;
  streamArn: string;
}

const CONSUMER_NAME = /^[a-zA-Z0-9_.-]{1,128}$/;

const nameOf = (err: unknown): string | undefined => {
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : undefined;
};

/**
 * The stream's consumer named `consumerName`, registered if there is none, once it is ACTIVE.
 * A consumer being deleted is waited out and registered again. Rejects with a StreamConsumerError
 * when it is not ACTIVE after `maxPolls` looks, and with a failure that is neither throttling nor transient.
 */
export async function registerStreamConsumer(options: StreamConsumerOptions): Promise<StreamConsumer> {
  const { kinesis, consumerName } = options;
  if (!CONSUMER_NAME.test(consumerName))
    throw new ConfigError(
      `Expected the stream consumer's name (the application's) to be 1 to 128 letters, digits, '_', '.' or '-', got ${JSON.stringify(consumerName)}`,
    );
  const maxPolls = options.maxPolls ?? 120;
  if (!Number.isInteger(maxPolls) || maxPolls < 1)
    throw new ConfigError(`Expected \`maxPolls\` to be an integer ≥ 1, got ${maxPolls}`);
  const pollMs = options.pollMs ?? 1000;
  let streamArn = options.streamArn;
  if (streamArn === undefined) {
    if (options.stream === undefined) throw new ConfigError('Expected `stream` or `streamArn` for the stream consumer');
    const summary = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: options.stream }));
    streamArn = summary.StreamDescriptionSummary?.StreamARN;
    if (streamArn === undefined) throw new StreamConsumerError(`stream ${options.stream} has no ARN`);
  }
  let status: string | undefined;
  for (let poll = 0; poll < maxPolls; poll++) {
    if (poll > 0) await new Promise((r) => setTimeout(r, pollMs));
    try {
      const d = (
        await kinesis.send(new DescribeStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: consumerName }))
      ).ConsumerDescription;
      status = d?.ConsumerStatus;
      if (status === 'ACTIVE' && d?.ConsumerARN) return { consumerName, consumerArn: d.ConsumerARN, streamArn };
      continue;
    } catch (err) {
      if (nameOf(err) !== 'ResourceNotFoundException') {
        if (isThrottled(err) || isTransient(err)) continue;
        throw err;
      }
    }
    try {
      await kinesis.send(new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: consumerName }));
      options.log?.({ level: 'info', msg: 'stream consumer registered', consumerName, streamArn });
    } catch (err) {
      // ResourceInUseException: another worker registered it at the same moment.
      if (nameOf(err) !== 'ResourceInUseException' && !isThrottled(err) && !isTransient(err)) throw err;
    }
  }
  throw new StreamConsumerError(
    `stream consumer ${consumerName} of ${streamArn} was not ACTIVE after ${maxPolls} looks (it is ${status ?? 'not registered'})`,
  );
}

// ---- the HTTP/2 client ---------------------------------------------------------------------

/** What the SDK hands a request handler (the subset used here). */
interface SdkHttpRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query?: Record<string, string | string[] | null>;
  headers: Record<string, string>;
  body?: unknown;
}

/**
 * An HTTP/2 request handler for SubscribeToShard: one connection per request, closed when its
 * stream closes; no inactivity timeout (the reader renews an idle subscription); a connection
 * that is not up within `connectionTimeout` fails the call (a TimeoutError).
 */
class Http2EventStreamHandler {
  readonly metadata = { handlerProtocol: 'h2' };
  private readonly sessions = new Set<http2.ClientHttp2Session>();

  constructor(private readonly options: { connectionTimeout: number }) {}

  handle(
    request: SdkHttpRequest,
    { abortSignal }: { abortSignal?: AbortSignal } = {},
  ): Promise<{ response: { statusCode: number; headers: Record<string, string>; body: Readable } }> {
    return new Promise((resolve, reject) => {
      if (abortSignal?.aborted) {
        reject(Object.assign(new Error('Request aborted'), { name: 'AbortError' }));
        return;
      }
      const authority = `${request.protocol}//${request.hostname}${request.port ? `:${request.port}` : ''}`;
      const session = http2.connect(authority);
      this.sessions.add(session);
      let settled = false;
      const fail = (err: unknown) => {
        if (!settled) {
          settled = true;
          reject(err);
        }
        stream.destroy(err instanceof Error ? err : undefined);
        session.destroy();
      };
      const connectTimer = setTimeout(() => {
        fail(
          Object.assign(new Error(`no HTTP/2 connection to ${authority} within ${this.options.connectionTimeout} ms`), {
            name: 'TimeoutError',
          }),
        );
      }, this.options.connectionTimeout);
      session.once('connect', () => clearTimeout(connectTimer));
      session.on('error', fail);
      session.on('close', () => {
        clearTimeout(connectTimer);
        this.sessions.delete(session);
      });
      let path = request.path;
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(request.query ?? {})) {
        if (Array.isArray(v)) for (const one of v) query.append(k, one);
        else if (v !== null && v !== undefined) query.append(k, v);
      }
      if ([...query.keys()].length > 0) path += `?${query.toString()}`;
      const stream = session.request({ ...request.headers, ':method': request.method, ':path': path });
      const onAbort = () => fail(Object.assign(new Error('Request aborted'), { name: 'AbortError' }));
      abortSignal?.addEventListener('abort', onAbort, { once: true });
      stream.on('error', fail);
      stream.on('close', () => {
        abortSignal?.removeEventListener('abort', onAbort);
        if (!settled)
          fail(Object.assign(new Error('the HTTP/2 stream closed before a response'), { name: 'TimeoutError' }));
        session.close();
      });
      stream.on('response', (headers) => {
        settled = true;
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(headers)) {
          if (k.startsWith(':') || v === undefined) continue;
          out[k] = Array.isArray(v) ? v.join(',') : String(v);
        }
        resolve({ response: { statusCode: Number(headers[':status'] ?? -1), headers: out, body: stream } });
      });
      const body = request.body;
      if (body === undefined || body === null) stream.end();
      else if (typeof body === 'string' || body instanceof Uint8Array) stream.end(body);
      else if (typeof (body as Readable).pipe === 'function') (body as Readable).pipe(stream);
      else stream.end(Buffer.from(String(body)));
    });
  }

  updateHttpClientConfig(): void {}

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }

  destroy(): void {
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }
}

/**
 * A Kinesis client for SubscribeToShard (HTTP/2), configured as every Tributary client is
 * (region, endpoint, local credentials: `awsClientConfig`), with `connectionTimeout`; its
 * `requestTimeout` does not apply (an event stream may be quiet; the reader judges that).
 */
export function efoSubscriptionClient(options: AwsClientOptions = {}): KinesisClient {
  const config = awsClientConfig({ service: 'KINESIS', ...options });
  config.requestHandler.destroy();
  return new KinesisSdkClient({
    ...config,
    // The SDK's own HttpHandler type names its AbortSignal and HttpRequest classes; this handler takes their shape.
    requestHandler: new Http2EventStreamHandler({
      connectionTimeout: options.connectionTimeout ?? 5_000,
    }) as unknown as KinesisClientConfig['requestHandler'],
  });
}

// ---- the reader ----------------------------------------------------------------------------

export interface EfoShardReaderOptions {
  /** The client SubscribeToShard is sent with: it must speak HTTP/2 (`efoSubscriptionClient`). */
  subscriber: KinesisClient;
  /** The registered consumer's ARN (`registerStreamConsumer`). */
  consumerArn: string;
  shardId: string;
  /** The lease's checkpoint. `TRIM_HORIZON`, `LATEST` and `AT_TIMESTAMP` start a shard without one. */
  from: ReadPosition;
  /** With `AT_TIMESTAMP`: the time to start at. */
  startingTimestamp?: Date;
  /** The shard's hash key range: de-aggregated user records outside it are dropped. */
  hashRange?: HashKeyRange;
  /** A client for ListShards, with `stream` or `streamArn`: a caught-up reader asks whether the shard is closed. */
  kinesis?: KinesisClient;
  stream?: string;
  streamArn?: string;
  /** The least time between two such questions (ms, default 10 000). */
  closedCheckMs?: number;
  /** At most this many user records in a page (events that wait are joined up to it; default 10 000). */
  maxRecords?: number;
  /** Events that may wait for `next()` before the event stream is paused (default 8). */
  maxBufferedEvents?: number;
  /** A subscription is renewed after this long (ms, default 300 000: Kinesis ends one after 5 minutes). */
  subscriptionMs?: number;
  /** A subscription that brought no event for this long is renewed (ms, default 60 000). */
  idleTimeoutMs?: number;
  /** Backoff of refused and transiently failed subscriptions (default base 200 ms, max 5 s; attempts are unbounded). */
  backoff?: Partial<Pick<BackoffPolicy, 'baseDelay' | 'maxDelay' | 'random'>>;
  metrics?: WorkerMetrics;
  /** Called for what the reader absorbed (a renewed subscription, a retried one, dropped user records). */
  log?: (entry: Record<string, unknown>) => void;
}

/** One event's user records, waiting for `next()`. */
interface Waiting {
  records: SourceRecord[];
  position: CheckpointPosition | undefined;
  millisBehindLatest: number | undefined;
  otherShard: number;
  shardEnd: boolean;
}

const STARTS = new Set(['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP']);

/** Refusals of a subscription that pass: subscribed again after a backoff. */
const RESUBSCRIBE = new Set(['ResourceInUseException', 'LimitExceededException', 'InternalFailureException']);

function positiveMs(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new ConfigError(`Expected \`${name}\` to be a number of ms > 0, got ${value}`);
  return value;
}

export class EfoShardReader {
  readonly shardId: string;
  private readonly maxRecords: number;
  private readonly maxBuffered: number;
  private readonly subscriptionMs: number;
  private readonly idleMs: number;
  private readonly closedCheckMs: number;
  /** When the shard was last asked about (ms since the epoch). */
  private closedCheckedAt = Number.NEGATIVE_INFINITY;
  private readonly policy: BackoffPolicy;
  /** The last event's ContinuationSequenceNumber: a renewed subscription starts after it. */
  private continuation: string | undefined;
  /** A KPL checkpoint inside an aggregate: its user records up to this sub-sequence are skipped. */
  private skip: { sequenceNumber: string; subSequenceNumber: number } | undefined;
  private readonly waiting: Waiting[] = [];
  private failure: { error: unknown } | undefined;
  private pumping = false;
  private ended = false;
  private stopped = false;
  private current: AbortController | undefined;
  /** Woken when an event waits, a failure is set or reading stops. */
  private onData: (() => void) | undefined;
  /** Woken when `next()` took events (room for more), or reading stops. */
  private onRoom: (() => void) | undefined;
  private readonly wakers = new Set<() => void>();

  constructor(private readonly options: EfoShardReaderOptions) {
    this.shardId = options.shardId;
    const max = options.maxRecords ?? 10_000;
    if (!Number.isInteger(max) || max < 1 || max > 10_000)
      throw new ConfigError(`Expected \`maxRecords\` to be an integer from 1 to 10000, got ${max}`);
    this.maxRecords = max;
    const buffered = options.maxBufferedEvents ?? 8;
    if (!Number.isInteger(buffered) || buffered < 1)
      throw new ConfigError(`Expected \`maxBufferedEvents\` to be an integer ≥ 1, got ${buffered}`);
    this.maxBuffered = buffered;
    this.subscriptionMs = positiveMs('subscriptionMs', options.subscriptionMs ?? 300_000);
    this.idleMs = positiveMs('idleTimeoutMs', options.idleTimeoutMs ?? 60_000);
    this.closedCheckMs = positiveMs('closedCheckMs', options.closedCheckMs ?? 10_000);
    if (!options.consumerArn) throw new ConfigError('Expected `consumerArn` for the enhanced fan-out reader');
    const { checkpoint, subSequenceNumber } = options.from;
    if (checkpoint === 'SHARD_END')
      throw new ConfigError(`shard ${options.shardId} is checkpointed at SHARD_END: there is nothing left to read`);
    if (checkpoint === 'AT_TIMESTAMP' && options.startingTimestamp === undefined)
      throw new ConfigError('Expected `startingTimestamp` with a checkpoint of AT_TIMESTAMP');
    if (!STARTS.has(checkpoint) && subSequenceNumber > 0) this.skip = { sequenceNumber: checkpoint, subSequenceNumber };
    this.policy = {
      maxAttempts: Number.POSITIVE_INFINITY,
      baseDelay: options.backoff?.baseDelay ?? 200,
      maxDelay: options.backoff?.maxDelay ?? 5000,
      ...(options.backoff?.random ? { random: options.backoff.random } : {}),
    };
  }

  /**
   * The next page with records (or the shard's end): the events that waited, joined up to
   * `maxRecords` user records. The first call subscribes. Rejects with ReaderStopped once
   * `stop()` was called, and with a failure that no new subscription can pass.
   */
  async next(): Promise<ReadBatch> {
    if (this.ended) throw new ReaderStopped(`shard ${this.shardId} was read to its end`);
    if (!this.pumping) {
      this.pumping = true;
      void this.pump();
    }
    for (;;) {
      this.checkStopped();
      if (this.waiting.length > 0) {
        const page = this.take();
        if (page.shardEnd) this.ended = true;
        return page;
      }
      if (this.failure !== undefined) throw this.failure.error;
      await new Promise<void>((resolve) => {
        this.onData = resolve;
      });
    }
  }

  /** Stops reading: the subscription is closed, waits end at once, and `next()` rejects with ReaderStopped. */
  stop(): void {
    this.stopped = true;
    this.current?.abort();
    this.onData?.();
    this.onRoom?.();
    for (const wake of this.wakers) wake();
    this.wakers.clear();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  private checkStopped(): void {
    if (this.stopped) throw new ReaderStopped(`reading shard ${this.shardId} stopped`);
  }

  private wakeData(): void {
    const wake = this.onData;
    this.onData = undefined;
    wake?.();
  }

  /** The waiting events as one page: in order, up to `maxRecords` user records (at least one event). */
  private take(): ReadBatch {
    const records: SourceRecord[] = [];
    let position: CheckpointPosition | undefined;
    let millisBehindLatest: number | undefined;
    let otherShard = 0;
    let shardEnd = false;
    while (this.waiting.length > 0) {
      const w = this.waiting[0] as Waiting;
      if (records.length > 0 && records.length + w.records.length > this.maxRecords) break;
      this.waiting.shift();
      for (const r of w.records) records.push(r);
      if (w.position !== undefined) position = w.position;
      millisBehindLatest = w.millisBehindLatest;
      otherShard += w.otherShard;
      if (w.shardEnd) {
        shardEnd = true;
        break;
      }
    }
    const room = this.onRoom;
    this.onRoom = undefined;
    room?.();
    return {
      batch: { shardId: this.shardId, records, ordering: 'shard' },
      position,
      shardEnd,
      millisBehindLatest,
      otherShard,
    };
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  /** Where the next subscription starts: after the last event, else from the checkpoint. */
  private startingPosition(): StartingPosition {
    if (this.continuation !== undefined) return { Type: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: this.continuation };
    const { checkpoint } = this.options.from;
    if (checkpoint === 'TRIM_HORIZON' || checkpoint === 'LATEST') return { Type: checkpoint };
    if (checkpoint === 'AT_TIMESTAMP') return { Type: 'AT_TIMESTAMP', Timestamp: this.options.startingTimestamp };
    if (this.skip !== undefined) return { Type: 'AT_SEQUENCE_NUMBER', SequenceNumber: checkpoint };
    return { Type: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: checkpoint };
  }

  /** Subscribes, reads the event stream into `waiting`, and subscribes again, until the shard ends, a failure or `stop()`. */
  private async pump(): Promise<void> {
    let retry = 0;
    while (!this.stopped) {
      const abort = new AbortController();
      this.current = abort;
      let why: 'renewed' | 'idle' | undefined;
      const renewal = setTimeout(() => {
        why ??= 'renewed';
        abort.abort();
      }, this.subscriptionMs);
      let idle: ReturnType<typeof setTimeout> | undefined;
      const watch = () => {
        clearTimeout(idle);
        idle = setTimeout(() => {
          why ??= 'idle';
          abort.abort();
        }, this.idleMs);
      };
      try {
        watch();
        const from = this.startingPosition();
        const res = await this.options.subscriber.send(
          new SubscribeToShardCommand({
            ConsumerARN: this.options.consumerArn,
            ShardId: this.shardId,
            StartingPosition: from,
          }),
          { abortSignal: abort.signal },
        );
        this.options.metrics?.call('kinesis', 'ok');
        for await (const event of res.EventStream ?? []) {
          watch();
          if (this.stopped) return;
          const e = event.SubscribeToShardEvent;
          if (e === undefined) {
            // An exception in the stream (ResourceInUseException, KMS*, InternalFailureException, ...).
            const [name, body] = Object.entries(event).find(([, v]) => v !== undefined) ?? ['UnknownEvent', {}];
            throw Object.assign(new Error(String((body as { message?: unknown })?.message ?? name)), { name });
          }
          retry = 0;
          if (this.accept(e)) return;
          if ((e.Records ?? []).length === 0 && e.MillisBehindLatest === 0 && (await this.closedAtTip())) return;
          if (this.waiting.length >= this.maxBuffered) {
            // Backpressure: nothing more is read (nor judged idle) until `next()` takes a page.
            clearTimeout(idle);
            while (this.waiting.length >= this.maxBuffered && !this.stopped)
              await new Promise<void>((resolve) => {
                this.onRoom = resolve;
              });
            if (this.stopped) return;
            watch();
          }
        }
        if (this.stopped) return;
        this.options.log?.({
          level: 'info',
          msg:
            why === 'idle'
              ? 'subscription brought no event; subscribing again'
              : 'subscription ended; subscribing again',
          shardId: this.shardId,
        });
      } catch (err) {
        if (this.stopped) return;
        if (why !== undefined) {
          this.options.log?.({
            level: why === 'idle' ? 'warn' : 'info',
            msg: why === 'idle' ? 'subscription brought no event; subscribing again' : 'subscription renewed',
            shardId: this.shardId,
          });
          continue;
        }
        const name = nameOf(err);
        if (
          !(name !== undefined && RESUBSCRIBE.has(name)) &&
          !isThrottled(err) &&
          !isTransient(err) &&
          !isStreamCut(err)
        ) {
          this.options.metrics?.call('kinesis', 'error');
          this.failure = { error: err };
          this.wakeData();
          return;
        }
        this.options.metrics?.call('kinesis', 'retry');
        const delay = backoffDelay(this.policy, ++retry);
        this.options.log?.({
          level: 'warn',
          msg: 'subscription failed; subscribing again',
          shardId: this.shardId,
          error: describeError(err),
          delayMs: Math.round(delay),
        });
        await this.sleep(delay);
      } finally {
        clearTimeout(renewal);
        clearTimeout(idle);
        if (!abort.signal.aborted) abort.abort();
        if (this.current === abort) this.current = undefined;
      }
    }
  }

  /**
   * Whether the shard is closed (ListShards gives its ending sequence number), asked at most every
   * `closedCheckMs`; when it is, the shard's end waits for `next()`. The caller is caught up: a
   * closed shard takes no more records, so there is nothing left to read.
   */
  private async closedAtTip(): Promise<boolean> {
    const o = this.options;
    if (o.kinesis === undefined || (o.stream === undefined && o.streamArn === undefined)) return false;
    const now = Date.now();
    if (now - this.closedCheckedAt < this.closedCheckMs) return false;
    this.closedCheckedAt = now;
    let closed = false;
    try {
      let token: string | undefined;
      for (let page = 0; page < 1000; page++) {
        const res = await o.kinesis.send(
          new ListShardsCommand(
            token ? { NextToken: token } : o.streamArn ? { StreamARN: o.streamArn } : { StreamName: o.stream },
          ),
        );
        const shard = res.Shards?.find((x) => x.ShardId === this.shardId);
        if (shard !== undefined) {
          closed = shard.SequenceNumberRange?.EndingSequenceNumber !== undefined;
          break;
        }
        token = res.NextToken;
        if (!token) break;
      }
    } catch (err) {
      this.options.log?.({
        level: 'warn',
        msg: 'listing the shards (is the shard closed?) failed; asked again later',
        shardId: this.shardId,
        error: describeError(err),
      });
      return false;
    }
    if (!closed || this.stopped) return false;
    this.options.log?.({ level: 'info', msg: 'closed shard read to its tip: its end', shardId: this.shardId });
    this.waiting.push({ records: [], position: undefined, millisBehindLatest: 0, otherShard: 0, shardEnd: true });
    this.wakeData();
    return true;
  }

  /** One event → its user records waiting (when it has any, or ends the shard); true at the shard's end. */
  private accept(e: SubscribeToShardEvent): boolean {
    const got: KinesisRecord[] = e.Records ?? [];
    const millis = e.MillisBehindLatest;
    if (millis !== undefined) this.options.metrics?.iteratorAge(this.shardId, millis);
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
        // At the checkpoint's record: its user records up to the sub-sequence were processed.
        if (skip >= 0 && (!d.aggregate || (u.subSequenceNumber ?? 0) <= skip)) continue;
        const rec: SourceRecord = { data: u.data, partitionKey: u.partitionKey, sequenceNumber: seq, arrivalTime };
        if (d.aggregate) rec.subSequenceNumber = u.subSequenceNumber ?? 0;
        records.push(rec);
        position = { sequenceNumber: seq, subSequenceNumber: rec.subSequenceNumber ?? 0 };
      }
    }
    if (got.length > 0) this.skip = undefined;
    if (otherShard > 0)
      this.options.log?.({
        level: 'info',
        msg: 'de-aggregated user records of another shard dropped (after a reshard, as the KCL drops them)',
        shardId: this.shardId,
        records: otherShard,
      });
    const shardEnd = e.ContinuationSequenceNumber === undefined || e.ContinuationSequenceNumber === null;
    if (!shardEnd) this.continuation = e.ContinuationSequenceNumber;
    if (records.length > 0 || shardEnd) {
      this.waiting.push({ records, position, millisBehindLatest: millis, otherShard, shardEnd });
      this.wakeData();
    }
    return shardEnd;
  }
}

/** A subscription's stream cut off by the connection (reset, aborted, closed early): subscribed again. */
function isStreamCut(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_HTTP2_')) return true;
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' && /aborted|premature close|stream (was )?(closed|destroyed|reset)/i.test(message);
}
