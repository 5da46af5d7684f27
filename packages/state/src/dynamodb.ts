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
 * | `<ns>\|shards`              | `-`         | every shard's progress (`b` JSON, `v` version)   |
 *
 * Writes are conditional `PutItem`s (`attribute_not_exists(pk) OR v = :v`); a failed condition
 * is an answer (the version moved), not an error. No `TransactWriteItems` is used. Writes of a
 * batch run in parallel, at most `concurrency` at a time; reads use `BatchGetItem` (100 keys per
 * call, `UnprocessedKeys` retried), strongly consistent.
 */
import {
  BatchGetItemCommand,
  type BatchGetItemCommandOutput,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
  GetItemCommand,
  PutItemCommand,
  ResourceInUseException,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { register, type StoreDefinition, type StoredShardProgress } from '@tributary/core';
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
import { StateConfigError } from './errors.js';
import {
  BackendStateStore,
  checkWindowStateOptions,
  type WindowStateOptions,
  windowStateFields,
} from './ItemWindowStore.js';

/** DynamoDB's item limit is 400 KB including attribute names and the key; keep a margin. */
const MAX_ITEM_BYTES = 390_000;

export const dynamoDbStateSchema = Type.Object(
  {
    table: Type.String({ minLength: 3, maxLength: 255, pattern: '^[A-Za-z0-9_.-]+$', description: 'table name' }),
    region: Type.Optional(Type.String({ minLength: 1, description: 'AWS region (default: from the environment)' })),
    endpoint: Type.Optional(Type.String({ minLength: 1, description: 'endpoint URL (e.g. a local emulator)' })),
    ...windowStateFields,
    concurrency: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 256, description: 'parallel writes per batch (default 16)' }),
    ),
    createTable: Type.Optional(
      Type.Boolean({ description: 'create the table (with TTL) if it does not exist (default false)' }),
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
}

declare module '@tributary/core' {
  interface StoreKinds {
    dynamodb: DynamoDbStateSpec;
  }
}

/** A DynamoDB client for `endpoint`/`region` with the HTTP/1.1 handler (emulators need it). */
export function dynamoDbClient(options: { region?: string; endpoint?: string }): DynamoDBClient {
  const config: DynamoDBClientConfig = { requestHandler: new NodeHttpHandler(), maxAttempts: 1 };
  if (options.region) config.region = options.region;
  if (options.endpoint) {
    config.endpoint = options.endpoint;
    config.region ??= 'us-east-1';
    // Local emulators accept any credentials; AWS itself uses the default provider chain.
    if (!process.env.AWS_ACCESS_KEY_ID) config.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  }
  return new DynamoDBClient(config);
}

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
    await new Promise((r) => setTimeout(r, 500));
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
        if (round >= 12) throw new Error(`${keys.length} key(s) still unprocessed after ${round} BatchGetItem rounds`);
        if (round > 0) await new Promise((r) => setTimeout(r, Math.random() * Math.min(1000, 25 * 2 ** round)));
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
   * All shards' progress is one item (`<ns>|shards`, `-`), changed by compare-and-set: a writer
   * always sees every write that came before it (two consumers closing their shards at once:
   * the second sees both closed).
   */
  async progress(namespace: string, updates: readonly StoredShardProgress[]): Promise<StoredShardProgress[]> {
    const Key = { pk: { S: `${namespace}|shards` }, sk: { S: '-' } };
    for (let round = 0; ; round++) {
      const res = await this.send<{ Item?: Record<string, { S?: string; N?: string }> }>(
        new GetItemCommand({ TableName: this.table, Key, ConsistentRead: true }),
      );
      const version = Number(res.Item?.v?.N ?? 0);
      const stored = new Map<string, StoredShardProgress>();
      for (const [shardId, text] of Object.entries(JSON.parse(res.Item?.b?.S ?? '{}') as Record<string, string>)) {
        stored.set(shardId, progressFromJson(shardId, text));
      }
      let changed = false;
      for (const u of updates) {
        const cur = stored.get(u.shardId);
        const merged = mergeProgress(cur, u);
        if (cur && progressToJson(merged) === progressToJson(cur)) continue;
        stored.set(u.shardId, merged);
        changed = true;
      }
      if (!changed) return [...stored.values()];
      const body = JSON.stringify(Object.fromEntries([...stored].map(([id, p]) => [id, progressToJson(p)])));
      try {
        await this.send(
          new PutItemCommand({
            TableName: this.table,
            Item: { ...Key, b: { S: body }, v: { N: String(version + 1) } },
            ConditionExpression: version === 0 ? 'attribute_not_exists(pk)' : 'v = :v',
            ...(version === 0 ? {} : { ExpressionAttributeValues: { ':v': { N: String(version) } } }),
          }),
        );
        return [...stored.values()];
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        if (round >= 50) throw new Error('shard progress kept changing under concurrent writers');
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
export function dynamoDbState(options: DynamoDbStateOptions): BackendStateStore<DynamoDbBackend> {
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
  const client = options.client ?? dynamoDbClient(options);
  return new BackendStateStore(
    new DynamoDbBackend(client, options.table, !options.client, c, options.createTable),
    options,
  );
}

export const dynamoDbStore: StoreDefinition<DynamoDbStateSpec> = register({
  kind: 'dynamodb',
  category: 'store',
  schema: dynamoDbStateSchema,
  description:
    'Window state in a DynamoDB table (tumbling and hopping windows), shared by every process and Lambda invocation of the pipeline: one conditional write per window item touched by a batch, exactly once per (shard, sequence number); windows fed by several shards are emitted once, by the consumer that claims them. Create the table with `tributary state init` or `createTable: true`.',
  summary: (spec) => `dynamodb table ${spec.table}`,
  create: (spec) => dynamoDbState(spec),
});
