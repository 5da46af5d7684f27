/**
 * `redis`: one pipeline per call (up to 1000 records): `set` (key → JSON, optional `ttl`),
 * `hset` (hash `key`, field `field` → JSON, or the record's fields when no `field`), `zadd`
 * (sorted set `key`, `score`, member `member` or the JSON), `xadd` (stream `key`, one `data`
 * field with the JSON). `set`/`hset`/`zadd` are idempotent (a replay writes the same values);
 * `xadd` appends again — set `idField` and de-duplicate downstream.
 *
 * ElastiCache: a `rediss://` URL connects over TLS (`tls`: the CA to trust, the name to expect),
 * with the AUTH token from an environment variable (`authTokenEnv`), a Secrets Manager secret
 * (`authTokenSecret`, read once, before the first command) or the URL. A refused token or a
 * certificate that does not verify fails the write at once (the batch is not acknowledged),
 * saying so without the token; it is not retried, and no record is dead-lettered for it.
 */
import type { AwsClientOptions } from '@tributary/aws';
import {
  type RedisAuth,
  type RedisConnectionError,
  redisConnection,
  redisConnectionFields,
  watchRedisConnection,
} from '@tributary/aws/redis';
import { ConfigError, type RecordEnvelope } from '@tributary/core';
import {
  type CompiledExpression,
  compileExpression,
  Expression,
  isTransient,
  register,
  type SinkDefinition,
} from '@tributary/core/spi';
import { Redis } from 'ioredis';
import Type, { type Static } from 'typebox';
import { batchSinkFields } from './aws.js';
import { BatchSink, type BatchSinkOptions, type Encoded, type EntryFailure, failureOf } from './BatchSink.js';
import { EncodeError } from './errors.js';
import { recordJson } from './json.js';

export const redisSinkSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'redis://[user:password@]host:port[/db] (or rediss://)' }),
    command: Type.Union([Type.Literal('set'), Type.Literal('hset'), Type.Literal('zadd'), Type.Literal('xadd')], {
      description: 'set, hset, zadd or xadd',
    }),
    key: Expression('yields the Redis key'),
    field: Type.Optional(Expression('hset: yields the hash field (default: one field per record field)')),
    score: Type.Optional(Expression('zadd: yields the score')),
    member: Type.Optional(Expression('zadd: yields the member (default: the record as JSON)')),
    ttl: Type.Optional(Type.Integer({ minimum: 1, description: 'set: seconds until the key expires' })),
    ...redisConnectionFields,
    ...batchSinkFields,
  },
  { additionalProperties: false },
);
export type RedisSinkSpec = Static<typeof redisSinkSchema>;

declare module '@tributary/core' {
  interface SinkKinds {
    redis: RedisSinkSpec;
  }
}

type Command = [string, ...(string | number)[]];

export interface RedisSinkOptions extends BatchSinkOptions {
  url?: string;
  client?: Redis;
  command: 'set' | 'hset' | 'zadd' | 'xadd';
  key: (value: unknown) => unknown;
  field?: (value: unknown) => unknown;
  score?: (value: unknown) => unknown;
  member?: (value: unknown) => unknown;
  ttl?: number;
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

export class RedisSink extends BatchSink<Command> {
  readonly summary: string;
  protected readonly maxRecordsPerCall = 1000;
  protected readonly maxBytesPerCall = 8 * 1024 * 1024;
  private readonly client: Redis;
  private readonly owned: boolean;
  /** A refused AUTH or an unverified certificate as a permanent error (see watchRedisConnection). */
  private readonly explain: (err: unknown) => RedisConnectionError | undefined = () => undefined;
  /** Reads the token of `authTokenSecret`. */
  private readonly auth: (() => Promise<RedisAuth>) | undefined;
  /** Resolves once that token is in the client's options. */
  private authorised: Promise<void> | undefined;
  constructor(private readonly sinkOptions: RedisSinkOptions) {
    super(sinkOptions);
    if (!sinkOptions.client && !sinkOptions.url) throw new ConfigError('Expected `url` or `client` for the redis sink');
    if (sinkOptions.command === 'zadd' && !sinkOptions.score) throw new ConfigError('Expected `score` for zadd');
    this.summary = `redis ${sinkOptions.command}`;
    if (sinkOptions.client) {
      this.client = sinkOptions.client;
    } else {
      const url = sinkOptions.url as string;
      let connection: ReturnType<typeof redisConnection>;
      try {
        connection = redisConnection({ ...sinkOptions, transient: isTransient });
      } catch (err) {
        throw new ConfigError(`redis sink: ${(err as Error).message}`, { cause: err });
      }
      this.auth = connection.auth;
      this.client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, ...connection.options });
      // Failures reach the commands, which are retried, unless they are permanent (explain).
      this.explain = watchRedisConnection(this.client, `redis ${url.replace(/\/\/[^@/]*@/, '//')}`);
    }
    this.owned = !sinkOptions.client;
  }

  /** Before the first command: the token of `authTokenSecret`, read once (a failed read is tried again by the retry). */
  private ready(): Promise<void> {
    const auth = this.auth;
    if (!auth) return Promise.resolve();
    this.authorised ??= auth().then(({ password, username }) => {
      this.client.options.password = password;
      if (username !== undefined) this.client.options.username = username;
    });
    this.authorised.catch(() => {
      this.authorised = undefined;
    });
    return this.authorised;
  }

  protected encode(env: RecordEnvelope): Encoded<Command> | EntryFailure {
    const o = this.sinkOptions;
    const value = this.valueOf(env);
    const json = recordJson(value);
    let cmd: Command;
    try {
      const key = String(o.key(env.value));
      switch (o.command) {
        case 'set':
          cmd = o.ttl ? ['set', key, json, 'EX', o.ttl] : ['set', key, json];
          break;
        case 'hset':
          if (o.field) cmd = ['hset', key, String(o.field(env.value)), json];
          else {
            if (value === null || typeof value !== 'object')
              throw new EncodeError('hset without `field` needs an object');
            const flat = Object.entries(value).flatMap(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
            if (flat.length === 0) throw new EncodeError('hset of an empty object');
            cmd = ['hset', key, ...flat];
          }
          break;
        case 'zadd': {
          const score = Number(o.score?.(env.value));
          if (!Number.isFinite(score)) throw new EncodeError('zadd score is not a number');
          cmd = ['zadd', key, score, o.member ? String(o.member(env.value)) : json];
          break;
        }
        case 'xadd':
          cmd = ['xadd', key, '*', 'data', json];
          break;
      }
    } catch (err) {
      return { ...failureOf(err), code: 'InvalidRecord', transient: false };
    }
    return { env, payload: cmd, bytes: cmd.reduce<number>((n, a) => n + String(a).length, 0) };
  }

  protected async send(entries: readonly Encoded<Command>[]): Promise<(EntryFailure | undefined)[]> {
    await this.ready();
    let results: [Error | null, unknown][];
    try {
      results = (await this.client.pipeline(entries.map((e) => e.payload)).exec()) ?? [];
    } catch (err) {
      throw this.explain(err) ?? err;
    }
    return entries.map((_, i) => {
      const err = results[i]?.[0];
      if (!err) return undefined;
      // A refused token or certificate says nothing about the record: the write fails instead.
      const connection = this.explain(err);
      if (connection) throw connection;
      return failureOf(err);
    });
  }

  override async close(): Promise<void> {
    if (this.owned) this.client.disconnect();
  }
}

export function redisSink(options: RedisSinkOptions): RedisSink {
  return new RedisSink(options);
}

export const redisSinkDefinition: SinkDefinition<RedisSinkSpec> = register({
  kind: 'redis',
  category: 'sink',
  module: '@tributary/sinks/redis',
  schema: redisSinkSchema,
  description:
    'Writes records to Redis with set, hset, zadd or xadd, one pipeline per call (up to 1000 records); failed commands are retried when the error is transient (connection lost, LOADING), dead-lettered otherwise. ElastiCache with in-transit encryption: a rediss:// URL (`tls` for a private CA), the AUTH token from `authTokenEnv` or `authTokenSecret` (Secrets Manager, read once); a refused token or certificate fails the write without dead-lettering.',
  summary: (spec) => `${spec.command} ${typeof spec.key === 'string' ? spec.key : 'fn'}`,
  // Redis is no AWS API: only a token kept in Secrets Manager needs a permission.
  permissions: (spec) =>
    spec.authTokenSecret === undefined
      ? []
      : [{ actions: ['secretsmanager:GetSecretValue'], resource: { type: 'secret', id: spec.authTokenSecret } }],
  create(spec, ctx) {
    const expr = (source: typeof spec.key | undefined): CompiledExpression | undefined =>
      source === undefined ? undefined : compileExpression(source, (name) => ctx.bindings.get(name) as never);
    return redisSink({
      ...spec,
      baseDir: ctx.baseDir,
      key: expr(spec.key) as CompiledExpression,
      field: expr(spec.field),
      score: expr(spec.score),
      member: expr(spec.member),
    });
  },
});
