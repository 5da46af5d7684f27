// The enhanced fan-out reader against kinesis-local (SubscribeToShard over HTTP/2), 4-shard
// streams of records with random partition keys, plain and KPL-aggregated: every user record read
// once and in order per shard, a renewed subscription (its duration shortened) going on after the
// last event, refused subscriptions retried, a resume inside an aggregate at its sub-sequence, and
// SHARD_END after a split. Oracles are the records as put (where Kinesis placed them).
import { randomBytes } from 'node:crypto';
import {
  type KinesisClient,
  ListShardsCommand,
  PutRecordCommand,
  SplitShardCommand,
  type StartingPosition,
  SubscribeToShardCommand,
} from '@aws-sdk/client-kinesis';
import { aggregateUserRecords, hashKeyOf } from '@tributary/core/spi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStream, kinesisClient, putRecords, streamShards } from '../../../test-support/emulators.js';
import { EfoShardReader, efoSubscriptionClient, registerStreamConsumer } from '../src/efoReader.js';
import type { ReadBatch } from '../src/shardReader.js';
import { type KinesisLocal, startKinesisLocal } from './support/kinesisLocal.js';

let emulator: KinesisLocal;
let client: KinesisClient;
let subscriber: KinesisClient;
beforeAll(async () => {
  emulator = await startKinesisLocal();
  client = kinesisClient(emulator.endpoint);
  subscriber = efoSubscriptionClient({ endpoint: emulator.endpoint });
}, 60_000);
afterAll(async () => {
  subscriber?.destroy();
  client?.destroy();
  await emulator?.close();
});

let streams = 0;
const key = () => randomBytes(6).toString('hex');

interface ShardRange {
  shardId: string;
  start: bigint;
  end: bigint;
}

async function shardRanges(stream: string): Promise<ShardRange[]> {
  await streamShards(client, stream);
  const res = await client.send(new ListShardsCommand({ StreamName: stream }));
  return (res.Shards ?? []).map((s) => ({
    shardId: s.ShardId as string,
    start: BigInt(s.HashKeyRange?.StartingHashKey as string),
    end: BigInt(s.HashKeyRange?.EndingHashKey as string),
  }));
}

/** A user record as expected on its shard: its index (the value), Kinesis record and sub-sequence. */
interface Expected {
  i: number;
  sequenceNumber: string;
  subSequenceNumber: number | undefined;
}

/**
 * Puts `plain` records with random partition keys and `aggregates` KPL aggregates (as the KPL
 * builds them: user records of one shard, with random partition keys, under the first one's hash
 * key) — each with one stray user record aimed at another shard, which a reader of the
 * aggregate's shard drops. Returns what each shard should yield, in order, and the strays per shard.
 */
async function fill(stream: string, shards: ShardRange[], from: number, plain: number, aggregates: number) {
  const byShard = new Map<string, Expected[]>(shards.map((s) => [s.shardId, []]));
  const strays = new Map<string, number>(shards.map((s) => [s.shardId, 0]));
  let i = from;
  const shardOf = (h: bigint) => shards.find((s) => h >= s.start && h <= s.end) as ShardRange;
  const perRound = Math.ceil(plain / Math.max(1, aggregates));
  let left = plain;
  for (let round = 0; left > 0 || round < aggregates; round++) {
    const n = Math.min(left, perRound);
    if (n > 0) {
      const entries = Array.from({ length: n }, () => ({
        data: Buffer.from(JSON.stringify({ i: i++ })),
        partitionKey: key(),
      }));
      const placed = await putRecords(client, stream, entries);
      placed.forEach((p, j) => {
        const v = JSON.parse(entries[j]?.data.toString() as string) as { i: number };
        byShard.get(p.shardId)?.push({ i: v.i, sequenceNumber: p.sequenceNumber, subSequenceNumber: undefined });
      });
      left -= n;
    }
    if (round < aggregates) {
      const target = shards[round % shards.length] as ShardRange;
      const other = shards[(round + 1) % shards.length] as ShardRange;
      const users: { partitionKey: string; explicitHashKey?: string; data: Buffer; i: number; stray: boolean }[] = [];
      while (users.length < 6) {
        const partitionKey = key();
        if (shardOf(hashKeyOf({ partitionKey })) !== target) continue;
        users.push({ partitionKey, data: Buffer.from(JSON.stringify({ i })), i: i++, stray: false });
        if (users.length === 2)
          users.push({
            partitionKey: key(),
            explicitHashKey: (other.start + 1n).toString(),
            data: Buffer.from(JSON.stringify({ i })),
            i: i++,
            stray: true,
          });
      }
      const first = users[0] as (typeof users)[number];
      const res = await client.send(
        new PutRecordCommand({
          StreamName: stream,
          Data: aggregateUserRecords(users),
          PartitionKey: first.partitionKey,
          ExplicitHashKey: hashKeyOf(first).toString(),
        }),
      );
      expect(res.ShardId).toBe(target.shardId);
      users.forEach((u, sub) => {
        if (u.stray) strays.set(target.shardId, (strays.get(target.shardId) ?? 0) + 1);
        else
          byShard
            .get(target.shardId)
            ?.push({ i: u.i, sequenceNumber: res.SequenceNumber as string, subSequenceNumber: sub });
      });
    }
  }
  return { byShard, strays, next: i };
}

/** Reads until `count` user records came (or the shard ended); bounded. */
async function readAll(reader: EfoShardReader, count: number): Promise<ReadBatch[]> {
  const pages: ReadBatch[] = [];
  let got = 0;
  for (let n = 0; got < count && n < 10_000; n++) {
    const page = await reader.next();
    pages.push(page);
    got += page.batch.records.length;
    if (page.shardEnd) break;
  }
  return pages;
}

const indexes = (pages: ReadBatch[]) =>
  pages.flatMap((p) =>
    p.batch.records.map((r) => (JSON.parse(Buffer.from(r.data as Uint8Array).toString()) as { i: number }).i),
  );

/** A stream of 4 shards and its consumer (named after the application, as the worker names it). */
async function streamWithConsumer(shards = 4) {
  const stream = `efo-${++streams}`;
  await createStream(client, stream, shards);
  const ranges = await shardRanges(stream);
  const consumer = await registerStreamConsumer({
    kinesis: client,
    stream,
    consumerName: `app-${streams}`,
    pollMs: 50,
  });
  return { stream, ranges, consumer };
}

/**
 * A subscriber whose SubscribeToShard calls are recorded (their starting positions), whose events
 * are counted, and whose calls may fail as `fail(call)` says.
 */
function watchedSubscriber(fail: (call: number) => Error | undefined = () => undefined) {
  const starts: StartingPosition[] = [];
  let calls = 0;
  let events = 0;
  const wrapped = {
    send: async (command: unknown, options?: unknown) => {
      if (!(command instanceof SubscribeToShardCommand)) return subscriber.send(command as never, options as never);
      starts.push(command.input.StartingPosition as StartingPosition);
      const err = fail(++calls);
      if (err) throw err;
      const res = await subscriber.send(command, options as never);
      const inner = res.EventStream as AsyncIterable<unknown>;
      async function* counted() {
        for await (const e of inner) {
          events++;
          yield e;
        }
      }
      return { ...res, EventStream: counted() };
    },
  };
  return { client: wrapped as unknown as KinesisClient, starts, events: () => events };
}

const reader = (
  consumerArn: string,
  shard: ShardRange,
  from: { checkpoint: string; subSequenceNumber: number },
  more: Partial<ConstructorParameters<typeof EfoShardReader>[0]> = {},
) =>
  new EfoShardReader({
    subscriber,
    consumerArn,
    shardId: shard.shardId,
    from,
    hashRange: { start: shard.start, end: shard.end },
    backoff: { baseDelay: 5, maxDelay: 50 },
    ...more,
  });

// ---- a scripted subscriber, for what the emulator cannot be made to do ---------------------

const TRIM = { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 };
const rec = (sequenceNumber: string, i: number) => ({
  SequenceNumber: sequenceNumber,
  PartitionKey: key(),
  Data: Buffer.from(JSON.stringify({ i })),
  ApproximateArrivalTimestamp: new Date(),
});
const event = (records: ReturnType<typeof rec>[], continuation: string | undefined, childShards?: unknown[]) => ({
  SubscribeToShardEvent: {
    Records: records,
    ContinuationSequenceNumber: continuation,
    MillisBehindLatest: 0,
    ...(childShards ? { ChildShards: childShards } : {}),
  },
});
type Scripted = ReturnType<typeof event> | 'hang';

/** A subscriber whose subscriptions deliver `script(call)`'s events ('hang': no more, until aborted). */
function fakeSubscriber(script: (call: number) => Scripted[]) {
  const starts: StartingPosition[] = [];
  let pulled = 0;
  let calls = 0;
  const client = {
    send: async (command: SubscribeToShardCommand, options?: { abortSignal?: AbortSignal }) => {
      starts.push(command.input.StartingPosition as StartingPosition);
      const events = script(++calls);
      const signal = options?.abortSignal;
      async function* stream() {
        for (const e of events) {
          if (e === 'hang')
            await new Promise((_, reject) =>
              signal?.addEventListener('abort', () =>
                reject(Object.assign(new Error('aborted'), { name: 'AbortError' })),
              ),
            );
          pulled++;
          yield e;
        }
      }
      return { EventStream: stream() };
    },
  };
  return { client: client as unknown as KinesisClient, starts, pulled: () => pulled };
}

describe('registerStreamConsumer', () => {
  it('registers a consumer once, waits until it is ACTIVE, and reuses it', async () => {
    const stream = `efo-${++streams}`;
    await createStream(client, stream, 4);
    const a = await registerStreamConsumer({ kinesis: client, stream, consumerName: 'orders-app', pollMs: 50 });
    const b = await registerStreamConsumer({
      kinesis: client,
      streamArn: a.streamArn,
      consumerName: 'orders-app',
      pollMs: 50,
    });
    expect(b.consumerArn).toBe(a.consumerArn);
    expect(a.consumerArn).toContain('orders-app');
    await expect(registerStreamConsumer({ kinesis: client, stream, consumerName: 'no spaces' })).rejects.toThrow(
      /consumer's name .* got "no spaces"/,
    );
  });
});

describe('EfoShardReader', () => {
  it('reads each of 4 shards from TRIM_HORIZON: every user record (plain and KPL) once, in order', async () => {
    const { stream, ranges, consumer } = await streamWithConsumer();
    const { byShard, strays } = await fill(stream, ranges, 0, 160, 8);
    await Promise.all(
      ranges.map(async (shard) => {
        const expected = byShard.get(shard.shardId) ?? [];
        const r = reader(
          consumer.consumerArn,
          shard,
          { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
          {
            maxRecords: 7,
            maxBufferedEvents: 1,
          },
        );
        const pages = await readAll(r, expected.length);
        r.stop();
        expect(indexes(pages)).toEqual(expected.map((e) => e.i));
        const recs = pages.flatMap((p) => p.batch.records);
        expect(recs.map((x) => [x.sequenceNumber, x.subSequenceNumber])).toEqual(
          expected.map((e) => [e.sequenceNumber, e.subSequenceNumber]),
        );
        for (const p of pages) {
          expect(p.batch.shardId).toBe(shard.shardId);
          expect(p.batch.records.length).toBeGreaterThan(0);
          const last = p.batch.records[p.batch.records.length - 1];
          expect(p.position).toEqual({
            sequenceNumber: last?.sequenceNumber,
            subSequenceNumber: last?.subSequenceNumber ?? 0,
          });
        }
        expect(pages.reduce((n, p) => n + p.otherShard, 0)).toBe(strays.get(shard.shardId));
        await expect(r.next()).rejects.toThrow(/stopped/);
      }),
    );
  });

  it('renews a subscription that ended after the last event: nothing skipped, nothing read twice', async () => {
    const { stream, ranges, consumer } = await streamWithConsumer();
    const first = await fill(stream, ranges, 0, 80, 4);
    const readers = ranges.map((shard) => {
      const watched = watchedSubscriber();
      const r = reader(
        consumer.consumerArn,
        shard,
        { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
        {
          subscriber: watched.client,
          subscriptionMs: 2500,
        },
      );
      return { shard, watched, r };
    });
    const firstPages = await Promise.all(
      readers.map(({ shard, r }) => readAll(r, (first.byShard.get(shard.shardId) ?? []).length)),
    );
    // Wait (bounded) until every subscription was renewed twice: what is put next comes through a renewed one.
    for (let n = 0; n < 400 && readers.some((x) => x.watched.starts.length < 3); n++)
      await new Promise((res) => setTimeout(res, 25));
    const second = await fill(stream, ranges, first.next, 80, 4);
    await Promise.all(
      readers.map(async ({ shard, watched, r }, k) => {
        const wanted = second.byShard.get(shard.shardId) ?? [];
        const pages = [...(firstPages[k] as ReadBatch[]), ...(await readAll(r, wanted.length))];
        r.stop();
        const all = [...(first.byShard.get(shard.shardId) ?? []), ...wanted];
        expect(indexes(pages)).toEqual(all.map((e) => e.i));
        expect(watched.starts.length).toBeGreaterThanOrEqual(3);
        expect(watched.starts[0]).toEqual({ Type: 'TRIM_HORIZON' });
        for (const s of watched.starts.slice(1)) expect(s.Type).toBe('AFTER_SEQUENCE_NUMBER');
      }),
    );
  });

  it('subscribes again after a refused subscription (resource in use, limit exceeded); throws any other failure', async () => {
    const { stream, ranges, consumer } = await streamWithConsumer();
    const { byShard } = await fill(stream, ranges, 0, 60, 4);
    const refusal = (name: string) => Object.assign(new Error(`${name} for the shard`), { name });
    await Promise.all(
      ranges.map(async (shard) => {
        const watched = watchedSubscriber((call) =>
          call === 1 ? refusal('ResourceInUseException') : call === 2 ? refusal('LimitExceededException') : undefined,
        );
        const expected = byShard.get(shard.shardId) ?? [];
        const r = reader(
          consumer.consumerArn,
          shard,
          { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
          {
            subscriber: watched.client,
          },
        );
        const pages = await readAll(r, expected.length);
        r.stop();
        expect(indexes(pages)).toEqual(expected.map((e) => e.i));
        expect(watched.starts.length).toBeGreaterThanOrEqual(3);
        expect(watched.starts.slice(0, 3)).toEqual([
          { Type: 'TRIM_HORIZON' },
          { Type: 'TRIM_HORIZON' },
          { Type: 'TRIM_HORIZON' },
        ]);
      }),
    );
    const denied = watchedSubscriber(() => refusal('AccessDeniedException'));
    const r = reader(
      consumer.consumerArn,
      ranges[0] as ShardRange,
      { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
      {
        subscriber: denied.client,
      },
    );
    await expect(r.next()).rejects.toThrow(/AccessDeniedException/);
    r.stop();
  });

  it('resumes from a checkpoint: after a plain record, and inside an aggregate at its sub-sequence', async () => {
    const { stream, ranges, consumer } = await streamWithConsumer();
    const { byShard } = await fill(stream, ranges, 0, 80, 8);
    await Promise.all(
      ranges.map(async (shard) => {
        const expected = byShard.get(shard.shardId) ?? [];
        // Inside an aggregate (past its first user record, as the lease's sub-sequence says, and
        // before its last): the rest of it, then everything after.
        const inside = expected.findIndex(
          (e, k) => (e.subSequenceNumber ?? 0) > 0 && expected[k + 1]?.sequenceNumber === e.sequenceNumber,
        );
        expect(inside).toBeGreaterThanOrEqual(0);
        const at = expected[inside] as Expected;
        const r1 = reader(consumer.consumerArn, shard, {
          checkpoint: at.sequenceNumber,
          subSequenceNumber: at.subSequenceNumber as number,
        });
        const rest = expected.slice(inside + 1);
        const pages1 = await readAll(r1, rest.length);
        r1.stop();
        expect(indexes(pages1)).toEqual(rest.map((e) => e.i));
        // After a plain record.
        const plain = expected.findIndex((e, k) => e.subSequenceNumber === undefined && k < expected.length - 1);
        expect(plain).toBeGreaterThanOrEqual(0);
        const after = expected.slice(plain + 1);
        const r2 = reader(consumer.consumerArn, shard, {
          checkpoint: (expected[plain] as Expected).sequenceNumber,
          subSequenceNumber: 0,
        });
        const pages2 = await readAll(r2, after.length);
        r2.stop();
        expect(indexes(pages2)).toEqual(after.map((e) => e.i));
      }),
    );
  });

  it('reads a shard closed by a split to its end: SHARD_END after its last record', async () => {
    const { stream, ranges, consumer } = await streamWithConsumer();
    const { byShard } = await fill(stream, ranges, 0, 80, 4);
    const parent = ranges[1] as ShardRange;
    await client.send(
      new SplitShardCommand({
        StreamName: stream,
        ShardToSplit: parent.shardId,
        NewStartingHashKey: ((parent.start + parent.end) / 2n).toString(),
      }),
    );
    const after = await streamShards(client, stream);
    expect(after.filter((s) => s.open)).toHaveLength(5);
    const r = reader(
      consumer.consumerArn,
      parent,
      { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
      {
        kinesis: client,
        stream,
        closedCheckMs: 100,
      },
    );
    const pages: ReadBatch[] = [];
    for (let n = 0; n < 1000; n++) {
      const page = await r.next();
      pages.push(page);
      if (page.shardEnd) break;
    }
    expect(pages[pages.length - 1]?.shardEnd).toBe(true);
    expect(indexes(pages)).toEqual((byShard.get(parent.shardId) ?? []).map((e) => e.i));
    await expect(r.next()).rejects.toThrow(/read to its end/);
  });

  it('starts at LATEST: only records put after the subscription', async () => {
    const { stream, ranges, consumer } = await streamWithConsumer();
    await fill(stream, ranges, 0, 40, 0);
    const watched = ranges.map(() => watchedSubscriber());
    const readers = ranges.map((shard, k) =>
      reader(
        consumer.consumerArn,
        shard,
        { checkpoint: 'LATEST', subSequenceNumber: 0 },
        {
          subscriber: (watched[k] as { client: KinesisClient }).client,
        },
      ),
    );
    const firsts = readers.map((r) => r.next());
    for (const f of firsts) f.catch(() => {});
    // Bounded wait until every subscription brought an event (its position is taken by then).
    for (let n = 0; n < 400 && watched.some((w) => w.events() === 0); n++)
      await new Promise((res) => setTimeout(res, 25));
    const later = await fill(stream, ranges, 1000, 60, 2);
    await Promise.all(
      readers.map(async (r, k) => {
        const shard = ranges[k] as ShardRange;
        const wanted = later.byShard.get(shard.shardId) ?? [];
        const first = await firsts[k];
        const pages = [
          first as ReadBatch,
          ...(await readAll(r, wanted.length - (first as ReadBatch).batch.records.length)),
        ];
        r.stop();
        expect(indexes(pages)).toEqual(wanted.map((e) => e.i));
      }),
    );
  });

  it('ends the shard at an event without a ContinuationSequenceNumber (it names the child shards)', async () => {
    const events = [
      event([rec('1', 0), rec('2', 1)], '2'),
      event([], '2'),
      event([rec('3', 2)], undefined, [
        { ShardId: 'shardId-000000000009', ParentShards: ['s'], HashKeyRange: undefined },
      ]),
    ];
    const fake = fakeSubscriber(() => events);
    const r = new EfoShardReader({ subscriber: fake.client, consumerArn: 'arn:c', shardId: 's', from: TRIM });
    const pages = [await r.next(), await r.next()];
    expect(indexes(pages)).toEqual([0, 1, 2]);
    expect(pages.map((p) => p.shardEnd)).toEqual([false, true]);
    await expect(r.next()).rejects.toThrow(/read to its end/);
  });

  it('pauses the event stream while maxBufferedEvents events wait, and goes on when next() takes them', async () => {
    const events = Array.from({ length: 40 }, (_, k) => event([rec(String(k + 1), k)], String(k + 1)));
    const fake = fakeSubscriber(() => events);
    const r = new EfoShardReader({
      subscriber: fake.client,
      consumerArn: 'arn:c',
      shardId: 's',
      from: TRIM,
      maxBufferedEvents: 3,
      maxRecords: 2,
    });
    const first = await r.next();
    // Nothing more is taken: the reader reads the stream no further than its buffer (plus the event in hand).
    for (let n = 0; n < 20; n++) await new Promise((res) => setImmediate(res));
    expect(fake.pulled()).toBeLessThanOrEqual(first.batch.records.length + 3 + 1);
    const pages = [first, ...(await readAll(r, 40 - first.batch.records.length))];
    r.stop();
    expect(indexes(pages)).toEqual(Array.from({ length: 40 }, (_, k) => k));
    for (const p of pages) expect(p.batch.records.length).toBeLessThanOrEqual(2);
  });

  it('renews a subscription that brings no event for idleTimeoutMs, after its last event', async () => {
    let calls = 0;
    const fake = fakeSubscriber(() =>
      ++calls === 1 ? [event([rec('1', 0)], '1'), 'hang'] : [event([rec('2', 1)], '2'), 'hang'],
    );
    const r = new EfoShardReader({
      subscriber: fake.client,
      consumerArn: 'arn:c',
      shardId: 's',
      from: TRIM,
      idleTimeoutMs: 50,
    });
    const pages = await readAll(r, 2);
    r.stop();
    expect(indexes(pages)).toEqual([0, 1]);
    expect(fake.starts.slice(0, 2)).toEqual([
      { Type: 'TRIM_HORIZON' },
      { Type: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: '1' },
    ]);
  });

  it('refuses bad options and a SHARD_END checkpoint', () => {
    const base = { subscriber, consumerArn: 'arn:c', shardId: 'shardId-000000000000' };
    const ok = { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 };
    expect(() => new EfoShardReader({ ...base, from: ok, maxRecords: 0 })).toThrow(
      'Expected `maxRecords` to be an integer from 1 to 10000, got 0',
    );
    expect(() => new EfoShardReader({ ...base, from: ok, maxBufferedEvents: 0 })).toThrow(/maxBufferedEvents/);
    expect(() => new EfoShardReader({ ...base, from: ok, subscriptionMs: 0 })).toThrow(/subscriptionMs/);
    expect(() => new EfoShardReader({ ...base, from: { checkpoint: 'SHARD_END', subSequenceNumber: 0 } })).toThrow(
      /SHARD_END/,
    );
    expect(() => new EfoShardReader({ ...base, from: { checkpoint: 'AT_TIMESTAMP', subSequenceNumber: 0 } })).toThrow(
      /startingTimestamp/,
    );
  });
});
