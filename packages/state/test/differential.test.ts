// The windows differential test against the real stores: random streams over several shards
// (out of order within the watermark's bound, batches redelivered whole and re-cut), tumbling and
// hopping windows with every aggregate, state in DynamoDB (dynalite) or Redis (redis-server),
// compared with the naive reference of core's tests.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  byWindow,
  deliveries,
  type Kind,
  planArb,
  type Rec,
  reference,
  shardArb,
  toBatch,
  windowYaml,
} from '../../core/test/windows/reference.js';
import {
  type BackendName,
  type Backends,
  freshName,
  processOf,
  startBackends,
  stateYaml,
  yamlPipeline,
} from './backends.js';

let servers: Backends;
beforeAll(async () => {
  servers = await startBackends();
});
afterAll(async () => {
  await servers?.close();
});

const alignedKinds: fc.Arbitrary<Kind> = fc.oneof(
  fc.record({ kind: fc.constant('tumbling' as const), size: fc.constantFrom(50, 100, 250) }),
  fc
    .record({ size: fc.constantFrom(100, 200), k: fc.constantFrom(1, 2, 4) })
    .map(({ size, k }) => ({ kind: 'hopping' as const, size, every: size / k })),
);

const pipelineYaml = (name: string, w: Kind, emit: string, state: string) =>
  `version: 1\nname: ${name}\nsource: { file: { path: in.jsonl } }\neventTime: event.t\nsteps:\n${windowYaml(w, emit, `\n      ${state}`)}\n`;

for (const backend of ['dynamodb', 'redis'] as BackendName[]) {
  describe(`${backend} state matches the naive reference`, () => {
    it('emit: final — every window exactly once, exactly the reference values, nothing late', async () => {
      await fc.assert(
        fc.asyncProperty(
          alignedKinds,
          fc.integer({ min: 1, max: 3 }),
          fc.constantFrom(1, 2, 3, 4, 40), // 40: a shard's items under several partition keys
          fc.tuple(shardArb('s0'), shardArb('s1'), shardArb('s2')),
          fc.tuple(planArb, planArb, planArb),
          fc.array(fc.nat({ max: 2 }), { minLength: 200, maxLength: 200 }),
          async (w, nShards, partitions, shards, plans, interleave) => {
            const streams = shards.slice(0, nShards).map((rs, i) => deliveries(rs, plans[i] as never));
            const state = stateYaml(servers, backend, `, partitions: ${partitions}`);
            const proc = processOf(yamlPipeline(pipelineYaml(freshName(), w, 'final', state)));
            try {
              for (let s = 0; s < nShards; s++) proc.compiled.registerShard(`s${s}`);
              const cursors = streams.map(() => 0);
              for (let i = 0; cursors.some((c, s) => c < (streams[s] as Rec[][]).length); i++) {
                let s = (interleave[i % interleave.length] as number) % nShards;
                while ((cursors[s] as number) >= (streams[s] as Rec[][]).length) s = (s + 1) % nShards;
                await proc.process(toBatch((streams[s] as Rec[][])[cursors[s] as number] as Rec[]));
                cursors[s] = (cursors[s] as number) + 1;
              }
              await proc.flush();
              expect([...proc.out].sort(byWindow)).toEqual(reference(shards.slice(0, nShards).flat(), w));
              expect(proc.dead.values).toEqual([]);
            } finally {
              await proc.close();
            }
          },
        ),
        { numRuns: 60 },
      );
    });

    it('emit: updates — the last emission of every window equals the reference', async () => {
      await fc.assert(
        fc.asyncProperty(
          alignedKinds,
          fc.tuple(shardArb('s0'), shardArb('s1')),
          fc.tuple(planArb, planArb),
          async (w, shards, plans) => {
            const proc = processOf(yamlPipeline(pipelineYaml(freshName(), w, 'updates', stateYaml(servers, backend))));
            try {
              proc.compiled.registerShard('s0');
              proc.compiled.registerShard('s1');
              const streams = shards.map((rs, i) => deliveries(rs, plans[i] as never));
              const longest = Math.max(...streams.map((s) => s.length));
              for (let i = 0; i < longest; i++)
                for (const s of streams) if (s[i]) await proc.process(toBatch(s[i] as Rec[]));
              await proc.flush();
              const last = new Map<string, Record<string, unknown>>();
              for (const o of proc.out) last.set(`${o.key}/${o.windowStart}/${o.windowEnd}`, o);
              expect([...last.values()].sort(byWindow)).toEqual(reference(shards.flat(), w));
            } finally {
              await proc.close();
            }
          },
        ),
        { numRuns: 25 },
      );
    });
  });
}
