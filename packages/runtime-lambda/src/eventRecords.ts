/**
 * Lambda event records → source records, one record at a time, so that a malformed record is
 * rejected (and dead-lettered by the handler with reason `decode`) while the rest of the event
 * goes on. A rejection names the record: its index in the event, its shard and its sequence
 * number (when the record carries them).
 *
 * Kinesis: the record must be an object with an `eventID` (`<shard>:<sequence number>`) and a
 * `kinesis` object holding a decimal `sequenceNumber`, a `partitionKey` and base64 `data`; KPL
 * aggregates are de-aggregated. DynamoDB Streams: the record must hold a `dynamodb` object with a
 * decimal `SequenceNumber`; its `Keys`, `NewImage` and `OldImage` are decoded by `imageValue`.
 */
import { describeError, type SourceRecord } from '@tributary/core';
import { deaggregate } from './deaggregate.js';
import { imageValue } from './dynamoDbImage.js';
import { describeValue } from './eventShape.js';

/** A record the handler could not turn into source records: what the dead letter says. */
export interface RejectedRecord {
  shardId: string;
  /** As the record gives it (`''` when it gives none). */
  sequenceNumber: string;
  partitionKey: string;
  arrivalTime: number;
  error: string;
  /** The event record as delivered, as JSON text (text, so no sink can fail on its nesting). */
  data: string;
}

const DIGITS = /^\d+$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The record as JSON text for the dead letter (or what stopped it being written). */
function recordText(r: unknown): string {
  try {
    return JSON.stringify(r) ?? String(r);
  } catch (err) {
    return `(the record cannot be written as JSON: ${describeError(err)})`;
  }
}

function shown(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}

/** The shard named by a Kinesis event record's `eventID`, if it names one. */
function shardOfEventId(r: unknown): string | undefined {
  if (!isObject(r) || typeof r.eventID !== 'string') return undefined;
  const colon = r.eventID.indexOf(':');
  return colon > 0 ? r.eventID.slice(0, colon) : undefined;
}

/**
 * The shard of a Kinesis event: every record of one invocation comes from one shard, so a record
 * that does not name its shard is taken to be of the shard the others name.
 */
export function kinesisEventShard(records: readonly unknown[]): string | undefined {
  for (const r of records) {
    const s = shardOfEventId(r);
    if (s !== undefined) return s;
  }
  return undefined;
}

/**
 * What one event record became: its source records, or a rejection. `sequenceNumber` is the
 * record's own (`''` when it gives none): what Lambda retries from.
 */
export type Decoded =
  | { shardId: string; sequenceNumber: string; records: SourceRecord[] }
  | { shardId: string; sequenceNumber: string; rejected: RejectedRecord };

/** Whether data starts with the KPL magic bytes (checked without slicing: this runs per record). */
function isAggregate(data: Buffer): boolean {
  return data.length > 20 && data[0] === 0xf3 && data[1] === 0x89 && data[2] === 0x9a && data[3] === 0xc2;
}

/**
 * One Kinesis event record (`index` in the event) → its source records (several for a KPL
 * aggregate, none when all its user records belong to another shard), or a rejection.
 */
export function decodeKinesisRecord(
  r: unknown,
  index: number,
  eventShard: string | undefined,
  hashRange: ((shardId: string) => { start: bigint; end: bigint } | undefined) | undefined,
): Decoded {
  // Records of one invocation nearly always share a shard: compare the prefix before slicing it.
  const id = isObject(r) ? r.eventID : undefined;
  const named =
    eventShard !== undefined &&
    typeof id === 'string' &&
    id.startsWith(eventShard) &&
    id.charCodeAt(eventShard.length) === 58
      ? eventShard
      : shardOfEventId(r);
  const shardId = named ?? eventShard ?? 'shardId-unknown';
  const k = isObject(r) ? r.kinesis : undefined;
  const seq =
    isObject(k) && typeof k.sequenceNumber === 'string'
      ? k.sequenceNumber
      : named !== undefined
        ? (r as { eventID: string }).eventID.slice(named.length + 1)
        : '';
  const partitionKey = isObject(k) && typeof k.partitionKey === 'string' ? k.partitionKey : '';
  const arrival = isObject(k) ? k.approximateArrivalTimestamp : undefined;
  const arrivalTime = typeof arrival === 'number' ? Math.round(arrival * 1000) : Number.NaN;
  const reject = (problem: string): Decoded => ({
    shardId,
    sequenceNumber: seq,
    rejected: {
      shardId,
      sequenceNumber: seq,
      partitionKey,
      arrivalTime: Number.isFinite(arrivalTime) ? arrivalTime : 0,
      error: `Kinesis record #${index} of the event (shard ${shardId}, sequence number ${seq ? shown(seq) : 'unknown'}): ${problem}`,
      data: recordText(r),
    },
  });
  if (!isObject(r)) return reject(`not an object (${describeValue(r)})`);
  if (k === undefined) return reject('has no `kinesis`');
  if (!isObject(k)) return reject(`\`kinesis\` is ${k === null ? 'null' : `not an object (${describeValue(k)})`}`);
  if (named === undefined) {
    return reject(
      r.eventID === undefined
        ? 'has no `eventID` (`<shard>:<sequence number>`): its shard is not known'
        : '`eventID` is not `<shard>:<sequence number>`: its shard is not known',
    );
  }
  if (typeof k.sequenceNumber !== 'string') return reject('has no `sequenceNumber`');
  if (!DIGITS.test(seq)) return reject('its sequence number is not a decimal number');
  if (typeof k.partitionKey !== 'string') return reject('has no `partitionKey`');
  if (k.data === undefined || k.data === null) return reject('has no `data`');
  if (typeof k.data !== 'string') return reject(`\`data\` is not base64 text (${describeValue(k.data)})`);
  try {
    const data = Buffer.from(k.data, 'base64');
    if (!isAggregate(data))
      return { shardId, sequenceNumber: seq, records: [{ data, partitionKey, sequenceNumber: seq, arrivalTime }] };
    const records: SourceRecord[] = [];
    for (const u of deaggregate(data, partitionKey, hashRange?.(shardId))) {
      const src: SourceRecord = { data: u.data, partitionKey: u.partitionKey, sequenceNumber: seq, arrivalTime };
      if (u.subSequenceNumber !== undefined) src.subSequenceNumber = u.subSequenceNumber;
      records.push(src);
    }
    return { shardId, sequenceNumber: seq, records };
  } catch (err) {
    return reject(`cannot be decoded: ${describeError(err)}`);
  }
}

/** The sequence number of a DynamoDB Streams record, if it carries a decimal one. */
export function dynamoDbSequenceNumber(r: unknown): string | undefined {
  if (!isObject(r) || !isObject(r.dynamodb)) return undefined;
  const seq = r.dynamodb.SequenceNumber;
  return typeof seq === 'string' && DIGITS.test(seq) ? seq : undefined;
}

/** One DynamoDB Streams event record (`index` in the event) of shard `shardId` → its source record, or a rejection. */
export function decodeDynamoDbRecord(r: unknown, index: number, shardId: string): Decoded {
  const d = isObject(r) ? r.dynamodb : undefined;
  const seq = isObject(d) && typeof d.SequenceNumber === 'string' ? d.SequenceNumber : '';
  const created = isObject(d) ? d.ApproximateCreationDateTime : undefined;
  const arrivalTime = typeof created === 'number' ? Math.round(created * 1000) : 0;
  const reject = (problem: string): Decoded => ({
    shardId,
    sequenceNumber: seq,
    rejected: {
      shardId,
      sequenceNumber: seq,
      partitionKey: '',
      arrivalTime: Number.isFinite(arrivalTime) ? arrivalTime : 0,
      error: `DynamoDB Streams record #${index} of the event (shard ${shardId}, sequence number ${seq ? shown(seq) : 'unknown'}): ${problem}`,
      data: recordText(r),
    },
  });
  if (!isObject(r)) return reject(`not an object (${describeValue(r)})`);
  if (d === undefined) return reject('has no `dynamodb`');
  if (!isObject(d)) return reject(`\`dynamodb\` is ${d === null ? 'null' : `not an object (${describeValue(d)})`}`);
  if (typeof d.SequenceNumber !== 'string') return reject('has no `SequenceNumber`');
  if (!DIGITS.test(seq)) return reject('its sequence number is not a decimal number');
  const eventName = r.eventName;
  if (eventName !== undefined && typeof eventName !== 'string') {
    return reject(`\`eventName\` is not text (${describeValue(eventName)})`);
  }
  let keys: Record<string, unknown> | undefined;
  let value: Record<string, unknown>;
  try {
    keys = imageValue(d.Keys, 'Keys');
    value = {
      eventName,
      keys,
      newImage: imageValue(d.NewImage, 'NewImage'),
      oldImage: imageValue(d.OldImage, 'OldImage'),
    };
  } catch (err) {
    return reject(describeError(err));
  }
  return {
    shardId,
    sequenceNumber: seq,
    records: [
      {
        value,
        partitionKey: JSON.stringify(keys ?? null),
        sequenceNumber: seq,
        arrivalTime,
      },
    ],
  };
}
