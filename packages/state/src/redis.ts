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
 * | `{<prefix><ns>}\|emitted`             | string | highest end of a range emitted so far   |
 * | `{<prefix><ns>}\|shards`              | hash   | shard → progress JSON                   |
 * | `{<prefix><ns>}\|epoch`               | string | the namespace's epoch marker (no TTL)   |
 *
 * Every check-and-write is a Lua script, loaded once and called with EVALSHA (ioredis falls back
 * to EVAL after a server restart flushed its scripts). Scripts validate their arguments before
 * their first write, since a Lua error part-way does not roll back. A batch's writes go out as
 * one pipeline: O(1) round trips per batch.
 *
 * Lost state. A Redis server that restarts without its data (no AOF or RDB: a replaced
 * ElastiCache node, a restarted container) or is flushed (`FLUSHALL`) looks, to a compare-and-set
 * on versions, like a namespace nobody has written yet: windows in flight would start again from
 * empty and watermarks from −∞, and wrong windows would be emitted without a sign. So each
 * namespace has an epoch marker, a random id in `{<prefix><ns>}|epoch`. The first time a process
 * touches a namespace (read or write), it creates the marker if there is none (`SET NX`, in a
 * script) and remembers the id it found or created; every script that writes first checks that
 * the marker still holds that id, and otherwise writes nothing and answers `tributary: state
 * lost`, which fails the batch with a {@link StateStoreError} that is not retried. The marker has
 * no TTL, so it outlives every other key of the namespace (under a `volatile-*` eviction policy it
 * is never evicted; under `allkeys-*` the window state itself could be evicted, so do not use one).
 * Loss is detected by the processes that saw the old state: a process started after the loss has
 * no memory of the old epoch, creates a new marker and starts from empty — acceptable, as a
 * restart is also how one starts over deliberately, but the windows in flight are then gone.
 *
 * ElastiCache: a `rediss://` URL connects over TLS (`tls` sets the CA to trust and the name to
 * expect), and the AUTH token comes from an environment variable (`authTokenEnv`), a Secrets
 * Manager secret (`authTokenSecret`, read once, before the first command) or the URL. A refused
 * token or a certificate that does not verify fails the batch at once with a
 * {@link StateStoreError} saying so — not retried, never naming the token. A Lambda function
 * reaches ElastiCache only inside its VPC.
 */
import { randomUUID } from 'node:crypto';
import type { AwsClientOptions } from '@tributary/aws';
import {
  type RedisAuth,
  type RedisConnectionError,
  redisConnection,
  redisConnectionFields,
  watchRedisConnection,
} from '@tributary/aws/redis';
import { isTransient, register, type StoreDefinition, type StoredShardProgress, X_EXPECTED } from '@tributary/core/spi';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import Type, { type Static } from 'typebox';
import { type ItemWrite, progressFromJson, progressToJson, type StateBackend, type VersionedItem } from './backend.js';
import { StateConfigError, StateStoreError } from './errors.js';
import {
  checkWindowStateOptions,
  ItemStateStore,
  type WindowStateOptions,
  windowStateFields,
} from './ItemWindowStore.js';

/** The start of every script's error reply when the epoch marker is missing or has changed. */
const LOST = 'tributary: state lost';

/**
 * Creates the epoch marker if there is none: KEYS[1] the marker; ARGV[1] a new id. Returns the
 * id the marker holds (the new one, or the one already there).
 */
const EPOCH = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`;

/**
 * The start of every writing script: KEYS[1] is the namespace's epoch marker and ARGV[1] the id
 * this process found there; a missing or other marker means the state was lost, so nothing is
 * written.
 */
const GUARD = `
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then
  if epoch then return redis.error_reply('${LOST}: epoch marker now holds ' .. epoch) end
  return redis.error_reply('${LOST}: epoch marker missing')
end
`;

/** Compare-and-set of one item: KEYS[2] the item; ARGV[2..4]: expected version, body, expire-at (epoch ms, 0 = none). */
const CAS = `${GUARD}
local expected = tonumber(ARGV[2])
local expireAt = tonumber(ARGV[4])
if expected == nil or expireAt == nil or type(ARGV[3]) ~= 'string' then
  return redis.error_reply('tributary cas: bad arguments')
end
local v = redis.call('HGET', KEYS[2], 'v')
if v == false then v = 0 else v = tonumber(v) end
if v ~= expected then return 0 end
redis.call('HSET', KEYS[2], 'v', expected + 1, 'b', ARGV[3])
if expireAt > 0 then redis.call('PEXPIREAT', KEYS[2], expireAt) end
return 1
`;

/**
 * Merges shard progress: KEYS[2] the shards hash; ARGV[2..] pairs of shard id and progress JSON.
 * Every field moves forward only; returns the whole hash.
 */
const PROGRESS = `${GUARD}
if #ARGV % 2 ~= 1 then return redis.error_reply('tributary progress: bad arguments') end
local updates = {}
for i = 2, #ARGV, 2 do
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
local function num(x) if x == nil or x == cjson.null then return nil end return x end
-- Positions 'sequence' or 'sequence:sub' (decimal text): the later of two.
local function later(a, b)
  if type(a) ~= 'string' then return b end
  if type(b) ~= 'string' then return a end
  local sa, ua = string.match(a, '^([^:]*):?(.*)$')
  local sb, ub = string.match(b, '^([^:]*):?(.*)$')
  if #sa ~= #sb then if #sb > #sa then return b end return a end
  if sa ~= sb then if sb > sa then return b end return a end
  local na = tonumber(ua) or -1
  local nb = tonumber(ub) or -1
  if nb > na then return b end
  return a
end
for _, u in ipairs(updates) do
  local cur = redis.call('HGET', KEYS[2], u[1])
  local p = u[2]
  if cur then
    local c = cjson.decode(cur)
    -- Ended by a flush; live again once a consumer registers it or reads from it again.
    local newer = num(p.a) ~= nil and (num(c.a) == nil or num(p.a) > num(c.a))
    local ended = (p.e == true) or (c.e == true and not newer)
    local merged = { m = fwd(c.m, p.m), w = fwd(c.w, p.w), a = fwd(c.a, p.a), c = (c.c == true) or (p.c == true) }
    local applied = later(c.p, p.p)
    if applied ~= nil then merged.p = applied end
    if ended then merged.e = true end
    p = merged
  end
  redis.call('HSET', KEYS[2], u[1], cjson.encode(p))
end
return redis.call('HGETALL', KEYS[2])
`;

/** Records open ranges: KEYS[2] the open set; ARGV[2..]: range ids. */
const RANGES = `${GUARD}
if #ARGV < 2 then return redis.error_reply('tributary ranges: bad arguments') end
for i = 2, #ARGV, 1000 do redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV))) end
return 1
`;

/** Forgets an emitted range: KEYS[2] the open set, KEYS[3] the emitted-up-to mark; ARGV[2..3]: range id, its end. */
const FINISH = `${GUARD}
local e = tonumber(ARGV[3])
if e == nil or type(ARGV[2]) ~= 'string' then return redis.error_reply('tributary finish: bad arguments') end
redis.call('SREM', KEYS[2], ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[3]) or '')
if cur == nil or cur < e then redis.call('SET', KEYS[3], ARGV[3]) end
return 1
`;

/** Claims an emission: KEYS[2] the claim hash; ARGV[2..5]: claimant, now, expired-before, expire-at. */
const CLAIM = `${GUARD}
local now = tonumber(ARGV[3])
local old = tonumber(ARGV[4])
local expireAt = tonumber(ARGV[5])
if now == nil or old == nil or expireAt == nil or type(ARGV[2]) ~= 'string' then
  return redis.error_reply('tributary claim: bad arguments')
end
if redis.call('HGET', KEYS[2], 'done') then return 'done' end
local by = redis.call('HGET', KEYS[2], 'by')
local at = tonumber(redis.call('HGET', KEYS[2], 'at') or '0')
if by and by ~= ARGV[2] and at >= old then return 'held' end
redis.call('HSET', KEYS[2], 'by', ARGV[2], 'at', now)
redis.call('PEXPIREAT', KEYS[2], expireAt)
return 'won'
`;

/** Marks a claim as emitted for good: KEYS[2] the claim hash; ARGV[2]: expire-at. */
const COMPLETE = `${GUARD}
local expireAt = tonumber(ARGV[2])
if expireAt == nil then return redis.error_reply('tributary complete: bad arguments') end
redis.call('HSET', KEYS[2], 'done', '1')
redis.call('PEXPIREAT', KEYS[2], expireAt)
return 1
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
    ...redisConnectionFields,
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
  /** TLS settings (a `rediss://` URL turns TLS on): the CA to trust, a PEM file or its text; whether to refuse an unverified server (default true); the name to expect. */
  tls?: { ca?: string; rejectUnauthorized?: boolean; servername?: string };
  /** An environment variable holding the AUTH token. */
  authTokenEnv?: string;
  /** Name or ARN of a Secrets Manager secret holding the AUTH token (read once, before the first command). */
  authTokenSecret?: string;
  /** Where a relative `tls.ca` path is resolved (default: the working directory; YAML: the pipeline file's folder). */
  baseDir?: string;
  /** The Secrets Manager client's region and endpoint (default: from the environment). */
  secretsManager?: AwsClientOptions;
}

declare module '@tributary/core' {
  interface StoreKinds {
    redis: RedisStateSpec;
  }
}

type Client = Redis | Cluster;
type Scripted = Client & {
  tributaryEpoch(marker: string, id: string): Promise<string>;
  tributaryProgress(marker: string, key: string, epoch: string, ...args: string[]): Promise<string[]>;
  tributaryRanges(marker: string, set: string, epoch: string, ...ids: string[]): Promise<number>;
  tributaryClaim(
    marker: string,
    key: string,
    epoch: string,
    claimant: string,
    now: number,
    old: number,
    expireAt: number,
  ): Promise<string>;
  tributaryFinish(marker: string, set: string, mark: string, epoch: string, id: string, end: number): Promise<number>;
  tributaryComplete(marker: string, key: string, epoch: string, expireAt: number): Promise<number>;
};

const CLIENT_OPTIONS: RedisOptions = {
  // Connect on first use: validating or describing a pipeline opens no connection.
  lazyConnect: true,
  // Fail commands while disconnected after one reconnect attempt, so the store's own retries
  // (with backoff) decide, and a store that stays down fails the batch instead of hanging.
  maxRetriesPerRequest: 1,
  retryStrategy: (times) => Math.min(50 * 2 ** times, 1000),
};

/** How an owned client connects beyond its options: the token from a secret, read before the first command. */
export interface RedisBackendConnection {
  auth?: () => Promise<RedisAuth>;
}

export class RedisBackend implements StateBackend {
  readonly summary: string;
  readonly maxItemBytes: number;
  calls = 0;
  private readonly client: Scripted;
  /** Per namespace, the id its epoch marker held when this process first touched it. */
  private readonly epochs = new Map<string, Promise<string>>();
  /** A refused AUTH or an unverified certificate as a permanent error (see watchRedisConnection). */
  private readonly explain: (err: unknown) => RedisConnectionError | undefined;
  /** Resolves once the AUTH token of a secret is in the client's options (at once without one). */
  private authorised: Promise<void> | undefined;

  constructor(
    client: Client,
    private readonly prefix: string,
    private readonly owned: boolean,
    summary: string,
    maxItemBytes = 4_000_000,
    private readonly connection: RedisBackendConnection = {},
  ) {
    this.summary = summary;
    this.maxItemBytes = maxItemBytes;
    // Connection errors also reach the commands that hit them (and are retried there, unless
    // they are permanent: see explain).
    this.explain = owned ? watchRedisConnection(client, this.summary) : () => undefined;
    client.defineCommand('tributaryEpoch', { numberOfKeys: 1, lua: EPOCH });
    client.defineCommand('tributaryCas', { numberOfKeys: 2, lua: CAS });
    client.defineCommand('tributaryProgress', { numberOfKeys: 2, lua: PROGRESS });
    client.defineCommand('tributaryRanges', { numberOfKeys: 2, lua: RANGES });
    client.defineCommand('tributaryClaim', { numberOfKeys: 2, lua: CLAIM });
    client.defineCommand('tributaryFinish', { numberOfKeys: 3, lua: FINISH });
    client.defineCommand('tributaryComplete', { numberOfKeys: 2, lua: COMPLETE });
    this.client = client as Scripted;
  }

  /**
   * Before the first command: the token of `authTokenSecret`, read once, set where the client
   * takes it when it connects (the client connects on its first command). A failed read is
   * forgotten, so that the retry of the call reads again.
   */
  private ready(): Promise<void> {
    const auth = this.connection.auth;
    if (!auth) return Promise.resolve();
    this.authorised ??= auth().then(({ password, username }) => {
      // Only a standalone client is given a secret's token (see connect): it reads its options when it connects.
      const options = (this.client as Redis).options;
      options.password = password;
      if (username !== undefined) options.username = username;
    });
    this.authorised.catch(() => {
      this.authorised = undefined;
    });
    return this.authorised;
  }

  private tag(namespace: string): string {
    return `{${this.prefix}${namespace}}`;
  }

  private marker(namespace: string): string {
    return `${this.tag(namespace)}|epoch`;
  }

  /** The namespace of an item id `<ns>|<start>|<end>|<n>` (a namespace holds no `|`). */
  private namespaceOf(id: string): string {
    return id.slice(0, id.indexOf('|'));
  }

  /** An item id `<ns>|<start>|<end>|<n>` as a key. */
  private keyOf(id: string): string {
    const cut = id.indexOf('|');
    return `${this.tag(id.slice(0, cut))}${id.slice(cut)}`;
  }

  /**
   * The namespace's epoch: on the first call, the marker is created if there is none (a brand-new
   * namespace, or state written before markers existed) and the id it holds is kept for good.
   */
  private epoch(namespace: string): Promise<string> {
    const known = this.epochs.get(namespace);
    if (known) return known;
    this.calls++;
    const found = this.ready()
      .then(() => this.client.tributaryEpoch(this.marker(namespace), randomUUID()))
      .catch((err: unknown) => {
        throw this.explain(err) ?? err;
      });
    this.epochs.set(namespace, found);
    // A failed attempt (the server is down) is forgotten, so that the retry of the call asks again.
    found.catch(() => {
      if (this.epochs.get(namespace) === found) this.epochs.delete(namespace);
    });
    return found;
  }

  /** The server, for messages: `Redis at 127.0.0.1:6379`. */
  private server(): string {
    const c = this.client;
    if (c.isCluster) {
      const nodes = (c as Cluster).nodes('master').map((n) => `${n.options.host}:${n.options.port}`);
      return nodes.length > 0 ? `Redis cluster ${nodes.join(',')}` : this.summary;
    }
    const o = (c as Redis).options;
    return `Redis at ${o.path ? o.path : `${o.host}:${o.port}`}`;
  }

  /** A script's lost-state reply as a {@link StateStoreError} saying what happened and what to do; other errors as they are. */
  private translate(err: unknown, namespace: string): unknown {
    const connection = this.explain(err);
    if (connection) return connection;
    const reply = (err as { message?: unknown } | null)?.message;
    if (typeof reply !== 'string' || !reply.startsWith(LOST)) return err;
    const marker = this.marker(namespace);
    const replaced = reply.includes('now holds');
    const how = replaced
      ? `its epoch marker ${marker} now holds another id, set by a process that started after the loss`
      : `its epoch marker ${marker} is gone`;
    const anew = replaced
      ? 'a restarted process adopts the marker as it is now and goes on from what was stored since'
      : 'a restarted process creates the marker anew and starts from empty';
    return new StateStoreError(
      `${this.server()} lost the window state of namespace ${namespace} (the server restarted without persistence, or was flushed: ${how}): ` +
        'windows in flight cannot be completed exactly, so this process writes nothing more there and fails its batches until it is restarted. ' +
        'Enable AOF persistence (`appendonly yes`; ElastiCache offers no AOF: use a replication group with Multi-AZ) so that state survives a restart. ' +
        `To start over deliberately, accepting the loss of the windows in flight, restart every process of the pipeline: ${anew}.`,
      { cause: err },
    );
  }

  /** Runs a pipeline; `namespaces[i]` is the namespace command i writes to (for lost-state errors). */
  private async run<T>(pipeline: ReturnType<Client['pipeline']>, namespaces: readonly string[] = []): Promise<T[]> {
    await this.ready();
    this.calls++;
    let results: [Error | null, unknown][];
    try {
      results = (await pipeline.exec()) ?? [];
    } catch (err) {
      throw this.explain(err) ?? err;
    }
    return results.map(([err, value], i) => {
      if (err) throw this.translate(err, namespaces[i] as string);
      return value as T;
    });
  }

  /** Runs one script call, translating a lost-state reply. */
  private async script<T>(namespace: string, call: (epoch: string) => Promise<T>): Promise<T> {
    const epoch = await this.epoch(namespace);
    this.calls++;
    try {
      return await call(epoch);
    } catch (err) {
      throw this.translate(err, namespace);
    }
  }

  async read(ids: readonly string[]): Promise<Map<string, VersionedItem>> {
    // Taking the epoch before the first read ties what this process reads to the epoch it later
    // writes under: state lost between the two is then detected, not read as empty and rebuilt.
    await Promise.all([...new Set(ids.map((id) => this.namespaceOf(id)))].map((ns) => this.epoch(ns)));
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
    const namespaces = writes.map((w) => this.namespaceOf(w.id));
    const unique = [...new Set(namespaces)];
    const epochs = new Map(await Promise.all(unique.map(async (ns) => [ns, await this.epoch(ns)] as const)));
    const p = this.client.pipeline() as ReturnType<Client['pipeline']> & {
      tributaryCas(
        marker: string,
        key: string,
        epoch: string,
        expected: number,
        body: string,
        expireAt: number,
      ): unknown;
    };
    writes.forEach((w, i) => {
      const ns = namespaces[i] as string;
      p.tributaryCas(
        this.marker(ns),
        this.keyOf(w.id),
        epochs.get(ns) as string,
        w.expected,
        w.body,
        Math.ceil(w.expiresAt),
      );
    });
    const results = await this.run<number>(p, namespaces);
    return results.map((r) => r === 1);
  }

  async addRanges(namespace: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const tag = this.tag(namespace);
    await this.script(namespace, (epoch) =>
      this.client.tributaryRanges(this.marker(namespace), `${tag}|ranges`, epoch, ...ids),
    );
  }

  async openRanges(namespace: string): Promise<{ ids: string[]; emittedUpTo: number }> {
    await this.epoch(namespace); // as in read: what is read is tied to the epoch written under
    const tag = this.tag(namespace);
    const [ids, e] = await this.run<unknown>(this.client.pipeline().smembers(`${tag}|ranges`).get(`${tag}|emitted`));
    return { ids: ids as string[], emittedUpTo: e === null ? Number.NEGATIVE_INFINITY : Number(e) };
  }

  async finishRange(namespace: string, id: string, end: number): Promise<void> {
    const tag = this.tag(namespace);
    await this.script(namespace, (epoch) =>
      this.client.tributaryFinish(this.marker(namespace), `${tag}|ranges`, `${tag}|emitted`, epoch, id, end),
    );
  }

  async progress(namespace: string, updates: readonly StoredShardProgress[]): Promise<StoredShardProgress[]> {
    const args = updates.flatMap((u) => [u.shardId, progressToJson(u)]);
    const flat = await this.script(namespace, (epoch) =>
      this.client.tributaryProgress(this.marker(namespace), `${this.tag(namespace)}|shards`, epoch, ...args),
    );
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
    const [start, end] = rangeId.split(':');
    const r = await this.script(namespace, (epoch) =>
      this.client.tributaryClaim(
        this.marker(namespace),
        `${this.tag(namespace)}|${start}|${end}|claim`,
        epoch,
        claimant,
        now,
        expiredBefore,
        Math.ceil(expiresAt),
      ),
    );
    if (r !== 'won' && r !== 'held' && r !== 'done') throw new StateStoreError(`unexpected claim answer ${r}`);
    return r;
  }

  async claimed(namespace: string, rangeId: string): Promise<boolean> {
    const [start, end] = rangeId.split(':');
    await this.ready();
    this.calls++;
    try {
      return (await this.client.exists(`${this.tag(namespace)}|${start}|${end}|claim`)) > 0;
    } catch (err) {
      throw this.explain(err) ?? err;
    }
  }

  async completeClaim(namespace: string, rangeId: string, expiresAt: number): Promise<void> {
    const [start, end] = rangeId.split(':');
    const key = `${this.tag(namespace)}|${start}|${end}|claim`;
    await this.script(namespace, (epoch) =>
      this.client.tributaryComplete(this.marker(namespace), key, epoch, Math.ceil(expiresAt)),
    );
  }

  async close(): Promise<void> {
    if (this.owned) this.client.disconnect();
  }
}

/** A URL without its credentials, for messages. */
const withoutAuth = (url: string) => url.replace(/\/\/[^@/]*@/, '//');

function connect(options: RedisStateOptions): { client: Client; summary: string; auth?: () => Promise<RedisAuth> } {
  let connection: ReturnType<typeof redisConnection>;
  try {
    connection = redisConnection({ ...options, transient: isTransient });
  } catch (err) {
    throw new StateConfigError(`redis state store: ${(err as Error).message}`, { cause: err });
  }
  const redisOptions: RedisOptions = { ...CLIENT_OPTIONS, ...connection.options };
  if (options.cluster) {
    if (connection.auth) {
      // A cluster copies its node options when it is made, before a secret could be read.
      throw new StateConfigError(
        'redis state store: `authTokenSecret` works with `url` only; with `cluster`, give the token by `authTokenEnv`',
      );
    }
    const nodes = options.cluster.map((n) => {
      const [host, port] = n.split(':');
      return { host: host as string, port: Number(port ?? 6379) };
    });
    return {
      client: new Cluster(nodes, {
        lazyConnect: true,
        redisOptions,
        // Give up reconnecting after a while, so commands fail (and the batch is retried) rather than wait forever.
        clusterRetryStrategy: (times) => (times > 10 ? null : Math.min(100 * times, 2000)),
        // With TLS, nodes are reached by the names their certificates carry (ElastiCache's
        // configuration endpoint resolves to them), not by the addresses the cluster reports.
        ...(redisOptions.tls
          ? { dnsLookup: (address: string, callback: (e: null, a: string) => void) => callback(null, address) }
          : {}),
      }),
      summary: `redis cluster ${options.cluster.join(',')}`,
      auth: connection.auth,
    };
  }
  const url = options.url as string;
  return { client: new Redis(url, redisOptions), summary: `redis ${withoutAuth(url)}`, auth: connection.auth };
}

/** Window state in Redis: `window({ ..., state: redisState({ url: 'redis://localhost:6379' }) })`. */
export function redisState(options: RedisStateOptions): ItemStateStore<RedisBackend> {
  checkWindowStateOptions(options);
  const given = [options.url, options.cluster, options.client].filter((x) => x !== undefined).length;
  if (given !== 1) {
    throw new StateConfigError('Expected exactly one of `url`, `cluster` or `client` for the redis state store');
  }
  if (options.url !== undefined && !/^rediss?:\/\//.test(options.url)) {
    throw new StateConfigError(`Expected \`url\` to start with redis:// or rediss://, got ${withoutAuth(options.url)}`);
  }
  const { client, summary, auth } = options.client
    ? { client: options.client, summary: 'redis (client supplied)', auth: undefined }
    : connect(options);
  const backend = new RedisBackend(
    client,
    options.keyPrefix ?? 'tributary:',
    !options.client,
    summary,
    options.maxItemBytes,
    { auth },
  );
  return new ItemStateStore(backend, options);
}

export const redisStoreDefinition: StoreDefinition<RedisStateSpec> = register({
  kind: 'redis',
  category: 'store',
  module: '@tributary/state/redis',
  schema: redisStateSchema,
  description:
    'Window state in Redis or ElastiCache (every window kind), shared by every process and Lambda invocation of the pipeline: each batch is one pipelined round trip of Lua compare-and-set scripts (EVALSHA), exactly once per (shard, sequence number); windows fed by several shards are emitted once, by the consumer that claims them. Use persistence (AOF) so acknowledged state survives a restart. ElastiCache with in-transit encryption: a rediss:// URL (`tls` for a private CA), the AUTH token from `authTokenEnv` or `authTokenSecret` (Secrets Manager, read once); a Lambda function reaches it only inside its VPC.',
  summary: (spec) => (spec.url ? `redis ${withoutAuth(spec.url)}` : `redis cluster`),
  // Redis is no AWS API: only a token kept in Secrets Manager needs a permission.
  permissions: (spec) =>
    spec.authTokenSecret === undefined
      ? []
      : [{ actions: ['secretsmanager:GetSecretValue'], resource: { type: 'secret', id: spec.authTokenSecret } }],
  create: (spec, ctx) => redisState({ ...spec, baseDir: ctx.baseDir }),
});
