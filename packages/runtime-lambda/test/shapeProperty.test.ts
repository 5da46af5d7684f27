// A property over the real shape: generated streams through kinesalite and the Lambda event
// source, with 1, 2, 4 or 8 shards, keyed or random partition keys, batch sizes from 1 to 10,000,
// ParallelizationFactor 1 or 4 (a container per lane, recycled), tumbling, hopping, session and
// sliding windows in DynamoDB or Redis; the event source is killed after a random invocation and
// restarted from its checkpoints with new containers; then the whole stream is replayed from the
// start. Every record must end in exactly one place (a window whose totals equal an oracle
// recomputed from the input, or the late output), and the replay must change nothing.
// Seeded, so a CI run is reproducible; sized to fit the suite.

import { DeleteStreamCommand } from '@aws-sdk/client-kinesis';
import { count, fileSource, pipeline, sum } from '@tributary/core';
import type { StateStore } from '@tributary/core/spi';
import { createHandler, LambdaSimulator, MemoryCheckpoints } from '@tributary/runtime-lambda';
import { dynamoDbState, redisState } from '@tributary/state';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { useServers } from '../../../test-support/emulators.js';
import {
  expectEveryRecordOnce,
  generate,
  oracleSessions,
  oracleSliding,
  oracleWindows,
  type ShapeEvent,
  type ShapeOutputs,
  shapeOutputs,
  startShapeServers,
  streamOf,
} from '../../../test-support/shape.js';

const servers = useServers(() => startShapeServers('prop-state'));

type Kind = 'tumbling' | 'hopping' | 'session' | 'sliding';
const SIZE = 10_000;
const EVERY = 5_000;
const GAP = 3_000;

let runs = 0;

function build(name: string, kind: Kind, store: StateStore, s: ShapeOutputs, perShard: boolean) {
  const shape =
    kind === 'tumbling'
      ? { tumbling: SIZE }
      : kind === 'hopping'
        ? { hopping: { size: SIZE, every: EVERY } }
        : kind === 'sliding'
          ? { sliding: GAP }
          : { session: { gap: GAP } };
  return pipeline(name)
    .source(fileSource<ShapeEvent>({ path: '-' }))
    .eventTime((e) => e.ts)
    .window({
      key: (e) => e.user,
      ...shape,
      outOfOrderness: 1000,
      keyIsPartitionKey: perShard,
      aggregate: { n: count(), s: sum((e) => e.amount) },
      late: s.late,
      state: store,
    })
    .sink(s.out)
    .build();
}

interface Case {
  shards: number;
  partitionKey: 'keyed' | 'random';
  batchSize: number;
  parallelization: number;
  state: 'dynamodb' | 'redis';
  kind: Kind;
  killAfter: number;
  seed: number;
  /** With keyed partition keys: `keyIsPartitionKey` (each shard's windows on its own watermark). */
  perShard: boolean;
}

/** Runs the stream through the simulator: killed after `killAfter` invocations (0: never), then restarted. */
async function deliver(c: Case, name: string, stream: string, shards: string[], s: ShapeOutputs, killAfter: number) {
  const store =
    c.state === 'dynamodb'
      ? dynamoDbState({ table: 'prop-state', endpoint: servers.dynamo.endpoint })
      : redisState({ url: servers.redis.url });
  const p = build(name, c.kind, store, s, c.perShard && c.partitionKey === 'keyed');
  const handlers: ReturnType<typeof createHandler>[] = [];
  const container = () => {
    const h = createHandler(p, {
      deadLetter: s.dead,
      shards,
      parallelizationFactor: c.parallelization,
      log: () => {},
    });
    handlers.push(h);
    return h;
  };
  const checkpoints = new MemoryCheckpoints();
  const mapping = { batchSize: c.batchSize, maximumRetryAttempts: 3, parallelizationFactor: c.parallelization };
  const client = servers.client;
  let failed = 0;
  const onFailure = async (f: { records: unknown[] }) => {
    failed += f.records.length;
  };
  if (killAfter > 0) {
    let calls = 0;
    const killed: LambdaSimulator = new LambdaSimulator(
      {
        container: () => {
          const h = container();
          return async (e) => {
            const r = await h(e);
            if (++calls >= killAfter) killed.stop(); // dies before checkpointing this batch
            return r;
          };
        },
        recycleAfter: 5,
      },
      { client, stream, checkpoints, mapping, onFailure, pollIntervalMs: 2 },
    );
    await killed.runUntilIdle();
  }
  const sim = new LambdaSimulator(
    { container, recycleAfter: 5 },
    { client, stream, checkpoints, mapping, onFailure, pollIntervalMs: 2 },
  );
  await sim.runUntilIdle();
  const last = container();
  await (await last.ready).flush({ shards });
  for (const h of handlers) await (await h.ready).close();
  return failed;
}

/** Every record in exactly one place, against the oracle of the case's window kind. */
function expectExact(c: Case, events: ShapeEvent[], s: ShapeOutputs) {
  const oracle = (fresh: readonly ShapeEvent[]) =>
    c.kind === 'session'
      ? oracleSessions(fresh, GAP)
      : c.kind === 'sliding'
        ? oracleSliding(fresh, GAP)
        : oracleWindows(fresh, { size: SIZE, ...(c.kind === 'hopping' ? { every: EVERY } : {}) });
  expectEveryRecordOnce(events, oracle, c.kind === 'hopping' ? SIZE / EVERY : 1, s);
}

describe('windows on the real shape, as a property', () => {
  it('exact through kills, restarts and a replay, over shards, partition keys, batch sizes, lanes, stores and kinds', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          shards: fc.constantFrom(1, 2, 4, 8),
          partitionKey: fc.constantFrom('keyed' as const, 'random' as const),
          batchSize: fc.constantFrom(1, 13, 100, 500, 10_000),
          parallelization: fc.constantFrom(1, 1, 4),
          state: fc.constantFrom('dynamodb' as const, 'redis' as const),
          kind: fc.constantFrom('tumbling' as const, 'hopping' as const, 'session' as const, 'sliding' as const),
          killAfter: fc.integer({ min: 0, max: 12 }),
          seed: fc.integer({ min: 1, max: 1_000_000 }),
          perShard: fc.boolean(),
        }),
        async (c) => {
          const n = c.batchSize === 1 ? 120 : 600;
          const events = generate({ n, users: 15, seed: c.seed, stepMs: 25, disorder: 300, old: 2 });
          const client = servers.client;
          const { stream } = await streamOf(client, events, {
            shards: c.shards,
            partitionKey: c.partitionKey,
            seed: c.seed,
          });
          const shards = await new LambdaSimulator(async () => undefined, { client, stream }).shards();
          const name = `prop-${++runs}`;
          const first = shapeOutputs();
          expect(await deliver(c, name, stream, shards, first, c.killAfter)).toBe(0);
          expectExact(c, events, first);
          // The whole stream again, from the start, against the same state.
          const again = shapeOutputs();
          expect(await deliver({ ...c, batchSize: c.batchSize === 1 ? 7 : 61 }, name, stream, shards, again, 0)).toBe(
            0,
          );
          expect(again.out.values).toEqual([]);
          expect(again.dead.values).toEqual([]);
          // A replayed late record is a duplicate, not late again (partition-key ordering: its
          // position was noted in the sealed state once the late output had it).
          expect(again.late.values).toEqual([]);
          // kinesalite limits the shards of all streams together: free this one's.
          await client.send(new DeleteStreamCommand({ StreamName: stream }));
        },
      ),
      {
        numRuns: Number(process.env.SHAPE_RUNS ?? 16),
        seed: Number(process.env.SHAPE_SEED ?? 20261201),
        endOnFailure: true,
      },
    );
  }, 300_000);
});
