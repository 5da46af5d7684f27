// The Lambda handler knows every shard of its stream before windows close: Kinesis shards listed
// through the real SDK against kinesalite (a 4-shard stream, a resharded stream), listings rate
// limited and allowed to fail; DynamoDB Streams records mapped to their shard by sequence number
// range, with window state in DynamoDB (dynalite) exact under redelivery — checked against
// oracles recomputed from the input. Time is virtual (the handler's scheduler).
import { SplitShardCommand } from '@aws-sdk/client-kinesis';
import { marshall } from '@aws-sdk/util-dynamodb';
import { count, fileSource, MemorySink, pipeline, type RecordEnvelope, sum } from '@tributary/core';
import {
  createHandler,
  type DynamoDbStreamShard,
  kinesisShardLister,
  type ListShards,
  type StreamShard,
} from '@tributary/runtime-lambda';
import { dynamoDbState } from '@tributary/state';
import { VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import {
  createStream,
  putJson,
  type StreamShardInfo,
  startStreamServers,
  streamShards,
  useServers,
} from '../../../test-support/emulators.js';
import {
  type DynamoDBRecord,
  dynamoDbEventRecord,
  type KinesisStreamEvent,
  kinesisEventOf,
  kinesisEventRecord,
  kinesisStreamArn,
} from '../../../test-support/lambdaEvents.js';

type Click = { user: string; amount: number; t: number };
type Total = { key: string; windowStart: number; n: number; s: number };

const servers = useServers(() => startStreamServers('shards-state'));

const arnOf = kinesisStreamArn;
type Shard = StreamShardInfo;
const shardsOf = (stream: string) => streamShards(servers.client, stream);

/** Writes events into one shard (an explicit hash key inside its range). */
async function putInto(stream: string, hashKey: string, events: Click[]) {
  await putJson(servers.client, stream, events, (e) => ({ partitionKey: e.user, explicitHashKey: hashKey }));
}

/** What Lambda hands the function for one shard: its records as GetRecords returns them. */
const eventOf = (stream: string, shardId: string) => kinesisEventOf(servers.client, stream, shardId);

/** The oracle: per user and 1 s window, count and sum, from the input. */
function oracle(events: Click[]): Total[] {
  const m = new Map<string, Total>();
  for (const e of events) {
    const windowStart = e.t - (e.t % 1000);
    const w = m.get(`${e.user}|${windowStart}`) ?? { key: e.user, windowStart, n: 0, s: 0 };
    w.n++;
    w.s += e.amount;
    m.set(`${e.user}|${windowStart}`, w);
  }
  return sorted([...m.values()]);
}

const sorted = (ws: Total[]) =>
  ws
    .map((w) => ({ key: w.key, windowStart: w.windowStart, n: w.n, s: w.s }))
    .sort((a, b) => a.windowStart - b.windowStart || a.key.localeCompare(b.key));

/** A 1 s tumbling window per user, state in memory, late records to their own sink. */
function windowPipeline(name: string, out: MemorySink<Total>, late: MemorySink<Click>) {
  return pipeline(name)
    .source(fileSource<Click>({ path: '-' }))
    .eventTime((e) => e.t)
    .window({
      key: (e) => e.user,
      tumbling: 1000,
      aggregate: { n: count(), s: sum((e) => e.amount) },
      late,
      state: { memory: { volatile: true } },
    })
    .sink(out)
    .build();
}

/** Events of one shard with event times over [from, to): several windows. */
function clicks(n: number, from: number, to: number, seed: number): Click[] {
  return Array.from({ length: n }, (_, i) => ({
    user: `u${(i + seed) % 3}`,
    amount: (i * 7 + seed) % 11,
    t: from + Math.floor((i * (to - from)) / n),
  }));
}

/** A lister that counts its calls around another. */
function counted(inner: ListShards) {
  const calls: string[] = [];
  const list: ListShards = (arn) => {
    calls.push(arn);
    return inner(arn);
  };
  return { calls, list };
}

const metricOf = (lines: string[]) => lines.map((l) => JSON.parse(l)).filter((l) => l._aws);
const warningsOf = (lines: string[]) => lines.map((l) => JSON.parse(l)).filter((l) => l.level === 'warn');

describe('lambda handler: every Kinesis shard is known before windows close', () => {
  it('lists the stream on the first event: one shard that alone would close windows closes none until the other three have delivered', async () => {
    const stream = 'four';
    const shards = await createStream(servers.client, stream, 4);
    expect(shards).toHaveLength(4);
    const byShard = shards.map((_, i) => clicks(40, 0, 5000, i)); // windows [0,1000) … [4000,5000)
    for (const [i, s] of shards.entries()) await putInto(stream, s.hashKey, byShard[i] as Click[]);
    const out = new MemorySink<Total>();
    const late = new MemorySink<Click>();
    const lister = counted(kinesisShardLister(servers.client));
    const lines: string[] = [];
    const handler = createHandler(windowPipeline('four', out, late), {
      listShards: lister.list,
      scheduler: new VirtualTimeScheduler(),
      log: (l) => lines.push(l),
    });
    // Shard 0's events pass four windows' ends; the three others have not delivered yet.
    for (const [i, s] of shards.entries()) {
      expect(await handler(await eventOf(stream, s.shardId))).toEqual({ batchItemFailures: [] });
      if (i < 3) expect(out.values).toEqual([]);
    }
    // The last one in: the watermark (the lowest over the four) passes four windows' ends.
    const all = byShard.flat();
    expect(sorted(out.values)).toEqual(oracle(all).filter((w) => w.windowStart < 4000));
    expect(late.values).toEqual([]);
    await (await handler.ready).flush();
    expect(sorted(out.values)).toEqual(oracle(all));
    expect(late.values).toEqual([]);
    expect(lister.calls).toEqual([arnOf(stream)]); // listed once, by the handler itself
    expect(warningsOf(lines)).toEqual([]);
    expect(metricOf(lines).reduce((n, m) => n + m.RecordsIn, 0)).toBe(160);
  });

  it('without the listing (only the first shard given) the same input goes wrong: its batch closes windows, the others are late', async () => {
    const stream = 'four-unlisted';
    const shards = await createStream(servers.client, stream, 4);
    const byShard = shards.map((_, i) => clicks(40, 0, 5000, i));
    for (const [i, s] of shards.entries()) await putInto(stream, s.hashKey, byShard[i] as Click[]);
    const out = new MemorySink<Total>();
    const late = new MemorySink<Click>();
    const handler = createHandler(windowPipeline('four-unlisted', out, late), {
      shards: [shards[0]?.shardId as string], // given: nothing is listed
      listShards: () => Promise.reject(new Error('must not be called')),
      scheduler: new VirtualTimeScheduler(),
      log: () => {},
    });
    await handler(await eventOf(stream, shards[0]?.shardId as string));
    expect(out.values.length).toBeGreaterThan(0);
    await handler(await eventOf(stream, shards[1]?.shardId as string));
    expect(late.values.length).toBeGreaterThan(0);
  });

  it('lists at init when the stream ARN is known; the first event lists nothing more', async () => {
    const stream = 'at-init';
    const shards = await createStream(servers.client, stream, 2);
    await putInto(stream, shards[0]?.hashKey as string, clicks(10, 0, 3000, 0));
    const lister = counted(kinesisShardLister(servers.client));
    const out = new MemorySink<Total>();
    const handler = createHandler(windowPipeline('at-init', out, new MemorySink()), {
      streamArn: arnOf(stream),
      listShards: lister.list,
      scheduler: new VirtualTimeScheduler(),
      log: () => {},
    });
    await handler.ready;
    expect(lister.calls).toEqual([arnOf(stream)]);
    await handler(await eventOf(stream, shards[0]?.shardId as string));
    expect(lister.calls).toHaveLength(1);
    expect(out.values).toEqual([]); // shard 1 is known, and holds the windows
  });

  it('a batch from a shard the list did not hold (resharding) lists again and registers its new sibling', async () => {
    const stream = 'resharded';
    const [parent] = await createStream(servers.client, stream, 1);
    const before = clicks(30, 0, 3000, 0);
    await putInto(stream, parent?.hashKey as string, before);
    const scheduler = new VirtualTimeScheduler();
    const lister = counted(kinesisShardLister(servers.client));
    const out = new MemorySink<Total>();
    const late = new MemorySink<Click>();
    const handler = createHandler(windowPipeline('resharded', out, late), {
      listShards: lister.list,
      scheduler,
      log: () => {},
    });
    await handler(await eventOf(stream, parent?.shardId as string));
    expect(lister.calls).toHaveLength(1);
    // The shard splits in two; the parent has been read to its end and goes idle (1 min).
    await servers.client.send(
      new SplitShardCommand({
        StreamName: stream,
        ShardToSplit: parent?.shardId as string,
        NewStartingHashKey: (2n ** 127n).toString(),
      }),
    );
    const children = (await shardsOf(stream)).filter((s) => s.open);
    expect(children).toHaveLength(2);
    const [first, second] = children as [Shard, Shard];
    const ahead = clicks(30, 5000, 8000, 1); // the first child is ahead…
    const behind = clicks(30, 3000, 5000, 2); // …of the second, which feeds windows it would close
    await putInto(stream, first.hashKey, ahead);
    await putInto(stream, second.hashKey, behind);
    scheduler.frame += 120_000;
    await handler(await eventOf(stream, first.shardId));
    expect(lister.calls).toHaveLength(2); // the first child was not listed: one more listing
    expect(out.values.filter((w) => w.windowStart >= 3000)).toEqual([]); // its sibling holds them
    await handler(await eventOf(stream, second.shardId));
    expect(lister.calls).toHaveLength(2); // listed already
    await (await handler.ready).flush();
    expect(late.values).toEqual([]);
    expect(sorted(out.values)).toEqual(oracle([...before, ...ahead, ...behind]));
  });

  it("a child shard's first batch closes its parent: the parent, read to its end, no longer holds windows back (no idle wait)", async () => {
    const stream = 'resharded-close';
    const [parent] = await createStream(servers.client, stream, 1);
    const before = clicks(30, 0, 3000, 0);
    await putInto(stream, parent?.hashKey as string, before);
    const scheduler = new VirtualTimeScheduler();
    const out = new MemorySink<Total>();
    const late = new MemorySink<Click>();
    const handler = createHandler(windowPipeline('resharded-close', out, late), {
      listShards: kinesisShardLister(servers.client),
      scheduler,
      log: () => {},
    });
    await handler(await eventOf(stream, parent?.shardId as string));
    await servers.client.send(
      new SplitShardCommand({
        StreamName: stream,
        ShardToSplit: parent?.shardId as string,
        NewStartingHashKey: (2n ** 127n).toString(),
      }),
    );
    const [first, second] = (await shardsOf(stream)).filter((s) => s.open) as [Shard, Shard];
    const a = clicks(30, 3000, 9000, 1);
    const b = clicks(30, 3000, 9000, 2);
    await putInto(stream, first.hashKey, a);
    await putInto(stream, second.hashKey, b);
    // No processing time passes: only closing the parent lets its watermark (~2.9 s) go.
    await handler(await eventOf(stream, first.shardId));
    await handler(await eventOf(stream, second.shardId));
    const lowest = Math.min(...[...a, ...b].map((e) => e.t));
    const highest = Math.min(Math.max(...a.map((e) => e.t)), Math.max(...b.map((e) => e.t)));
    const closed = oracle([...before, ...a, ...b]).filter((w) => w.windowStart + 1000 <= highest);
    expect(closed.some((w) => w.windowStart >= lowest)).toBe(true);
    expect(sorted(out.values)).toEqual(closed);
    await (await handler.ready).flush();
    expect(late.values).toEqual([]);
    expect(sorted(out.values)).toEqual(oracle([...before, ...a, ...b]));
  });

  it('lists again at most once a minute for the same unknown shard', async () => {
    const scheduler = new VirtualTimeScheduler();
    const lister = counted(
      async (): Promise<StreamShard[]> => [
        { shardId: 'shardId-000000000000', closed: false },
        { shardId: 'shardId-000000000001', closed: true },
      ],
    );
    const handler = createHandler(windowPipeline('rate', new MemorySink(), new MemorySink()), {
      listShards: lister.list,
      scheduler,
      log: () => {},
    });
    let seq = 0;
    const from = (shardId: string): KinesisStreamEvent => ({
      Records: [0, 1, 2].map((i) =>
        kinesisEventRecord({
          shardId,
          arn: arnOf('rate'),
          sequenceNumber: String(++seq),
          partitionKey: `u${i}`,
          data: Buffer.from(JSON.stringify({ user: `u${i}`, amount: 1, t: seq })).toString('base64'),
          arrivalSeconds: 1_800_000_000,
        }),
      ),
    });
    await handler(from('shardId-000000000000'));
    expect(lister.calls).toHaveLength(1);
    await handler(from('shardId-000000000001')); // listed (closed): known
    expect(lister.calls).toHaveLength(1);
    await handler(from('shardId-000000000007')); // unknown: listed again
    expect(lister.calls).toHaveLength(2);
    for (let i = 0; i < 20; i++) await handler(from('shardId-000000000007')); // a storm
    scheduler.frame += 59_999;
    await handler(from('shardId-000000000007'));
    expect(lister.calls).toHaveLength(2);
    await handler(from('shardId-000000000008')); // another unknown shard
    expect(lister.calls).toHaveLength(3);
    scheduler.frame += 1;
    await handler(from('shardId-000000000007')); // a minute after its last listing
    expect(lister.calls).toHaveLength(4);
  });

  it('a listing that fails is logged and the invocation goes on; it is tried again later', async () => {
    const stream = 'failing';
    const shards = await createStream(servers.client, stream, 2);
    const events = clicks(20, 0, 3000, 0);
    await putInto(stream, shards[0]?.hashKey as string, events);
    const scheduler = new VirtualTimeScheduler();
    let fail = true;
    const real = kinesisShardLister(servers.client);
    const lister = counted((arn) =>
      fail
        ? Promise.reject(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }))
        : real(arn),
    );
    const out = new MemorySink<Total>();
    const lines: string[] = [];
    const handler = createHandler(windowPipeline('failing', out, new MemorySink()), {
      listShards: lister.list,
      scheduler,
      log: (l) => lines.push(l),
    });
    const event = await eventOf(stream, shards[0]?.shardId as string);
    expect(await handler(event, { awsRequestId: 'r1', getRemainingTimeInMillis: () => 60_000 })).toEqual({
      batchItemFailures: [],
    });
    const [warning, ...more] = warningsOf(lines);
    expect(more).toEqual([]);
    expect(warning).toMatchObject({ level: 'warn', stream: arnOf(stream), requestId: 'r1' });
    expect(warning.error).toContain('User is not authorized');
    expect(metricOf(lines)[0]).toMatchObject({ RecordsIn: 20, FailedBatches: 0 });
    // Windows relied on the shard seen: shard 0 alone closed what it passed.
    expect(sorted(out.values)).toEqual(oracle(events).filter((w) => w.windowStart < 2000));
    // Tried again on a later invocation (after a back-off of a second), then not again.
    fail = false;
    await handler({ Records: [] });
    await handler({ Records: event.Records.slice(0, 1) });
    expect(lister.calls).toHaveLength(1);
    scheduler.frame += 1000;
    await handler({ Records: event.Records.slice(0, 1) });
    expect(lister.calls).toHaveLength(2);
    await handler({ Records: event.Records.slice(0, 1) });
    expect(lister.calls).toHaveLength(2);
    expect(warningsOf(lines)).toHaveLength(1);
  });
});

// --- DynamoDB Streams ---------------------------------------------------------------------------

const STREAM_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2026-01-01T00:00:00.000';
/** What stands for the shard when it cannot be told (as before shards were mapped). */
const TABLE_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/users';
type Item = { id: string; clicks: number; t: number };
type Change = { shard: string; seq: string; name: 'INSERT' | 'MODIFY' | 'REMOVE'; item: Item; old?: Item };

/**
 * Three shards, two closed and one open. Sequence numbers are decimal integers: the first shard's
 * have a digit fewer than the last one's, and the second shard's grow from 27 digits to 28 (a
 * string comparison would misplace them).
 */
const SHARDS: DynamoDbStreamShard[] = [
  {
    shardId: 'shardId-00000001767225600000-a1b2c3d4',
    start: '900000000000000000000000001',
    end: '900000000000000000000099999',
  },
  {
    shardId: 'shardId-00000001767229200000-e5f6a7b8',
    start: '999999999999999999999999950',
    end: '1000000000000000000000099999',
  },
  { shardId: 'shardId-00000001767232800000-c9d0e1f2', start: '1100000000000000000000000001' },
];

/** Changes to the items of each shard's partition: inserts, updates and deletes, in order. */
function changes(): Change[] {
  const out: Change[] = [];
  SHARDS.forEach((shard, s) => {
    let n = 0;
    const base = BigInt(shard.start);
    for (let u = 0; u < 4; u++) {
      const id = `user-${s}-${u}`;
      let item: Item = { id, clicks: u, t: 1_767_225_600_000 + s * 1000 + u };
      out.push({ shard: shard.shardId, seq: (base + BigInt(n++ * 7)).toString(), name: 'INSERT', item });
      for (let k = 1; k <= 3; k++) {
        const old = item;
        item = { id, clicks: item.clicks + k * 10, t: item.t + k * 100 };
        out.push({ shard: shard.shardId, seq: (base + BigInt(n++ * 7)).toString(), name: 'MODIFY', item, old });
      }
      if (u % 2 === 1)
        out.push({ shard: shard.shardId, seq: (base + BigInt(n++ * 7)).toString(), name: 'REMOVE', item, old: item });
    }
  });
  return out;
}

/** A DynamoDB Streams record as the service sends it (NEW_AND_OLD_IMAGES). */
function streamRecord(c: Change): DynamoDBRecord {
  const image = (i: Item) => marshall(i) as never;
  return dynamoDbEventRecord({
    arn: STREAM_ARN,
    eventID: `${c.seq.slice(-8)}${'0'.repeat(24)}`,
    eventName: c.name,
    dynamodb: {
      ApproximateCreationDateTime: Math.floor(c.item.t / 1000),
      Keys: marshall({ id: c.item.id }),
      ...(c.name === 'REMOVE' ? {} : { NewImage: image(c.item) }),
      ...(c.old ? { OldImage: image(c.old) } : {}),
      SequenceNumber: c.seq,
      SizeBytes: 26 + c.item.id.length,
    },
  });
}

type ChangeValue = { eventName: string; keys: { id: string }; newImage?: Item; oldImage?: Item };

/**
 * Per kind of change (each fed by every shard, unlike the table's own key): the number of changes
 * and the clicks of the new images, one window per hour.
 */
function ddbPipeline(name: string, out: MemorySink<{ key: string; n: number; s: number }>, seen: RecordEnvelope[]) {
  return pipeline(name)
    .source(fileSource<ChangeValue>({ path: '-' }))
    .eventTime((e) => (e.newImage ?? e.oldImage)?.t ?? 0)
    .sink({
      async write(records: readonly RecordEnvelope[]) {
        seen.push(...records);
      },
      async close() {},
    })
    .window({
      key: (e) => e.eventName,
      tumbling: 3_600_000,
      aggregate: { n: count(), s: sum((e) => e.newImage?.clicks ?? 0) },
      state: dynamoDbState({ table: 'shards-state', endpoint: servers.dynamo.endpoint }),
    })
    .sink(out)
    .build();
}

function ddbOracle(cs: Change[]) {
  const m: Record<string, { n: number; s: number }> = {};
  for (const c of cs) {
    const cur = m[c.name] ?? { n: 0, s: 0 };
    m[c.name] = { n: cur.n + 1, s: cur.s + (c.name === 'REMOVE' ? 0 : c.item.clicks) };
  }
  return m;
}

const byKey = (vs: { key: string; n: number; s: number }[]) => {
  const m: Record<string, { n: number; s: number }> = {};
  for (const v of vs) {
    expect(m[v.key]).toBeUndefined(); // each window once
    m[v.key] = { n: v.n, s: v.s };
  }
  return m;
};

describe('lambda handler: DynamoDB Streams records are mapped to their shard', () => {
  it('records of three shards get their own shard id; shards delivered out of order and redelivered count exactly once', async () => {
    const all = changes();
    const of = (shardId: string) => all.filter((c) => c.shard === shardId);
    const [a, b, c] = SHARDS.map((s) => of(s.shardId)) as [Change[], Change[], Change[]];
    const described: string[] = [];
    const seen: RecordEnvelope[] = [];
    const out = new MemorySink<{ key: string; n: number; s: number }>();
    const lines: string[] = [];
    const handler = createHandler(ddbPipeline('ddb-shards', out, seen), {
      describeDynamoDbStream: async (arn) => {
        described.push(arn);
        return SHARDS;
      },
      scheduler: new VirtualTimeScheduler(),
      log: (l) => lines.push(l),
    });
    const event = (cs: Change[]) => ({ Records: cs.map(streamRecord) });
    // Concurrent shards, as several pollers deliver them: the open shard (highest numbers) first.
    expect(await handler(event(c))).toEqual({ batchItemFailures: [] });
    expect(await handler(event(a))).toEqual({ batchItemFailures: [] });
    // Redelivered (a retry), then one event carrying two shards' records.
    expect(await handler(event(a))).toEqual({ batchItemFailures: [] });
    expect(await handler(event([...b, ...c.slice(0, 5)]))).toEqual({ batchItemFailures: [] });
    expect(described).toEqual([STREAM_ARN]);
    expect(warningsOf(lines)).toEqual([]);
    // Every record carried its own shard (the oracle is the shard each was written for).
    const shardOfSeq = new Map(all.map((x) => [x.seq, x.shard]));
    expect(seen).toHaveLength(c.length + 2 * a.length + b.length + 5);
    for (const r of seen) expect(r.shardId).toBe(shardOfSeq.get(r.sequenceNumber));
    expect(new Set(seen.map((r) => r.shardId)).size).toBe(3);
    await (await handler.ready).flush();
    expect(byKey(out.values)).toEqual(ddbOracle(all));
  });

  it('a container per shard, polled concurrently, batches cut at random and redelivered: window totals exact, each window once', async () => {
    const all = changes();
    const out = new MemorySink<{ key: string; n: number; s: number }>();
    const seen: RecordEnvelope[] = [];
    const p = ddbPipeline(`ddb-containers-${process.pid}`, out, seen);
    const container = () => createHandler(p, { describeDynamoDbStream: async () => SHARDS, log: () => {} });
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const event = (cs: Change[]) => ({ Records: cs.map(streamRecord) });
    const handlers: ReturnType<typeof createHandler>[] = [];
    await Promise.all(
      SHARDS.map(async (shard) => {
        const h = container();
        handlers.push(h);
        const mine = all.filter((c) => c.shard === shard.shardId);
        for (let from = 0; from < mine.length; ) {
          const to = Math.min(mine.length, from + 1 + Math.floor(rnd() * 6));
          await new Promise((r) => setTimeout(r, Math.floor(rnd() * 4)));
          expect(await h(event(mine.slice(from, to)))).toEqual({ batchItemFailures: [] });
          // Sometimes delivered again, cut differently (from earlier in the shard).
          if (rnd() < 0.3)
            expect(await h(event(mine.slice(Math.max(0, from - 2), to)))).toEqual({ batchItemFailures: [] });
          from = to;
        }
      }),
    );
    // A last container ends every shard's input.
    const last = container();
    handlers.push(last);
    await (await last.ready).flush({ shards: SHARDS.map((x) => x.shardId) });
    for (const h of handlers) await (await h.ready).close();
    expect(byKey(out.values)).toEqual(ddbOracle(all));
  });

  it('a number in no known shard describes the stream again (once a minute); a failed describe falls back to the stream, with a warning', async () => {
    const all = changes();
    const newest = all.filter((x) => x.shard === SHARDS[2]?.shardId);
    const scheduler = new VirtualTimeScheduler();
    let calls = 0;
    let known = SHARDS.slice(0, 2).map((s) => ({ ...s }));
    const seen: RecordEnvelope[] = [];
    const lines: string[] = [];
    const handler = createHandler(ddbPipeline('ddb-new-shard', new MemorySink(), seen), {
      describeDynamoDbStream: async () => {
        calls++;
        return known;
      },
      scheduler,
      log: (l) => lines.push(l),
    });
    const event = (cs: Change[]) => ({ Records: cs.map(streamRecord) });
    // The first listing knows only the two older shards.
    await handler(event(newest.slice(0, 2)));
    expect(calls).toBe(1); // described just now: not again in the same invocation
    expect(seen.map((r) => r.shardId)).toEqual([TABLE_ARN, TABLE_ARN]);
    expect(warningsOf(lines).map((w) => w.msg)).toEqual([
      expect.stringContaining('exactly-once across shards is not guaranteed'),
    ]);
    // The new shard would be listed now, but within the minute nothing is described again.
    known = SHARDS.map((s) => ({ ...s }));
    await handler(event(newest.slice(2, 3)));
    expect(calls).toBe(1);
    expect(seen.map((r) => r.shardId)).toEqual([TABLE_ARN, TABLE_ARN, TABLE_ARN]);
    scheduler.frame += 60_000;
    seen.length = 0;
    await handler(event(newest.slice(3, 5)));
    expect(calls).toBe(2);
    expect(seen.map((r) => r.shardId)).toEqual([SHARDS[2]?.shardId, SHARDS[2]?.shardId]);
    // A describe that fails (before the first success of a new container): the stream stands in.
    const fresh = createHandler(ddbPipeline('ddb-failing', new MemorySink(), seen), {
      describeDynamoDbStream: async () => {
        throw new Error('Rate exceeded');
      },
      log: (l) => lines.push(l),
    });
    lines.length = 0;
    seen.length = 0;
    expect(await fresh(event(newest.slice(0, 1)))).toEqual({ batchItemFailures: [] });
    expect(seen.map((r) => r.shardId)).toEqual([TABLE_ARN]);
    const warnings = warningsOf(lines);
    expect(warnings).toHaveLength(2);
    expect(warnings[0].error).toContain('Rate exceeded');
    expect(warnings[1].msg).toContain('exactly-once across shards is not guaranteed');
  });
});
