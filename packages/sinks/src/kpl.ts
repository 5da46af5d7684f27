/**
 * The KPL aggregated-record format, as the Kinesis Producer Library writes it and the Lambda
 * runtime and KCL de-aggregate it: the magic bytes F3 89 9A C2, a protobuf `AggregatedRecord`,
 * and the MD5 of that protobuf.
 *
 *   message AggregatedRecord { repeated string partition_key_table = 1;
 *                              repeated string explicit_hash_key_table = 2;
 *                              repeated Record records = 3; }
 *   message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
 *                    required bytes data = 3; repeated Tag tags = 4; }
 *
 * Only what aggregation needs is encoded here (four protobuf field shapes).
 */
import { createHash } from 'node:crypto';

export const KPL_MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);

function varint(n: number, out: number[]): void {
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/** Bytes of a length-delimited field with this tag and payload length (for size accounting). */
export function fieldSize(payload: number): number {
  const len: number[] = [];
  varint(payload, len);
  return 1 + len.length + payload;
}

function lengthDelimited(tag: number, payload: Buffer, parts: Buffer[]): void {
  const head: number[] = [(tag << 3) | 2];
  varint(payload.length, head);
  parts.push(Buffer.from(head), payload);
}

export interface UserRecord {
  partitionKey: string;
  data: Buffer;
}

/** Bytes a user record adds to an aggregate holding `count` records (its key counted as new to the table). */
export function userRecordSize(r: UserRecord, count: number): number {
  const keyIndex: number[] = [];
  varint(count, keyIndex);
  const inner = 1 + keyIndex.length + fieldSize(r.data.length);
  return fieldSize(inner) + fieldSize(Buffer.byteLength(r.partitionKey));
}

/** One aggregated record: magic, protobuf, MD5 of the protobuf. */
export function aggregate(records: readonly UserRecord[]): Buffer {
  const keys = new Map<string, number>();
  const parts: Buffer[] = [];
  for (const r of records) {
    if (!keys.has(r.partitionKey)) {
      keys.set(r.partitionKey, keys.size);
      lengthDelimited(1, Buffer.from(r.partitionKey), parts);
    }
  }
  for (const r of records) {
    const head: number[] = [(1 << 3) | 0];
    varint(keys.get(r.partitionKey) as number, head);
    const inner: Buffer[] = [Buffer.from(head)];
    lengthDelimited(3, r.data, inner);
    lengthDelimited(3, Buffer.concat(inner), parts);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([KPL_MAGIC, body, createHash('md5').update(body).digest()]);
}

/** The 128-bit hash Kinesis routes a partition key by. */
export function hashKeyOf(partitionKey: string): bigint {
  return BigInt(`0x${createHash('md5').update(partitionKey).digest('hex')}`);
}
