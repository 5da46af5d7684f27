// The real shape of a stream, for runtime tests: a Kinesis stream (kinesalite) of several shards
// filled with generated events, random or keyed partition keys, a few records hours old, and an
// oracle recomputed from the generated input alone (it shares no code with the window step).
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { type DeadLetterRecord, MemorySink } from '@tributary/core';
import { expect } from 'vitest';
import {
  createStream,
  type Placed,
  putJson,
  type RedisServer,
  type StreamServers,
  startRedis,
  startStreamServers,
} from './emulators.js';

export interface ShapeEvent {
  user: string;
  amount: number;
  ts: number;
  /** A record hours older than the stream around it (late under any interleaving once data flowed). */
  old?: boolean;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same stream. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const T0 = 1_700_000_000_000;

/**
 * `n` events over `users` keys, one per `stepMs` of event time, each displaced by up to
 * `disorder` ms (below the window's outOfOrderness), and `old` records 6 h older placed in the
 * last third of the stream (each with a key of its own, so where it ended is visible).
 */
export function generate(options: {
  n: number;
  users: number;
  seed: number;
  stepMs?: number;
  disorder?: number;
  old?: number;
}): ShapeEvent[] {
  const rnd = prng(options.seed);
  const step = options.stepMs ?? 50;
  const disorder = options.disorder ?? 0;
  const out: ShapeEvent[] = [];
  for (let i = 0; i < options.n; i++) {
    out.push({
      user: `u${Math.floor(rnd() * options.users)}`,
      amount: Math.floor(rnd() * 100),
      ts: T0 + i * step + Math.floor(rnd() * disorder),
    });
  }
  for (let j = 0; j < (options.old ?? 0); j++) {
    const at = Math.floor(options.n * (0.7 + 0.25 * rnd()));
    out.splice(at, 0, { user: `old${j}`, amount: 1, ts: T0 + at * step - 6 * 3_600_000, old: true });
  }
  return out;
}

let streams = 0;

/**
 * Creates a stream of `shards` shards and puts `events` in order (500 a call). Partition key:
 * the user (`keyed`), or random text (`random`, so one user's events spread over every shard).
 * Returns the stream name and, per event, the shard and sequence number Kinesis gave it.
 */
export async function streamOf(
  client: KinesisClient,
  events: readonly ShapeEvent[],
  options: { shards: number; partitionKey: 'keyed' | 'random'; seed: number },
): Promise<{ stream: string; placed: Placed[] }> {
  const stream = `shape${process.pid}x${++streams}`;
  await createStream(client, stream, options.shards);
  const rnd = prng(options.seed ^ 0x5eed);
  const placed = await putJson(client, stream, events, (e) => ({
    partitionKey: options.partitionKey === 'keyed' ? e.user : `pk-${Math.floor(rnd() * 1e9)}`,
  }));
  return { stream, placed };
}

/** Per (user, window start): count and sum of the events, tumbling or hopping windows. */
export function oracleWindows(
  events: readonly ShapeEvent[],
  w: { size: number; every?: number },
): Map<string, { n: number; s: number }> {
  const every = w.every ?? w.size;
  const m = new Map<string, { n: number; s: number }>();
  for (const e of events) {
    for (let s = Math.floor(e.ts / every) * every; s > e.ts - w.size; s -= every) {
      const id = `${e.user}/${s}`;
      const cur = m.get(id) ?? { n: 0, s: 0 };
      cur.n++;
      cur.s += e.amount;
      m.set(id, cur);
    }
  }
  return m;
}

/**
 * Per (user, session start): count and sum of the events, session windows with this gap: a
 * key's events sorted by time, a session ends `gap` after its last event, and an event at or
 * before the current session's end joins it (sessions that touch merge).
 */
export function oracleSessions(events: readonly ShapeEvent[], gap: number): Map<string, { n: number; s: number }> {
  const byUser = new Map<string, ShapeEvent[]>();
  for (const e of events) byUser.set(e.user, [...(byUser.get(e.user) ?? []), e]);
  const m = new Map<string, { n: number; s: number }>();
  for (const [user, es] of byUser) {
    const sorted = [...es].sort((a, b) => a.ts - b.ts);
    let start = 0;
    let end = Number.NEGATIVE_INFINITY;
    let cur: { n: number; s: number } | undefined;
    for (const e of sorted) {
      if (cur && e.ts <= end) {
        end = Math.max(end, e.ts + gap);
        cur.n++;
        cur.s += e.amount;
      } else {
        if (cur) m.set(`${user}/${start}`, cur);
        start = e.ts;
        end = e.ts + gap;
        cur = { n: 1, s: e.amount };
      }
    }
    if (cur) m.set(`${user}/${start}`, cur);
  }
  return m;
}

/** Per (user, window start): sliding windows, one per distinct event time t of a user, over [t − size, t]. */
export function oracleSliding(events: readonly ShapeEvent[], size: number): Map<string, { n: number; s: number }> {
  const byUser = new Map<string, ShapeEvent[]>();
  for (const e of events) byUser.set(e.user, [...(byUser.get(e.user) ?? []), e]);
  const m = new Map<string, { n: number; s: number }>();
  for (const [user, es] of byUser) {
    for (const t of new Set(es.map((e) => e.ts))) {
      const inside = es.filter((e) => e.ts >= t - size && e.ts <= t);
      m.set(`${user}/${t - size}`, { n: inside.length, s: inside.reduce((a, e) => a + e.amount, 0) });
    }
  }
  return m;
}

/** A window as the shape tests' pipelines emit it: the count `n` and sum `s` of its events' amounts. */
export type ShapeWindow = { key: string; windowStart: number; windowEnd: number; n: number; s: number };

/** Where a shape test's pipeline writes: windows, the late output, dead letters. */
export interface ShapeOutputs {
  out: MemorySink<ShapeWindow>;
  late: MemorySink<ShapeEvent>;
  dead: MemorySink<DeadLetterRecord>;
}

export const shapeOutputs = (): ShapeOutputs => ({
  out: new MemorySink(),
  late: new MemorySink(),
  dead: new MemorySink(),
});

/**
 * Every record in exactly one place: each record not `old` in its windows (totals equal `oracle`
 * of those records, each window once), each old record either in 1 to `perRecord` windows of its
 * own key or in the late output — never both, never neither; nothing dead-lettered.
 */
export function expectEveryRecordOnce(
  events: readonly ShapeEvent[],
  oracle: (events: readonly ShapeEvent[]) => Map<string, { n: number; s: number }>,
  perRecord: number,
  s: ShapeOutputs,
): void {
  const expected = oracle(events.filter((e) => !e.old));
  const got = new Map<string, { n: number; s: number }>();
  const old = new Map<string, number>();
  for (const o of s.out.values) {
    if (o.key.startsWith('old')) {
      old.set(o.key, (old.get(o.key) ?? 0) + o.n);
      continue;
    }
    const id = `${o.key}/${o.windowStart}`;
    expect(got.has(id), `window ${id} emitted twice`).toBe(false);
    got.set(id, { n: o.n, s: o.s });
  }
  expect(s.late.values.filter((e) => !e.old)).toEqual([]);
  expect(Object.fromEntries(got)).toEqual(Object.fromEntries(expected));
  for (const e of events.filter((x) => x.old)) {
    const inWindows = old.get(e.user) ?? 0;
    const late = s.late.values.filter((x) => x.user === e.user).length;
    expect([inWindows, late], `old record ${e.user}`).toSatisfy(
      // In all its windows, or late; with hopping windows, some of which closed before it came,
      // in those still open (as Flink does) — never both, never neither.
      ([a = 0, b = 0]: number[]) => (a >= 1 && a <= perRecord && b === 0) || (a === 0 && b === 1),
    );
  }
  expect(s.dead.values).toEqual([]);
}

/** The emulators a real-shape test runs on: kinesalite, dynalite (with a state table) and redis-server. */
export interface ShapeServers extends StreamServers {
  redis: RedisServer;
}

export async function startShapeServers(stateTable: string): Promise<ShapeServers> {
  const [stream, redis] = await Promise.all([startStreamServers(stateTable), startRedis()]);
  return {
    ...stream,
    redis,
    close: async () => {
      await Promise.all([stream.close(), redis.close()]);
    },
  };
}
