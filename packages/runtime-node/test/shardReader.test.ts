// The shard reader against kinesalite in this process: where it starts (trim horizon, after a
// checkpoint, inside a KPL aggregate), every record once and in order, the prefetch bound,
// throttling and expired iterators (injected through a wrapped client), de-aggregation within
// the shard's hash range, and SHARD_END after a split. Oracles are the records as put.
import { randomBytes } from 'node:crypto';
import {
  ExpiredIteratorException,
  GetRecordsCommand,
  type KinesisClient,
  ProvisionedThroughputExceededException,
  PutRecordCommand,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import { aggregateUserRecords, hashKeyOf } from '@tributary/core/spi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createStream,
  kinesisClient,
  type Placed,
  putRecords,
  startKinesalite,
  streamShards,
} from '../../../test-support/emulators.js';
import type { WorkerMetrics } from '../src/leaseTypes.js';
import { type ReadBatch, ShardReader } from '../src/shardReader.js';

let kinesalite: { endpoint: string; close: () => Promise<void> };
let client: KinesisClient;
beforeAll(async () => {
  kinesalite = await startKinesalite();
  client = kinesisClient(kinesalite.endpoint);
});
afterAll(async () => {
  client.destroy();
  await kinesalite.close();
});

let streams = 0;
const key = () => randomBytes(6).toString('hex');

/** A stream of `shards` shards holding `n` records with random partition keys; where each went. */
async function streamWith(n: number, shards = 4) {
  const stream = `reader-${++streams}`;
  await createStream(client, stream, shards);
  const entries = Array.from({ length: n }, (_, i) => ({
    data: Buffer.from(JSON.stringify({ i })),
    partitionKey: key(),
  }));
  const placed = await putRecords(client, stream, entries);
  const byShard = new Map<string, { i: number; placed: Placed }[]>();
  placed.forEach((p, i) => {
    byShard.set(p.shardId, [...(byShard.get(p.shardId) ?? []), { i, placed: p }]);
  });
  return { stream, byShard, shardIds: (await streamShards(client, stream)).map((s) => s.shardId) };
}

/** Reads until `count` user records came (or the shard ended). */
async function readAll(reader: ShardReader, count: number): Promise<ReadBatch[]> {
  const pages: ReadBatch[] = [];
  let got = 0;
  while (got < count) {
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

/** A client whose GetRecords calls fail as `fail(call)` says, the rest passing through. */
function flakyClient(fail: (call: number) => Error | undefined) {
  let calls = 0;
  const wrapped = {
    send: (command: unknown) => {
      if (command instanceof GetRecordsCommand) {
        const err = fail(++calls);
        if (err) return Promise.reject(err);
      }
      return client.send(command as never);
    },
    get calls() {
      return calls;
    },
  };
  return wrapped;
}

function countingMetrics() {
  const calls: Record<string, number> = {};
  const ages: number[] = [];
  const metrics: WorkerMetrics = {
    recordsIn() {},
    recordsOut() {},
    deadLettered() {},
    late() {},
    iteratorAge: (_s, ms) => ages.push(ms),
    leasesHeld() {},
    leaseEvent() {},
    checkpointLag() {},
    call: (target, outcome) => {
      calls[`${target}:${outcome}`] = (calls[`${target}:${outcome}`] ?? 0) + 1;
    },
  };
  return { metrics, calls, ages };
}

describe('ShardReader', () => {
  it('reads every record of each of 4 shards once, in sequence order, from TRIM_HORIZON', async () => {
    const { stream, byShard, shardIds } = await streamWith(2000);
    expect(shardIds).toHaveLength(4);
    for (const shardId of shardIds) {
      const expected = byShard.get(shardId) ?? [];
      const { metrics, ages } = countingMetrics();
      const reader = new ShardReader({
        kinesis: client,
        stream,
        shardId,
        from: { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
        maxRecords: 97,
        idleTimeBetweenReadsMs: 5,
        metrics,
      });
      const pages = await readAll(reader, expected.length);
      reader.stop();
      expect(indexes(pages)).toEqual(expected.map((e) => e.i));
      const seqs = pages.flatMap((p) => p.batch.records.map((r) => r.sequenceNumber));
      expect(seqs).toEqual(expected.map((e) => e.placed.sequenceNumber));
      for (const p of pages) {
        expect(p.batch.shardId).toBe(shardId);
        expect(p.batch.records.length).toBeLessThanOrEqual(97);
        const last = p.batch.records[p.batch.records.length - 1];
        expect(p.position).toEqual({ sequenceNumber: last?.sequenceNumber, subSequenceNumber: 0 });
        for (const r of p.batch.records) expect(r.subSequenceNumber).toBeUndefined();
      }
      expect(ages.length).toBeGreaterThanOrEqual(pages.length);
    }
  });

  it('resumes after a checkpoint: exactly the records after it', async () => {
    const { stream, byShard, shardIds } = await streamWith(400);
    const shardId = shardIds[2] as string;
    const expected = byShard.get(shardId) ?? [];
    const at = Math.floor(expected.length / 3);
    const reader = new ShardReader({
      kinesis: client,
      stream,
      shardId,
      from: { checkpoint: expected[at]?.placed.sequenceNumber as string, subSequenceNumber: 0 },
      idleTimeBetweenReadsMs: 5,
    });
    const pages = await readAll(reader, expected.length - at - 1);
    reader.stop();
    expect(indexes(pages)).toEqual(expected.slice(at + 1).map((e) => e.i));
  });

  it('starts at LATEST (only records put after it) and at AT_TIMESTAMP (records arrived at or after the time)', async () => {
    const stream = `reader-${++streams}`;
    const [only] = await createStream(client, stream, 1);
    const shardId = only?.shardId as string;
    const put = (from: number, n: number) =>
      putRecords(
        client,
        stream,
        Array.from({ length: n }, (_, j) => ({
          data: Buffer.from(JSON.stringify({ i: from + j })),
          partitionKey: key(),
        })),
      );
    await put(0, 50);
    const latest = new ShardReader({
      kinesis: client,
      stream,
      shardId,
      from: { checkpoint: 'LATEST', subSequenceNumber: 0 },
      idleTimeBetweenReadsMs: 5,
    });
    // The iterator is taken on the first read: start it before the next records are put.
    const first = latest.next();
    await new Promise((r) => setTimeout(r, 200));
    await put(50, 30);
    const pages = [await first, ...(await readAll(latest, 30 - (await first).batch.records.length))];
    latest.stop();
    expect(indexes(pages).slice(0, 30)).toEqual(Array.from({ length: 30 }, (_, j) => 50 + j));

    await new Promise((r) => setTimeout(r, 20));
    await put(80, 20);
    const whole = new ShardReader({
      kinesis: client,
      stream,
      shardId,
      from: { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
    });
    const all = await readAll(whole, 100);
    whole.stop();
    const records = all.flatMap((p) => p.batch.records);
    const at = records[80]?.arrivalTime as number;
    expect(at).toBeGreaterThan(records[79]?.arrivalTime as number);
    const fromTime = new ShardReader({
      kinesis: client,
      stream,
      shardId,
      from: { checkpoint: 'AT_TIMESTAMP', subSequenceNumber: 0 },
      startingTimestamp: new Date(at),
      idleTimeBetweenReadsMs: 5,
    });
    const later = await readAll(fromTime, 20);
    fromTime.stop();
    expect(indexes(later)).toEqual(Array.from({ length: 20 }, (_, j) => 80 + j));
  });

  it('keeps at most one GetRecords call ahead of the batch being processed', async () => {
    const { stream, byShard, shardIds } = await streamWith(500, 1);
    const shardId = shardIds[0] as string;
    const flaky = flakyClient(() => undefined);
    const reader = new ShardReader({
      kinesis: flaky as unknown as KinesisClient,
      stream,
      shardId,
      from: { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
      maxRecords: 50,
      idleTimeBetweenReadsMs: 5,
    });
    const first = await reader.next();
    expect(first.batch.records).toHaveLength(50);
    // While the first batch is "processed", only the one prefetch call is made.
    await new Promise((r) => setTimeout(r, 300));
    expect(flaky.calls).toBe(2);
    const rest = await readAll(reader, 450);
    reader.stop();
    expect(indexes([first, ...rest])).toEqual((byShard.get(shardId) ?? []).map((e) => e.i));
  });

  it('backs off on throttling and renews an expired iterator: every record once, in order', async () => {
    const { stream, byShard, shardIds } = await streamWith(1200);
    for (const shardId of shardIds) {
      const expected = byShard.get(shardId) ?? [];
      const flaky = flakyClient((call) =>
        call % 3 === 0
          ? new ProvisionedThroughputExceededException({ message: 'Rate exceeded for shard', $metadata: {} })
          : call % 5 === 0
            ? new ExpiredIteratorException({ message: 'Iterator expired', $metadata: {} })
            : undefined,
      );
      const { metrics, calls } = countingMetrics();
      const reader = new ShardReader({
        kinesis: flaky as unknown as KinesisClient,
        stream,
        shardId,
        from: { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
        maxRecords: 23,
        idleTimeBetweenReadsMs: 5,
        backoff: { baseDelay: 2, maxDelay: 10 },
        metrics,
      });
      const pages = await readAll(reader, expected.length);
      reader.stop();
      expect(indexes(pages)).toEqual(expected.map((e) => e.i));
      // Both kinds of failure happened and were retried.
      expect(flaky.calls).toBeGreaterThanOrEqual(10);
      // Each failed call was retried (the prefetch cut short by stop() may not have been counted yet).
      const failed = Math.floor(flaky.calls / 3) + Math.floor(flaky.calls / 5) - Math.floor(flaky.calls / 15);
      expect(calls['kinesis:retry']).toBeGreaterThanOrEqual(failed - 1);
      expect(calls['kinesis:retry']).toBeLessThanOrEqual(failed);
    }
  });

  it('a failure that is neither throttling nor transient is thrown', async () => {
    const { stream, shardIds } = await streamWith(10, 1);
    const denied = Object.assign(new Error('User is not authorized to perform kinesis:GetRecords'), {
      name: 'AccessDeniedException',
    });
    const reader = new ShardReader({
      kinesis: flakyClient(() => denied) as unknown as KinesisClient,
      stream,
      shardId: shardIds[0] as string,
      from: { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
    });
    await expect(reader.next()).rejects.toThrow(/not authorized/);
    reader.stop();
  });

  it('de-aggregates KPL records, drops user records of another hash range, and resumes inside an aggregate at its sub-sequence', async () => {
    const stream = `reader-${++streams}`;
    const [lower, upper] = await createStream(client, stream, 2);
    const lowerShard = lower?.shardId as string;
    // Aggregates aimed at the lower shard; each holds 10 user records, every third of them with
    // an explicit hash key in the upper shard's range (dropped when read from the lower shard).
    const upperKey = (BigInt(upper?.hashKey as string) + 5n).toString();
    const users: {
      agg: number;
      sub: number;
      kept: boolean;
      data: Buffer;
      partitionKey: string;
      explicitHashKey?: string;
    }[] = [];
    const seqs: string[] = [];
    for (let agg = 0; agg < 6; agg++) {
      const group = Array.from({ length: 10 }, (_, sub) => ({
        agg,
        sub,
        kept: sub % 3 !== 1,
        partitionKey: key(),
        data: Buffer.from(JSON.stringify({ i: agg * 10 + sub })),
        ...(sub % 3 === 1 ? { explicitHashKey: upperKey } : { explicitHashKey: '7' }),
      }));
      users.push(...group);
      const res = await client.send(
        new PutRecordCommand({
          StreamName: stream,
          Data: aggregateUserRecords(group),
          PartitionKey: 'agg',
          ExplicitHashKey: '7',
        }),
      );
      expect(res.ShardId).toBe(lowerShard);
      seqs.push(res.SequenceNumber as string);
    }
    const range = { start: BigInt(lower?.hashKey as string), end: BigInt(upper?.hashKey as string) - 1n };
    expect(hashKeyOf({ partitionKey: 'x', explicitHashKey: upperKey }) > range.end).toBe(true);
    const kept = users.filter((u) => u.kept);
    const read = async (from: { checkpoint: string; subSequenceNumber: number }, count: number) => {
      const reader = new ShardReader({
        kinesis: client,
        stream,
        shardId: lowerShard,
        from,
        hashRange: range,
        idleTimeBetweenReadsMs: 5,
      });
      const pages = await readAll(reader, count);
      reader.stop();
      return pages;
    };
    const all = await read({ checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 }, kept.length);
    expect(indexes(all)).toEqual(kept.map((u) => u.agg * 10 + u.sub));
    const recs = all.flatMap((p) => p.batch.records);
    expect(recs.map((r) => [r.sequenceNumber, r.subSequenceNumber])).toEqual(kept.map((u) => [seqs[u.agg], u.sub]));
    expect(all.reduce((n, p) => n + p.otherShard, 0)).toBe(users.length - kept.length);
    expect(all[all.length - 1]?.position).toEqual({ sequenceNumber: seqs[5], subSequenceNumber: 9 });

    // A checkpoint at user record 3 of the third aggregate: reading resumes at its record 4.
    const after = kept.filter((u) => u.agg > 2 || (u.agg === 2 && u.sub > 3));
    const resumed = await read({ checkpoint: seqs[2] as string, subSequenceNumber: 3 }, after.length);
    expect(indexes(resumed)).toEqual(after.map((u) => u.agg * 10 + u.sub));
    // A checkpoint at the last user record of an aggregate: the next aggregate, whole.
    const next = kept.filter((u) => u.agg > 3);
    const whole = await read({ checkpoint: seqs[3] as string, subSequenceNumber: 9 }, next.length);
    expect(indexes(whole)).toEqual(next.map((u) => u.agg * 10 + u.sub));
    // A checkpoint as the KCL writes it after the first user record of an aggregate, (seq, 0):
    // the rest of that aggregate is read, not skipped.
    const kcl = kept.filter((u) => u.agg > 4 || (u.agg === 4 && u.sub > 0));
    const fromKcl = await read({ checkpoint: seqs[4] as string, subSequenceNumber: 0 }, kcl.length);
    expect(indexes(fromKcl)).toEqual(kcl.map((u) => u.agg * 10 + u.sub));
  });

  it('reads a shard closed by a split to its end: SHARD_END after its last record', async () => {
    const { stream, byShard, shardIds } = await streamWith(300, 1);
    const parent = shardIds[0] as string;
    await client.send(
      new SplitShardCommand({ StreamName: stream, ShardToSplit: parent, NewStartingHashKey: (2n ** 127n).toString() }),
    );
    const shards = await streamShards(client, stream);
    expect(shards.filter((s) => s.open)).toHaveLength(2);
    const reader = new ShardReader({
      kinesis: client,
      stream,
      shardId: parent,
      from: { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 },
      maxRecords: 70,
      idleTimeBetweenReadsMs: 5,
    });
    const pages: ReadBatch[] = [];
    for (;;) {
      const page = await reader.next();
      pages.push(page);
      if (page.shardEnd) break;
    }
    expect(indexes(pages)).toEqual((byShard.get(parent) ?? []).map((e) => e.i));
    await expect(reader.next()).rejects.toThrow(/read to its end/);
  });

  it('stop() ends a reader waiting on an idle shard', async () => {
    const stream = `reader-${++streams}`;
    const [only] = await createStream(client, stream, 1);
    const reader = new ShardReader({
      kinesis: client,
      stream,
      shardId: only?.shardId as string,
      from: { checkpoint: 'LATEST', subSequenceNumber: 0 },
      idleTimeBetweenReadsMs: 60_000,
    });
    const pending = reader.next();
    setTimeout(() => reader.stop(), 100);
    await expect(pending).rejects.toThrow(/stopped/);
  });

  it('refuses a maxRecords outside 1..10000 and a SHARD_END checkpoint', () => {
    const base = { kinesis: client, stream: 's', shardId: 'shardId-000000000000' };
    expect(
      () => new ShardReader({ ...base, from: { checkpoint: 'TRIM_HORIZON', subSequenceNumber: 0 }, maxRecords: 0 }),
    ).toThrow('Expected `maxRecords` to be an integer from 1 to 10000, got 0');
    expect(() => new ShardReader({ ...base, from: { checkpoint: 'SHARD_END', subSequenceNumber: 0 } })).toThrow(
      /SHARD_END/,
    );
  });
});
