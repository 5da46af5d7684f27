// Per-partition stream time (`keyIsPartitionKey: true`): where each shard holds all of its keys'
// records, a shard's windows close on its own watermark, not on the slowest shard's. Checked on
// random streams of 4 shards far apart in event time (one far behind the others), delivered in
// interleavings the test does not choose, with replays and batches re-cut: before the flush,
// exactly the windows each shard's own watermark has closed are out; after it, every window once
// with the reference's values; a record behind its own shard's watermark is late, every record
// in exactly one place.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from '../helpers.js';
import { harness } from '../window-helpers.js';
import {
  byWindow,
  DISORDER,
  deliverInterleaved,
  deliveries,
  type Kind,
  kindArb,
  planArb,
  type Rec,
  reference,
  shardArb,
  toBatch,
  windowYaml,
} from './reference.js';

const SHARDS = 4;
/** Shard s runs s × OFFSET ms ahead of shard 0 in event time: its windows are long closed by its own watermark. */
const OFFSET = 5_000;

/** Shard s's records: its own keys (the partition key is the window key), far ahead of shard s − 1. */
const shardStream = (s: number) =>
  shardArb(`s${s}`).map((rs) => rs.map((r) => ({ ...r, k: `${r.k}${s}`, t: r.t + s * OFFSET })));

/** A harness over windows of kind `w` with `keyIsPartitionKey: true`. */
const partitionKeyed = (w: Kind) =>
  harness(stepsPipeline(windowYaml(w, 'final', '\n      keyIsPartitionKey: true'), 'eventTime: event.t\n'));

const TUMBLING_500: Kind = { kind: 'tumbling', size: 500 };

/** Shard s's 20 records, 100 ms apart from s × OFFSET on, all of key `k<s>`. */
const recsOf = (s: number): Rec[] =>
  Array.from({ length: 20 }, (_, i) => ({
    k: `k${s}`,
    t: 1000 + s * OFFSET + i * 100,
    v: 1,
    shard: `s${s}`,
    seq: i + 1,
  }));

/** The grain of a window that a shard's watermark `wm` has closed: end + allowedLateness (5) ≤ wm. */
const closedBy = (wm: number) => (w: Record<string, unknown>) => (w.windowEnd as number) + 5 <= wm;

describe('windows with keyIsPartitionKey close on their own shard watermark', () => {
  it('every kind: what each shard has closed is out before the flush, everything once after it', async () => {
    await fc.assert(
      fc.asyncProperty(
        kindArb,
        fc.tuple(shardStream(0), shardStream(1), shardStream(2), shardStream(3)),
        fc.tuple(planArb, planArb, planArb, planArb),
        fc.array(fc.nat({ max: SHARDS - 1 }), { minLength: 100, maxLength: 100 }),
        async (w, shards, plans, interleave) => {
          const h = partitionKeyed(w);
          for (let s = 0; s < SHARDS; s++) h.compiled.registerShard(`s${s}`);
          const streams = shards.map((rs, i) => deliveries(rs, plans[i] as never));
          await deliverInterleaved(streams, interleave, (batch) => h.process(batch));
          // Before the flush: per shard, exactly the windows its own watermark closed. (The
          // shards are 5 s apart, so with the lowest watermark over shards only shard 0's would be.)
          const early: Record<string, unknown>[] = [];
          for (let s = 0; s < SHARDS; s++) {
            const rs = shards[s] as Rec[];
            if (rs.length === 0) continue;
            const wm = Math.max(...rs.map((r) => r.t)) - DISORDER;
            early.push(...reference(rs, w).filter(closedBy(wm)));
          }
          expect([...(h.out as Record<string, unknown>[])].sort(byWindow)).toEqual(early.sort(byWindow));
          await h.flush();
          expect([...(h.out as Record<string, unknown>[])].sort(byWindow)).toEqual(reference(shards.flat(), w));
          expect(h.dead.values).toEqual([]);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('the same input without it waits for the slowest shard', async () => {
    for (const perShard of [false, true]) {
      const extra = perShard ? '\n      keyIsPartitionKey: true' : '';
      const h = harness(stepsPipeline(windowYaml(TUMBLING_500, 'final', extra), 'eventTime: event.t\n'));
      for (let s = 0; s < SHARDS; s++) h.compiled.registerShard(`s${s}`);
      for (let s = SHARDS - 1; s >= 0; s--) await h.process(toBatch(recsOf(s)));
      const keys = new Set((h.out as { key: string }[]).map((o) => o.key));
      // Shard 0's watermark (~2.9 s) is the lowest: alone it closes only its own windows.
      expect([...keys].sort()).toEqual(perShard ? ['k0', 'k1', 'k2', 'k3'] : ['k0']);
    }
  });

  it("a record behind its own shard's watermark is late there, though the other shards are behind it", async () => {
    const late: Rec = { k: 'k1', t: 1000 + OFFSET, v: 7, shard: 's1', seq: 21 };
    const h = partitionKeyed(TUMBLING_500);
    for (let s = 0; s < SHARDS; s++) h.compiled.registerShard(`s${s}`);
    for (let s = 0; s < SHARDS; s++) await h.process(toBatch(recsOf(s)));
    await h.process(toBatch([late]));
    await h.process(toBatch([late])); // redelivered: a duplicate, not late again
    await h.flush();
    expect(h.late().map((d) => [d.shardId, d.sequenceNumber, d.value])).toEqual([
      ['s1', '21', { k: 'k1', t: late.t, v: 7 }],
    ]);
    const all = [0, 1, 2, 3].flatMap(recsOf);
    expect([...(h.out as Record<string, unknown>[])].sort(byWindow)).toEqual(reference(all, TUMBLING_500));
  });
});

describe('keyIsPartitionKey and resharding', () => {
  it("a closed shard's windows are all emitted at the next batch (it delivers nothing more); its children start their own", async () => {
    const recs = (s: string, from: number, seq0 = 1): Rec[] =>
      Array.from({ length: 10 }, (_, i) => ({ k: 'k', t: from + i * 100, v: 1, shard: s, seq: seq0 + i }));
    const h = partitionKeyed(TUMBLING_500);
    h.compiled.registerShard('parent');
    await h.process(toBatch(recs('parent', 1000)));
    const before = h.out.length;
    h.compiled.closeShard('parent');
    await h.process(toBatch(recs('child', 2000)));
    // The parent's last window ([1500, 2000)) is out: closed, it holds every record it will get.
    expect(h.out.length).toBeGreaterThan(before);
    expect((h.out as { windowStart: number }[]).map((o) => o.windowStart)).toContain(1500);
    await h.flush();
    expect([...(h.out as Record<string, unknown>[])].sort(byWindow)).toEqual(
      reference([...recs('parent', 1000), ...recs('child', 2000)], TUMBLING_500),
    );
  });

  it('a window open across the reshard (or a key on two shards) is emitted once per shard; the parts add up', async () => {
    const recs = (s: string, from: number): Rec[] =>
      Array.from({ length: 10 }, (_, i) => ({ k: 'k', t: from + i * 100, v: i, shard: s, seq: i + 1 }));
    const h = partitionKeyed(TUMBLING_500);
    h.compiled.registerShard('parent');
    await h.process(toBatch(recs('parent', 1000)));
    h.compiled.closeShard('parent');
    await h.process(toBatch(recs('child', 1800))); // [1500, 2000) has records on both
    await h.flush();
    const all = reference([...recs('parent', 1000), ...recs('child', 1800)], TUMBLING_500);
    const out = h.out as { windowStart: number; n: number; s: number }[];
    expect(out.filter((o) => o.windowStart === 1500)).toHaveLength(2);
    for (const w of all as { windowStart: number; n: number; s: number }[]) {
      const parts = out.filter((o) => o.windowStart === w.windowStart);
      expect([parts.reduce((a, o) => a + o.n, 0), parts.reduce((a, o) => a + o.s, 0)]).toEqual([w.n, w.s]);
    }
  });
});
