/**
 * The shards of the stream a function consumes, as the Lambda handler knows them.
 *
 * - Kinesis (`ListShards`): a window's watermark is the lowest over the shards it knows, so every
 *   open shard of the stream is registered before a batch can close windows — a shard that has
 *   not delivered yet holds them back (until it has been idle for the window's idle timeout).
 *   Closed shards are not registered (one that still delivers counts from its first batch).
 * - DynamoDB Streams (`DescribeStream`): an event does not name its shard, so each record is
 *   mapped to the shard whose sequence number range holds its sequence number; the per-shard
 *   exactly-once check of window state needs the real shard.
 *
 * The list is read on the first batch (or at init when the stream ARN is known) and again when a
 * batch comes from a shard it does not hold (resharding) — at most once a minute for the same
 * unknown shard (DynamoDB: for any unmapped record of the stream), so a storm of such batches
 * does not hammer the API. A failed listing is logged (one JSON warn line) and the invocation
 * goes on with the shards seen; it is tried again on a later invocation, 1 s after the failure at
 * first, doubling to once a minute.
 *
 * The default listers create their clients with `@tributary/aws` on first use, loading the AWS SDK
 * then (in a Lambda bundle the runtime's SDK), and take the region from the stream ARN; endpoints
 * follow the SDK's own settings (`AWS_ENDPOINT_URL_KINESIS`, `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`).
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { compareSequenceNumbers, describeError } from '@tributary/core/spi';

/** One shard of a Kinesis stream as `ListShards` reports it. */
export interface StreamShard {
  shardId: string;
  /** Whether the shard has ended (resharding): it has an ending sequence number. */
  closed: boolean;
  /** The shard(s) it was split or merged from (`ParentShardId`, `AdjacentParentShardId`). */
  parents?: string[];
}

/** One shard of a DynamoDB stream: its sequence number range (`end` absent while it is open). */
export interface DynamoDbStreamShard {
  shardId: string;
  start: string;
  end?: string;
  /** The shard it follows (`ParentShardId`). */
  parent?: string;
}

/** Every shard of a Kinesis stream (open and closed), by stream ARN. */
export type ListShards = (streamArn: string) => Promise<StreamShard[]>;

/** Every shard of a DynamoDB stream with its sequence number range, by stream ARN. */
export type DescribeDynamoDbStream = (streamArn: string) => Promise<DynamoDbStreamShard[]>;

/** The region named by an ARN (`arn:aws:kinesis:<region>:…`), if any. */
export function regionOf(arn: string): string | undefined {
  return arn.split(':')[3] || undefined;
}

/**
 * Client options of the listings: timeouts so a stalled connection fails the listing instead of
 * holding the invocation, and the SDK's own attempts (a failed listing is retried later as well).
 */
export const LISTING_CLIENT = { connectionTimeout: 2_000, requestTimeout: 5_000, maxAttempts: 3 };

/**
 * `ListShards` through the AWS SDK, every page (`NextToken`). With no client, one per region is
 * created on first use (the SDK is imported then, not when this module loads).
 */
export function kinesisShardLister(client?: KinesisClient): ListShards {
  const clients = new Map<string, Promise<KinesisClient>>();
  const clientFor = (arn: string): Promise<KinesisClient> => {
    if (client) return Promise.resolve(client);
    // '' (no region in the ARN): the factory takes the environment's.
    const region = regionOf(arn) ?? '';
    let c = clients.get(region);
    if (!c) {
      c = import('@tributary/aws/kinesis').then((aws) => aws.kinesisClient({ ...LISTING_CLIENT, region }));
      clients.set(region, c);
      c.catch(() => clients.delete(region));
    }
    return c;
  };
  return async (streamArn) => {
    const [kinesis, { ListShardsCommand }] = await Promise.all([
      clientFor(streamArn),
      import('@aws-sdk/client-kinesis'),
    ]);
    // The name as well as the ARN (the API takes either or both): emulators know only names.
    const at = streamArn.indexOf(':stream/');
    const first = at < 0 ? { StreamARN: streamArn } : { StreamARN: streamArn, StreamName: streamArn.slice(at + 8) };
    const shards: StreamShard[] = [];
    let token: string | undefined;
    do {
      const res = await kinesis.send(new ListShardsCommand(token ? { NextToken: token } : first));
      for (const s of res.Shards ?? []) {
        if (!s.ShardId) continue;
        const shard: StreamShard = { shardId: s.ShardId, closed: !!s.SequenceNumberRange?.EndingSequenceNumber };
        const parents = [s.ParentShardId, s.AdjacentParentShardId].filter((id): id is string => !!id);
        if (parents.length > 0) shard.parents = parents;
        shards.push(shard);
      }
      token = res.NextToken;
    } while (token);
    return shards;
  };
}

export interface StreamShardsOptions {
  listShards: ListShards;
  describeDynamoDbStream: DescribeDynamoDbStream;
  /** Called once for each open shard listed (not given: shards are listed but not registered). */
  register?: (shardId: string) => void;
  /**
   * Called once for each closed shard whose child has delivered a batch: Lambda (like the KCL)
   * starts a child shard only once its parents are read to their end, so a parent stops holding
   * windows back then rather than after its idle timeout.
   */
  close?: (shardId: string) => void;
  log: (line: string) => void;
  /** Processing time (ms), for the rate limits. */
  now: () => number;
  /** Least time between two listings for the same unknown shard (default one minute). */
  relistIntervalMs?: number;
}

/** The stream's shard list as last read, and when it may be read again. */
interface StreamState {
  kind: 'kinesis' | 'dynamodb';
  /** A listing has succeeded. */
  listed: boolean;
  /** Every shard listed, open or closed. */
  known: Set<string>;
  /** Closed shards listed. */
  closed: Set<string>;
  /** Each listed shard's parents. */
  parents: Map<string, string[]>;
  /** DynamoDB: the shards' ranges, by starting sequence number. */
  ranges: DynamoDbStreamShard[];
  /** Failed listings in a row, and the time before which none is tried again. */
  failures: number;
  retryAt: number;
  /** When an unknown shard (or, DynamoDB, an unmapped record) last caused a listing. */
  relisted: Map<string, number>;
  inFlight?: Promise<boolean>;
}

const FIRST_RETRY_MS = 1_000;
/** Stands for "a record in no known shard" in `relisted` (DynamoDB events do not name shards). */
const UNMAPPED = '';

/** The shards of the streams a handler consumes (usually one), listed and registered. */
export class StreamShards {
  private readonly streams = new Map<string, StreamState>();
  private readonly registered = new Set<string>();
  private readonly relistInterval: number;

  constructor(private readonly options: StreamShardsOptions) {
    this.relistInterval = options.relistIntervalMs ?? 60_000;
  }

  private state(streamArn: string, kind: StreamState['kind']): StreamState {
    let s = this.streams.get(streamArn);
    if (!s) {
      s = {
        kind,
        listed: false,
        known: new Set(),
        closed: new Set(),
        parents: new Map(),
        ranges: [],
        failures: 0,
        retryAt: 0,
        relisted: new Map(),
      };
      this.streams.set(streamArn, s);
    }
    return s;
  }

  /** Lists the stream once (at init, when its ARN is known before any event). */
  async init(streamArn: string, requestId?: string): Promise<void> {
    await this.ensureListed(this.state(streamArn, kindOfArn(streamArn)), streamArn, requestId);
  }

  /**
   * Before a Kinesis event's batches: the stream is listed (first time, or again after a failed
   * listing) and every open shard registered; a shard of the event that the list does not hold
   * causes one more listing (rate limited).
   */
  async beforeKinesisBatches(streamArn: string, shardIds: Iterable<string>, requestId?: string): Promise<void> {
    const s = this.state(streamArn, 'kinesis');
    const listed = await this.ensureListed(s, streamArn, requestId);
    if (listed === 'unlisted') return;
    for (const shardId of shardIds) {
      if (s.known.has(shardId) || !this.mayRelist(s, shardId)) continue;
      // Not in a list read just now: read it again a minute later at the earliest.
      if (listed !== 'fresh') await this.list(s, streamArn, requestId);
    }
    this.closeParentsOf(s, shardIds);
  }

  /** The closed parents of shards that deliver are read to their end: they are closed here. */
  private closeParentsOf(s: StreamState, shardIds: Iterable<string | undefined>): void {
    if (!this.options.close) return;
    for (const shardId of shardIds) {
      if (shardId === undefined) continue;
      for (const parent of s.parents.get(shardId) ?? []) {
        if (!s.closed.has(parent) || this.closedHere.has(parent)) continue;
        this.closedHere.add(parent);
        this.options.close(parent);
      }
    }
  }

  private readonly closedHere = new Set<string>();

  /**
   * The shard of each DynamoDB Streams record (by sequence number), `undefined` where it cannot
   * be told: the stream could not be described, or the number is in no shard's range even after
   * describing again (rate limited). The stream's open shards are registered as well.
   */
  async dynamoDbShardsOf(
    streamArn: string,
    sequenceNumbers: readonly (string | undefined)[],
    requestId?: string,
  ): Promise<(string | undefined)[]> {
    const s = this.state(streamArn, 'dynamodb');
    const listed = await this.ensureListed(s, streamArn, requestId);
    if (listed === 'unlisted') return sequenceNumbers.map(() => undefined);
    let shards = sequenceNumbers.map((n) => (n === undefined ? undefined : shardOf(s.ranges, n)));
    const unmapped = shards.some((id, i) => id === undefined && sequenceNumbers[i] !== undefined);
    if (unmapped && this.mayRelist(s, UNMAPPED) && listed !== 'fresh' && (await this.list(s, streamArn, requestId))) {
      shards = sequenceNumbers.map((n) => (n === undefined ? undefined : shardOf(s.ranges, n)));
    }
    this.closeParentsOf(s, new Set(shards));
    return shards;
  }

  /** A listing for this unknown shard is due (and is counted as made). */
  private mayRelist(s: StreamState, key: string): boolean {
    const now = this.options.now();
    const last = s.relisted.get(key);
    if (last !== undefined && now - last < this.relistInterval) return false;
    s.relisted.set(key, now);
    return true;
  }

  /**
   * Whether the stream has been listed (`fresh`: by this call); lists it if not, unless a failed
   * listing is still backing off.
   */
  private async ensureListed(
    s: StreamState,
    streamArn: string,
    requestId?: string,
  ): Promise<'listed' | 'fresh' | 'unlisted'> {
    if (s.listed) return 'listed';
    if (!s.inFlight && this.options.now() < s.retryAt) return 'unlisted';
    return (await this.list(s, streamArn, requestId)) ? 'fresh' : 'unlisted';
  }

  /** Reads the shard list (one listing at a time per stream); false when it failed. */
  private list(s: StreamState, streamArn: string, requestId?: string): Promise<boolean> {
    if (s.inFlight) return s.inFlight;
    const run = (async () => {
      try {
        if (s.kind === 'kinesis') {
          const shards = await this.options.listShards(streamArn);
          for (const shard of shards) {
            s.known.add(shard.shardId);
            if (shard.parents) s.parents.set(shard.shardId, shard.parents);
            if (shard.closed) s.closed.add(shard.shardId);
            else this.register(shard.shardId);
          }
        } else {
          const shards = await this.options.describeDynamoDbStream(streamArn);
          s.ranges = [...shards].sort((a, b) => compareSequenceNumbers(a.start, b.start));
          for (const shard of shards) {
            s.known.add(shard.shardId);
            if (shard.parent) s.parents.set(shard.shardId, [shard.parent]);
            if (shard.end !== undefined) s.closed.add(shard.shardId);
            else this.register(shard.shardId);
          }
        }
        s.listed = true;
        s.failures = 0;
        s.retryAt = 0;
        return true;
      } catch (err) {
        s.failures++;
        s.retryAt = this.options.now() + Math.min(this.relistInterval, FIRST_RETRY_MS * 2 ** (s.failures - 1));
        this.options.log(
          JSON.stringify({
            level: 'warn',
            msg:
              s.kind === 'kinesis'
                ? "listing the stream's shards failed; windows rely on the shards seen, listing is retried later"
                : 'describing the DynamoDB stream failed; its shards are retried later',
            stream: streamArn,
            error: describeError(err),
            requestId,
          }),
        );
        return false;
      } finally {
        s.inFlight = undefined;
      }
    })();
    s.inFlight = run;
    return run;
  }

  private register(shardId: string): void {
    if (!this.options.register || this.registered.has(shardId)) return;
    this.registered.add(shardId);
    this.options.register(shardId);
  }
}

/** Kinesis or DynamoDB Streams, from a stream ARN. */
export function kindOfArn(streamArn: string): 'kinesis' | 'dynamodb' {
  return streamArn.split(':')[2] === 'dynamodb' ? 'dynamodb' : 'kinesis';
}

/**
 * The shard whose range holds this sequence number (ranges sorted by start); when several do
 * (open shards have no end), the one that started last.
 */
function shardOf(ranges: readonly DynamoDbStreamShard[], sequenceNumber: string): string | undefined {
  // The last range starting at or before the number…
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareSequenceNumbers((ranges[mid] as DynamoDbStreamShard).start, sequenceNumber) <= 0) lo = mid + 1;
    else hi = mid;
  }
  // …then back to the first one that has not ended before it.
  for (let i = lo - 1; i >= 0; i--) {
    const r = ranges[i] as DynamoDbStreamShard;
    if (r.end === undefined || compareSequenceNumbers(sequenceNumber, r.end) <= 0) return r.shardId;
  }
  return undefined;
}
