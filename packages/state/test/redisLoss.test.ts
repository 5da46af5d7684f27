// A Redis server that comes back without its data (flushed, or restarted without persistence):
// the processes that saw the old state fail their batches with a clear error instead of starting
// windows and watermarks again from empty; a process started afterwards begins from empty.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { SourceBatch } from '@tributary/core';
import { redisState, StateStoreError } from '@tributary/state';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { byWindow, type Rec, reference, toBatch } from '../../core/test/windows/reference.js';
import {
  freshName,
  noFault,
  processOf,
  stateYaml,
  TUMBLING,
  useBackends,
  windowPipelineYaml,
  windowProcess,
  yamlPipeline,
} from './backends.js';

const servers = useBackends();
let admin: Redis;
beforeEach(() => {
  admin = new Redis(servers.redis.url, { maxRetriesPerRequest: 1 });
  admin.on('error', () => {});
});
afterEach(() => {
  admin.disconnect();
});

const LOST = /^state store: .* failed: StateStoreError: Redis at 127\.0\.0\.1:\d+ lost the window state of namespace /;

/** 200 records of one shard, event time moving forward (nothing late), in batches of 25. */
const records: Rec[] = Array.from({ length: 200 }, (_, i) => ({
  k: `k${i % 5}`,
  t: 1000 + i * 5,
  v: i % 7,
  shard: 's0',
  seq: i + 1,
}));
const batches = Array.from({ length: 8 }, (_, i) => toBatch(records.slice(i * 25, i * 25 + 25)));

/** A process whose backend calls are recorded in `calls`. */
function recorded(name: string) {
  const calls: string[] = [];
  const proc = windowProcess(servers, 'redis', name, (call, phase) => {
    if (phase === 'before') calls.push(call);
  });
  proc.compiled.registerShard('s0');
  return { proc, calls };
}

/** Runs batches 0..n-1; returns what was emitted, each emitted window checked against the whole input's. */
async function runUntil(proc: ReturnType<typeof windowProcess>, n: number) {
  for (let i = 0; i < n; i++) await proc.process(batches[i] as SourceBatch);
  const all = reference(records, TUMBLING);
  expect(proc.out.length).toBeGreaterThan(0);
  for (const w of proc.out) expect(all).toContainEqual(w);
  return [...proc.out];
}

/** The next batch of a process that saw the old state fails at once with the lost-state error, writing nothing. */
async function expectLost(p: { proc: ReturnType<typeof windowProcess>; calls: string[] }, batch: SourceBatch) {
  const before = [...p.proc.out];
  const keysBefore = (await admin.keys('*')).sort();
  p.calls.length = 0;
  const err = await p.proc.process(batch).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(StateStoreError);
  const message = (err as Error).message;
  expect(message).toMatch(LOST);
  expect(message).toContain('restarted without persistence, or was flushed');
  expect(message).toContain('appendonly yes');
  // Not retried as transient: each call was made once, and the one that found the loss was the last.
  expect(new Set(p.calls).size).toBe(p.calls.length);
  expect(p.proc.out).toEqual(before); // nothing emitted
  expect((await admin.keys('*')).sort()).toEqual(keysBefore); // nothing written
  return message;
}

describe('redis: state lost by the server', () => {
  it('FLUSHALL: the next batch fails with a lost-state error, every time; a fresh process starts from empty', async () => {
    const name = freshName();
    const a = recorded(name);
    const emitted = await runUntil(a.proc, 4);
    const marker = `{tributary:${name}/window-0}|epoch`;
    expect(await admin.pttl(marker)).toBe(-1); // the marker never expires
    await admin.flushall();

    const message = await expectLost(a, batches[4] as SourceBatch);
    expect(message).toContain(`namespace ${name}/window-0 `);
    expect(message).toContain(`epoch marker ${marker} is gone`);
    expect(message).toContain('restart every process of the pipeline');
    // The runtime retries the batch: it fails again, and so does a tick.
    await expectLost(a, batches[4] as SourceBatch);
    await expect(a.proc.tick()).rejects.toThrow(LOST);
    expect(await admin.dbsize()).toBe(0);

    // A process started after the loss cannot know of it: it starts the namespace afresh.
    const b = windowProcess(servers, 'redis', name, noFault);
    b.compiled.registerShard('s0');
    for (let i = 4; i < batches.length; i++) await b.process(batches[i] as SourceBatch);
    await b.flush();
    await b.close();
    expect([...b.out].sort(byWindow)).toEqual(reference(records.slice(100), TUMBLING));
    expect(b.dead.values).toEqual([]);

    // The old process still fails: the marker now holds the new process's epoch.
    const again = await expectLost(a, batches[4] as SourceBatch);
    expect(again).toContain(`epoch marker ${marker} now holds another id`);
    await a.proc.close();
    expect(a.proc.out).toEqual(emitted);
  });

  it('killed and restarted without its data (AOF files gone): the next batch fails with a lost-state error', async () => {
    const name = freshName();
    const a = recorded(name);
    await runUntil(a.proc, 3);
    const [, dir] = (await admin.config('GET', 'dir')) as [string, string];
    admin.disconnect();
    await servers.redis.kill();
    rmSync(join(dir, 'appendonlydir'), { recursive: true, force: true });
    await servers.redis.start();
    admin = new Redis(servers.redis.url, { maxRetriesPerRequest: 1 });
    admin.on('error', () => {});
    expect(await admin.dbsize()).toBe(0);

    // The server also forgot its scripts: ioredis loads them again, and they find the marker gone.
    const message = await expectLost(a, batches[3] as SourceBatch);
    expect(message).toContain('is gone');
    await a.proc.close();

    const b = windowProcess(servers, 'redis', name, noFault);
    b.compiled.registerShard('s0');
    for (let i = 3; i < batches.length; i++) await b.process(batches[i] as SourceBatch);
    await b.flush();
    await b.close();
    expect([...b.out].sort(byWindow)).toEqual(reference(records.slice(75), TUMBLING));
  });

  it('every writing call checks the epoch before it writes', async () => {
    const store = redisState({ url: servers.redis.url, retry: { retries: 0 } });
    const backend = store.backend;
    const ns = `${freshName()}/w`;
    const far = Date.now() + 60_000;
    // A brand-new namespace just works: the first call creates the marker.
    expect(await backend.write([{ id: `${ns}|0|100|0`, body: '{}', expected: 0, expiresAt: far }])).toEqual([true]);
    await backend.addRanges(ns, ['0:100']);
    await backend.progress(ns, [
      { shardId: 's0', maxEventTime: 50, sourceWatermark: 40, lastActivity: 1, closed: false },
    ]);
    expect(await backend.claim(ns, '0:100', 'me', 10, 0, far)).toBe('won');
    await backend.completeClaim(ns, '0:100', far);
    await backend.finishRange(ns, '0:100', 100);
    expect(await backend.openRanges(ns)).toEqual({ ids: [], emittedUpTo: 100 });

    await admin.flushall();
    const lost = [
      () => backend.write([{ id: `${ns}|100|200|0`, body: '{}', expected: 0, expiresAt: far }]),
      () => backend.addRanges(ns, ['100:200']),
      () => backend.progress(ns, []),
      () => backend.claim(ns, '100:200', 'me', 10, 0, far),
      () => backend.completeClaim(ns, '100:200', far),
      () => backend.finishRange(ns, '100:200', 200),
    ];
    for (const call of lost) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StateStoreError);
      expect((err as Error).message).toMatch(
        new RegExp(`^Redis at 127\\.0\\.0\\.1:\\d+ lost the window state of namespace ${ns} `),
      );
    }
    expect(await admin.dbsize()).toBe(0);
    // Reads write nothing either (what they find is of no use: the next write fails).
    expect(await backend.read([`${ns}|0|100|0`])).toEqual(new Map());
    expect(await backend.openRanges(ns)).toEqual({ ids: [], emittedUpTo: Number.NEGATIVE_INFINITY });
    expect(await admin.dbsize()).toBe(0);
    await store.close();
  });

  it('a brand-new namespace, configured in YAML, gives exact windows; so does state stored before its marker existed', async () => {
    const name = freshName();
    const yaml = windowPipelineYaml(name, TUMBLING, 'final', stateYaml(servers, 'redis'));
    const first = processOf(yamlPipeline(yaml));
    first.compiled.registerShard('s0');
    for (let i = 0; i < 4; i++) await first.process(batches[i] as SourceBatch);
    await first.close();
    const marker = `{tributary:${name}/window-0}|epoch`;
    expect(await admin.get(marker)).toMatch(/^[0-9a-f-]{36}$/);
    // State written by a version without markers: a new process adopts it and creates the marker.
    await admin.del(marker);
    const second = processOf(yamlPipeline(yaml));
    second.compiled.registerShard('s0');
    for (let i = 4; i < batches.length; i++) await second.process(batches[i] as SourceBatch);
    await second.flush();
    await second.close();
    expect(await admin.exists(marker)).toBe(1);
    expect([...first.out, ...second.out].sort(byWindow)).toEqual(reference(records, TUMBLING));
    expect(first.dead.values.concat(second.dead.values)).toEqual([]);
  });
});
