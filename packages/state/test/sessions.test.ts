// Session windows in DynamoDB (dynalite) and Redis (redis-server) against the naive reference:
// random streams over 1 to 4 shards fed to one process or to one process per shard, batches
// redelivered whole and re-cut, with emit: final and emit: updates; a crash before the emitted
// output was acknowledged; and a replay of everything by a new process.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  byWindow,
  deliverInTurn,
  deliverInterleaved,
  deliveries,
  lastPerWindow,
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
  freshName,
  processOf,
  stateYaml,
  useBackends,
  windowPipelineYaml,
  yamlPipeline,
} from './backends.js';

const servers = useBackends();

type Keyed = { kind: 'session'; gap: number } | { kind: 'sliding'; size: number };
const keyedKind = (kind: 'session' | 'sliding', n: number): Keyed =>
  kind === 'session' ? { kind, gap: n } : { kind, size: n };

for (const [backend, kind] of [
  ['dynamodb', 'session'],
  ['redis', 'session'],
  ['dynamodb', 'sliding'],
  ['redis', 'sliding'],
] as [BackendName, 'session' | 'sliding'][]) {
  const sizes = kind === 'session' ? [15, 40, 90] : [30, 80];
  describe(`${backend}: ${kind} windows in the shared store`, () => {
    it(`emit: final — every ${kind} window exactly once, with the reference values, over shards and processes`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...sizes),
          fc.integer({ min: 1, max: 4 }),
          fc.boolean(),
          fc.tuple(shardArb('s0'), shardArb('s1'), shardArb('s2'), shardArb('s3')),
          fc.tuple(planArb, planArb, planArb, planArb),
          fc.array(fc.nat({ max: 3 }), { minLength: 100, maxLength: 100 }),
          async (gap, nShards, perShard, shards, plans, interleave) => {
            const name = freshName();
            const yaml = windowPipelineYaml(
              name,
              keyedKind(kind, gap),
              'final',
              stateYaml(servers, backend, ', partitions: 3'),
            );
            const procs = Array.from({ length: perShard ? nShards : 1 }, () => processOf(yamlPipeline(yaml)));
            try {
              for (const p of procs) for (let s = 0; s < nShards; s++) p.compiled.registerShard(`s${s}`);
              const streams = shards.slice(0, nShards).map((rs, i) => deliveries(rs, plans[i] as never));
              await deliverInterleaved(streams, interleave, (batch, s) =>
                (procs[perShard ? s : 0] as (typeof procs)[number]).process(batch),
              );
              for (const [i, p] of procs.entries()) {
                await p.flush({ shards: perShard ? [`s${i}`] : Array.from({ length: nShards }, (_, s) => `s${s}`) });
              }
              const out = procs.flatMap((p) => p.out).sort(byWindow);
              expect(out).toEqual(reference(shards.slice(0, nShards).flat(), keyedKind(kind, gap)));
              expect(procs.flatMap((p) => p.dead.values)).toEqual([]);
              // A new process replaying every shard from the start changes nothing.
              const replay = processOf(yamlPipeline(yaml));
              for (let s = 0; s < nShards; s++) replay.compiled.registerShard(`s${s}`);
              for (const rs of shards.slice(0, nShards)) if (rs.length > 0) await replay.process(toBatch(rs));
              await replay.flush();
              expect(replay.out).toEqual([]);
              expect(replay.dead.values).toEqual([]);
              await replay.close();
            } finally {
              for (const p of procs) await p.close();
            }
          },
        ),
        { numRuns: 25, endOnFailure: true },
      );
    });

    it(`emit: updates — the last emission of every ${kind} window equals the reference`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...sizes.slice(0, 2)),
          fc.tuple(shardArb('s0'), shardArb('s1')),
          fc.tuple(planArb, planArb),
          async (gap, shards, plans) => {
            const yaml = windowPipelineYaml(freshName(), keyedKind(kind, gap), 'updates', stateYaml(servers, backend));
            const proc = processOf(yamlPipeline(yaml));
            try {
              proc.compiled.registerShard('s0');
              proc.compiled.registerShard('s1');
              const streams = shards.map((rs, i) => deliveries(rs, plans[i] as never));
              await deliverInTurn(streams, (batch) => proc.process(batch));
              await proc.flush();
              // Sessions merge: the last emission of each final session (by its start) is what counts.
              const ref = reference(shards.flat(), keyedKind(kind, gap));
              const last = lastPerWindow(proc.out);
              for (const r of ref) expect(last.get(windowId(r))).toEqual(r);
            } finally {
              await proc.close();
            }
          },
        ),
        { numRuns: 15 },
      );
    });
  });
}

describe('dynamodb: a key whose sessions outgrow their item', () => {
  it('has its records dead-lettered with reason state; the batch and every other item go on', async () => {
    const yaml = `version: 1\nname: ${freshName()}\nsource: { file: { path: in.jsonl } }\neventTime: event.t\nsteps:\n  - window:\n      key: event.k\n      session: { gap: 1000 }\n      aggregate: { n: count(), all: 'collect(event.pad, 10000)' }\n      ${stateYaml(servers, 'dynamodb', ', partitions: 64')}\n`;
    const proc = processOf(yamlPipeline(yaml));
    proc.compiled.registerShard('s0');
    const pad = 'x'.repeat(20_000);
    let seq = 0;
    const batchOf = (rs: { k: string; t: number }[]) => ({
      shardId: 's0',
      records: rs.map((r) => ({
        value: { ...r, pad: r.k === 'big' ? pad : 'y' },
        partitionKey: r.k,
        sequenceNumber: String(++seq),
        arrivalTime: 0,
      })),
    });
    const all: { k: string; t: number }[] = [];
    // 30 batches: the key `big` gains 20 KB per record (its item fills up), `small` stays small.
    for (let b = 0; b < 30; b++) {
      const rs = [
        { k: 'big', t: 1000 + b * 10 },
        { k: 'small', t: 1000 + b * 10 },
      ];
      all.push(...rs);
      await proc.process(batchOf(rs)); // never throws: the store's refusal is routed, not raised
    }
    await proc.flush();
    await proc.close();
    const dead = proc.dead.values;
    expect(dead.length).toBeGreaterThan(0);
    for (const d of dead) {
      expect(d.reason).toBe('state');
      expect(d.error).toMatch(/over the 390000-byte limit/);
    }
    const counted = proc.out.reduce((n, o) => n + (o.n as number), 0);
    expect(counted + dead.length).toBe(all.length); // every record in exactly one place
    const small = proc.out.filter((o) => o.key === 'small');
    const smallDead = dead.filter((d) => d.partitionKey === 'small').length;
    expect(small.reduce((n, o) => n + (o.n as number), 0) + smallDead).toBe(30);
  });
});

for (const backend of BACKENDS) {
  describe(`${backend}: sliding windows seen by consumers with different watermarks`, () => {
    it('a record accepted on an older view, whose look-back reaches a folded point, is late — never in a short window', async () => {
      const yaml = `version: 1\nname: ${freshName()}\nsource: { file: { path: in.jsonl } }\neventTime: event.t\nsteps:\n  - window:\n      key: event.k\n      sliding: 10\n      aggregate: { n: count(), ids: 'collect(event.id, 100)' }\n      ${stateYaml(servers, backend)}\n`;
      const [p0, p1] = [processOf(yamlPipeline(yaml)), processOf(yamlPipeline(yaml))] as const;
      for (const p of [p0, p1]) for (const s of ['s0', 's1']) p.compiled.registerShard(s);
      let seq = 0;
      const batch = (shardId: string, recs: [number, string, number][]) => ({
        shardId,
        records: recs.map(([id, k, t]) => ({
          value: { id, k, t },
          partitionKey: k,
          sequenceNumber: String(++seq).padStart(5, '0'),
          arrivalTime: 0,
        })),
      });
      await p1.process(batch('s1', [[1, 'j', 0]])); // p1 reads the store before s0 delivered: its view is −∞
      await p1.process(batch('s1', [[2, 'j', 300]]));
      // p0: every shard past 300 → fires k@100, and folds its point (100 + 10 + 1 <= 300).
      await p0.process(
        batch('s0', [
          [3, 'k', 100],
          [4, 'm', 300],
        ]),
      );
      await p1.process(batch('s1', [[5, 'k', 105]])); // on time by p1's older view
      await p0.flush({ shards: ['s0'] });
      await p1.flush({ shards: ['s1'] });
      const out = [...p0.out, ...p1.out];
      const late = [...p0.dead.values, ...p1.dead.values].filter((d) => d.reason === 'late');
      const w105 = out.find((w) => w.key === 'k' && w.windowEnd === 106);
      // Either the window of 105 holds both records, or record 5 is late: in exactly one place.
      if (w105) expect(w105.ids).toEqual([3, 5]);
      else expect(late.map((d) => d.sequenceNumber)).toEqual(['00005']);
      expect(out.filter((w) => w.key === 'k').map((w) => w.windowEnd)).toContain(101);
      await p0.close();
      await p1.close();
    });
  });
}

describe('redis: tombstones of emitted sessions', () => {
  it('fold into one per key, which still tells a redelivery (duplicate) from a new record (late)', async () => {
    const name = freshName();
    const yaml = `version: 1\nname: ${name}\nsource: { file: { path: in.jsonl } }\neventTime: event.t\nsteps:\n  - window:\n      key: event.k\n      session: { gap: 10 }\n      aggregate: { n: count() }\n      ${stateYaml(servers, 'redis', ', partitions: 1')}\n`;
    const proc = processOf(yamlPipeline(yaml));
    proc.compiled.registerShard('s0');
    const recs: Rec[] = Array.from({ length: 200 }, (_, i) => ({
      k: 'a',
      t: 1000 + i * 100,
      v: 1,
      shard: 's0',
      seq: i + 1,
    }));
    for (let i = 0; i < recs.length; i += 10) await proc.process(toBatch(recs.slice(i, i + 10)));
    await proc.flush();
    expect(proc.out).toHaveLength(200); // one session per record
    // The key's item: one tombstone, whatever the number of sessions emitted.
    const { Redis } = await import('ioredis');
    const redis = new Redis(servers.redis.url);
    const keys = await redis.keys(`*${name}/*|sessions|0|0`);
    expect(keys).toHaveLength(1);
    const bodies = await Promise.all(keys.map((k) => redis.hget(k, 'b')));
    const mine = bodies.map(
      (b) => JSON.parse(b as string) as { k: [string, unknown, unknown[], unknown[], unknown[]][] },
    );
    const entry = mine.flatMap((m) => m.k).find((e) => e[0] === 'a');
    expect(entry?.[4]).toHaveLength(1);
    redis.disconnect();
    // A replay is a duplicate; a new record inside an emitted span is late.
    await proc.process(toBatch(recs.slice(100, 120)));
    expect(proc.dead.values).toEqual([]);
    await proc.process(toBatch([{ k: 'a', t: 1005, v: 1, shard: 's0', seq: 201 }]));
    expect(proc.dead.values.map((d) => [d.reason, d.sequenceNumber])).toEqual([['late', '201']]);
    await proc.close();
  });
});
