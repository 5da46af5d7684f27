// Crashes, replays, races and outages against the real stores. Each "process" is its own compiled
// pipeline with its own client, as a restarted worker or a new Lambda container would be; only
// batches a process acknowledged count as delivered (their output is what a sink received before
// the checkpoint moved).
import type { SourceBatch } from '@tributary/core';
import { StateStoreError, type WindowStateOptions } from '@tributary/state';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  byWindow,
  deliveries,
  planArb,
  type Rec,
  reference,
  shardArb,
  toBatch,
  windowId,
} from '../../core/test/windows/reference.js';
import {
  BACKENDS,
  type BackendName,
  type Fault,
  freshName,
  noFault,
  TUMBLING,
  useBackends,
  windowProcess,
} from './backends.js';

const servers = useBackends();

const FAST_RETRY: WindowStateOptions = { retry: { retries: 3, minDelay: 1, maxDelay: 5 } };

/** A process of the pipeline `name` whose state goes through `fault`. */
const processWith = (backend: BackendName, name: string, fault: Fault, options: WindowStateOptions = FAST_RETRY) =>
  windowProcess(servers, backend, name, fault, options);

const windowsOf = (out: Record<string, unknown>[]) => out.map(windowId);

type Point = 'before-state-write' | 'after-state-write' | 'before-emission-completes' | 'after-checkpoint';

for (const backend of BACKENDS) {
  describe(`${backend}: recovery`, () => {
    it('a crash at any point, recovered by replay from the checkpoint or earlier, gives exact windows, each once', async () => {
      await fc.assert(
        fc.asyncProperty(
          shardArb('s0'),
          planArb,
          fc.constantFrom<Point>(
            'before-state-write',
            'after-state-write',
            'before-emission-completes',
            'after-checkpoint',
          ),
          fc.nat({ max: 30 }),
          fc.nat({ max: 3 }),
          async (records, plan, point, at, back) => {
            const batches = deliveries(records, plan).map(toBatch);
            const crashAt = Math.min(at, batches.length - 1);
            const name = freshName();
            let armed = false;
            let crashed = false;
            const fault: Fault = (call, phase) => {
              if (!armed || crashed) return;
              const hit =
                (point === 'before-state-write' && call === 'write' && phase === 'before') ||
                (point === 'after-state-write' && call === 'write' && phase === 'after') ||
                (point === 'before-emission-completes' && call === 'completeClaim' && phase === 'before');
              if (hit) {
                crashed = true;
                throw new Error(`crash ${point}`);
              }
            };
            const delivered: Record<string, unknown>[] = [];
            let proc = processWith(backend, name, fault);
            proc.compiled.registerShard('s0');
            let next = 0;
            while (next < batches.length) {
              armed = next === crashAt;
              try {
                await proc.process(batches[next] as SourceBatch);
              } catch (err) {
                expect(String(err)).toContain('crash');
                // The process dies; a new one resumes from the checkpoint (or, if it lagged, earlier).
                delivered.push(...proc.out.splice(0));
                await proc.close();
                proc = processWith(backend, name, fault);
                proc.compiled.registerShard('s0');
                next = Math.max(0, next - back);
                continue;
              }
              next++;
              if (point === 'after-checkpoint' && next - 1 === crashAt && !crashed) {
                crashed = true;
                delivered.push(...proc.out.splice(0));
                await proc.close();
                proc = processWith(backend, name, fault);
                proc.compiled.registerShard('s0');
                next = Math.max(0, next - back);
              }
            }
            armed = false;
            await proc.flush();
            delivered.push(...proc.out.splice(0));
            await proc.close();
            expect(new Set(windowsOf(delivered)).size).toBe(delivered.length); // each window once
            expect([...delivered].sort(byWindow)).toEqual(reference(records, TUMBLING));
            expect(proc.dead.values).toEqual([]);
          },
        ),
        { numRuns: 40 },
      );
    });

    it('every batch delivered twice (the second time by a new process) changes no result', async () => {
      await fc.assert(
        fc.asyncProperty(shardArb('s0'), fc.integer({ min: 1, max: 8 }), async (records, size) => {
          const name = freshName();
          const delivered: Record<string, unknown>[] = [];
          for (let i = 0; i < records.length; i += size) {
            for (let copy = 0; copy < 2; copy++) {
              const proc = processWith(backend, name, noFault);
              proc.compiled.registerShard('s0');
              await proc.process(toBatch(records.slice(i, i + size)));
              delivered.push(...proc.out);
              await proc.close();
            }
          }
          const last = processWith(backend, name, noFault);
          last.compiled.registerShard('s0');
          await last.flush();
          delivered.push(...last.out);
          await last.close();
          expect(new Set(windowsOf(delivered)).size).toBe(delivered.length);
          expect(delivered.sort(byWindow)).toEqual(reference(records, TUMBLING));
        }),
        { numRuns: 15 },
      );
    });

    it('two consumers racing to emit the windows both their shards feed emit each window once', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.tuple(shardArb('s0'), shardArb('s1')),
          fc.tuple(planArb, planArb),
          async (shards, plans) => {
            const name = freshName();
            const a = processWith(backend, name, noFault);
            const b = processWith(backend, name, noFault);
            // Runtimes register every shard of the stream (ListShards), not only their own.
            for (const p of [a, b]) for (const s of ['s0', 's1']) p.compiled.registerShard(s);
            const [s0, s1] = shards.map((rs, i) => deliveries(rs, plans[i] as never).map(toBatch));
            const longest = Math.max(s0?.length ?? 0, s1?.length ?? 0);
            for (let i = 0; i < longest; i++) {
              const x = s0?.[i];
              const y = s1?.[i];
              await Promise.all([x && a.process(x), y && b.process(y)]);
            }
            await Promise.all([a.flush({ shards: ['s0'] }), b.flush({ shards: ['s1'] })]);
            await Promise.all([a.close(), b.close()]);
            const all = [...a.out, ...b.out];
            expect(new Set(windowsOf(all)).size).toBe(all.length);
            expect(all.sort(byWindow)).toEqual(reference(shards.flat(), TUMBLING));
            // Neither consumer emitted everything by itself only because the other was idle.
            expect(a.dead.values.concat(b.dead.values)).toEqual([]);
          },
        ),
        { numRuns: 25 },
      );
    });

    it('shard progress lives in the store: a shard another process registered holds windows back until it is closed', async () => {
      const name = freshName();
      const a = processWith(backend, name, noFault);
      const b = processWith(backend, name, noFault);
      b.compiled.registerShard('s1'); // another process owns s1 (it has delivered nothing yet)
      await b.tick();
      a.compiled.registerShard('s0');
      const recs = (from: number, n: number): Rec[] =>
        Array.from({ length: n }, (_, i) => ({
          k: 'a',
          t: 1000 + (from + i) * 20,
          v: 1,
          shard: 's0',
          seq: from + i + 1,
        }));
      await a.process(toBatch(recs(0, 30)));
      await a.process(toBatch(recs(30, 30)));
      expect(a.out).toEqual([]); // s1 (watermark −∞, not idle yet) holds every window back
      b.compiled.closeShard('s1'); // resharded away: it stops holding the watermark back
      await b.tick(); // b records that, sees s0's progress in the store, and emits what closed
      await a.process(toBatch(recs(60, 1)));
      const closed = reference(recs(0, 61), TUMBLING).filter((w) => (w.windowEnd as number) + 5 + 40 <= 1000 + 60 * 20);
      expect(closed.length).toBeGreaterThan(5);
      expect(b.out.length).toBeGreaterThan(0);
      expect([...a.out, ...b.out].sort(byWindow)).toEqual(closed);
      await Promise.all([a.close(), b.close()]);
    });

    it('transient errors (throttling, dropped connections) are retried; the results are exact', async () => {
      const records: Rec[] = Array.from({ length: 300 }, (_, i) => ({
        k: `k${i % 7}`,
        t: 1000 + i * 3,
        v: i % 5,
        shard: 's0',
        seq: i + 1,
      }));
      let calls = 0;
      const throttle: Fault = (_call, phase) => {
        if (phase === 'before' && ++calls % 3 === 0) {
          const kind = calls % 2 === 0 ? 'ThrottlingException' : 'ECONNRESET';
          throw Object.assign(new Error(`injected ${kind}`), kind === 'ECONNRESET' ? { code: kind } : { name: kind });
        }
      };
      const proc = processWith(backend, freshName(), throttle);
      proc.compiled.registerShard('s0');
      for (let i = 0; i < records.length; i += 25) await proc.process(toBatch(records.slice(i, i + 25)));
      await proc.flush();
      await proc.close();
      expect(calls).toBeGreaterThan(30);
      expect([...proc.out].sort(byWindow)).toEqual(reference(records, TUMBLING));
    });

    it('a store that stays down fails the batch with a clear error; a replay then loses nothing', async () => {
      const records: Rec[] = Array.from({ length: 40 }, (_, i) => ({
        k: 'a',
        t: 1000 + i * 10,
        v: 1,
        shard: 's0',
        seq: i + 1,
      }));
      const name = freshName();
      let down = true;
      const outage: Fault = (_call, phase) => {
        if (down && phase === 'before')
          throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
      };
      const first = processWith(backend, name, outage);
      first.compiled.registerShard('s0');
      const err = await first.process(toBatch(records.slice(0, 20))).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StateStoreError);
      expect(String((err as Error).message)).toMatch(/state store: .* failed: .*ECONNREFUSED/);
      await first.close();
      down = false;
      const second = processWith(backend, name, outage);
      second.compiled.registerShard('s0');
      await second.process(toBatch(records.slice(0, 20)));
      await second.process(toBatch(records.slice(20)));
      await second.flush();
      await second.close();
      expect([...second.out].sort(byWindow)).toEqual(reference(records, TUMBLING));
    });
  });
}

describe('redis: killed and restarted mid-run', () => {
  it('loses nothing that was acknowledged (AOF, fsync always)', async () => {
    const records: Rec[] = Array.from({ length: 400 }, (_, i) => ({
      k: `k${i % 5}`,
      t: 1000 + i * 2,
      v: i % 9,
      shard: 's0',
      seq: i + 1,
    }));
    const batches = Array.from({ length: 16 }, (_, i) => toBatch(records.slice(i * 25, i * 25 + 25)));
    const name = freshName();
    const delivered: Record<string, unknown>[] = [];
    let proc = processWith('redis', name, noFault);
    proc.compiled.registerShard('s0');
    let next = 0;
    let killed = false;
    while (next < batches.length) {
      if (next === 8 && !killed) {
        killed = true;
        await servers.redis.kill();
        // With the server gone the batch cannot be made durable: it fails, and is not acknowledged.
        await expect(proc.process(batches[next] as SourceBatch)).rejects.toBeInstanceOf(StateStoreError);
        delivered.push(...proc.out.splice(0));
        await proc.close();
        await servers.redis.start();
        proc = processWith('redis', name, noFault);
        proc.compiled.registerShard('s0');
        continue;
      }
      await proc.process(batches[next] as SourceBatch);
      next++;
    }
    await proc.flush();
    delivered.push(...proc.out.splice(0));
    await proc.close();
    expect(killed).toBe(true);
    expect(new Set(windowsOf(delivered)).size).toBe(delivered.length);
    expect(delivered.sort(byWindow)).toEqual(reference(records, TUMBLING));
  });
});
