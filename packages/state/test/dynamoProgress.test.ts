// Shard progress in DynamoDB, one item per shard (against dynalite): writers of different shards
// never conflict, every field only moves forward, shard ids of any text round-trip, and a table
// written by the previous layout (every shard in one item) is read and merged.
import { GetItemCommand, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import type { StoredShardProgress } from '@tributary/core/spi';
import { DynamoDbBackend, dynamoDbClient } from '@tributary/state';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createStateTables,
  type Emulator,
  dynamoDbClient as emulatorDynamoDbClient,
  startDynalite,
} from '../../../test-support/emulators.js';

const TABLE = 'progress-state';
let dyn: Emulator;
/** The test's own client, to read and plant items. */
let admin: ReturnType<typeof emulatorDynamoDbClient>;
let runs = 0;
const freshNs = () => `p${process.pid}-${++runs}/win`;

beforeAll(async () => {
  dyn = await startDynalite();
  await createStateTables(dyn.endpoint, TABLE);
  admin = emulatorDynamoDbClient(dyn.endpoint);
});
afterAll(async () => {
  admin?.destroy();
  await dyn?.close();
});

/** A "process": its own client and backend, with a count of the calls it made by command and of failed conditions. */
function processOf(progressPartitions = 1) {
  const client = dynamoDbClient({ endpoint: dyn.endpoint });
  const counts = { conflicts: 0, byCommand: {} as Record<string, number> };
  const send = client.send.bind(client) as (command: unknown) => Promise<unknown>;
  client.send = (async (command: { constructor: { name: string } }) => {
    const name = command.constructor.name;
    counts.byCommand[name] = (counts.byCommand[name] ?? 0) + 1;
    try {
      return await send(command);
    } catch (err) {
      if ((err as { name?: string }).name === 'ConditionalCheckFailedException') counts.conflicts++;
      throw err;
    }
  }) as never;
  return { backend: new DynamoDbBackend(client, TABLE, true, 16, false, progressPartitions), counts };
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NEG = Number.NEGATIVE_INFINITY;
const progress = (shardId: string, p: Partial<StoredShardProgress> = {}): StoredShardProgress => ({
  shardId,
  maxEventTime: NEG,
  sourceWatermark: NEG,
  lastActivity: NEG,
  closed: false,
  ...p,
});

/** The oracle: every field the greatest written (positions by numeric value), closed if ever closed. */
function forward(shardId: string, written: readonly StoredShardProgress[]): StoredShardProgress {
  const out = progress(shardId);
  for (const w of written) {
    out.maxEventTime = Math.max(out.maxEventTime, w.maxEventTime);
    out.sourceWatermark = Math.max(out.sourceWatermark, w.sourceWatermark);
    out.lastActivity = Math.max(out.lastActivity, w.lastActivity);
    out.closed ||= w.closed;
    if (w.applied !== undefined && (out.applied === undefined || BigInt(w.applied) > BigInt(out.applied)))
      out.applied = w.applied;
  }
  return out;
}

const byShard = (all: readonly StoredShardProgress[]) => new Map(all.map((p) => [p.shardId, p]));

describe('DynamoDB shard progress', () => {
  it('16 processes writing their own shards concurrently never conflict, and every shard reads forward-merged', async () => {
    const ns = freshNs();
    const rnd = random(7);
    const int = (n: number) => Math.floor(rnd() * n);
    const shards = Array.from({ length: 16 }, (_, i) => `shardId-${String(i).padStart(12, '0')}`);
    const plans = shards.map((shardId) =>
      Array.from({ length: 20 }, () =>
        progress(shardId, {
          maxEventTime: rnd() < 0.1 ? NEG : int(1_000_000),
          sourceWatermark: rnd() < 0.7 ? NEG : int(1_000_000),
          lastActivity: int(1_000_000),
          closed: rnd() < 0.05,
          // Positions of 1 to 19 digits: compared by value, not as text.
          ...(rnd() < 0.2 ? {} : { applied: String(1 + int(9)) + String(int(10 ** 9)).repeat(int(3)) }),
        }),
      ),
    );
    const procs = shards.map(() => processOf());
    await Promise.all(
      procs.map(async ({ backend }, i) => {
        const plan = plans[i] as StoredShardProgress[];
        for (let round = 0; round < plan.length; round++) {
          const all = await backend.progress(ns, [plan[round] as StoredShardProgress]);
          // Its own shard, which only it writes: exactly what it wrote so far, merged.
          expect(byShard(all).get(shards[i] as string)).toEqual(forward(shards[i] as string, plan.slice(0, round + 1)));
        }
      }),
    );
    expect(procs.map((p) => p.counts.conflicts)).toEqual(shards.map(() => 0));
    // A write starts from what the process last wrote: only its first looks the item up (its
    // own item, then the legacy one), every later one is a single conditional PutItem.
    for (const { counts } of procs) {
      expect(counts.byCommand.GetItemCommand).toBe(2);
      expect(counts.byCommand.QueryCommand).toBe(20);
      expect(counts.byCommand.PutItemCommand ?? 0).toBeLessThanOrEqual(20);
    }
    const reader = processOf();
    const all = await reader.backend.progress(ns, []);
    expect(reader.counts.byCommand).toEqual({ QueryCommand: 1 });
    expect(byShard(all)).toEqual(new Map(shards.map((s, i) => [s, forward(s, plans[i] as StoredShardProgress[])])));
    await Promise.all([...procs, reader].map((p) => p.backend.close()));
  });

  it('reads nothing in an empty namespace', async () => {
    const { backend } = processOf();
    expect(await backend.progress(freshNs(), [])).toEqual([]);
    await backend.close();
  });

  it('round-trips shard ids of any text (pipes, unicode, empty, the legacy sort key)', async () => {
    const ns = freshNs();
    const ids = ['a|b|c', 'shardId-0|', '|', 'ストリーム🌊ß', '', '-', 's:x'];
    const writer = processOf();
    const written = ids.map((id, i) => progress(id, { maxEventTime: i * 10, lastActivity: i, applied: String(i) }));
    await writer.backend.progress(ns, written);
    const reader = processOf();
    expect(byShard(await reader.backend.progress(ns, []))).toEqual(byShard(written));
    await Promise.all([writer.backend.close(), reader.backend.close()]);
  });

  it('moves every field forward only, whoever writes and whatever the process last saw', async () => {
    const ns = freshNs();
    const a = processOf();
    const b = processOf();
    const s = 'shard-0';
    const read = async () => byShard(await b.backend.progress(ns, [])).get(s);
    await a.backend.progress(ns, [
      progress(s, { maxEventTime: 500, sourceWatermark: 400, lastActivity: 30, applied: '100' }),
    ]);
    // Lower values later (from another process, and then from a stale one) lower nothing.
    await b.backend.progress(ns, [
      progress(s, { maxEventTime: 100, sourceWatermark: 50, lastActivity: 10, applied: '99' }),
    ]);
    expect(await read()).toEqual(
      progress(s, { maxEventTime: 500, sourceWatermark: 400, lastActivity: 30, applied: '100' }),
    );
    await b.backend.progress(ns, [progress(s, { maxEventTime: 600, lastActivity: 40, applied: '1000' })]);
    // a's last write is v1, the item is at v2: its condition fails once, it reads and merges.
    await a.backend.progress(ns, [progress(s, { maxEventTime: 550, lastActivity: 35, applied: '999' })]);
    expect(a.counts.conflicts).toBe(1);
    expect(await read()).toEqual(
      progress(s, { maxEventTime: 600, sourceWatermark: 400, lastActivity: 40, applied: '1000' }),
    );
    // Closed stays closed.
    await a.backend.progress(ns, [progress(s, { closed: true })]);
    await b.backend.progress(ns, [progress(s, { maxEventTime: 700, lastActivity: 50, closed: false })]);
    expect(await read()).toEqual(
      progress(s, { maxEventTime: 700, sourceWatermark: 400, lastActivity: 50, closed: true, applied: '1000' }),
    );
    await Promise.all([a.backend.close(), b.backend.close()]);
  });

  it('ends a shard again after another process made it live, though the process saw it ended last', async () => {
    const ns = freshNs();
    const a = processOf();
    const b = processOf();
    const s = 'shard-0';
    const ended = progress(s, { maxEventTime: 100, lastActivity: 10, ended: true });
    expect(byShard(await a.backend.progress(ns, [ended])).get(s)?.ended).toBe(true);
    // Newer activity on the shard makes it live again…
    const live = byShard(await b.backend.progress(ns, [progress(s, { maxEventTime: 200, lastActivity: 20 })])).get(s);
    expect(live).toEqual(progress(s, { maxEventTime: 200, lastActivity: 20 }));
    // …and a's end of input, the same it wrote before, ends it again.
    const again = byShard(await a.backend.progress(ns, [ended])).get(s);
    expect(again).toEqual(progress(s, { maxEventTime: 200, lastActivity: 20, ended: true }));
    await Promise.all([a.backend.close(), b.backend.close()]);
  });

  it('merges updates of one shard in one call in order', async () => {
    const ns = freshNs();
    const { backend, counts } = processOf();
    const s = 's0';
    const all = await backend.progress(ns, [
      progress(s, { maxEventTime: 10, lastActivity: 1, ended: true }),
      progress(s, { maxEventTime: 5, lastActivity: 2 }),
      progress(s, { closed: true, applied: '7' }),
    ]);
    // The later activity (2 > 1) made it live again.
    expect(all).toEqual([progress(s, { maxEventTime: 10, lastActivity: 2, closed: true, applied: '7' })]);
    expect(counts.byCommand.PutItemCommand).toBe(1);
    await backend.close();
  });

  it('reads the previous layout (every shard in one item) and merges it with per-shard items', async () => {
    const ns = freshNs();
    // As the previous version wrote it: progress JSON per shard, −∞ as null.
    const legacy = {
      s0: '{"m":1000,"w":null,"a":50,"c":false,"p":"420"}',
      's|1': '{"m":300,"w":200,"a":60,"c":true}',
      s2: '{"m":700,"w":null,"a":70,"c":false,"e":true}',
    };
    const legacyItem = {
      pk: { S: `${ns}|shards` },
      sk: { S: '-' },
      b: { S: JSON.stringify(legacy) },
      v: { N: '1' },
    };
    await admin.send(new PutItemCommand({ TableName: TABLE, Item: legacyItem }));
    const s0 = progress('s0', { maxEventTime: 1000, lastActivity: 50, applied: '420' });
    const s1 = progress('s|1', { maxEventTime: 300, sourceWatermark: 200, lastActivity: 60, closed: true });
    const s2 = progress('s2', { maxEventTime: 700, lastActivity: 70, ended: true });
    const a = processOf();
    expect(byShard(await a.backend.progress(ns, []))).toEqual(byShard([s0, s1, s2]));

    // New progress for s0 (lower event time, later activity, higher position) and a new shard s3.
    const all = await a.backend.progress(ns, [
      progress('s0', { maxEventTime: 900, lastActivity: 80, applied: '1000' }),
      progress('s3', { maxEventTime: 5, lastActivity: 5 }),
    ]);
    const s0After = progress('s0', { maxEventTime: 1000, lastActivity: 80, applied: '1000' });
    const s3 = progress('s3', { maxEventTime: 5, lastActivity: 5 });
    expect(byShard(all)).toEqual(byShard([s0After, s1, s2, s3]));
    // s0 now has its own item, which started from its legacy entry; the legacy item is untouched.
    const own = await admin.send(
      new GetItemCommand({
        TableName: TABLE,
        Key: { pk: { S: `${ns}|shards` }, sk: { S: 's:s0' } },
        ConsistentRead: true,
      }),
    );
    expect(JSON.parse(own.Item?.b?.S ?? 'null')).toEqual({ m: 1000, w: null, a: 80, c: false, p: '1000' });
    const old = await admin.send(
      new GetItemCommand({
        TableName: TABLE,
        Key: { pk: { S: `${ns}|shards` }, sk: { S: '-' } },
        ConsistentRead: true,
      }),
    );
    expect(old.Item).toEqual(legacyItem);

    // Another process (which never saw the legacy item) makes s2 live again and reads it so.
    const b = processOf();
    const s2Live = byShard(await b.backend.progress(ns, [progress('s2', { maxEventTime: 800, lastActivity: 90 })]));
    expect(s2Live.get('s2')).toEqual(progress('s2', { maxEventTime: 800, lastActivity: 90 }));
    expect(byShard(await a.backend.progress(ns, []))).toEqual(
      byShard([s0After, s1, progress('s2', { maxEventTime: 800, lastActivity: 90 }), s3]),
    );
    await Promise.all([a.backend.close(), b.backend.close()]);
  });

  it('with progressPartitions, spreads the shards over that many partition keys and reads them all', async () => {
    const ns = freshNs();
    const writer = processOf(8);
    const shards = Array.from({ length: 40 }, (_, i) => `shardId-${String(i).padStart(12, '0')}`);
    await writer.backend.progress(
      ns,
      shards.map((s, i) => progress(s, { maxEventTime: i, lastActivity: i })),
    );
    const reader = processOf(8);
    const all = await reader.backend.progress(ns, []);
    expect(byShard(all)).toEqual(byShard(shards.map((s, i) => progress(s, { maxEventTime: i, lastActivity: i }))));
    expect(reader.counts.byCommand).toEqual({ QueryCommand: 9 }); // 8 partitions and the legacy key
    // The items really are under several partition keys (none holds every shard).
    const perKey = await Promise.all(
      Array.from({ length: 8 }, async (_, n) => {
        const r = await admin.send(
          new QueryCommand({
            TableName: TABLE,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': { S: `${ns}|shards|${n}` } },
          }),
        );
        return r.Items?.length ?? 0;
      }),
    );
    expect(perKey.reduce((a, b) => a + b, 0)).toBe(40);
    expect(Math.max(...perKey)).toBeLessThan(40);
    await Promise.all([writer.backend.close(), reader.backend.close()]);
  });

  it('raising progressPartitions on a table keeps every shard’s progress written before (forward merged)', async () => {
    const ns = freshNs();
    const before = processOf(1);
    await before.backend.progress(ns, [progress('s0', { maxEventTime: 50, lastActivity: 1, applied: '100' })]);
    const after = processOf(8);
    expect(byShard(await after.backend.progress(ns, [])).get('s0')).toEqual(
      progress('s0', { maxEventTime: 50, lastActivity: 1, applied: '100' }),
    );
    // Its first write under the new layout starts from the old item: the acknowledged position stays.
    await after.backend.progress(ns, [progress('s0', { maxEventTime: 60, lastActivity: 2 })]);
    const reader = processOf(8);
    expect(byShard(await reader.backend.progress(ns, [])).get('s0')).toEqual(
      progress('s0', { maxEventTime: 60, lastActivity: 2, applied: '100' }),
    );
    await Promise.all([before.backend.close(), after.backend.close(), reader.backend.close()]);
  });
});
