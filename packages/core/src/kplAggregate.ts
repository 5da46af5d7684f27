/**
 * The KPL aggregated-record encoder: user records packed into one aggregated record, in the format
 * kpl.ts describes and decodes (its constants and record type are shared from there). Only a
 * Kinesis sink with `aggregate` encodes, so the encoder is a module of its own: a bundle whose
 * pipeline does not aggregate leaves it out.
 */
import { createHash } from 'node:crypto';
import { KPL_MAGIC, type UserRecord } from './kpl.js';

function varint(n: number, out: number[]): void {
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function varintSize(n: number): number {
  let size = 1;
  for (let v = n; v > 0x7f; v = Math.floor(v / 128)) size++;
  return size;
}

/** Bytes of a length-delimited field (one-byte tag) with a payload of this length (for size accounting). */
function fieldSize(payload: number): number {
  return 1 + varintSize(payload) + payload;
}

function lengthDelimited(tag: number, payload: Buffer, parts: Buffer[]): void {
  const head: number[] = [(tag << 3) | 2];
  varint(payload.length, head);
  parts.push(Buffer.from(head), payload);
}

/**
 * Bytes a user record adds to an aggregate holding `count` records (its keys counted as new to
 * the tables): an upper bound for packing aggregates within Kinesis's record limit.
 */
export function userRecordSize(
  r: Pick<UserRecord, 'partitionKey' | 'explicitHashKey' | 'data'>,
  count: number,
): number {
  let inner = 1 + varintSize(count) + fieldSize(r.data.length);
  let tables = fieldSize(Buffer.byteLength(r.partitionKey));
  if (r.explicitHashKey !== undefined) {
    inner += 1 + varintSize(count);
    tables += fieldSize(Buffer.byteLength(r.explicitHashKey));
  }
  return fieldSize(inner) + tables;
}

/** One aggregated record of these user records: magic, protobuf, MD5 of the protobuf. */
export function aggregateUserRecords(
  records: readonly Pick<UserRecord, 'partitionKey' | 'explicitHashKey' | 'data'>[],
): Buffer {
  const keys = new Map<string, number>();
  const hashKeys = new Map<string, number>();
  const parts: Buffer[] = [];
  for (const r of records) {
    if (!keys.has(r.partitionKey)) {
      keys.set(r.partitionKey, keys.size);
      lengthDelimited(1, Buffer.from(r.partitionKey), parts);
    }
  }
  for (const r of records) {
    if (r.explicitHashKey !== undefined && !hashKeys.has(r.explicitHashKey)) {
      hashKeys.set(r.explicitHashKey, hashKeys.size);
      lengthDelimited(2, Buffer.from(r.explicitHashKey), parts);
    }
  }
  for (const r of records) {
    const head: number[] = [(1 << 3) | 0];
    varint(keys.get(r.partitionKey) as number, head);
    if (r.explicitHashKey !== undefined) {
      head.push((2 << 3) | 0);
      varint(hashKeys.get(r.explicitHashKey) as number, head);
    }
    const inner: Buffer[] = [Buffer.from(head)];
    lengthDelimited(3, r.data, inner);
    lengthDelimited(3, Buffer.concat(inner), parts);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([KPL_MAGIC, body, createHash('md5').update(body).digest()]);
}
