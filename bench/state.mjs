// Window state in DynamoDB (dynalite) and Redis (redis-server): 100k events over 1k keys, one hot
// key (10% of events), in 10k-record batches, counted per key in 1-minute tumbling windows.
// (a) naive: one awaited UpdateItem ADD / INCR per event; (b) Tributary: one batch at a time through
// a window step with the store. Reports backend calls and wall time side by side, in one process.
// The naive DynamoDB writer runs on the first 10k events (100k awaited calls would take minutes
// here); its calls and time per event are scaled to the whole input, and the table says so.
//
// Session windows, the same comparison: the same keys (same generator and seed), but spread over
// four 1-minute bursts with 30 s pauses between them, counted per key in `session: { gap: 10s }`
// windows — every key has a session per burst at least (the pauses exceed the gap) and the
// ordinary keys (~2.7 s between their events) more, where their own gaps exceed 10 s.
// (a) naive: per event, one awaited atomic read-modify-write of the key's session list (sessions as
// [start, end, n]; the event's [t, t + gap] merges every session it touches, as the window does):
// DynamoDB, a strongly consistent GetItem and a PutItem conditional on the version read (2 calls;
// DynamoDB has no server-side merge); Redis, one EVALSHA of a small Lua script doing GET, merge, SET
// on the server (1 call: the fewest a read-modify-write can take, and atomic, like the CAS above;
// GET + SET would be 2 calls and unsafe with a second writer). Neither naive writer deduplicates a
// redelivered event, which Tributary does. (b) Tributary: the window step with `state:` on the
// store (ItemSessionStore: one compare-and-set item per group of keys). The naive DynamoDB session
// writer runs on the first 10k events and is scaled like the one above. Both variants are checked
// against an oracle computed from the input (the sessions of packages/core/test/windows/reference.ts,
// reimplemented below); the session rows are judged by the same targets as the tumbling ones.
//
// Then (c) shard scaling, the measurement for the window-state redesign: S = 1, 4, 16, 64 shards
// writing one namespace at once through today's layout, with a recorder on the clients —
// conflicts, failed batches, items written, DynamoDB WCU/RCU per event against the naive writer,
// exactness against an oracle — and (d) the capacity model (bench/capacity.mjs): a table to size a
// DynamoDB table or a Redis server for 1 to 1,000 shards, computed from the per-key, per-item,
// per-batch and per-range costs these runs measured (see "Shard scaling" below). Their targets
// are reported, not enforced: PASS/FAIL and the exit status stay those of (a) against (b).
import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { compile, count, fileSource, pipeline, sum } from '@tributary/core';
import { createStateTable, dynamoDbClient, dynamoDbState, redisState } from '@tributary/state';
import { Redis } from 'ioredis';
import { startDynalite, startRedis } from '../test-support/servers.mjs';
import {
  calibration,
  FLEET,
  GRID,
  modelCheck,
  PARTITION_RCU,
  PARTITION_WCU,
  sizing,
  sizingMarkdown,
  sizingNotes,
  sizingTable,
} from './capacity.mjs';
import { fmt, random, table } from './lib.mjs';

export const name = 'state';

const WINDOW = 60_000;
const T0 = 1_700_000_000_000;
/** Session windows: a session ends after SESSION_GAP without an event of its key. */
const SESSION_GAP = 10_000;
/** The session input: SESSION_BURSTS bursts of SESSION_BURST ms, SESSION_PAUSE ms apart. */
const SESSION_BURSTS = 4;
const SESSION_BURST = 60_000;
const SESSION_PAUSE = 30_000;

/** Tumbling input: event times spread evenly over 2.5 minutes (3 windows). */
const tumblingTime = (i, records) => T0 + Math.floor((i / records) * 150_000);
/** Session input: event times spread evenly over the bursts, none in the pauses. */
function sessionTime(i, records) {
  const active = Math.floor((i / records) * SESSION_BURSTS * SESSION_BURST);
  return T0 + active + Math.floor(active / SESSION_BURST) * SESSION_PAUSE;
}

function makeEvents(records, keys, seed, time = tumblingTime) {
  const rand = random(seed);
  const events = new Array(records);
  for (let i = 0; i < records; i++) {
    const k = rand() < 0.1 ? 'hot' : `k${Math.floor(rand() * keys)}`;
    events[i] = { k, t: time(i, records) };
  }
  return events;
}

/** Counts per `key|windowStart|windowEnd`, from the input: the oracle both variants are checked against. */
function expectedCounts(events) {
  const m = new Map();
  for (const e of events) {
    const start = e.t - (e.t % WINDOW);
    const id = `${e.k}|${start}|${start + WINDOW}`;
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

/**
 * Session counts per `key|windowStart|windowEnd`, from the input (the session case of
 * `reference()` in packages/core/test/windows/reference.ts): per key, events in time order; an
 * event at or before the current session's end (last + gap) joins it and moves its end to t + gap,
 * a later one starts a new session [t, t + gap).
 */
function expectedSessions(events, gap) {
  const byKey = new Map();
  for (const e of events) {
    const list = byKey.get(e.k);
    if (list) list.push(e);
    else byKey.set(e.k, [e]);
  }
  const m = new Map();
  for (const [k, es] of byKey) {
    const sessions = [];
    let cur;
    for (const e of [...es].sort((a, b) => a.t - b.t)) {
      if (cur && e.t <= cur.end) {
        cur.end = Math.max(cur.end, e.t + gap);
        cur.n++;
      } else {
        cur = { start: e.t, end: e.t + gap, n: 1 };
        sessions.push(cur);
      }
    }
    for (const s of sessions) m.set(`${k}|${s.start}|${s.end}`, s.n);
  }
  return m;
}

/**
 * The naive writer's merge: a key's sessions as [start, end, n]; the event's [t, t + gap] takes in
 * every session it touches (closed intervals, as in the oracle). Order of the list is irrelevant.
 */
function mergeSession(sessions, t, gap) {
  let [start, end, n] = [t, t + gap, 1];
  const out = [];
  for (const s of sessions) {
    if (s[0] <= t + gap && t <= s[1]) {
      start = Math.min(start, s[0]);
      end = Math.max(end, s[1]);
      n += s[2];
    } else out.push(s);
  }
  out.push([start, end, n]);
  return out;
}

/** The same merge on the Redis server: KEYS[1] holds `start,end,n;...`; ARGV: t, gap. */
const NAIVE_SESSION_LUA = `
local t = tonumber(ARGV[1])
local gap = tonumber(ARGV[2])
local s, e, n = t, t + gap, 1
local out = {}
local cur = redis.call('GET', KEYS[1])
if cur then
  for a, b, c in string.gmatch(cur, '(%d+),(%d+),(%d+)') do
    local na, nb = tonumber(a), tonumber(b)
    if na <= t + gap and t <= nb then
      if na < s then s = na end
      if nb > e then e = nb end
      n = n + tonumber(c)
    else
      out[#out + 1] = a .. ',' .. b .. ',' .. c
    end
  end
end
out[#out + 1] = string.format('%d,%d,%d', s, e, n)
redis.call('SET', KEYS[1], table.concat(out, ';'))
return n
`;

/** A key's naive session list as oracle entries. */
function addSessions(m, k, sessions) {
  for (const [start, end, n] of sessions) m.set(`${k}|${start}|${end}`, n);
}

function sameCounts(a, b) {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

async function tributary(events, batchSize, state, pipelineName, window = { tumbling: WINDOW }) {
  const counts = new Map();
  let emissions = 0;
  const sink = {
    async write(records) {
      for (const r of records) {
        emissions++;
        counts.set(`${r.value.key}|${r.value.windowStart}|${r.value.windowEnd}`, r.value.n);
      }
    },
    async close() {},
  };
  const p = pipeline(pipelineName)
    .source(fileSource({ path: '-' }))
    .eventTime((e) => e.t)
    .window({ key: (e) => e.k, ...window, aggregate: { n: count() }, state })
    .sink(sink)
    .build();
  const c = compile(p, { deadLetter: sink });
  c.registerShard('shardId-000000000000');
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += batchSize) {
    await c.process({
      shardId: 'shardId-000000000000',
      records: events
        .slice(i, i + batchSize)
        .map((value, j) => ({ value, partitionKey: value.k, sequenceNumber: String(i + j + 1), arrivalTime: 0 })),
    });
  }
  await c.flush();
  const ms = performance.now() - t0;
  const calls = state.backend.calls;
  await c.close();
  return { ms, calls, counts, emissions, batches: Math.ceil(events.length / batchSize) };
}

/** The naive DynamoDB session writer: per event, GetItem + PutItem conditional on the version. */
async function naiveSessionsDynamo(client, table, events, gap) {
  let calls = 0;
  const t0 = performance.now();
  for (const e of events) {
    const Key = { pk: { S: 'naive-sessions' }, sk: { S: e.k } };
    for (;;) {
      calls++;
      const { Item } = await client.send(new GetItemCommand({ TableName: table, Key, ConsistentRead: true }));
      const version = Item ? Number(Item.v.N) : 0;
      const sessions = mergeSession(Item ? JSON.parse(Item.s.S) : [], e.t, gap);
      calls++;
      try {
        await client.send(
          new PutItemCommand({
            TableName: table,
            Item: { ...Key, s: { S: JSON.stringify(sessions) }, v: { N: String(version + 1) } },
            ...(version === 0
              ? { ConditionExpression: 'attribute_not_exists(pk)' }
              : { ConditionExpression: 'v = :v', ExpressionAttributeValues: { ':v': { N: String(version) } } }),
          }),
        );
        break;
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err; // another writer: read again
      }
    }
  }
  const ms = performance.now() - t0;
  // Read back what it wrote, for the oracle.
  const stored = new Map();
  let ExclusiveStartKey;
  do {
    const res = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': { S: 'naive-sessions' } },
        ConsistentRead: true,
        ExclusiveStartKey,
      }),
    );
    for (const item of res.Items ?? []) addSessions(stored, item.sk.S, JSON.parse(item.s.S));
    ExclusiveStartKey = res.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return { ms, calls, stored };
}

/** The naive Redis session writer: per event, one EVALSHA of NAIVE_SESSION_LUA. */
async function naiveSessionsRedis(redis, events, gap) {
  redis.defineCommand('naiveSession', { numberOfKeys: 1, lua: NAIVE_SESSION_LUA });
  const t0 = performance.now();
  for (const e of events) await redis.naiveSession(`naive-session|${e.k}`, e.t, gap);
  const ms = performance.now() - t0;
  const keys = [...new Set(events.map((e) => e.k))];
  const texts = await redis.mget(...keys.map((k) => `naive-session|${k}`));
  const stored = new Map();
  keys.forEach((k, i) => {
    addSessions(stored, k, texts[i] ? texts[i].split(';').map((s) => s.split(',').map(Number)) : []);
  });
  return { ms, calls: events.length, stored };
}

export async function run({
  records = 100_000,
  keys = 1_000,
  batchSize = 10_000,
  naiveDynamo = 10_000,
  naiveDynamoSessions = 10_000,
  scaling = true,
} = {}) {
  const events = makeEvents(records, keys, 7);
  const expected = expectedCounts(events);
  // The same keys in the same order, spread over the session bursts.
  const sessionEvents = makeEvents(records, keys, 7, sessionTime);
  const expectedSess = expectedSessions(sessionEvents, SESSION_GAP);
  const dyn = await startDynalite();
  const redisServer = await startRedis();
  const rows = [];
  const summary = {
    records,
    keys,
    batchSize,
    targets: { fewerCalls: 100, lessTime: 20 },
    session: {
      gap: SESSION_GAP,
      bursts: SESSION_BURSTS,
      burstMs: SESSION_BURST,
      pauseMs: SESSION_PAUSE,
      sessions: expectedSess.size,
      naiveDynamoEvents: Math.min(naiveDynamoSessions, records),
    },
    stores: {},
  };
  let pass = true;
  let scaled;
  const report = ({ store, window, expected: want, naive, naiveVariant, trib }) => {
    const fewerCalls = naive.calls / trib.calls;
    const lessTime = naive.ms / trib.ms;
    // Every window emitted once (emit: final), with the oracle's count.
    const correct = sameCounts(trib.counts, want) && trib.emissions === want.size;
    summary.stores[window === 'tumbling 1m' ? store : `${store} session`] = {
      naiveCalls: naive.calls,
      tributaryCalls: trib.calls,
      callsPerBatch: trib.calls / trib.batches,
      naiveMs: Math.round(naive.ms),
      tributaryMs: Math.round(trib.ms),
      fewerCalls,
      lessTime,
      windows: want.size,
      emissions: trib.emissions,
      correct,
    };
    if (fewerCalls < 100 || lessTime < 20 || !correct) pass = false;
    rows.push(
      {
        store,
        window,
        variant: naiveVariant,
        calls: fmt(naive.calls),
        'wall ms': fmt(naive.ms),
        'calls/batch': '-',
        ratio: '1x',
      },
      {
        store,
        window,
        variant: 'tributary window (batched, exactly once)',
        calls: fmt(trib.calls),
        'wall ms': fmt(trib.ms),
        'calls/batch': (trib.calls / trib.batches).toFixed(1),
        ratio: `${fmt(fewerCalls)}x fewer calls, ${lessTime.toFixed(0)}x less time${correct ? '' : ' (WRONG COUNTS)'}`,
      },
    );
  };
  const scaledNote = (n) => (n < records ? ` (first ${fmt(n)} events, scaled)` : '');
  const sessionWindow = `session gap ${SESSION_GAP / 1000}s`;
  try {
    // ---- DynamoDB, tumbling ----
    const client = dynamoDbClient({ endpoint: dyn.endpoint });
    await createStateTable(client, 'bench-state');
    const sample = events.slice(0, Math.min(naiveDynamo, records));
    let t0 = performance.now();
    for (const e of sample) {
      await client.send(
        new UpdateItemCommand({
          TableName: 'bench-state',
          Key: { pk: { S: `naive|${e.t - (e.t % WINDOW)}` }, sk: { S: e.k } },
          UpdateExpression: 'ADD n :one',
          ExpressionAttributeValues: { ':one': { N: '1' } },
        }),
      );
    }
    const naiveDynMs = ((performance.now() - t0) / sample.length) * records;
    const dynState = dynamoDbState({ table: 'bench-state', endpoint: dyn.endpoint });
    const dynTrib = await tributary(events, batchSize, dynState, 'bench-dynamodb');
    report({
      store: 'dynamodb',
      window: 'tumbling 1m',
      expected,
      naive: { calls: records, ms: naiveDynMs },
      naiveVariant: `naive: one awaited UpdateItem ADD per event${scaledNote(sample.length)}`,
      trib: dynTrib,
    });

    // ---- DynamoDB, sessions ----
    const sessionSample = sessionEvents.slice(0, Math.min(naiveDynamoSessions, records));
    const naiveDynSess = await naiveSessionsDynamo(client, 'bench-state', sessionSample, SESSION_GAP);
    client.destroy();
    if (!sameCounts(naiveDynSess.stored, expectedSessions(sessionSample, SESSION_GAP)))
      throw new Error('the naive DynamoDB session writer kept wrong sessions');
    const dynSessState = dynamoDbState({ table: 'bench-state', endpoint: dyn.endpoint });
    const dynSessTrib = await tributary(sessionEvents, batchSize, dynSessState, 'bench-dynamodb-sessions', {
      session: { gap: SESSION_GAP },
    });
    report({
      store: 'dynamodb',
      window: sessionWindow,
      expected: expectedSess,
      naive: {
        calls: (naiveDynSess.calls / sessionSample.length) * records,
        ms: (naiveDynSess.ms / sessionSample.length) * records,
      },
      naiveVariant: `naive: awaited GetItem + conditional PutItem per event${scaledNote(sessionSample.length)}`,
      trib: dynSessTrib,
    });

    // ---- Redis, tumbling ----
    const redis = new Redis(redisServer.url);
    t0 = performance.now();
    for (const e of events) await redis.incr(`naive|${e.t - (e.t % WINDOW)}|${e.k}`);
    const naiveRedisMs = performance.now() - t0;
    // The oracle also checks the naive writer (it is the baseline, so it must be right too).
    const naiveCounts = new Map();
    for (const id of expected.keys()) {
      const [k, start] = id.split('|');
      naiveCounts.set(id, Number(await redis.get(`naive|${start}|${k}`)));
    }
    if (!sameCounts(naiveCounts, expected)) throw new Error('the naive Redis writer counted wrong');
    const redisState_ = redisState({ url: redisServer.url });
    const redisTrib = await tributary(events, batchSize, redisState_, 'bench-redis');
    report({
      store: 'redis',
      window: 'tumbling 1m',
      expected,
      naive: { calls: records, ms: naiveRedisMs },
      naiveVariant: 'naive: one awaited INCR per event',
      trib: redisTrib,
    });

    // ---- Redis, sessions ----
    const naiveRedisSess = await naiveSessionsRedis(redis, sessionEvents, SESSION_GAP);
    redis.disconnect();
    if (!sameCounts(naiveRedisSess.stored, expectedSess))
      throw new Error('the naive Redis session writer kept wrong sessions');
    const redisSessState = redisState({ url: redisServer.url });
    const redisSessTrib = await tributary(sessionEvents, batchSize, redisSessState, 'bench-redis-sessions', {
      session: { gap: SESSION_GAP },
    });
    report({
      store: 'redis',
      window: sessionWindow,
      expected: expectedSess,
      naive: naiveRedisSess,
      naiveVariant: 'naive: one awaited EVALSHA (Lua: GET, merge, SET) per event',
      trib: redisSessTrib,
    });

    // ---- Shard scaling (reported, not judged) ----
    if (scaling) scaled = await shardScaling({ dyn, redisUrl: redisServer.url });
  } finally {
    await dyn.close();
    await redisServer.close();
  }
  summary.pass = pass;
  if (scaled) summary.scaling = scaled.summary;
  const line = Object.entries(summary.stores)
    .map(([s, r]) => `${s}: ${fmt(r.fewerCalls)}x fewer calls, ${r.lessTime.toFixed(0)}x less time`)
    .join('; ');
  const sessionKeys = new Set(sessionEvents.map((e) => e.k)).size;
  const hotSessions = [...expectedSess.keys()].filter((id) => id.startsWith('hot|')).length;
  const prefix = Math.min(naiveDynamoSessions, records);
  const sessionsNote = [
    `sessions: ${fmt(records)} events over ${SESSION_BURSTS} bursts of ${SESSION_BURST / 1000} s, ${SESSION_PAUSE / 1000} s apart: ${fmt(expectedSess.size)} sessions (oracle) of ${fmt(sessionKeys)} keys, ${hotSessions} of them the hot key's; both naive writers and both tributary runs match the oracle.`,
    `A "scaled" naive row ran on the first ${fmt(prefix)} events (${fmt((sessionEvents[prefix - 1].t - sessionEvents[0].t) / 1000)} s of event time) and reports its calls and time per event x ${fmt(records)}; its session lists are shorter there than later, but stay far below 1 KB either way.`,
  ].join('\n');
  return {
    text: `${table(rows, ['store', 'window', 'variant', 'calls', 'wall ms', 'calls/batch', 'ratio'])}\n\n${sessionsNote}${scaled ? `\n\n${scaled.text}` : ''}\n\n${line} (targets >= 100x and >= 20x): ${pass ? 'PASS' : 'FAIL'}`,
    summary,
  };
}

// ---- Shard scaling: today's layout under concurrently writing shards ----
//
// S = 1, 4, 16, 64 shards write at once, each through its own compiled pipeline (one per shard,
// like S Lambda containers) with its own store and client, all of the same pipeline name so they
// share one state namespace; each pipeline registers every shard. Every shard processes its own
// 500-record batches in order; the S shards run concurrently. Events are dealt round-robin to the
// shards, in event-time order, over three 1-minute tumbling windows of 10k keys each (every key
// once per window), so every shard feeds every window; the PER_SHARD_PLAN runs deal each key to one
// shard instead and declare `keyIsPartitionKey: true`. Aggregates: count, and count + sum
// (see SCALE_PLAN). A batch that fails is delivered again (as Lambda retries it),
// up to SCALE_ATTEMPTS times; its failed attempts are counted. At the end one pipeline's flush() ends
// every shard and emits what is still open; the emitted windows (from whichever pipeline claimed
// them) are checked against an oracle recomputed from the input.
//
// Recorders: DynamoDB — every pipeline's injected DynamoDBClient has its `send` wrapped; the
// wrapper classifies each request by the item it touches (window item, claim, open-ranges item,
// shard-progress item), counts ConditionalCheckFailedException answers (conflicts) and charges
// capacity by DynamoDB's rules (see "DynamoDB capacity" below), writes and reads alike; it also
// keeps the steady state's requests apart (those of each shard's batches after its first, flush
// left out) and the make-up of the window items written. Redis — each store's backend `write` is
// wrapped (a CAS answering false is a conflict), `backend.calls` counts round trips, `progress`
// calls are counted, and after the run the window items' MEMORY USAGE and the progress hash are
// read from the server.
//
// The capacity model (bench/capacity.mjs) takes its inputs from the CALIBRATION runs, prints the
// sizing table (also saved, with its Markdown, under `scaling.sizing` in bench/results/state.json),
// a check of the model against the runs' measured window-item capacity, and the redesign's
// capacity targets at 1,000 shards x 1,000 events/s.
//
// The targets (SCALE_TARGETS) are what the redesign aims for; today's layout is expected to miss
// some. They are printed with the measured value and PASS/FAIL, and never fail the benchmark.

const SCALE_SHARDS = [1, 4, 16, 64];
const SCALE_BATCH = 500;
const SCALE_KEYS = 10_000;
/** Events per run: three windows of 10k. At S = 64 a shard gets 469 events, i.e. one batch. */
const SCALE_EVENTS = 30_000;
/** Window ranges the input covers (three one-minute windows). */
const SCALE_RANGES = 3;
const SCALE_ATTEMPTS = 5;
/** Minute-aligned, so the input covers exactly three windows. */
const SCALE_T0 = Math.floor(1_700_000_000_000 / WINDOW) * WINDOW;
const AGGREGATES = {
  count: () => ({ n: count() }),
  'count+sum': () => ({ n: count(), total: sum((e) => e.v) }),
};
/**
 * Which aggregates each store runs. count+sum only makes items bigger, which matters for
 * DynamoDB's capacity units and for Redis memory; the capacity model (bench/capacity.mjs) is
 * calibrated on the count+sum runs of CALIBRATION.shards shards.
 */
const SCALE_PLAN = { dynamodb: ['count', 'count+sum'], redis: ['count', 'count+sum'] };
/**
 * Runs with `keyIsPartitionKey: true` (each key's events on one shard; each shard's windows in a
 * namespace of their own), on both stores: the capacity model's inputs for that layout.
 */
const PER_SHARD_PLAN = { aggregate: 'count+sum', shards: [16, 64] };
/**
 * The runs the capacity model takes its inputs from: the most shards at which every shard still
 * has batches after its first (the steady state; at 64 each shard has one batch).
 */
const CALIBRATION = { aggregate: 'count+sum', shards: 16 };
const SCALE_TARGETS = {
  conflictsPerBatch: 1,
  failedAttempts: 0,
  wcuPerEvent: 1,
  hotKeyWcu: PARTITION_WCU,
  hotKeyRcu: PARTITION_RCU,
};
/** The naive writer's cost: one UpdateItem ADD of an item under 1 KB per event. */
const NAIVE_WCU_PER_EVENT = 1;

const shardName = (s) => `shardId-${String(s).padStart(12, '0')}`;

/**
 * The input of one scaling run, dealt to `shards` shards: per shard, its events in order. Dealt
 * round-robin (every shard feeds every window of every key: a random partition key), or `byKey`
 * (a key's events all on one shard: the partition key is the window key).
 */
function spreadEvents(shards, byKey = false) {
  const perShard = Array.from({ length: shards }, () => []);
  for (let i = 0; i < SCALE_EVENTS; i++) {
    // 7919 is prime to 10k: any 10k consecutive events hold every key once.
    const key = (i * 7919) % SCALE_KEYS;
    const e = {
      k: `k${key}`,
      v: (i % 7) + 1,
      t: SCALE_T0 + Math.floor((i / SCALE_EVENTS) * 3 * WINDOW),
    };
    perShard[(byKey ? key : i) % shards].push(e);
  }
  return perShard;
}

/** Oracle: `key|windowStart` → { n, total }, from the input. */
function expectedTotals(perShard) {
  const m = new Map();
  for (const events of perShard) {
    for (const e of events) {
      const id = `${e.k}|${e.t - (e.t % WINDOW)}`;
      const cur = m.get(id) ?? { n: 0, total: 0 };
      cur.n++;
      cur.total += e.v;
      m.set(id, cur);
    }
  }
  return m;
}

// DynamoDB capacity, by the documented rules: an item's size is the sum of its attribute names'
// and values' lengths (strings and string sets: UTF-8 bytes; numbers: 1 byte per two significant
// digits + 1; booleans 1). A write costs 1 WCU per started KB of the larger of the item before
// and after it; a write whose condition fails still costs 1 WCU per started KB of the item as it
// stands (1 at least). A strongly consistent read costs 1 RCU per started 4 KB of each item
// returned, 1 for an item not found (GetItem and BatchGetItem alike); a Query 1 RCU per started 4 KB
// of all the items it returns together, 1 at least.
function numberBytes(text) {
  const digits = text.replace(/^-/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
  return 1 + Math.ceil(Math.max(digits.length, 1) / 2);
}
function valueBytes(v) {
  if (v.S !== undefined) return Buffer.byteLength(v.S);
  if (v.N !== undefined) return numberBytes(v.N);
  if (v.SS !== undefined) return v.SS.reduce((n, s) => n + Buffer.byteLength(s), 0);
  if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
  throw new Error(`no size rule for ${Object.keys(v)}`);
}
const itemBytes = (item) =>
  Object.entries(item).reduce((n, [name, v]) => n + Buffer.byteLength(name) + valueBytes(v), 0);
const wcu = (bytes) => Math.max(1, Math.ceil(bytes / 1024));
const rcu = (bytes) => Math.max(1, Math.ceil(bytes / 4096));

/** What a state item is, from its key (see the layout table in packages/state/src/dynamodb.ts). */
function itemClass(pk, sk) {
  if (/\|shards(\|\d+)?$/.test(pk)) return 'progress';
  if (pk.endsWith('|ranges')) return 'ranges';
  return sk === 'claim' ? 'claim' : 'window';
}

/** Per item class: writes (attempts, of them UpdateItem `ADD`s, succeeded, failed conditions, WCU, bytes) and reads (requests, RCU). */
const classStat = () => ({ attempts: 0, adds: 0, written: 0, conflicts: 0, wcu: 0, bytes: 0, reads: 0, rcu: 0 });

/**
 * A recorder shared by every client of one scenario: the table as far as capacity goes. Besides
 * the totals per item class (`by`), it keeps the requests of the steady state (`steady`: those of
 * a shard's batches after its first, so start-up registrations are left out, and the end-of-input
 * flush is left out too; `phase` says which shards are past their first batch and whether the flush
 * runs) and the make-up of the window items written (key entries and their bytes).
 */
function dynamoLedger(phase) {
  const sizes = new Map(); // `pk|sk` → bytes of the item as last written
  const by = {};
  const of = (c) => {
    by[c] ??= classStat();
    return by[c];
  };
  const steady = {};
  const window = { items: 0, bytes: 0, entries: 0, entryBytes: 0, keyChars: 0 };
  const ledger = { by, steady, window, calls: 0, rcu: 0 };
  /** Counts a steady-state request of shard `s` (`what`: writes, queries, gets, batchGets). */
  const note = (s, c, what) => {
    if (phase.flushing || !phase.warm.has(s)) return;
    steady[c] ??= { writes: 0, queries: 0, gets: 0, batchGets: 0 };
    steady[c][what]++;
  };
  const read = (c, units) => {
    of(c).reads++;
    of(c).rcu += units;
    ledger.rcu += units;
  };
  ledger.wrap = (client, s) => {
    const send = client.send.bind(client);
    client.send = async (command, ...rest) => {
      ledger.calls++;
      const input = command.input;
      const isPut = command instanceof PutItemCommand;
      const isUpdate = command instanceof UpdateItemCommand;
      if (!isPut && !isUpdate) {
        const out = await send(command, ...rest);
        if (command instanceof GetItemCommand) {
          const c = itemClass(input.Key.pk.S, input.Key.sk.S);
          note(s, c, 'gets');
          read(c, rcu(out.Item ? itemBytes(out.Item) : 0)); // an item not found: 1 RCU all the same
        } else if (command instanceof BatchGetItemCommand) {
          const found = new Set();
          for (const items of Object.values(out.Responses ?? {}))
            for (const item of items) {
              found.add(`${item.pk.S}|${item.sk.S}`);
              read(itemClass(item.pk.S, item.sk.S), rcu(itemBytes(item)));
            }
          const unprocessed = new Set(
            Object.values(out.UnprocessedKeys ?? {}).flatMap((r) => (r.Keys ?? []).map((k) => `${k.pk.S}|${k.sk.S}`)),
          );
          for (const { Keys } of Object.values(input.RequestItems))
            for (const k of Keys) {
              const id = `${k.pk.S}|${k.sk.S}`;
              note(s, itemClass(k.pk.S, k.sk.S), 'batchGets');
              if (!found.has(id) && !unprocessed.has(id)) read(itemClass(k.pk.S, k.sk.S), 1);
            }
        } else if (command instanceof QueryCommand) {
          // Charged by the size of all it returns, rounded up to 4 KB once (1 RCU at least).
          const c = itemClass(input.ExpressionAttributeValues[':pk'].S, '');
          note(s, c, 'queries');
          read(c, rcu((out.Items ?? []).reduce((n, item) => n + itemBytes(item), 0)));
        }
        return out;
      }
      const key = isPut ? { pk: input.Item.pk, sk: input.Item.sk } : input.Key;
      const id = `${key.pk.S}|${key.sk.S}`;
      const cls = itemClass(key.pk.S, key.sk.S);
      const stat = of(cls);
      note(s, cls, 'writes');
      const before = sizes.get(id) ?? 0;
      // UpdateItem: the item after it, estimated as the larger of before and key + values set
      // (these items — claims, the open-ranges set — stay far below 1 KB: 1 WCU each).
      const after = isPut
        ? itemBytes(input.Item)
        : Math.max(
            before,
            itemBytes(key) +
              Object.values(input.ExpressionAttributeValues ?? {}).reduce((n, v) => n + 4 + valueBytes(v), 0),
          );
      stat.attempts++;
      if (isUpdate && input.UpdateExpression.startsWith('ADD ')) stat.adds++; // a range recorded as open
      try {
        const out = await send(command, ...rest);
        stat.written++;
        stat.wcu += wcu(Math.max(before, after));
        stat.bytes += after;
        sizes.set(id, after);
        if (isPut && cls === 'window') {
          // The make-up of a window item a writer wrote: its key entries (`w` of the body) and the rest.
          const body = JSON.parse(input.Item.b.S);
          if (!body.s && body.w.length > 0) {
            window.items++;
            window.bytes += after;
            window.entries += body.w.length;
            for (const entry of body.w) {
              window.entryBytes += Buffer.byteLength(JSON.stringify(entry)) + 1; // and its comma
              window.keyChars += entry[0].length;
            }
          }
        }
        return out;
      } catch (err) {
        if (err instanceof ConditionalCheckFailedException) {
          stat.conflicts++;
          stat.wcu += wcu(before);
        }
        throw err;
      }
    };
    return client;
  };
  return ledger;
}

/** A collecting sink shared by the S pipelines: every emitted window, and how often. */
function windowSink() {
  const windows = new Map();
  let emissions = 0;
  return {
    windows,
    get emissions() {
      return emissions;
    },
    async write(records) {
      for (const r of records) {
        emissions++;
        windows.set(`${r.value.key}|${r.value.windowStart}`, r.value);
      }
    },
    async close() {},
  };
}

/** One scenario: S shards through S pipelines on one store kind; returns what was measured. */
async function scalingRun({ store, aggregate, shards, dyn, redisUrl, keyIsPartitionKey = false }) {
  const perShard = spreadEvents(shards, keyIsPartitionKey);
  const expected = expectedTotals(perShard);
  const sink = windowSink();
  let deadLettered = 0;
  const deadLetter = {
    async write(records) {
      deadLettered += records.length;
    },
    async close() {},
  };
  const name = `scale-${store}-${aggregate.replace('+', '-')}-${shards}${keyIsPartitionKey ? '-pk' : ''}`;
  const ids = perShard.map((_, s) => shardName(s));
  /** Shards past their first batch, and whether the end-of-input flush runs: the steady state is between. */
  const phase = { warm: new Set(), flushing: false };
  const ledger = store === 'dynamodb' ? dynamoLedger(phase) : undefined;
  const clients = [];
  const redisStat = { written: 0, conflicts: 0, progressCalls: 0 };
  const stores = [];
  const makeState = (s) => {
    if (ledger) {
      const client = ledger.wrap(dynamoDbClient({ endpoint: dyn.endpoint }), s);
      clients.push(client);
      return dynamoDbState({ table: 'bench-state', client });
    }
    const state = redisState({ url: redisUrl });
    const backend = state.backend;
    const write = backend.write.bind(backend);
    backend.write = async (writes) => {
      const results = await write(writes);
      for (const ok of results) {
        if (ok) redisStat.written++;
        else redisStat.conflicts++;
      }
      return results;
    };
    const progress = backend.progress.bind(backend);
    backend.progress = (...args) => {
      if (!phase.flushing && phase.warm.has(s)) redisStat.progressCalls++;
      return progress(...args);
    };
    return state;
  };
  const compiled = perShard.map((_, s) => {
    const state = makeState(s);
    stores.push(state);
    const p = pipeline(name)
      .source(fileSource({ path: '-' }))
      .eventTime((e) => e.t)
      .window({ key: (e) => e.k, tumbling: WINDOW, aggregate: AGGREGATES[aggregate](), state, keyIsPartitionKey })
      .sink(sink)
      .build();
    const c = compile(p, { deadLetter });
    for (const id of ids) c.registerShard(id);
    return c;
  });
  let batches = 0;
  let steadyBatches = 0;
  let failedAttempts = 0;
  let dropped = 0;
  const errors = new Map();
  /** Runs `fn` until it succeeds, at most SCALE_ATTEMPTS times; false if it never did. */
  const attempt = async (fn) => {
    for (let a = 0; a < SCALE_ATTEMPTS; a++) {
      try {
        await fn();
        return true;
      } catch (err) {
        failedAttempts++;
        const m = String(err?.message ?? err).replace(/\d+/g, 'N');
        errors.set(m, (errors.get(m) ?? 0) + 1);
      }
    }
    return false;
  };
  const t0 = performance.now();
  await Promise.all(
    perShard.map(async (events, s) => {
      for (let i = 0; i < events.length; i += SCALE_BATCH) {
        batches++;
        if (i > 0) steadyBatches++;
        const records = events
          .slice(i, i + SCALE_BATCH)
          .map((value, j) => ({ value, partitionKey: value.k, sequenceNumber: String(i + j + 1), arrivalTime: 0 }));
        if (!(await attempt(() => compiled[s].process({ shardId: ids[s], records })))) dropped++;
        phase.warm.add(s);
      }
    }),
  );
  phase.flushing = true;
  const flushed = await attempt(() => compiled[0].flush());
  const ms = performance.now() - t0;
  const calls = ledger ? ledger.calls : stores.reduce((n, st) => n + st.backend.calls, 0);
  await Promise.all(compiled.map((c) => c.close()));
  for (const c of clients) c.destroy();

  let exact = flushed && dropped === 0 && deadLettered === 0 && sink.emissions === expected.size;
  exact &&= sink.windows.size === expected.size;
  for (const [id, want] of expected) {
    const got = sink.windows.get(id);
    if (!got || got.n !== want.n || (aggregate === 'count+sum' && got.total !== want.total)) exact = false;
  }
  const result = {
    store,
    aggregate,
    keyIsPartitionKey,
    shards,
    events: SCALE_EVENTS,
    batches,
    steadyBatches,
    ranges: SCALE_RANGES,
    ms: Math.round(ms),
    calls,
    failedAttempts,
    dropped,
    deadLettered,
    emissions: sink.emissions,
    windows: expected.size,
    exact,
    errors: Object.fromEntries(errors),
  };
  if (!ledger) {
    return {
      ...result,
      conflicts: redisStat.conflicts,
      itemsWritten: redisStat.written,
      progressCalls: redisStat.progressCalls,
      ...(await redisFootprint(redisUrl, name)),
    };
  }
  const b = ledger.by;
  const [win, claim, prog, ranges] = ['window', 'claim', 'progress', 'ranges'].map((c) => b[c] ?? classStat());
  const totalWcu = win.wcu + claim.wcu + prog.wcu + ranges.wcu;
  const steadyOf = (c) => ({ writes: 0, queries: 0, gets: 0, batchGets: 0, ...ledger.steady[c] });
  const totalsOf = (c) => ({ writes: c.attempts, adds: c.adds, gets: c.reads, wcu: c.wcu, rcu: c.rcu });
  return {
    ...result,
    conflicts: win.conflicts + claim.conflicts + prog.conflicts + ranges.conflicts,
    conflictsBy: { window: win.conflicts, progress: prog.conflicts, claim: claim.conflicts, ranges: ranges.conflicts },
    itemsWritten: win.written,
    windowItemBytes: win.written ? win.bytes / win.written : 0,
    progressItemBytes: prog.written ? prog.bytes / prog.written : 0,
    progressWrites: prog.attempts,
    wcu: totalWcu,
    wcuBy: { window: win.wcu, claim: claim.wcu, progress: prog.wcu, ranges: ranges.wcu },
    rcu: ledger.rcu,
    rcuBy: { window: win.rcu, claim: claim.rcu, progress: prog.rcu, ranges: ranges.rcu },
    wcuPerEvent: totalWcu / SCALE_EVENTS,
    rcuPerEvent: ledger.rcu / SCALE_EVENTS,
    windowItems: ledger.window,
    steady: Object.fromEntries(['window', 'claim', 'progress', 'ranges'].map((c) => [c, steadyOf(c)])),
    totals: { window: totalsOf(win), claim: totalsOf(claim), progress: totalsOf(prog), ranges: totalsOf(ranges) },
  };
}

/**
 * What a Redis run left on the server: its window items' memory (MEMORY USAGE, every sample) and
 * key entries, and the bytes per shard of its progress hash (field and value).
 */
async function redisFootprint(url, pipelineName) {
  const redis = new Redis(url);
  try {
    const keys = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `*${pipelineName}/*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    const memory = { items: 0, usage: 0, entries: 0, entryBytes: 0 };
    let progressEntryBytes = 0;
    for (const key of keys) {
      if (/\|\d+\|\d+\|[^|]*\|\d+$/.test(key)) {
        const body = JSON.parse(await redis.hget(key, 'b'));
        if (body.w.length === 0) continue;
        memory.items++;
        memory.usage += await redis.memory('USAGE', key, 'SAMPLES', 0);
        memory.entries += body.w.length;
        for (const entry of body.w) memory.entryBytes += Buffer.byteLength(JSON.stringify(entry)) + 1;
      } else if (key.endsWith('|shards')) {
        const all = await redis.hgetall(key);
        const n = Object.keys(all).length;
        const bytes = Object.entries(all).reduce((t, [f, v]) => t + Buffer.byteLength(f) + Buffer.byteLength(v), 0);
        progressEntryBytes = n ? bytes / n : 0;
      }
    }
    return { memory, progressEntryBytes };
  } finally {
    redis.disconnect();
  }
}

const verdict = (ok) => (ok ? 'PASS' : 'FAIL');
const dec = (n, d = 2) => n.toFixed(d);

/** Runs every scaling scenario on both stores; returns its tables and summary. */
async function shardScaling({ dyn, redisUrl }) {
  const results = [];
  for (const [store, aggregates] of Object.entries(SCALE_PLAN)) {
    for (const aggregate of aggregates) {
      for (const shards of SCALE_SHARDS) {
        const r = await scalingRun({ store, aggregate, shards, dyn, redisUrl });
        if (process.env.BENCH_TRACE) console.error(`${store} ${aggregate} S=${shards}: ${r.ms} ms`, r.errors);
        results.push(r);
      }
    }
  }
  for (const store of Object.keys(SCALE_PLAN)) {
    for (const shards of PER_SHARD_PLAN.shards) {
      const { aggregate } = PER_SHARD_PLAN;
      const r = await scalingRun({ store, aggregate, shards, dyn, redisUrl, keyIsPartitionKey: true });
      if (process.env.BENCH_TRACE) console.error(`${store} ${aggregate} per shard S=${shards}: ${r.ms} ms`, r.errors);
      results.push(r);
    }
  }
  const T = SCALE_TARGETS;
  const rows = results.map((r) => {
    const perBatch = r.conflicts / r.batches;
    const ddb = r.store === 'dynamodb';
    return {
      store: r.store,
      aggregate: `${r.aggregate}${r.keyIsPartitionKey ? ', keyIsPartitionKey' : ''}`,
      S: r.shards,
      'events/batches': `${fmt(r.events)}/${r.batches}`,
      'calls/batch': dec(r.calls / r.batches, 1),
      [`conflicts/batch (target <= ${T.conflictsPerBatch})`]: `${dec(perBatch)} ${verdict(perBatch <= T.conflictsPerBatch)}`,
      'conflicts win/prog/other': ddb
        ? `${r.conflictsBy.window}/${r.conflictsBy.progress}/${r.conflictsBy.claim + r.conflictsBy.ranges}`
        : `${r.conflicts}/-/-`,
      [`failed attempts (target ${T.failedAttempts})`]: `${r.failedAttempts}${r.dropped ? ` (${r.dropped} dropped)` : ''} ${verdict(r.failedAttempts <= T.failedAttempts)}`,
      'items written': fmt(r.itemsWritten),
      'win item KB': ddb ? dec(r.windowItemBytes / 1024, 1) : '-',
      [`WCU/event (target <= ${T.wcuPerEvent})`]: ddb
        ? `${dec(r.wcuPerEvent, 3)} ${verdict(r.wcuPerEvent <= T.wcuPerEvent)}`
        : '-',
      // The naive writer: one UpdateItem ADD per event on an item under 1 KB, 1 WCU per event.
      'x naive WCU': ddb ? `${dec(r.wcuPerEvent / NAIVE_WCU_PER_EVENT, 2)}x` : '-',
      'RCU/event': ddb ? dec(r.rcuPerEvent, 3) : '-',
      'exact (target yes)': `${r.exact ? 'yes' : 'NO'} ${verdict(r.exact)}`,
      'wall ms': fmt(r.ms),
    };
  });
  const columns = Object.keys(rows[0]);
  // The capacity model, from the calibration runs (see bench/capacity.mjs).
  const pick = (store, keyIsPartitionKey) =>
    results.find(
      (r) =>
        r.store === store &&
        r.aggregate === CALIBRATION.aggregate &&
        r.shards === CALIBRATION.shards &&
        r.keyIsPartitionKey === keyIsPartitionKey,
    );
  const inputs = calibration({ dynamo: pick('dynamodb', false), redis: pick('redis', false), ranges: SCALE_RANGES });
  // The same costs measured with `keyIsPartitionKey: true` (a namespace per shard).
  inputs.perShard = calibration({ dynamo: pick('dynamodb', true), redis: pick('redis', true), ranges: SCALE_RANGES });
  const assumptions = { windowSeconds: WINDOW / 1000, batchSize: SCALE_BATCH };
  const sized = sizing(inputs, assumptions);
  const checks = results
    .filter(
      (r) =>
        r.store === 'dynamodb' && r.aggregate === CALIBRATION.aggregate && (SCALE_KEYS / r.shards) % SCALE_BATCH === 0,
    )
    .map((r) =>
      modelCheck(inputs, r, { keys: SCALE_KEYS, batchSize: SCALE_BATCH, ranges: SCALE_RANGES, partitions: 4 }),
    );
  const checkRows = checks.map((m) => ({
    S: m.shards,
    'window-item WCU predicted': fmt(m.predictedWcu),
    measured: fmt(m.measuredWcu),
    'window-item RCU predicted': fmt(m.predictedRcu),
    'measured ': fmt(m.measuredRcu),
  }));
  // The redesign's capacity targets at FLEET, for each number of keys and either partitioning.
  const fleet = sized
    .filter(
      (r) =>
        r.shards === FLEET.shards &&
        r.eventsPerShard === FLEET.eventsPerShard &&
        FLEET.keysPerWindow.includes(r.keysPerWindow),
    )
    .map((r) => ({
      keysPerWindow: r.keysPerWindow,
      partitionKey: r.partitionKey,
      itemsFit: r.itemsFit,
      hotWcu: r.hotWcu,
      hotWcuKey: r.hotWcuKey,
      hotRcu: r.hotRcu,
      hotRcuKey: r.hotRcuKey,
      pass: r.itemsFit && r.hotWcu <= T.hotKeyWcu && r.hotRcu <= T.hotKeyRcu,
    }));
  const fleetLines = fleet.map(
    (f) =>
      `  ${fmt(f.keysPerWindow)} keys per window, partition key ${f.partitionKey}: items ${f.itemsFit ? 'fit' : 'DO NOT fit'} in 400 KB; hottest key ${fmt(f.hotWcu)} WCU/s (${f.hotWcuKey}; target <= ${fmt(T.hotKeyWcu)}: ${verdict(f.hotWcu <= T.hotKeyWcu)}), ${fmt(f.hotRcu)} RCU/s (${f.hotRcuKey}; target <= ${fmt(T.hotKeyRcu)}: ${verdict(f.hotRcu <= T.hotKeyRcu)}) -> ${verdict(f.pass)}`,
  );
  const text = [
    `shard scaling: S pipelines (one per shard) write one namespace at once; ${fmt(SCALE_EVENTS)} events per run, ${SCALE_BATCH}-record batches, ${fmt(SCALE_KEYS)} keys x ${SCALE_RANGES} one-minute windows (at S = 64 each shard has ${Math.ceil(SCALE_EVENTS / 64)} events: one batch); a failed batch is retried up to ${SCALE_ATTEMPTS - 1} times`,
    '',
    table(rows, columns),
    '',
    'conflicts: failed conditional writes (dynamodb: ConditionalCheckFailedException on window items / the shard-progress item / claims and the open-ranges item; redis: CAS script answered 0). failed attempts: process() rejections, each retried. WCU, RCU: by DynamoDB rules (1 WCU per started KB written, failed conditions included; 1 RCU per started 4 KB of each item read, strongly consistent, 1 for an item not found; a Query 1 RCU per started 4 KB of all it returns). win item KB: mean window item written.',
    '',
    `sizing a table (capacity model, bench/capacity.mjs): computed from the ${CALIBRATION.aggregate} runs at ${CALIBRATION.shards} shards above; DynamoDB limits ${fmt(PARTITION_WCU)} WCU/s and ${fmt(PARTITION_RCU)} RCU/s per partition key, 400 KB per item`,
    '',
    sizingTable(sized),
    '',
    sizingNotes(inputs, assumptions),
    '',
    `model check: the window-item capacity the model predicts for the ${CALIBRATION.aggregate} runs (every key once per window; partitions 4) against what the ledger charged`,
    '',
    table(checkRows, Object.keys(checkRows[0] ?? { S: 0 })),
    '',
    `capacity targets at ${fmt(FLEET.shards)} shards x ${fmt(FLEET.eventsPerShard)} events/s (no item over 400 KB, no partition key over ${fmt(T.hotKeyWcu)} WCU/s or ${fmt(T.hotKeyRcu)} RCU/s):`,
    ...fleetLines,
    '',
    'scaling targets are those of the redesign: reported, not enforced (they do not change PASS/FAIL below)',
  ].join('\n');
  return {
    text,
    summary: {
      targets: SCALE_TARGETS,
      results,
      sizing: {
        grid: GRID,
        assumptions,
        inputs,
        rows: sized,
        markdown: sizingMarkdown(sized),
        notes: sizingNotes(inputs, assumptions),
        modelCheck: checks,
        fleet: { ...FLEET, checks: fleet },
      },
    },
  };
}
