// Edge cases of shared window state found in review, each reproduced before it was fixed.
import type { SourceBatch } from '@tributary/core';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { byWindow, type Rec, reference, toBatch } from '../../core/test/windows/reference.js';
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

const processWith = (backend: BackendName, name: string, fault: Fault = noFault, ttl?: number) =>
  windowProcess(servers, backend, name, fault, {
    retry: { retries: 2, minDelay: 1, maxDelay: 5 },
    ...(ttl ? { ttl } : {}),
  });

const rec = (seq: number, t: number, shard = 's0', k = 'a'): Rec => ({ k, t, v: 1, shard, seq });

for (const backend of BACKENDS) {
  describe(`${backend}: edges`, () => {
    it('a redelivery that overlaps a sealed window reports only its new records late, not those already counted', async () => {
      const name = freshName();
      const first = processWith(backend, name);
      first.compiled.registerShard('s0');
      await first.process(toBatch([rec(1, 1000), rec(2, 1010)]));
      await first.process(toBatch([rec(3, 1300)])); // the watermark passes [1000, 1100): emitted, sealed
      expect(first.out.map((o) => o.n)).toEqual([2]);
      await first.close();
      // A new process (nothing in memory) gets records 1..5 again, 4 and 5 new but too late for [1000, 1100).
      const second = processWith(backend, name);
      second.compiled.registerShard('s0');
      await second.process(toBatch([rec(1, 1000), rec(2, 1010), rec(3, 1300), rec(4, 1020), rec(5, 1030)]));
      expect(second.dead.values.map((d) => [d.reason, d.sequenceNumber])).toEqual([
        ['late', '4'],
        ['late', '5'],
      ]);
      await second.close();
    });

    it('a batch that fails does not move the watermark: a tick closes nothing, the retry counts exactly', async () => {
      const name = freshName();
      let fail = true;
      const proc = processWith(backend, name, (call, phase) => {
        if (fail && call === 'write' && phase === 'before') throw new Error('crash before the state write');
      });
      proc.compiled.registerShard('s0');
      const batch = toBatch([rec(1, 1000), rec(2, 1050), rec(3, 1500)]);
      await expect(proc.process(batch)).rejects.toThrow('crash before the state write');
      await proc.tick();
      expect(proc.out).toEqual([]);
      fail = false;
      await proc.process(batch);
      await proc.flush();
      expect([...proc.out].sort(byWindow)).toEqual(reference([rec(1, 1000), rec(2, 1050), rec(3, 1500)], TUMBLING));
      expect(proc.dead.values).toEqual([]);
      await proc.close();
    });

    it("one process's end of input does not close windows another process's shard still feeds", async () => {
      const name = freshName();
      const a = processWith(backend, name);
      const b = processWith(backend, name);
      for (const p of [a, b]) for (const s of ['s0', 's1']) p.compiled.registerShard(s);
      await a.process(toBatch([rec(1, 1000, 's0'), rec(2, 2000, 's0')]));
      await b.process(toBatch([rec(1, 1010, 's1')]));
      await a.flush({ shards: ['s0'] }); // a's input ended; s1 (b's) is at 1010 − 40: [1000, 1100) stays open
      await b.process(toBatch([rec(2, 1020, 's1')])); // on time, not late
      await b.flush({ shards: ['s1'] });
      const all = [...a.out, ...b.out];
      expect(all.sort(byWindow)).toEqual(
        reference([rec(1, 1000, 's0'), rec(2, 2000, 's0'), rec(1, 1010, 's1'), rec(2, 1020, 's1')], TUMBLING),
      );
      expect([...a.dead.values, ...b.dead.values]).toEqual([]);
      await Promise.all([a.close(), b.close()]);
    });

    it('shard ids may contain any character, "|" included', async () => {
      const proc = processWith(backend, freshName());
      const batch: SourceBatch = { ...toBatch([rec(1, 1000), rec(2, 1300)]), shardId: 'topic|0' };
      proc.compiled.registerShard('topic|0');
      await proc.process(batch);
      await proc.process({ ...toBatch([rec(3, 1500)]), shardId: 'topic|0' });
      expect(proc.out.map((o) => [o.windowStart, o.n])).toEqual([
        [1000, 1],
        [1300, 1],
      ]);
      await proc.close();
    });
  });
}

describe('redis: expiry', () => {
  it("an open window's state outlives its window (it expires ttl after the window closes, not after its last write)", async () => {
    const name = freshName();
    const proc = processWith('redis', name, noFault, 1);
    proc.compiled.registerShard('s0');
    const start = Date.now() + 3_600_000; // a window an hour ahead: open for an hour yet
    const t = start - (start % 100) + 10;
    await proc.process(toBatch([rec(1, t)]));
    const redis = new Redis(servers.redis.url);
    const keys = await redis.keys(`{tributary:${name}/window-0}|*|*|*`);
    expect(keys.length).toBe(1);
    const pttl = await redis.pttl(keys[0] as string);
    redis.disconnect();
    expect(pttl).toBeGreaterThan(3_500_000);
    await proc.close();
  });
});
