// The KPL aggregated-record codec (encode and decode), checked against the aggregator and
// de-aggregator AWS publishes (aws-kinesis-agg, an independent implementation) in both directions.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  aggregateUserRecords,
  deaggregate,
  deaggregateRecord,
  hasAggregateMagic,
  hashKeyOf,
  userRecordSize,
} from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';

type AggUserRecord = { partitionKey: string; explicitPartitionKey?: string; data: string };
const agg = createRequire(import.meta.url)('aws-kinesis-agg') as {
  deaggregateSync(
    record: { data: string; partitionKey: string; sequenceNumber: string },
    computeChecksums: boolean,
    done: (err: Error | null, records?: AggUserRecord[]) => void,
  ): void;
  aggregate(
    records: { partitionKey: string; explicitHashKey?: string; data: Buffer }[],
    onEncoded: (e: { partitionKey: string; data: Buffer }, done: () => void) => void,
    afterAll: () => void,
    onError: (err: Error) => void,
  ): void;
};

/** What aws-kinesis-agg reads from an aggregated record. */
function theirDecode(data: Buffer): AggUserRecord[] {
  let out: AggUserRecord[] = [];
  agg.deaggregateSync({ data: data.toString('base64'), partitionKey: 'outer', sequenceNumber: '1' }, true, (err, r) => {
    if (err) throw err;
    out = r ?? [];
  });
  return out;
}

/** The aggregated records aws-kinesis-agg writes for these user records. */
async function theirEncode(records: { partitionKey: string; explicitHashKey?: string; data: Buffer }[]) {
  const encoded: Buffer[] = [];
  await new Promise<void>((resolve, reject) =>
    agg.aggregate(
      records,
      (e, done) => {
        encoded.push(e.data);
        done();
      },
      resolve,
      reject,
    ),
  );
  return encoded;
}

const users = (n: number, keys = n) =>
  Array.from({ length: n }, (_, i) => ({ partitionKey: `k${i % keys}`, data: Buffer.from(JSON.stringify({ i })) }));

describe('KPL codec: encode', () => {
  it('writes aggregates aws-kinesis-agg reads back (MD5 checked), keys shared through the table', () => {
    for (const records of [users(1), users(3000, 200), [{ partitionKey: 'ü-é', data: Buffer.alloc(0) }]]) {
      const data = aggregateUserRecords(records);
      expect(hasAggregateMagic(data)).toBe(true);
      const got = theirDecode(data);
      expect(got.map((u) => u.partitionKey)).toEqual(records.map((r) => r.partitionKey));
      expect(got.map((u) => Buffer.from(u.data, 'base64'))).toEqual(records.map((r) => r.data));
    }
  });

  it('writes explicit hash keys (table and index) as the reference reads them', () => {
    const top = String(2n ** 128n - 1n);
    const records = [
      { partitionKey: 'a', explicitHashKey: '0', data: Buffer.from('x') },
      { partitionKey: 'b', explicitHashKey: top, data: Buffer.from('y') },
      { partitionKey: 'a', explicitHashKey: '0', data: Buffer.from('z') },
    ];
    const got = theirDecode(aggregateUserRecords(records));
    expect(got.map((u) => [u.partitionKey, u.explicitPartitionKey, Buffer.from(u.data, 'base64').toString()])).toEqual([
      ['a', '0', 'x'],
      ['b', top, 'y'],
      ['a', '0', 'z'],
    ]);
  });

  it('counts no fewer bytes per user record than the aggregate takes (packing stays under the record limit)', () => {
    for (const records of [users(1), users(500, 7), users(2000)]) {
      const withHashKeys = records.map((r, i) => (i % 3 === 0 ? { ...r, explicitHashKey: String(i * 1000) } : r));
      for (const set of [records, withHashKeys]) {
        const estimate = set.reduce((n, r, i) => n + userRecordSize(r, i), 0);
        // magic (4) + MD5 (16) around the protobuf
        expect(aggregateUserRecords(set).length - 20).toBeLessThanOrEqual(estimate);
      }
    }
  });
});

describe('KPL codec: decode', () => {
  it('reads what aws-kinesis-agg writes: data, partition keys, explicit hash keys and sub-sequence numbers', async () => {
    const records = users(50).map((r, i) => (i === 7 ? { ...r, explicitHashKey: '12345' } : r));
    const encoded = await theirEncode(records);
    expect(encoded).toHaveLength(1);
    const got = deaggregate(encoded[0] as Buffer, 'outer');
    expect(got.map((u) => u.data)).toEqual(records.map((r) => r.data));
    expect(got.map((u) => u.partitionKey)).toEqual(records.map((r) => r.partitionKey));
    expect(got.map((u) => u.subSequenceNumber)).toEqual(records.map((_, i) => i));
    expect(got[7]?.explicitHashKey).toBe('12345');
    expect(got.filter((u) => u.explicitHashKey !== undefined)).toHaveLength(1);
  });

  it('round-trips its own aggregates', () => {
    const records = [
      ...users(100, 9),
      { partitionKey: 'h', explicitHashKey: String(2n ** 127n), data: Buffer.from([0, 255, 1]) },
    ];
    const got = deaggregateRecord(aggregateUserRecords(records), 'outer');
    expect(got).toMatchObject({ aggregate: true, total: 101, dropped: 0 });
    expect(got.users).toEqual(records.map((r, i) => ({ ...r, subSequenceNumber: i })));
  });

  it('drops user records outside the shard hash range when it is known', async () => {
    const records = users(50);
    const encoded = await theirEncode(records);
    expect(encoded).toHaveLength(1);
    const data = encoded[0] as Buffer;
    const half = 2n ** 127n;
    const low = deaggregate(data, 'k0', { start: 0n, end: half - 1n });
    const high = deaggregate(data, 'k0', { start: half, end: 2n ** 128n - 1n });
    expect(low.length + high.length).toBe(50);
    expect(low.length).toBeGreaterThan(5);
    expect(high.length).toBeGreaterThan(5);
    expect([...low, ...high].map((u) => u.subSequenceNumber).sort((a, b) => (a as number) - (b as number))).toEqual(
      records.map((_, i) => i),
    );
    // Each kept on the side its key hashes to (the MD5 of the partition key, as Kinesis routes).
    for (const u of low) expect(hashKeyOf(u) < half).toBe(true);
    for (const u of high) expect(hashKeyOf(u) >= half).toBe(true);
    expect(deaggregateRecord(data, 'k0', { start: 0n, end: half - 1n })).toMatchObject({
      total: 50,
      dropped: high.length,
    });
  });

  it('keeps a user record whose explicit hash key is not a number (it cannot be placed)', () => {
    const data = aggregateUserRecords([
      { partitionKey: 'a', explicitHashKey: 'not-a-number', data: Buffer.from('1') },
      { partitionKey: 'b', explicitHashKey: '5', data: Buffer.from('2') },
    ]);
    const got = deaggregateRecord(data, 'outer', { start: 10n, end: 20n });
    expect(got.users.map((u) => u.data.toString())).toEqual(['1']);
    expect(got).toMatchObject({ total: 2, dropped: 1 });
  });

  it('passes on whole a record that is not an aggregate: no magic, wrong MD5, or a body that does not parse', async () => {
    const [data] = await theirEncode(users(5));
    const corrupt = Buffer.from(data as Buffer);
    corrupt[corrupt.length - 1] = (corrupt[corrupt.length - 1] as number) ^ 0xff;
    // A protobuf cut short, with a matching MD5.
    const body = Buffer.from([0x1a, 0x05, 0x08]);
    const truncated = Buffer.concat([
      Buffer.from([0xf3, 0x89, 0x9a, 0xc2]),
      body,
      createHash('md5').update(body).digest(),
    ]);
    for (const whole of [Buffer.from('{"plain":true}'), corrupt, truncated, Buffer.from([0xf3, 0x89, 0x9a, 0xc2])]) {
      expect(deaggregateRecord(whole, 'pk')).toEqual({
        users: [{ partitionKey: 'pk', data: whole }],
        aggregate: false,
        total: 1,
        dropped: 0,
      });
    }
  });

  it('reads an aggregate of no user records as one (total 0) and gives no user records', () => {
    const data = aggregateUserRecords([]);
    expect(data).toHaveLength(20);
    expect(deaggregateRecord(data, 'pk')).toEqual({ users: [], aggregate: true, total: 0, dropped: 0 });
    expect(deaggregate(data, 'pk')).toEqual([]);
  });

  it('hashes a partition key as Kinesis does (the MD5 as a 128-bit number); an explicit hash key wins', () => {
    const md5 = BigInt(`0x${createHash('md5').update('user-1').digest('hex')}`);
    expect(hashKeyOf({ partitionKey: 'user-1' })).toBe(md5);
    expect(hashKeyOf({ partitionKey: 'user-1', explicitHashKey: '42' })).toBe(42n);
  });
});
