/**
 * Window state in Redis (or ElastiCache for Redis / Valkey).
 *
 * Keys of a window step share the hash tag `{<prefix><ns>}`, so they live in one cluster slot
 * and a batch's commands pipeline together:
 *
 * | key                                   | type   | holds                                   |
 * |---------------------------------------|--------|-----------------------------------------|
 * | `{<prefix><ns>}\|<start>\|<end>\|<n>` | hash   | item n of a window range: `v`, `b`      |
 * | `{<prefix><ns>}\|<start>\|<end>\|claim` | hash | the emission claim: `by`, `at`, `done`  |
 * | `{<prefix><ns>}\|ranges`              | set    | open ranges                             |
 * | `{<prefix><ns>}\|shards`              | hash   | shard → progress JSON                   |
 *
 * Every check-and-write is a Lua script, loaded once and called with EVALSHA (ioredis falls back
 * to EVAL after a server restart flushed its scripts). Scripts validate their arguments before
 * their first write, since a Lua error part-way does not roll back. A batch's writes go out as
 * one pipeline: O(1) round trips per batch.
 */
import { register, type StoreDefinition, type StoredShardProgress, X_EXPECTED } from '@tributary/core';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import Type, { type Static } from 'typebox';
import { type ItemWrite, progressFromJson, progressToJson, type StateBackend, type VersionedItem } from './backend.js';
import { StateConfigError, StateStoreError } from './errors.js';
import {
  BackendStateStore,
  checkWindowStateOptions,
  type WindowStateOptions,
  windowStateFields,
} from './ItemWindowStore.js';

/** Compare-and-set of one item: KEYS[1]; ARGV: expected version, body, expire-at (epoch ms, 0 = none). */
const CAS = `
local expected = tonumber(ARGV[1])
local expireAt = tonumber(ARGV[3])
if expected == nil or expireAt == nil or type(ARGV[2]) ~= 'string' then
  return redis.error_reply('tributary cas: bad arguments')
end
local v = redis.call('HGET', KEYS[1], 'v')
if v == false then v = 0 else v = tonumber(v) end
if v ~= expected then return 0 end
redis.call('HSET', KEYS[1], 'v', expected + 1, 'b', ARGV[2])
if expireAt > 0 then redis.call('PEXPIREAT', KEYS[1], expireAt) end
return 1
`;

/**
 * Merges shard progress: KEYS[1] the shards hash; ARGV pairs of shard id and progress JSON.
 * Every field moves forward only; returns the whole hash.
 */
const PROGRESS = `
if #ARGV % 2 ~= 0 then return redis.error_reply('tributary progress: bad arguments') end
local updates = {}
for i = 1, #ARGV, 2 do
  local ok, p = pcall(cjson.decode, ARGV[i + 1])
  if not ok or type(p) ~= 'table' then return redis.error_reply('tributary progress: bad progress JSON') end
  updates[#updates + 1] = { ARGV[i], p }
end
local function fwd(a, b)
  if a == nil or a == cjson.null then return b end
  if b == nil or b == cjson.null then return a end
  if b > a then return b end
  return a
end
for _, u in ipairs(updates) do
  local cur = redis.call('HGET', KEYS[1], u[1])
  local p = u[2]
  if cur then
    local c = cjson.decode(cur)
    p = { m = fwd(c.m, p.m), w = fwd(c.w, p.w), a = fwd(c.a, p.a), c = (c.c == true) or (p.c == true) }
  end
  redis.call('HSET', KEYS[1], u[1], cjson.encode(p))
end
return redis.call('HGETALL', KEYS[1])
`;

/** Forgets an emitted range: KEYS[1] the open set, KEYS[2] the emitted-up-to mark; ARGV: range id, its end. */
const FINISH = `
local e = tonumber(ARGV[2])
if e == nil or type(ARGV[1]) ~= 'string' then return redis.error_reply('tributary finish: bad arguments') end
redis.call('SREM', KEYS[1], ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[2]) or '')
if cur == nil or cur < e then redis.call('SET', KEYS[2], ARGV[2]) end
return 1
`;

/** Claims an emission: KEYS[1] the claim hash; ARGV: claimant, now, expired-before, expire-at. */
const CLAIM = `
local now = tonumber(ARGV[2])
local old = tonumber(ARGV[3])
local expireAt = tonumber(ARGV[4])
if now == nil or old == nil or expireAt == nil or type(ARGV[1]) ~= 'string' then
  return redis.error_reply('tributary claim: bad arguments')
end
if redis.call('HGET', KEYS[1], 'done') then return 'done' end
local by = redis.call('HGET', KEYS[1], 'by')
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if by and by ~= ARGV[1] and at >= old then return 'held' end
redis.call('HSET', KEYS[1], 'by', ARGV[1], 'at', now)
redis.call('PEXPIREAT', KEYS[1], expireAt)
return 'won'
`;

export const redisStateSchema = Type.Object(
  {
    url: Type.Optional(
      Type.String({ minLength: 1, description: 'redis://[user:password@]host:port[/db] (or rediss://)' }),
    ),
    cluster: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description: 'cluster seed nodes as host:port (instead of url)',
      }),
    ),
    keyPrefix: Type.Optional(Type.String({ description: 'prefix of every key (default "tributary:")' })),
    ...windowStateFields,
  },
  {
    additionalProperties: false,
    oneOf: [{ required: ['url'] }, { required: ['cluster'] }],
    [X_EXPECTED]: 'either `url` or `cluster` (not both)',
  },
);
export type RedisStateSpec = Static<typeof redisStateSchema>;

export interface RedisStateOptions extends WindowStateOptions {
  url?: string;
  cluster?: string[];
  keyPrefix?: string;
  /** Your own ioredis client or cluster (it is not closed by Tributary). */
  client?: Redis | Cluster;
  /** Largest item body in bytes (default 4 MB; Redis allows 512 MB, but big values block the server). */
  maxItemBytes?: number;
}

declare module '@tributary/core' {
  interface StoreKinds {
    redis: RedisStateSpec;
  }
}

type Client = Redis | Cluster;
type Scripted = Client & {
  tributaryCas(key: string, expected: number, body: string, expireAt: number): Promise<number>;
  tributaryProgress(key: string, ...args: string[]): Promise<string[]>;
  tributaryClaim(key: string, claimant: string, now: number, old: number, expireAt: number): Promise<string>;
  tributaryFinish(set: string, mark: string, id: string, end: number): Promise<number>;
};

const CLIENT_OPTIONS: RedisOptions = {
  // Connect on first use: validating or describing a pipeline opens no connection.
  lazyConnect: true,
  // Fail commands while disconnected after one reconnect attempt, so the store's own retries
  // (with backoff) decide, and a store that stays down fails the batch instead of hanging.
  maxRetriesPerRequest: 1,
  retryStrategy: (times) => Math.min(50 * 2 ** times, 1000),
};

export class RedisBackend implements StateBackend {
  readonly summary: string;
  readonly maxItemBytes: number;
  calls = 0;
  private readonly client: Scripted;

  constructor(
    client: Client,
    private readonly prefix: string,
    private readonly owned: boolean,
    summary: string,
    maxItemBytes = 4_000_000,
  ) {
    this.summary = summary;
    this.maxItemBytes = maxItemBytes;
    // Connection errors also reach the commands that hit them (and are retried there); without a
    // listener ioredis would print each reconnect failure as an unhandled error event.
    if (owned) client.on('error', () => {});
    client.defineCommand('tributaryCas', { numberOfKeys: 1, lua: CAS });
    client.defineCommand('tributaryProgress', { numberOfKeys: 1, lua: PROGRESS });
    client.defineCommand('tributaryClaim', { numberOfKeys: 1, lua: CLAIM });
    client.defineCommand('tributaryFinish', { numberOfKeys: 2, lua: FINISH });
    this.client = client as Scripted;
  }

  private tag(namespace: string): string {
    return `{${this.prefix}${namespace}}`;
  }

  /** An item id `<ns>|<start>|<end>|<n>` as a key. */
  private keyOf(id: string): string {
    const cut = id.indexOf('|');
    return `${this.tag(id.slice(0, cut))}${id.slice(cut)}`;
  }

  private async run<T>(pipeline: ReturnType<Client['pipeline']>): Promise<T[]> {
    this.calls++;
    const results = (await pipeline.exec()) ?? [];
    return results.map(([err, value]) => {
      if (err) throw err;
      return value as T;
    });
  }

  async read(ids: readonly string[]): Promise<Map<string, VersionedItem>> {
    const p = this.client.pipeline();
    for (const id of ids) p.hmget(this.keyOf(id), 'v', 'b');
    const rows = await this.run<[string | null, string | null]>(p);
    const out = new Map<string, VersionedItem>();
    rows.forEach(([v, b], i) => {
      if (v !== null && b !== null) out.set(ids[i] as string, { version: Number(v), body: b });
    });
    return out;
  }

  async write(writes: readonly ItemWrite[]): Promise<boolean[]> {
    if (writes.length === 0) return [];
    const p = this.client.pipeline() as ReturnType<Client['pipeline']> & {
      tributaryCas(key: string, expected: number, body: string, expireAt: number): unknown;
    };
    for (const w of writes) p.tributaryCas(this.keyOf(w.id), w.expected, w.body, Math.ceil(w.expiresAt));
    const results = await this.run<number>(p);
    return results.map((r) => r === 1);
  }

  async addRanges(namespace: string, ids: readonly string[]): Promise<void> {
    this.calls++;
    await this.client.sadd(`${this.tag(namespace)}|ranges`, ...ids);
  }

  async openRanges(namespace: string): Promise<{ ids: string[]; emittedUpTo: number }> {
    const tag = this.tag(namespace);
    const [ids, e] = await this.run<unknown>(this.client.pipeline().smembers(`${tag}|ranges`).get(`${tag}|emitted`));
    return { ids: ids as string[], emittedUpTo: e === null ? Number.NEGATIVE_INFINITY : Number(e) };
  }

  async finishRange(namespace: string, id: string, end: number): Promise<void> {
    this.calls++;
    const tag = this.tag(namespace);
    await this.client.tributaryFinish(`${tag}|ranges`, `${tag}|emitted`, id, end);
  }

  async progress(namespace: string, updates: readonly StoredShardProgress[]): Promise<StoredShardProgress[]> {
    this.calls++;
    const args = updates.flatMap((u) => [u.shardId, progressToJson(u)]);
    const flat = await this.client.tributaryProgress(`${this.tag(namespace)}|shards`, ...args);
    const out: StoredShardProgress[] = [];
    for (let i = 0; i < flat.length; i += 2) out.push(progressFromJson(flat[i] as string, flat[i + 1] as string));
    return out;
  }

  async claim(
    namespace: string,
    rangeId: string,
    claimant: string,
    now: number,
    expiredBefore: number,
    expiresAt: number,
  ): Promise<'won' | 'held' | 'done'> {
    this.calls++;
    const [start, end] = rangeId.split(':');
    const r = await this.client.tributaryClaim(
      `${this.tag(namespace)}|${start}|${end}|claim`,
      claimant,
      now,
      expiredBefore,
      Math.ceil(expiresAt),
    );
    if (r !== 'won' && r !== 'held' && r !== 'done') throw new StateStoreError(`unexpected claim answer ${r}`);
    return r;
  }

  async completeClaim(namespace: string, rangeId: string, expiresAt: number): Promise<void> {
    this.calls++;
    const [start, end] = rangeId.split(':');
    const key = `${this.tag(namespace)}|${start}|${end}|claim`;
    const results = await this.client.multi().hset(key, 'done', '1').pexpireat(key, Math.ceil(expiresAt)).exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('completing a claim: transaction discarded');
  }

  async close(): Promise<void> {
    if (this.owned) this.client.disconnect();
  }
}

function connect(options: RedisStateOptions): { client: Client; summary: string } {
  if (options.cluster) {
    const nodes = options.cluster.map((n) => {
      const [host, port] = n.split(':');
      return { host: host as string, port: Number(port ?? 6379) };
    });
    return {
      client: new Cluster(nodes, {
        lazyConnect: true,
        redisOptions: CLIENT_OPTIONS,
        // Give up reconnecting after a while, so commands fail (and the batch is retried) rather than wait forever.
        clusterRetryStrategy: (times) => (times > 10 ? null : Math.min(100 * times, 2000)),
      }),
      summary: `redis cluster ${options.cluster.join(',')}`,
    };
  }
  const url = options.url as string;
  const where = url.replace(/\/\/[^@/]*@/, '//');
  return { client: new Redis(url, CLIENT_OPTIONS), summary: `redis ${where}` };
}

/** Window state in Redis: `window({ ..., state: redisState({ url: 'redis://localhost:6379' }) })`. */
export function redisState(options: RedisStateOptions): BackendStateStore<RedisBackend> {
  checkWindowStateOptions(options);
  const given = [options.url, options.cluster, options.client].filter((x) => x !== undefined).length;
  if (given !== 1) {
    throw new StateConfigError('Expected exactly one of `url`, `cluster` or `client` for the redis state store');
  }
  if (options.url !== undefined && !/^rediss?:\/\//.test(options.url)) {
    throw new StateConfigError(`Expected \`url\` to start with redis:// or rediss://, got ${options.url}`);
  }
  const { client, summary } = options.client
    ? { client: options.client, summary: 'redis (client supplied)' }
    : connect(options);
  const backend = new RedisBackend(
    client,
    options.keyPrefix ?? 'tributary:',
    !options.client,
    summary,
    options.maxItemBytes,
  );
  return new BackendStateStore(backend, options);
}

export const redisStore: StoreDefinition<RedisStateSpec> = register({
  kind: 'redis',
  category: 'store',
  schema: redisStateSchema,
  description:
    'Window state in Redis or ElastiCache (tumbling and hopping windows), shared by every process and Lambda invocation of the pipeline: each batch is one pipelined round trip of Lua compare-and-set scripts (EVALSHA), exactly once per (shard, sequence number); windows fed by several shards are emitted once, by the consumer that claims them. Use persistence (AOF) so acknowledged state survives a restart.',
  summary: (spec) => (spec.url ? `redis ${spec.url.replace(/\/\/[^@/]*@/, '//')}` : `redis cluster`),
  create: (spec) => redisState(spec),
});
