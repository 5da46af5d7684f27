/**
 * Window state in a DynamoDB table.
 *
 * Table: partition key `pk` (S), sort key `sk` (S), TTL attribute `ttl` (epoch seconds).
 * `tributary state init` or {@link createStateTable} creates it. Items of a window step are
 * prefixed by its namespace (`<pipeline>/<node>`):
 *
 * | pk                          | sk          | holds                                            |
 * |-----------------------------|-------------|--------------------------------------------------|
 * | `<ns>\|<start>\|<end>`      | `<n>`       | item n of a window range: `b` body, `v` version  |
 * | `<ns>\|<start>\|<end>`      | `claim`     | the emission claim: `by`, `at`, `done`           |
 * | `<ns>\|ranges`              | `-`         | `r`: string set of open ranges                   |
 * | `<ns>\|shards[\|<n>]`        | `s:<shard>` | one shard's progress: `b` JSON, `v` version      |
 * | `<ns>\|shards`              | `-`         | legacy, read only: every shard's progress (`b`)  |
 *
 * Writes are conditional `PutItem`s (`attribute_not_exists(pk) OR v = :v`); a failed condition
 * is an answer (the version moved), not an error. No `TransactWriteItems` is used. Writes of a
 * batch run in parallel, at most `concurrency` at a time; reads use `BatchGetItem` (100 keys per
 * call, `UnprocessedKeys` retried), strongly consistent.
 *
 * Shard progress is one item per shard, so consumers of different shards never conflict. Its sort
 * key is the shard id behind a prefix (`s:`): shard ids may be any string, even empty (not a valid
 * key) or `-`. They share the partition key `<ns>|shards`, or with `progressPartitions` above 1
 * are spread over `<ns>|shards|<n>` by a hash of the shard id, so no partition key takes every
 * shard's writes; reading every shard's progress is one strongly consistent `Query` per partition
 * key, in parallel (a `Query` is charged by the size of all it returns). Tables written before kept every shard in the one item `-` (`b`: a
 * JSON object shard id → progress JSON); it is still read and merged in (every field forward
 * only), and a shard's first per-shard item starts from its entry there. Nothing writes it any more.
 */
import {
  BatchGetItemCommand,
  type BatchGetItemCommandOutput,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  type GetItemCommandOutput,
  PutItemCommand,
  QueryCommand,
  type QueryCommandOutput,
  ResourceInUseException,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { awsClientFields } from '@tributary/aws';
import { dynamoDbClient } from '@tributary/aws/dynamodb';
import {
  type BackoffPolicy,
  backoff,
  type ProgressOptions,
  register,
  type StoreDefinition,
  type StoredShardProgress,
  sleep,
} from '@tributary/core/spi';
import pLimit from 'p-limit';
import Type, { type Static } from 'typebox';
import {
  type ItemWrite,
  mergeProgress,
  progressFromJson,
  progressToJson,
  type StateBackend,
  type VersionedItem,
} from './backend.js';
import { StateConfigError, StateStoreError } from './errors.js';
import { textHash } from './hash.js';
import {
  checkWindowStateOptions,
  ItemStateStore,
  type WindowStateOptions,
  windowStateFields,
} from './ItemWindowStore.js';

/** DynamoDB's item limit is 400 KB including attribute names and the key; keep a margin. */
const MAX_ITEM_BYTES = 390_000;
/** Sort key prefix of a shard's progress item (`s:<shardId>`), and the legacy all-shards item. */
const SHARD_SK = 's:';
/**
 * The partition key of a shard's progress item: `<ns>|shards`, or with `partitions` above 1
 * `<ns>|shards|<n>` by a hash of the shard id, so that no partition key takes every shard's writes.
 */
function progressPartition(namespace: string, shardId: string, partitions: number): string {
  if (partitions === 1) return `${namespace}|shards`;
  return `${namespace}|shards|${textHash(shardId) % partitions}`;
}
const LEGACY_SK = '-';
/** Compare-and-set rounds for one shard's progress before giving up. */
const MAX_PROGRESS_ROUNDS = 50;
/** The wait after a conflicting progress write (round n from 0: up to 2^n ms, at most 200 ms). */
const PROGRESS_CONFLICT_BACKOFF: BackoffPolicy = { maxAttempts: MAX_PROGRESS_ROUNDS, baseDelay: 1, maxDelay: 200 };
/** The wait before each further `BatchGetItem` round for unprocessed keys (round n: up to 25 · 2^n ms, at most 1 s). */
const UNPROCESSED_KEYS_BACKOFF: BackoffPolicy = { maxAttempts: 12, baseDelay: 50, maxDelay: 1000 };
/** A progress update that only says the shard exists (nothing read from it, nothing ended or closed). */
function isRegistration(u: StoredShardProgress): boolean {
  return (
    u.maxEventTime === Number.NEGATIVE_INFINITY &&
    u.sourceWatermark === Number.NEGATIVE_INFINITY &&
    u.applied === undefined &&
    u.ended !== true &&
    !u.closed
  );
}

/** `Query` pages (1 MB each) read for a namespace's shard progress before giving up. */
const MAX_PROGRESS_PAGES = 1000;

/** A shard's progress item: its version (0: none yet) and body as stored. */
interface ShardItem {
  version: number;
  body: string;
  progress: StoredShardProgress | undefined;
}

export const dynamoDbStateSchema = Type.Object(
  {
    table: Type.String({ minLength: 3, maxLength: 255, pattern: '^[A-Za-z0-9_.-]+$', description: 'table name' }),
    ...awsClientFields,
    ...windowStateFields,
    concurrency: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 256, description: 'parallel writes per batch (default 16)' }),
    ),
    createTable: Type.Optional(
      Type.Boolean({ description: 'create the table (with TTL) if it does not exist (default false)' }),
    ),
    progressPartitions: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 64,
        description:
          'partition keys the shards’ progress items are spread over (default 1; 16 or more for hundreds of shards)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type DynamoDbStateSpec = Static<typeof dynamoDbStateSchema>;

export interface DynamoDbStateOptions extends WindowStateOptions {
  table: string;
  region?: string;
  endpoint?: string;
  /** Your own client (it is not closed by Tributary). */
  client?: DynamoDBClient;
  /** Parallel writes per batch (default 16). */
  concurrency?: number;
  /** Create the table if it does not exist (default false). */
  createTable?: boolean;
  /**
   * Partition keys the shards' progress items are spread over (default 1: one `Query` reads them
   * all). Every shard writes its progress after each batch: with hundreds of shards one partition
   * key would take more than DynamoDB's 1,000 WCU/s, so spread them (16 or more); a read then
   * costs one `Query` per partition key.
   */
  progressPartitions?: number;
}

declare module '@tributary/core' {
  interface StoreKinds {
    dynamodb: DynamoDbStateSpec;
  }
}

/** A DynamoDB client for `endpoint`/`region`: @tributary/aws's configuration (the store retries itself). */
export { dynamoDbClient };

/** The state table's keys (createStateTable and deploy templates use them both). */
export const STATE_TABLE_KEYS = {
  KeySchema: [
    { AttributeName: 'pk', KeyType: 'HASH' as const },
    { AttributeName: 'sk', KeyType: 'RANGE' as const },
  ],
  AttributeDefinitions: [
    { AttributeName: 'pk', AttributeType: 'S' as const },
    { AttributeName: 'sk', AttributeType: 'S' as const },
  ],
};

/** Creates the state table (pk/sk, on-demand, TTL on `ttl`) unless it exists; waits until it is active. */
export async function createStateTable(client: DynamoDBClient, table: string): Promise<'created' | 'exists'> {
  let result: 'created' | 'exists' = 'created';
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        ...STATE_TABLE_KEYS,
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
    result = 'exists';
  }
  for (let i = 0; i < 120; i++) {
    const d = await client.send(new DescribeTableCommand({ TableName: table }));
    if (d.Table?.TableStatus === 'ACTIVE') break;
    await sleep(500);
  }
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: table,
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      }),
    );
  } catch (err) {
    const name = (err as { name?: string }).name;
    // Already enabled, or an emulator without TTL (expired state then stays until deleted).
    if (name !== 'ValidationException' && name !== 'UnknownOperationException') throw err;
  }
  return result;
}

const seconds = (ms: number) => String(Math.ceil(ms / 1000));

export class DynamoDbBackend implements StateBackend {
  readonly summary: string;
  readonly maxItemBytes = MAX_ITEM_BYTES;
  calls = 0;
  private readonly limit: ReturnType<typeof pLimit>;
  private ready: Promise<unknown> | undefined;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
    private readonly owned: boolean,
    concurrency = 16,
    createTable = false,
    private readonly progressPartitions = 1,
  ) {
    this.summary = `dynamodb table ${table}`;
    this.limit = pLimit(concurrency);
    if (createTable) {
      this.ready = createStateTable(client, table);
      this.ready.catch(() => {}); // reported on first use
    }
  }

  private async send<T>(command: { readonly input: unknown }): Promise<T> {
    if (this.ready) await this.ready;
    this.calls++;
    return (await this.client.send(command as never)) as T;
  }

  /** An item id `<ns>|<start>|<end>|<n>` as its key (the item number after the last `|`). */
  private key(id: string): { pk: { S: string }; sk: { S: string } } {
    const cut = id.lastIndexOf('|');
    return { pk: { S: id.slice(0, cut) }, sk: { S: id.slice(cut + 1) } };
  }

  async read(ids: readonly string[]): Promise<Map<string, VersionedItem>> {
    const out = new Map<string, VersionedItem>();
    for (let i = 0; i < ids.length; i += 100) {
      let keys: Record<string, unknown>[] | undefined = ids.slice(i, i + 100).map((id) => this.key(id));
      for (let round = 0; keys && keys.length > 0; round++) {
        if (round >= 12)
          throw new StateStoreError(`${keys.length} key(s) still unprocessed after ${round} BatchGetItem rounds`);
        if (round > 0) await backoff(UNPROCESSED_KEYS_BACKOFF, round);
        const res = await this.send<BatchGetItemCommandOutput>(
          new BatchGetItemCommand({
            RequestItems: { [this.table]: { Keys: keys as never, ConsistentRead: true } },
          }),
        );
        for (const item of res.Responses?.[this.table] ?? []) {
          const id = `${item.pk?.S}|${item.sk?.S}`;
          out.set(id, { version: Number(item.v?.N), body: item.b?.S ?? '' });
        }
        keys = res.UnprocessedKeys?.[this.table]?.Keys as Record<string, unknown>[] | undefined;
      }
    }
    return out;
  }

  write(writes: readonly ItemWrite[]): Promise<boolean[]> {
    return Promise.all(writes.map((w) => this.limit(() => this.put(w))));
  }

  private async put(w: ItemWrite): Promise<boolean> {
    try {
      await this.send(
        new PutItemCommand({
          TableName: this.table,
          Item: {
            ...this.key(w.id),
            b: { S: w.body },
            v: { N: String(w.expected + 1) },
            ttl: { N: seconds(w.expiresAt) },
          },
          ConditionExpression: w.expected === 0 ? 'attribute_not_exists(pk)' : 'v = :v',
          ...(w.expected === 0 ? {} : { ExpressionAttributeValues: { ':v': { N: String(w.expected) } } }),
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async addRanges(namespace: string, ids: readonly string[]): Promise<void> {
    await this.send(
      new UpdateItemCommand({
        TableName: this.table,
        Key: { pk: { S: `${namespace}|ranges` }, sk: { S: '-' } },
        UpdateExpression: 'ADD r :r',
        ExpressionAttributeValues: { ':r': { SS: [...ids] } },
      }),
    );
  }

  async openRanges(namespace: string): Promise<{ ids: string[]; emittedUpTo: number }> {
    const res = await this.send<{ Item?: { r?: { SS?: string[] }; e?: { N?: string } } }>(
      new GetItemCommand({
        TableName: this.table,
        Key: { pk: { S: `${namespace}|ranges` }, sk: { S: '-' } },
        ConsistentRead: true,
      }),
    );
    const e = res.Item?.e?.N;
    return { ids: res.Item?.r?.SS ?? [], emittedUpTo: e === undefined ? Number.NEGATIVE_INFINITY : Number(e) };
  }

  async finishRange(namespace: string, id: string, end: number): Promise<void> {
    const Key = { pk: { S: `${namespace}|ranges` }, sk: { S: '-' } };
    try {
      await this.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key,
          UpdateExpression: 'DELETE r :r SET e = :e',
          ConditionExpression: 'attribute_not_exists(e) OR e < :e',
          ExpressionAttributeValues: { ':r': { SS: [id] }, ':e': { N: String(end) } },
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      // The mark is already higher: only forget the range.
      await this.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key,
          UpdateExpression: 'DELETE r :r',
          ExpressionAttributeValues: { ':r': { SS: [id] } },
        }),
      );
    }
  }

  /**
   * Every shard's progress is its own item (see the top of this file). The updates are written
   * first, each by compare-and-set on its shard's item, then every shard's progress is read with
   * one strongly consistent `Query`: of two consumers writing at once (both closing their
   * shards), the later one's read sees both writes. `progress(ns, [])` only reads; with
   * `read: false` nothing is read back (a batch's acknowledged position: every shard's progress
   * was read for the batch already, and reading it again per batch would double the read cost).
   */
  async progress(
    namespace: string,
    updates: readonly StoredShardProgress[],
    options?: ProgressOptions,
  ): Promise<StoredShardProgress[]> {
    const byShard = new Map<string, StoredShardProgress[]>();
    for (const u of updates) {
      const list = byShard.get(u.shardId);
      if (list) list.push(u);
      else byShard.set(u.shardId, [u]);
    }
    await Promise.all(
      [...byShard].map(([shardId, list]) =>
        this.limit(() =>
          // Registering a shard that this process knows nothing of (every process registers every
          // shard, all at start): created if absent, left as it is if not — no condition, so the
          // processes starting together do not conflict on the same items.
          list.every(isRegistration) && !this.shardItems.get(namespace)?.has(shardId)
            ? this.registerShard(namespace, shardId, list)
            : this.writeShard(namespace, shardId, list),
        ),
      ),
    );
    return options?.read === false ? [] : this.readShards(namespace);
  }

  /**
   * Shard progress items this process last wrote or read, per namespace and shard: a write
   * starts from them without reading the item first (a failed condition drops the entry).
   */
  private readonly shardItems = new Map<string, Map<string, ShardItem>>();

  private remember(namespace: string, shardId: string, item: ShardItem): void {
    let items = this.shardItems.get(namespace);
    if (!items) {
      items = new Map();
      this.shardItems.set(namespace, items);
    }
    const known = items.get(shardId);
    if (!known || known.version < item.version) items.set(shardId, item);
  }

  private forget(namespace: string, shardId: string, version: number): void {
    const items = this.shardItems.get(namespace);
    const known = items?.get(shardId);
    if (known && known.version <= version) items?.delete(shardId);
  }

  private shardKey(namespace: string, shardId: string): { pk: { S: string }; sk: { S: string } } {
    return {
      pk: { S: progressPartition(namespace, shardId, this.progressPartitions) },
      sk: { S: `${SHARD_SK}${shardId}` },
    };
  }

  /** Creates a shard's progress item holding only its registration, unless it exists (see progress). */
  private async registerShard(namespace: string, shardId: string, updates: StoredShardProgress[]): Promise<void> {
    let merged: StoredShardProgress | undefined;
    for (const u of updates) merged = mergeProgress(merged, u);
    if (!merged) return;
    await this.send(
      new UpdateItemCommand({
        TableName: this.table,
        Key: this.shardKey(namespace, shardId),
        UpdateExpression: 'SET b = if_not_exists(b, :b), v = if_not_exists(v, :one)',
        ExpressionAttributeValues: { ':b': { S: progressToJson(merged) }, ':one': { N: '1' } },
      }),
    );
  }

  /** Merges one shard's updates (in order) into its item, by compare-and-set on the item's version. */
  private async writeShard(namespace: string, shardId: string, updates: StoredShardProgress[]): Promise<void> {
    let cached = this.shardItems.get(namespace)?.get(shardId);
    for (let round = 1; ; round++) {
      const base = cached ?? (await this.readShard(namespace, shardId));
      let merged = base.progress;
      for (const u of updates) merged = mergeProgress(merged, u);
      if (!merged) return;
      const body = progressToJson(merged);
      if (base.progress !== undefined && body === base.body) {
        // Nothing new. Judged on the cache, that holds for every field but `ended`: another consumer
        // may have made the shard live again since (newer lastActivity), which an end undoes, so
        // an update that ends the shard is judged on the item itself.
        if (cached === undefined || !updates.some((u) => u.ended === true)) return;
        cached = undefined;
        continue;
      }
      const version = base.version;
      try {
        await this.send(
          new PutItemCommand({
            TableName: this.table,
            Item: { ...this.shardKey(namespace, shardId), b: { S: body }, v: { N: String(version + 1) } },
            ConditionExpression: version === 0 ? 'attribute_not_exists(pk)' : 'v = :v',
            ...(version === 0 ? {} : { ExpressionAttributeValues: { ':v': { N: String(version) } } }),
          }),
        );
        this.remember(namespace, shardId, { version: version + 1, body, progress: merged });
        return;
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        this.forget(namespace, shardId, version);
        cached = undefined;
        if (round >= MAX_PROGRESS_ROUNDS) {
          throw new StateStoreError(
            `progress of shard ${JSON.stringify(shardId)} in ${JSON.stringify(namespace)} kept changing under concurrent writers (${round} conditional writes failed)`,
            { cause: err },
          );
        }
        await backoff(PROGRESS_CONFLICT_BACKOFF, round + 1);
      }
    }
  }

  /** One shard's progress item, read strongly consistent; if it has none yet, its legacy entry (version 0). */
  private async readShard(namespace: string, shardId: string): Promise<ShardItem> {
    const res = await this.send<GetItemCommandOutput>(
      new GetItemCommand({ TableName: this.table, Key: this.shardKey(namespace, shardId), ConsistentRead: true }),
    );
    const body = res.Item?.b?.S;
    if (res.Item && body !== undefined) {
      const item = { version: Number(res.Item.v?.N), body, progress: progressFromJson(shardId, body) };
      this.remember(namespace, shardId, item);
      return item;
    }
    if (this.progressPartitions > 1) {
      // No item under its partition yet: start from what any earlier layout holds of the shard
      // (an item under `<ns>|shards`, the single legacy item), so nothing written before is lost.
      const before = (await this.readShards(namespace)).find((p) => p.shardId === shardId);
      return before === undefined
        ? { version: 0, body: '', progress: undefined }
        : { version: 0, body: progressToJson(before), progress: before };
    }
    const legacy = await this.send<GetItemCommandOutput>(
      new GetItemCommand({
        TableName: this.table,
        Key: { pk: { S: `${namespace}|shards` }, sk: { S: LEGACY_SK } },
        ConsistentRead: true,
      }),
    );
    const entries = JSON.parse(legacy.Item?.b?.S ?? '{}') as Record<string, string>;
    const text = Object.hasOwn(entries, shardId) ? entries[shardId] : undefined;
    return text === undefined
      ? { version: 0, body: '', progress: undefined }
      : { version: 0, body: text, progress: progressFromJson(shardId, text) };
  }

  /**
   * Every shard's progress in a namespace: one strongly consistent `Query` (paginated) per
   * progress partition, in parallel, and the previous layout's item merged in.
   */
  private async readShards(namespace: string): Promise<StoredShardProgress[]> {
    const out = new Map<string, StoredShardProgress>();
    let legacy: Record<string, string> | undefined;
    // The shards' items, and the previous layout's item under `<ns>|shards`.
    const n = this.progressPartitions;
    const pks = [
      `${namespace}|shards`,
      ...(n === 1 ? [] : Array.from({ length: n }, (_, i) => `${namespace}|shards|${i}`)),
    ];
    const pages = await Promise.all(pks.map((pk) => this.queryAll(pk)));
    for (const items of pages) {
      for (const item of items) {
        const sk = item.sk?.S ?? '';
        const body = item.b?.S;
        if (body === undefined) continue;
        if (sk === LEGACY_SK) legacy = JSON.parse(body) as Record<string, string>;
        else if (sk.startsWith(SHARD_SK)) {
          const shardId = sk.slice(SHARD_SK.length);
          const progress = progressFromJson(shardId, body);
          // A shard may have an item under `<ns>|shards` from before `progressPartitions` was
          // raised, and one under its partition now: both count, forward only.
          const seen = out.get(shardId);
          out.set(shardId, seen ? mergeProgress(seen, progress) : progress);
          if (item.pk?.S === this.shardKey(namespace, shardId).pk.S) {
            this.remember(namespace, shardId, { version: Number(item.v?.N), body, progress });
          }
        }
      }
    }
    // The previous layout's single item: each entry merged with the shard's own item, forward only.
    for (const [shardId, text] of Object.entries(legacy ?? {})) {
      const own = out.get(shardId);
      const old = progressFromJson(shardId, text);
      out.set(shardId, own ? mergeProgress(old, own) : old);
    }
    return [...out.values()];
  }

  /** Every item of one partition key (strongly consistent, paginated, bounded). */
  private async queryAll(pk: string): Promise<NonNullable<QueryCommandOutput['Items']>> {
    const items: NonNullable<QueryCommandOutput['Items']> = [];
    let from: QueryCommandOutput['LastEvaluatedKey'];
    for (let page = 1; ; page++) {
      const res: QueryCommandOutput = await this.send<QueryCommandOutput>(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': { S: pk } },
          ConsistentRead: true,
          ...(from ? { ExclusiveStartKey: from } : {}),
        }),
      );
      items.push(...(res.Items ?? []));
      from = res.LastEvaluatedKey;
      if (!from) return items;
      if (page >= MAX_PROGRESS_PAGES) {
        throw new StateStoreError(
          `shard progress under ${JSON.stringify(pk)} still had more after ${page} Query pages`,
        );
      }
    }
  }

  async claim(
    namespace: string,
    rangeId: string,
    claimant: string,
    now: number,
    expiredBefore: number,
    expiresAt: number,
  ): Promise<'won' | 'held' | 'done'> {
    const [start, end] = rangeId.split(':');
    const Key = { pk: { S: `${namespace}|${start}|${end}` }, sk: { S: 'claim' } };
    try {
      await this.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key,
          UpdateExpression: 'SET #by = :me, #at = :now, #ttl = :ttl',
          ConditionExpression: 'attribute_not_exists(#done) AND (attribute_not_exists(#by) OR #by = :me OR #at < :old)',
          ExpressionAttributeNames: { '#by': 'by', '#at': 'at', '#ttl': 'ttl', '#done': 'done' },
          ExpressionAttributeValues: {
            ':me': { S: claimant },
            ':now': { N: String(now) },
            ':old': { N: String(expiredBefore) },
            ':ttl': { N: seconds(expiresAt) },
          },
        }),
      );
      return 'won';
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
    const res = await this.send<{ Item?: Record<string, unknown> }>(
      new GetItemCommand({ TableName: this.table, Key, ConsistentRead: true }),
    );
    return res.Item?.done ? 'done' : 'held';
  }

  async claimed(namespace: string, rangeId: string): Promise<boolean> {
    const [start, end] = rangeId.split(':');
    const res = await this.send<{ Item?: Record<string, unknown> }>(
      new GetItemCommand({
        TableName: this.table,
        Key: { pk: { S: `${namespace}|${start}|${end}` }, sk: { S: 'claim' } },
        ConsistentRead: true,
      }),
    );
    return res.Item !== undefined;
  }

  async completeClaim(namespace: string, rangeId: string, expiresAt: number): Promise<void> {
    const [start, end] = rangeId.split(':');
    await this.send(
      new UpdateItemCommand({
        TableName: this.table,
        Key: { pk: { S: `${namespace}|${start}|${end}` }, sk: { S: 'claim' } },
        UpdateExpression: 'SET #done = :t, #ttl = :ttl',
        ExpressionAttributeNames: { '#done': 'done', '#ttl': 'ttl' },
        ExpressionAttributeValues: { ':t': { BOOL: true }, ':ttl': { N: seconds(expiresAt) } },
      }),
    );
  }

  async close(): Promise<void> {
    if (this.owned) this.client.destroy();
  }
}

/** Window state in DynamoDB: `window({ ..., state: dynamoDbState({ table: 'tributary-state' }) })`. */
export function dynamoDbState(options: DynamoDbStateOptions): ItemStateStore<DynamoDbBackend> {
  checkWindowStateOptions(options);
  if (typeof options.table !== 'string' || options.table.length < 3) {
    throw new StateConfigError(
      `Expected \`table\` to be a DynamoDB table name of 3 or more characters, got ${JSON.stringify(options.table)}`,
    );
  }
  const c = options.concurrency;
  if (c !== undefined && !(Number.isInteger(c) && c >= 1 && c <= 256)) {
    throw new StateConfigError(`Expected \`concurrency\` to be an integer from 1 to 256, got ${String(c)}`);
  }
  const pp = options.progressPartitions;
  if (pp !== undefined && !(Number.isInteger(pp) && pp >= 1 && pp <= 64)) {
    throw new StateConfigError(`Expected \`progressPartitions\` to be an integer from 1 to 64, got ${String(pp)}`);
  }
  const client = options.client ?? dynamoDbClient(options);
  return new ItemStateStore(
    new DynamoDbBackend(client, options.table, !options.client, c, options.createTable, pp),
    options,
  );
}

export const dynamodbStoreDefinition: StoreDefinition<DynamoDbStateSpec> = register({
  kind: 'dynamodb',
  category: 'store',
  module: '@tributary/state/dynamodb',
  schema: dynamoDbStateSchema,
  description:
    'Window state in a DynamoDB table (every window kind), shared by every process and Lambda invocation of the pipeline: one conditional write per window item touched by a batch, exactly once per (shard, sequence number); windows fed by several shards are emitted once, by the consumer that claims them. Create the table with `tributary state init` or `createTable: true`.',
  summary: (spec) => `dynamodb table ${spec.table}`,
  // What the store calls at run time; with `createTable`, also what creating the table calls
  // (otherwise that is `tributary state init`'s, run with the operator's credentials).
  permissions: (spec) => [
    {
      actions: [
        'dynamodb:BatchGetItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
        ...(spec.createTable ? ['dynamodb:CreateTable', 'dynamodb:DescribeTable', 'dynamodb:UpdateTimeToLive'] : []),
      ],
      resource: { type: 'dynamodb-table', name: spec.table },
    },
  ],
  create: (spec) => dynamoDbState(spec),
});
