/**
 * The KPL aggregated-record format, as the Kinesis Producer Library writes it and the Lambda
 * runtime and the KCL de-aggregate it — encode and decode in one place. A Kinesis record whose
 * data is an aggregate holds the magic bytes F3 89 9A C2, a protobuf `AggregatedRecord`, and the
 * MD5 of that protobuf:
 *
 *   message AggregatedRecord { repeated string partition_key_table = 1;
 *                              repeated string explicit_hash_key_table = 2;
 *                              repeated Record records = 3; }
 *   message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
 *                    required bytes data = 3; repeated Tag tags = 4; }
 *
 * Its user records share the Kinesis record's sequence number and are told apart by their
 * sub-sequence number (their index). Decoding follows the KCL: a record whose MD5 does not match,
 * or that does not parse, is not an aggregate and is passed on whole; user records whose hash key
 * falls outside the shard's hash range (when it is known) are dropped — after resharding they
 * belong to another shard — and one whose explicit hash key is not a number cannot be placed and
 * is kept (it was delivered to this shard), never dropped unseen.
 *
 * This module holds the format and its decoder, which every runtime needs; the encoder, which only
 * a Kinesis sink with `aggregate` needs, is kplAggregate.ts beside it (a bundle leaves it out when
 * nothing aggregates). No AWS SDK: the sink that writes aggregates and the runtimes that read them
 * share this codec.
 */
import { createHash } from 'node:crypto';
import { MalformedAggregate } from './errors.js';

/** The first four bytes of an aggregated record. */
export const KPL_MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);
/** Bytes of the MD5 digest that ends an aggregated record. */
export const DIGEST_BYTES = 16;

/**
 * Whether data starts with the KPL magic bytes and is long enough for an aggregate (checked
 * without slicing: runtimes ask it of every record). 20 bytes (magic and the MD5 of an empty
 * body) is an aggregate of no user records.
 */
export function hasAggregateMagic(data: Uint8Array): boolean {
  return (
    data.length >= KPL_MAGIC.length + DIGEST_BYTES &&
    data[0] === 0xf3 &&
    data[1] === 0x89 &&
    data[2] === 0x9a &&
    data[3] === 0xc2
  );
}

/** One user record of an aggregate. */
export interface UserRecord {
  partitionKey: string;
  /** A decimal 128-bit hash key that routes the record instead of its partition key's MD5. */
  explicitHashKey?: string;
  data: Buffer;
  /** Index in the aggregate; undefined for a record that was not aggregated. */
  subSequenceNumber?: number;
}

/** A shard's hash key range, both ends included. */
export interface HashKeyRange {
  start: bigint;
  end: bigint;
}

/** A protobuf reader for the few wire types the KPL format uses. */
class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw new MalformedAggregate('truncated varint');
      const b = this.buf[this.pos++] as number;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new MalformedAggregate('varint too long');
    }
  }
  bytes(): Buffer {
    const len = this.varint();
    if (this.pos + len > this.buf.length) throw new MalformedAggregate('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 2) this.bytes();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else throw new MalformedAggregate(`unsupported wire type ${wire}`);
  }
}

/** The user records of an `AggregatedRecord` protobuf; throws {@link MalformedAggregate}. */
function parse(body: Buffer): UserRecord[] {
  const keys: string[] = [];
  const hashKeys: string[] = [];
  const raw: { key: number; hash?: number; data: Buffer }[] = [];
  const r = new Reader(body);
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 1 && wire === 2) keys.push(r.bytes().toString('utf8'));
    else if (field === 2 && wire === 2) hashKeys.push(r.bytes().toString('utf8'));
    else if (field === 3 && wire === 2) {
      const rr = new Reader(r.bytes());
      let key: number | undefined;
      let hash: number | undefined;
      let data: Buffer | undefined;
      while (!rr.done) {
        const t = rr.varint();
        const f = Math.floor(t / 8);
        const w = t % 8;
        if (f === 1 && w === 0) key = rr.varint();
        else if (f === 2 && w === 0) hash = rr.varint();
        else if (f === 3 && w === 2) data = rr.bytes();
        else rr.skip(w);
      }
      if (key === undefined || data === undefined)
        throw new MalformedAggregate('user record without key index or data');
      raw.push({ key, hash, data });
    } else r.skip(wire);
  }
  return raw.map((u, i) => {
    const partitionKey = keys[u.key];
    if (partitionKey === undefined) throw new MalformedAggregate(`partition key index ${u.key} out of range`);
    const rec: UserRecord = { partitionKey, data: u.data, subSequenceNumber: i };
    if (u.hash !== undefined && hashKeys[u.hash] !== undefined) rec.explicitHashKey = hashKeys[u.hash];
    return rec;
  });
}

/**
 * The 128-bit hash key a record routes by, as Kinesis computes it: its explicit hash key, else the
 * MD5 of its partition key. Throws (a SyntaxError) for an explicit hash key that is not a number.
 */
export function hashKeyOf(r: { partitionKey: string; explicitHashKey?: string }): bigint {
  if (r.explicitHashKey !== undefined) return BigInt(r.explicitHashKey);
  return BigInt(`0x${createHash('md5').update(r.partitionKey).digest('hex')}`);
}

/** What one Kinesis record's data is, de-aggregated (see {@link deaggregateRecord}). */
export interface Deaggregated {
  /** The user records kept: the data whole when it is not an aggregate. */
  users: UserRecord[];
  /** Whether the data is a KPL aggregate (magic bytes, MD5 and protobuf all hold). */
  aggregate: boolean;
  /** User records in the aggregate, before those of other shards are dropped. */
  total: number;
  /** User records dropped because their hash key belongs to another shard. */
  dropped: number;
}

/**
 * The user records of one Kinesis record, with what it held: whether it is an aggregate, how many
 * user records the aggregate has and how many of them `hashRange` (the shard's, if known) dropped
 * as belonging to another shard. An aggregate of no user records gives `total` 0 (the caller
 * decides what that is: the Lambda handler dead-letters it).
 */
export function deaggregateRecord(data: Buffer, partitionKey: string, hashRange?: HashKeyRange): Deaggregated {
  const whole = (): Deaggregated => ({ users: [{ partitionKey, data }], aggregate: false, total: 1, dropped: 0 });
  if (!hasAggregateMagic(data)) return whole();
  const body = data.subarray(KPL_MAGIC.length, data.length - DIGEST_BYTES);
  const digest = data.subarray(data.length - DIGEST_BYTES);
  if (!createHash('md5').update(body).digest().equals(digest)) return whole();
  let users: UserRecord[];
  try {
    users = parse(body);
  } catch (err) {
    if (err instanceof MalformedAggregate) return whole();
    throw err;
  }
  const total = users.length;
  if (hashRange) {
    users = users.filter((u) => {
      let h: bigint;
      try {
        h = hashKeyOf(u);
      } catch {
        return true;
      }
      return h >= hashRange.start && h <= hashRange.end;
    });
  }
  return { users, aggregate: true, total, dropped: total - users.length };
}

/**
 * The user records of one Kinesis record. `hashRange` (the shard's, if known) drops user records
 * that belong to another shard. An aggregate of no user records gives none.
 */
export function deaggregate(data: Buffer, partitionKey: string, hashRange?: HashKeyRange): UserRecord[] {
  return deaggregateRecord(data, partitionKey, hashRange).users;
}
