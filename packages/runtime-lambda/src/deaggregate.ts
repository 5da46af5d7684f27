/**
 * KPL de-aggregation, as the Lambda runtime and KCL do it: a Kinesis record whose data starts
 * with the magic bytes F3 89 9A C2 holds a protobuf `AggregatedRecord` followed by its MD5. Its
 * user records share the Kinesis record's sequence number and are told apart by their
 * sub-sequence number (their index). A record whose MD5 does not match, or that does not parse,
 * is not an aggregate: it is passed on whole (as the KCL does). User records whose partition key
 * hashes outside the shard's hash range (when it is known) are dropped, as the KCL drops them:
 * after resharding they belong to another shard; one whose explicit hash key is not a number
 * cannot be placed and is kept (it was delivered to this shard), never dropped unseen.
 */
import { createHash } from 'node:crypto';

const MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);

export interface UserRecord {
  partitionKey: string;
  explicitHashKey?: string;
  data: Buffer;
  /** Index in the aggregate; undefined for a record that was not aggregated. */
  subSequenceNumber?: number;
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
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const b = this.buf[this.pos++] as number;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new Error('varint too long');
    }
  }
  bytes(): Buffer {
    const len = this.varint();
    if (this.pos + len > this.buf.length) throw new Error('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 2) this.bytes();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

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
      if (key === undefined || data === undefined) throw new Error('user record without key index or data');
      raw.push({ key, hash, data });
    } else r.skip(wire);
  }
  return raw.map((u, i) => {
    const partitionKey = keys[u.key];
    if (partitionKey === undefined) throw new Error(`partition key index ${u.key} out of range`);
    const rec: UserRecord = { partitionKey, data: u.data, subSequenceNumber: i };
    if (u.hash !== undefined && hashKeys[u.hash] !== undefined) rec.explicitHashKey = hashKeys[u.hash];
    return rec;
  });
}

/** The 128-bit hash key a user record routes by (its explicit hash key, else the MD5 of its partition key). */
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
 * decides what that is: the handler dead-letters it).
 */
export function deaggregateRecord(
  data: Buffer,
  partitionKey: string,
  hashRange?: { start: bigint; end: bigint },
): Deaggregated {
  const whole = (): Deaggregated => ({ users: [{ partitionKey, data }], aggregate: false, total: 1, dropped: 0 });
  if (data.length < MAGIC.length + 16 || !data.subarray(0, 4).equals(MAGIC)) return whole();
  const body = data.subarray(4, data.length - 16);
  const digest = data.subarray(data.length - 16);
  if (!createHash('md5').update(body).digest().equals(digest)) return whole();
  let users: UserRecord[];
  try {
    users = parse(body);
  } catch {
    return whole();
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
export function deaggregate(
  data: Buffer,
  partitionKey: string,
  hashRange?: { start: bigint; end: bigint },
): UserRecord[] {
  return deaggregateRecord(data, partitionKey, hashRange).users;
}
