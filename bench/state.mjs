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
// exactness against an oracle, and a capacity model of the hottest partition key at 1,000 shards
// (see "Shard scaling" below). Its targets are reported, not enforced: PASS/FAIL and the exit
// status stay those of (a) against (b).
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
// once per window), so every shard feeds every window. Aggregates: count, and count + sum
// (DynamoDB only, see SCALE_PLAN). A batch that fails is delivered again (as Lambda retries it),
// up to SCALE_ATTEMPTS times; its failed attempts are counted. At the end one pipeline's flush() ends
// every shard and emits what is still open; the emitted windows (from whichever pipeline claimed
// them) are checked against an oracle recomputed from the input.
//
// Recorders: DynamoDB — every pipeline's injected DynamoDBClient has its `send` wrapped; the
// wrapper classifies each request by the item it touches (window item, claim, open-ranges item,
// shard-progress item), counts ConditionalCheckFailedException answers (conflicts) and charges
// capacity by DynamoDB's rules (see "DynamoDB capacity" below). Redis — each store's backend `write` is
// wrapped (a CAS answering false is a conflict) and `backend.calls` counts round trips.
//
// The targets (SCALE_TARGETS) are what the redesign aims for; today's layout is expected to miss
// some. They are printed with the measured value and PASS/FAIL, and never fail the benchmark.

const SCALE_SHARDS = [1, 4, 16, 64];
const SCALE_BATCH = 500;
const SCALE_KEYS = 10_000;
/** Events per run: three windows of 10k. At S = 64 a shard gets 469 events, i.e. one batch. */
const SCALE_EVENTS = 30_000;
const SCALE_ATTEMPTS = 5;
/** Minute-aligned, so the input covers exactly three windows. */
const SCALE_T0 = Math.floor(1_700_000_000_000 / WINDOW) * WINDOW;
const AGGREGATES = {
  count: () => ({ n: count() }),
  'count+sum': () => ({ n: count(), total: sum((e) => e.v) }),
};
/**
 * Which aggregates each store runs. count+sum only makes items bigger, which matters for
 * DynamoDB's capacity units; Redis has none, and its S = 64 run alone takes ~30 s here (CPU spent
 * re-reading items after conflicts), so Redis runs count only, to keep the bench near 2 minutes.
 */
const SCALE_PLAN = { dynamodb: ['count', 'count+sum'], redis: ['count'] };
const SCALE_TARGETS = { conflictsPerBatch: 1, failedAttempts: 0, wcuPerEvent: 1, hotKeyWcu: 1_000 };
/** The fleet of the capacity model: shards × events per second per shard. */
const FLEET = { shards: 1_000, eventsPerShard: 1_000 };
/** The naive writer's cost: one UpdateItem ADD of an item under 1 KB per event. */
const NAIVE_WCU_PER_EVENT = 1;
/** DynamoDB's write throughput per partition (and per item), WCU/s. */
const PARTITION_WCU = 1_000;

const shardName = (s) => `shardId-${String(s).padStart(12, '0')}`;

/** The input of one scaling run, dealt to `shards` shards: per shard, its events in order. */
function spreadEvents(shards) {
  const perShard = Array.from({ length: shards }, () => []);
  for (let i = 0; i < SCALE_EVENTS; i++) {
    // 7919 is prime to 10k: any 10k consecutive events hold every key once.
    const e = {
      k: `k${(i * 7919) % SCALE_KEYS}`,
      v: (i % 7) + 1,
      t: SCALE_T0 + Math.floor((i / SCALE_EVENTS) * 3 * WINDOW),
    };
    perShard[i % shards].push(e);
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
// returned (BatchGetItem: keys not found are not charged here), and a GetItem at least 1.
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

/** A recorder shared by every client of one scenario: the table as far as capacity goes. */
function dynamoLedger() {
  const sizes = new Map(); // `pk|sk` → bytes of the item as last written
  const by = {};
  const of = (c) => {
    by[c] ??= { attempts: 0, written: 0, conflicts: 0, wcu: 0, bytes: 0 };
    return by[c];
  };
  const ledger = { by, calls: 0, rcu: 0 };
  ledger.wrap = (client) => {
    const send = client.send.bind(client);
    client.send = async (command, ...rest) => {
      ledger.calls++;
      const input = command.input;
      const isPut = command instanceof PutItemCommand;
      const isUpdate = command instanceof UpdateItemCommand;
      if (!isPut && !isUpdate) {
        const out = await send(command, ...rest);
        if (command instanceof GetItemCommand) ledger.rcu += rcu(out.Item ? itemBytes(out.Item) : 0);
        else if (command instanceof BatchGetItemCommand)
          for (const items of Object.values(out.Responses ?? {}))
            for (const item of items) ledger.rcu += rcu(itemBytes(item));
        return out;
      }
      const key = isPut ? { pk: input.Item.pk, sk: input.Item.sk } : input.Key;
      const id = `${key.pk.S}|${key.sk.S}`;
      const stat = of(itemClass(key.pk.S, key.sk.S));
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
      try {
        const out = await send(command, ...rest);
        stat.written++;
        stat.wcu += wcu(Math.max(before, after));
        stat.bytes += after;
        sizes.set(id, after);
        if (isPut && stat === by.progress) {
          // A shard-progress item as last written (one item per shard).
          ledger.progressShape = { bytes: after };
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
async function scalingRun({ store, aggregate, shards, dyn, redisUrl }) {
  const perShard = spreadEvents(shards);
  const expected = expectedTotals(perShard);
  const sink = windowSink();
  let deadLettered = 0;
  const deadLetter = {
    async write(records) {
      deadLettered += records.length;
    },
    async close() {},
  };
  const name = `scale-${store}-${aggregate.replace('+', '-')}-${shards}`;
  const ids = perShard.map((_, s) => shardName(s));
  const ledger = store === 'dynamodb' ? dynamoLedger() : undefined;
  const clients = [];
  const redisStat = { written: 0, conflicts: 0 };
  const stores = [];
  const makeState = () => {
    if (ledger) {
      const client = ledger.wrap(dynamoDbClient({ endpoint: dyn.endpoint }));
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
    return state;
  };
  const compiled = perShard.map(() => {
    const state = makeState();
    stores.push(state);
    const p = pipeline(name)
      .source(fileSource({ path: '-' }))
      .eventTime((e) => e.t)
      .window({ key: (e) => e.k, tumbling: WINDOW, aggregate: AGGREGATES[aggregate](), state })
      .sink(sink)
      .build();
    const c = compile(p, { deadLetter });
    for (const id of ids) c.registerShard(id);
    return c;
  });
  let batches = 0;
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
        const records = events
          .slice(i, i + SCALE_BATCH)
          .map((value, j) => ({ value, partitionKey: value.k, sequenceNumber: String(i + j + 1), arrivalTime: 0 }));
        if (!(await attempt(() => compiled[s].process({ shardId: ids[s], records })))) dropped++;
      }
    }),
  );
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
    shards,
    events: SCALE_EVENTS,
    batches,
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
  if (!ledger) return { ...result, conflicts: redisStat.conflicts, itemsWritten: redisStat.written };
  const b = ledger.by;
  const zero = { attempts: 0, written: 0, conflicts: 0, wcu: 0, bytes: 0 };
  const [win, claim, prog, ranges] = ['window', 'claim', 'progress', 'ranges'].map((c) => b[c] ?? zero);
  const totalWcu = win.wcu + claim.wcu + prog.wcu + ranges.wcu;
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
    wcuPerEvent: totalWcu / SCALE_EVENTS,
    rcuPerEvent: ledger.rcu / SCALE_EVENTS,
    progressShape: ledger.progressShape,
    capacity: capacityModel({ win, claim, prog, shape: ledger.progressShape }),
  };
}

/**
 * The hottest partition key of today's layout at FLEET (1,000 shards × 1,000 events/s = 1M
 * events/s), from what one scenario measured:
 *
 * - Window partial `<ns>|<start>|<end>|<shard>`: each shard writes its own items of the current
 *   range (and the emitter seals them once), so one such key takes one shard's events:
 *   1,000 events/s × (WCU charged to window items ÷ events). The claim `<ns>|<start>|<end>` is
 *   written a few times per range, not per event (counted with the window items here, an upper
 *   bound).
 * - Shard progress `<ns>|shards|<n>`: one small item per shard (sort key `s:<shard>`), written by
 *   its shard's consumer after each batch (and once more with the acknowledged position), spread
 *   over 16 partition keys: WCU/s per key = 1M events/s × (progress writes ÷ events) ×
 *   ⌈bytes ÷ 1 KB⌉ ÷ 16, with bytes the item as last written (it does not grow with the shards).
 *
 * The hotter of the two is compared with DynamoDB's 1,000 WCU/s per partition (a single item can
 * never take more, whatever the partition splits).
 */
function capacityModel({ win, claim, prog, shape }) {
  const rate = FLEET.shards * FLEET.eventsPerShard;
  const windowKey = FLEET.eventsPerShard * ((win.wcu + claim.wcu) / SCALE_EVENTS);
  const progressBytesAtFleet = shape ? shape.bytes : 0;
  // Shard-progress items spread over 16 partition keys (`progressPartitions: 16`, as a fleet of
  // hundreds of shards should set it; the default, 1, puts them all under `<ns>|shards`).
  const progressKey = (rate * (prog.attempts / SCALE_EVENTS) * wcu(progressBytesAtFleet)) / 16;
  const hottest = Math.max(windowKey, progressKey);
  return {
    windowKeyWcuPerSec: windowKey,
    progressBytesAtFleet,
    progressKeyWcuPerSec: progressKey,
    hottestKey: windowKey >= progressKey ? '<ns>|<start>|<end>|<shard>' : '<ns>|shards|<n>',
    hottestWcuPerSec: hottest,
    overLimit: hottest / PARTITION_WCU,
  };
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
  const T = SCALE_TARGETS;
  const rows = results.map((r) => {
    const perBatch = r.conflicts / r.batches;
    const ddb = r.store === 'dynamodb';
    return {
      store: r.store,
      aggregate: r.aggregate,
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
  const capRows = results
    .filter((r) => r.store === 'dynamodb')
    .map((r) => {
      const c = r.capacity;
      return {
        aggregate: r.aggregate,
        S: r.shards,
        'window partial key WCU/s': fmt(c.windowKeyWcuPerSec),
        'progress item KB': dec(c.progressBytesAtFleet / 1024, 1),
        'progress key WCU/s (progressPartitions 16)': fmt(c.progressKeyWcuPerSec),
        hottest: c.hottestKey,
        [`hottest WCU/s (target <= ${fmt(T.hotKeyWcu)})`]: `${fmt(c.hottestWcuPerSec)} ${verdict(c.hottestWcuPerSec <= T.hotKeyWcu)}`,
        'x limit': `${dec(c.overLimit, 1)}x`,
      };
    });
  const text = [
    `shard scaling: S pipelines (one per shard) write one namespace at once; ${fmt(SCALE_EVENTS)} events per run, ${SCALE_BATCH}-record batches, ${fmt(SCALE_KEYS)} keys x 3 one-minute windows (at S = 64 each shard has ${Math.ceil(SCALE_EVENTS / 64)} events: one batch); a failed batch is retried up to ${SCALE_ATTEMPTS - 1} times; redis runs count only`,
    '',
    table(rows, columns),
    '',
    'conflicts: failed conditional writes (dynamodb: ConditionalCheckFailedException on window items / the shard-progress item / claims and the open-ranges item; redis: CAS script answered 0). failed attempts: process() rejections, each retried. WCU, RCU: by DynamoDB rules (1 WCU per started KB written, failed conditions included; 1 RCU per started 4 KB read, strongly consistent). win item KB: mean window item written.',
    '',
    `capacity model (dynamodb): hottest partition key at ${fmt(FLEET.shards)} shards x ${fmt(FLEET.eventsPerShard)} events/s, from the measured WCU/event and item sizes, against ${fmt(PARTITION_WCU)} WCU/s per partition`,
    '',
    table(capRows, Object.keys(capRows[0])),
    '',
    'scaling targets are those of the redesign: reported, not enforced (they do not change PASS/FAIL below)',
  ].join('\n');
  return { text, summary: { targets: SCALE_TARGETS, fleet: FLEET, results } };
}
