// The Redis sink against a real redis-server: set, hset, zadd and xadd write every record, a
// pipeline lost to a dropped connection is sent again, and values no JSON can hold are
// dead-lettered while the rest is written.
import { redisSink } from '@tributary/sinks';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../../../test-support/emulators.js';
import { deadLetters, expectEncodeFailures, fast, hostileBatch, type Rec, recordsOf } from './records.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});

describe('redis sink (redis-server)', () => {
  it('set, hset, zadd and xadd write every record, one pipeline per call', async () => {
    const records = recordsOf(2500, 'q');
    const check = new Redis(redis.url);
    for (const command of ['set', 'hset', 'zadd', 'xadd'] as const) {
      const sink = redisSink({
        url: redis.url,
        command,
        key: (v) => (command === 'set' ? `set:${(v as Rec).id}` : `${command}:all`),
        field: command === 'hset' ? (v) => (v as Rec).id : undefined,
        score: command === 'zadd' ? (v) => (v as Rec).n : undefined,
        ...fast,
      });
      await sink.write(records, deadLetters().context);
      expect(sink.metrics.calls).toBe(3); // 1000 commands per pipeline
      await sink.close();
    }
    const values = records.map((r) => JSON.stringify(r.value));
    expect(await check.mget(...records.map((r) => `set:${r.value.id}`))).toEqual(values);
    expect(Object.values(await check.hgetall('hset:all')).sort()).toEqual([...values].sort());
    expect(await check.zrange('zadd:all', '0', '-1')).toEqual(values); // by score n
    const stream = await check.xrange('xadd:all', '-', '+');
    expect(stream.map(([, fields]) => fields[1])).toEqual(values);
    check.disconnect();
  });
});

describe('redis sink: transient failures', () => {
  it('a pipeline lost to a dropped connection is sent again; every record arrives once', async () => {
    const real = new Redis(redis.url);
    let drops = 0;
    // The real client, whose first two pipelines fail as a reset connection would.
    const flaky = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== 'pipeline') return Reflect.get(target, prop, receiver);
        return (commands: unknown[]) => {
          const p = target.pipeline(commands as never);
          if (drops >= 2) return p;
          drops++;
          return {
            exec: async () => Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })),
          };
        };
      },
    });
    const sink = redisSink({ client: flaky, command: 'set', key: (v) => `flaky:${(v as Rec).id}`, ...fast });
    const records = recordsOf(1500, 'f');
    await sink.write(records, deadLetters().context);
    expect(drops).toBe(2);
    expect(sink.metrics.retries).toBe(2);
    expect(await real.mget(...records.map((r) => `flaky:${r.value.id}`))).toEqual(
      records.map((r) => JSON.stringify(r.value)),
    );
    real.disconnect();
  });
});

describe('redis sink: hostile values', () => {
  it('dead-letters what it cannot encode (circular, nested too deeply) and writes the rest', async () => {
    const sink = redisSink({ url: redis.url, command: 'set', key: (v) => (v as { id: string }).id, ...fast });
    const { dead, context } = deadLetters();
    await sink.write(hostileBatch(), context);
    expectEncodeFailures(dead, 'redis set');
    const r = new Redis(redis.url);
    expect(await r.mget('g1', 'g3', 'g5', 'circular', 'deep')).toEqual([
      '{"id":"g1","n":1}',
      '{"id":"g3","n":3}',
      '{"id":"g5","n":5}',
      null,
      null,
    ]);
    r.disconnect();
    await sink.close();
  });
});
