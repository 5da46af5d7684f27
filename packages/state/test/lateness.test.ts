// A record whose windows the watermark has closed is late with a shared store as in memory —
// also when its window range holds no state yet (a key new there, an hours-old record): the
// store's own state decides only redeliveries (a record applied before is a duplicate, not late).
// Checked on DynamoDB (dynalite) and Redis for tumbling and hopping windows; a session window in a
// shared store is late only when it touches an emitted session (or is past the store's `ttl`):
// an old record of a key with no session is a session of its own, emitted once.
import { describe, expect, it } from 'vitest';
import { type Rec, toBatch } from '../../core/test/windows/reference.js';
import {
  BACKENDS,
  freshName,
  processOf,
  stateYaml,
  useBackends,
  windowPipelineYaml,
  yamlPipeline,
} from './backends.js';

const servers = useBackends();

const KINDS = [
  { kind: 'tumbling' as const, size: 100 },
  { kind: 'hopping' as const, size: 200, every: 100 },
];

for (const backend of BACKENDS) {
  describe(`${backend}: lateness by the watermark`, () => {
    for (const w of KINDS) {
      it(`${w.kind}: an old record of a key new to its range is late, once, and a replay of it too is not reported again`, async () => {
        const name = freshName();
        const yaml = windowPipelineYaml(name, w, 'final', stateYaml(servers, backend));
        const on = Array.from(
          { length: 40 },
          (_, i): Rec => ({ k: 'a', t: 1000 + i * 25, v: 1, shard: 's0', seq: i + 1 }),
        );
        const old: Rec = { k: 'fresh', t: 200, v: 9, shard: 's0', seq: 41 }; // far behind the watermark (~1935)
        const after: Rec = { k: 'a', t: 2000, v: 1, shard: 's0', seq: 42 };
        const proc = processOf(yamlPipeline(yaml));
        proc.compiled.registerShard('s0');
        await proc.process(toBatch(on));
        await proc.process(toBatch([old, after]));
        await proc.process(toBatch([old, after])); // redelivered
        await proc.flush();
        await proc.close();
        const late = proc.dead.values.filter((d) => d.reason === 'late');
        expect(late.map((d) => d.sequenceNumber)).toEqual(['41']);
        expect(proc.out.filter((o) => o.key === 'fresh')).toEqual([]);
        // Every other record in its windows: the count over key a's windows is the oracle's.
        const perRecord = w.kind === 'hopping' ? 2 : 1;
        const counted = proc.out.filter((o) => o.key === 'a').reduce((n, o) => n + (o.n as number), 0);
        expect(counted).toBe((on.length + 1) * perRecord);
      });
    }

    it('session: an old record of a key with no session is a session of its own, emitted once, not late', async () => {
      const name = freshName();
      const w = { kind: 'session' as const, gap: 40 };
      const yaml = windowPipelineYaml(name, w, 'final', stateYaml(servers, backend));
      const on = Array.from(
        { length: 40 },
        (_, i): Rec => ({ k: 'a', t: 1000 + i * 25, v: 1, shard: 's0', seq: i + 1 }),
      );
      const old: Rec = { k: 'fresh', t: 200, v: 9, shard: 's0', seq: 41 };
      const proc = processOf(yamlPipeline(yaml));
      proc.compiled.registerShard('s0');
      await proc.process(toBatch(on));
      await proc.process(toBatch([old]));
      await proc.process(toBatch([old])); // redelivered
      await proc.flush();
      await proc.close();
      expect(proc.dead.values).toEqual([]);
      expect(proc.out.filter((o) => o.key === 'fresh').map((o) => [o.windowStart, o.n])).toEqual([[200, 1]]);
    });
  });
}
