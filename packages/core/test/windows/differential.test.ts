// Differential property test: random streams over several shards — out of order (within the
// watermark's out-of-orderness), with batches redelivered whole and re-cut — through every window
// kind and aggregate, compared with a naive reference that recomputes every window from the
// full, de-duplicated input (the reference, in reference.ts, is independent of the implementation).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from '../helpers.js';
import { harness } from '../window-helpers.js';
import {
  byWindow,
  deliverInTurn,
  deliverInterleaved,
  deliveries,
  kindArb,
  lastPerWindow,
  planArb,
  reference,
  shardArb,
  windowYaml,
} from './reference.js';

// ---- the property ------------------------------------------------------------------------

describe('windows match a naive reference on random streams', () => {
  it('emit: final — every window exactly once, with exactly the reference values', async () => {
    await fc.assert(
      fc.asyncProperty(
        kindArb,
        fc.integer({ min: 1, max: 3 }),
        fc.tuple(shardArb('s0'), shardArb('s1'), shardArb('s2')),
        fc.tuple(planArb, planArb, planArb),
        fc.array(fc.nat({ max: 2 }), { minLength: 200, maxLength: 200 }),
        async (w, nShards, shards, plans, interleave) => {
          const streams = shards.slice(0, nShards).map((rs, i) => deliveries(rs, plans[i] as never));
          const h = harness(stepsPipeline(windowYaml(w, 'final'), 'eventTime: event.t\n'));
          for (let s = 0; s < nShards; s++) h.compiled.registerShard(`s${s}`);
          // Interleave the shards' deliveries; each shard's own order is kept.
          await deliverInterleaved(streams, interleave, (batch) => h.process(batch));
          await h.flush();
          const expected = reference(shards.slice(0, nShards).flat(), w);
          expect([...(h.out as Record<string, unknown>[])].sort(byWindow)).toEqual(expected);
          expect(h.dead.values).toEqual([]); // nothing was late, nothing failed
        },
      ),
      { numRuns: 300 },
    );
  });

  it('emit: updates — the last emission of every window equals the reference', async () => {
    await fc.assert(
      fc.asyncProperty(
        kindArb.filter((w) => w.kind !== 'session'),
        fc.tuple(shardArb('s0'), shardArb('s1')),
        fc.tuple(planArb, planArb),
        async (w, shards, plans) => {
          const h = harness(stepsPipeline(windowYaml(w, 'updates'), 'eventTime: event.t\n'));
          h.compiled.registerShard('s0');
          h.compiled.registerShard('s1');
          const streams = shards.map((rs, i) => deliveries(rs, plans[i] as never));
          await deliverInTurn(streams, (batch) => h.process(batch));
          await h.flush();
          const last = lastPerWindow(h.out as Record<string, unknown>[]);
          expect([...last.values()].sort(byWindow)).toEqual(reference(shards.flat(), w));
        },
      ),
      { numRuns: 100 },
    );
  });
});
