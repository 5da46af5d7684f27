// The windows differential test against the real stores: random streams over several shards
// (out of order within the watermark's bound, batches redelivered whole and re-cut), tumbling and
// hopping windows with every aggregate, state in DynamoDB (dynalite) or Redis (redis-server),
// compared with the naive reference of core's tests.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  byWindow,
  deliverInTurn,
  deliverInterleaved,
  deliveries,
  type Kind,
  lastPerWindow,
  planArb,
  reference,
  shardArb,
} from '../../core/test/windows/reference.js';
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

const alignedKinds: fc.Arbitrary<Kind> = fc.oneof(
  fc.record({ kind: fc.constant('tumbling' as const), size: fc.constantFrom(50, 100, 250) }),
  fc
    .record({ size: fc.constantFrom(100, 200), k: fc.constantFrom(1, 2, 4) })
    .map(({ size, k }) => ({ kind: 'hopping' as const, size, every: size / k })),
);

for (const backend of BACKENDS) {
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
            const proc = processOf(yamlPipeline(windowPipelineYaml(freshName(), w, 'final', state)));
            try {
              for (let s = 0; s < nShards; s++) proc.compiled.registerShard(`s${s}`);
              await deliverInterleaved(streams, interleave, (batch) => proc.process(batch));
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
            const yaml = windowPipelineYaml(freshName(), w, 'updates', stateYaml(servers, backend));
            const proc = processOf(yamlPipeline(yaml));
            try {
              proc.compiled.registerShard('s0');
              proc.compiled.registerShard('s1');
              const streams = shards.map((rs, i) => deliveries(rs, plans[i] as never));
              await deliverInTurn(streams, (batch) => proc.process(batch));
              await proc.flush();
              const last = lastPerWindow(proc.out);
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
