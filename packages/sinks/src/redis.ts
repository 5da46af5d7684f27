/**
 * `redis`: one pipeline per call (up to 1000 records): `set` (key → JSON, optional `ttl`),
 * `hset` (hash `key`, field `field` → JSON, or the record's fields when no `field`), `zadd`
 * (sorted set `key`, `score`, member `member` or the JSON), `xadd` (stream `key`, one `data`
 * field with the JSON). `set`/`hset`/`zadd` are idempotent (a replay writes the same values);
 * `xadd` appends again — set `idField` and de-duplicate downstream.
 */
import { ConfigError, type RecordEnvelope } from '@tributary/core';
import {
  type CompiledExpression,
  compileExpression,
  Expression,
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
}

export class RedisSink extends BatchSink<Command> {
  readonly summary: string;
  protected readonly maxRecordsPerCall = 1000;
  protected readonly maxBytesPerCall = 8 * 1024 * 1024;
  private readonly client: Redis;
  private readonly owned: boolean;
  constructor(private readonly sinkOptions: RedisSinkOptions) {
    super(sinkOptions);
    if (!sinkOptions.client && !sinkOptions.url) throw new ConfigError('Expected `url` or `client` for the redis sink');
    if (sinkOptions.command === 'zadd' && !sinkOptions.score) throw new ConfigError('Expected `score` for zadd');
    this.summary = `redis ${sinkOptions.command}`;
    this.client =
      sinkOptions.client ?? new Redis(sinkOptions.url as string, { lazyConnect: true, maxRetriesPerRequest: 1 });
    if (!sinkOptions.client) this.client.on('error', () => {}); // failures reach the commands, which are retried
    this.owned = !sinkOptions.client;
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
    const pipeline = this.client.pipeline(entries.map((e) => e.payload));
    const results = (await pipeline.exec()) ?? [];
    return entries.map((_, i) => {
      const err = results[i]?.[0];
      return err ? failureOf(err) : undefined;
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
    'Writes records to Redis with set, hset, zadd or xadd, one pipeline per call (up to 1000 records); failed commands are retried when the error is transient (connection lost, LOADING), dead-lettered otherwise.',
  summary: (spec) => `${spec.command} ${typeof spec.key === 'string' ? spec.key : 'fn'}`,
  create(spec, ctx) {
    const expr = (source: typeof spec.key | undefined): CompiledExpression | undefined =>
      source === undefined ? undefined : compileExpression(source, (name) => ctx.bindings.get(name) as never);
    return redisSink({
      ...spec,
      key: expr(spec.key) as CompiledExpression,
      field: expr(spec.field),
      score: expr(spec.score),
      member: expr(spec.member),
    });
  },
});
