// Window state in memory in the worker (keyIsPartitionKey): the checkpoint is held back to the
// oldest record still in an open window, so a worker that stops — at once (its leases left to
// expire) or gracefully (released) — leaves every open window to the next one, which recomputes
// it from the held-back checkpoint. kinesalite (4 shards, the window key as partition key) and
// dynalite (the lease table) in this process; the totals are checked against an oracle
// recomputed from the input, and a window emitted by both workers must have the same content.
import { count, MemorySink, type Pipeline, pipeline, type TypedSource } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import {
  createStream,
  dynamoDbClient,
  putJson,
  startStreamServers,
  streamShards,
  useServers,
} from '../../../test-support/emulators.js';
import { DynamoDbLeaseTable } from '../src/leaseTable.js';
import { createWorker, type Worker } from '../src/worker.js';

const servers = useServers(() => startStreamServers('held-back-state'));

type Ev = { i: number; k: string; t: number; w: 'T' | 'S' };
type Win = { key: string; windowStart: number; windowEnd: number; n: number };

const T0 = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;
const WINDOW = 1000;
const GAP = 400;
const OOO = 50;
const KEYS = 24;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const settings = { failoverTimeMs: 1500, renewIntervalMs: 300, fencingMarginMs: 300, shardSyncIntervalMs: 1000 };
let names = 0;

/**
 * `n` events from `from`: keys at random, event times rising 2 ms an event with up to 10 ms of
 * disorder (less than outOfOrderness: none is late), and a 3 s pause every 1000 events, so
 * sessions end; tumbling (T) or session (S) at random.
 */
function events(from: number, n: number, seed: number): Ev[] {
  let a = seed >>> 0;
  const rand = () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 4294967296;
  };
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    return {
      i,
      k: `k${Math.floor(rand() * KEYS)}`,
      t: T0 + 2 * i + Math.floor(i / 1000) * 3000 + Math.floor(rand() * 10),
      w: rand() < 0.5 ? 'T' : 'S',
    };
  });
}

/** The oracle: per key, tumbling counts per window, and sessions (gap windows that touch merge). */
function oracle(evs: Ev[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of evs.filter((x) => x.w === 'T')) {
    const id = `T/${e.k}@${Math.floor(e.t / WINDOW) * WINDOW}`;
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  const byKey = new Map<string, number[]>();
  for (const e of evs.filter((x) => x.w === 'S')) byKey.set(e.k, [...(byKey.get(e.k) ?? []), e.t]);
  for (const [k, ts] of byKey) {
    ts.sort((x, y) => x - y);
    let start = ts[0] as number;
    let end = start + GAP;
    let n = 0;
    for (const t of ts) {
      if (t > end) {
        m.set(`S/${k}@${start}`, n);
        start = t;
        n = 0;
      }
      end = Math.max(end, t + GAP);
      n++;
    }
    m.set(`S/${k}@${start}`, n);
  }
  return m;
}

/** The windows of every sink; one emitted twice must have the same content both times. */
function emitted(sinks: { kind: string; sink: MemorySink<Win> }[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const { kind, sink } of sinks) {
    for (const w of sink.values) {
      if (w.key === 'close') continue;
      const id = `${kind}/${w.key}@${w.windowStart}`;
      const before = m.get(id);
      if (before !== undefined && before !== w.n)
        throw new Error(`window ${id} emitted twice with different content: ${before} and ${w.n}`);
      m.set(id, w.n);
    }
  }
  return m;
}

async function until(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Tumbling counts and sessions per key, state in memory, the key being the partition key. */
function heldPipeline(name: string, stream: string, tumbling: MemorySink<Win>, sessions: MemorySink<Win>): Pipeline {
  const source = { spec: { kinesis: { stream, endpoint: servers.kinesis.endpoint } } } as TypedSource<Ev>;
  const common = { key: (e: Ev) => e.k, aggregate: { n: count() }, keyIsPartitionKey: true, outOfOrderness: OOO };
  return pipeline(name)
    .source(source)
    .eventTime((e) => e.t)
    .branch([
      { when: (e) => e.w === 'T', steps: (b) => b.window({ ...common, tumbling: WINDOW }).sink(tumbling) },
      { when: (e) => e.w === 'S', steps: (b) => b.window({ ...common, session: { gap: GAP } }).sink(sessions) },
    ])
    .build() as Pipeline;
}

describe('window state in memory across a worker stop (checkpoint held back)', () => {
  for (const how of ['at once', 'gracefully', 'joined'] as const) {
    const what =
      how === 'joined'
        ? 'a second worker joins mid-run and takes leases from the first, which goes on'
        : `a worker stopped ${how} mid-run`;
    it(`${what}: the next reader of each shard recomputes every open window; totals equal the oracle`, async () => {
      const stream = `held-${++names}`;
      await createStream(servers.client, stream, 4);
      const evs = events(0, 6000, names);
      const put = (xs: Ev[]) => putJson(servers.client, stream, xs, (e) => ({ partitionKey: e.k }));
      await put(evs.slice(0, 3000));
      const app = `app-${stream}`;
      const sinks = [0, 1].map(() => ({ tumbling: new MemorySink<Win>(), sessions: new MemorySink<Win>() }));
      const clients: { destroy(): void }[] = [];
      const workerOf = (n: number): Worker => {
        const dynamodb = dynamoDbClient(servers.dynamo.endpoint);
        clients.push(dynamodb);
        const s = sinks[n] as (typeof sinks)[number];
        return createWorker(heldPipeline(`held-${stream}`, stream, s.tumbling, s.sessions), {
          app,
          workerId: `w${n}`,
          dynamodb,
          settings,
          idleTimeBetweenReadsMs: 20,
          maxRecords: 100,
          tickIntervalMs: 100,
          log: quiet,
        });
      };
      const first = workerOf(0);
      try {
        await first.start();
        await until('part of the input', () => first.status().recordsIn >= 1500);
        if (how === 'at once') {
          void first.stop('test');
          await first.stop('test again'); // the second stop: at once, nothing more checkpointed
        } else if (how === 'gracefully') await first.stop('test');
      } finally {
        if (how !== 'joined') void first.stop('test ended').catch(() => {});
      }
      // The checkpoints were held back: some shard's is before the last record it processed.
      const client = dynamoDbClient(servers.dynamo.endpoint);
      clients.push(client);
      const leases = await new DynamoDbLeaseTable(client, app).list();
      expect(leases.some((l) => l.held !== undefined && l.held.processed !== l.checkpoint)).toBe(true);

      const second = workerOf(1);
      if (how === 'joined') {
        // The second worker takes leases from the first while it reads; the input goes on after.
        await second.start();
        await until('leases taken', () => second.status().shards.some((sh) => sh.state === 'reading'));
        await put(evs.slice(3000, 3600));
      }
      await put(evs.slice(how === 'joined' ? 3600 : 3000));
      for (const sh of (await streamShards(servers.client, stream)).filter((x) => x.open)) {
        await putJson(servers.client, stream, [{ i: -1, k: 'close', t: T0 + 10_000_000, w: 'T' as const }], () => ({
          partitionKey: 'close',
          explicitHashKey: sh.hashKey,
        }));
      }
      const all = () =>
        emitted(
          sinks.flatMap((s) => [
            { kind: 'T', sink: s.tumbling },
            { kind: 'S', sink: s.sessions },
          ]),
        );
      const expected = oracle(evs);
      try {
        if (how !== 'joined') await second.start();
        await until('every window', () => all().size >= expected.size);
        await Promise.all([second.stop('test'), how === 'joined' ? first.stop('test') : undefined]);
      } finally {
        for (const w of [first, second]) {
          void w.stop('test ended').catch(() => {});
          await w.stop('test ended').catch(() => {});
        }
        for (const c of clients) c.destroy();
      }
      expect(all()).toEqual(expected);
      if (how === 'joined') {
        // Both read: the first held every lease, then gave some up.
        expect(second.status().recordsIn).toBeGreaterThan(0);
        return;
      }
      // The first worker left windows open (they were recomputed, not lost).
      const firstOnly = emitted([
        { kind: 'T', sink: (sinks[0] as (typeof sinks)[number]).tumbling },
        { kind: 'S', sink: (sinks[0] as (typeof sinks)[number]).sessions },
      ]);
      expect(firstOnly.size).toBeLessThan(expected.size);
    }, 90_000);
  }
});

describe('the lease attributes of a held-back checkpoint', () => {
  it('tributaryProcessed and tributaryWindowState are written with the checkpoint, kept by other writes, removed by a checkpoint without them', async () => {
    const client = dynamoDbClient(servers.dynamo.endpoint);
    try {
      const table = new DynamoDbLeaseTable(client, `held-leases-${++names}`, { pollIntervalMs: 5 });
      await table.ensure();
      const fresh = {
        leaseKey: 's0',
        leaseCounter: 0,
        checkpoint: 'TRIM_HORIZON',
        checkpointSubSequenceNumber: 0,
        ownerSwitchesSinceCheckpoint: 0,
        parentShardIds: [],
        childShardIds: [],
      };
      expect(await table.create(fresh)).toBe(true);
      const taken = await table.take(fresh, 'w0');
      const held = { processed: '300:2', state: '{"v":1}' };
      const written = await table.checkpoint(taken as NonNullable<typeof taken>, {
        sequenceNumber: '100',
        subSequenceNumber: 0,
        held,
      });
      expect(written?.held).toEqual(held);
      const renewed = await table.renew(written as NonNullable<typeof written>);
      expect((await table.list())[0]).toMatchObject({ checkpoint: '100', held, leaseOwner: 'w0' });
      const plain = await table.checkpoint(renewed as NonNullable<typeof renewed>, {
        sequenceNumber: '400',
        subSequenceNumber: 0,
      });
      expect(plain?.held).toBeUndefined();
      expect((await table.list())[0]?.held).toBeUndefined();
    } finally {
      client.destroy();
    }
  });
});
