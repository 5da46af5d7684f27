/**
 * Lambda event records → source records, one record at a time, so that a malformed record is
 * rejected (and dead-lettered by the handler with reason `decode`) while the rest of the event
 * goes on. A rejection names the record: its index in the event, its shard and its sequence
 * number (when the record carries them).
 *
 * Kinesis: the record must be an object with an `eventID` (`<shard>:<sequence number>`) and a
 * `kinesis` object holding a decimal `sequenceNumber`, a `partitionKey`, a numeric
 * `approximateArrivalTimestamp` (epoch seconds) and `data` in strict base64 (standard alphabet,
 * padded); KPL aggregates are de-aggregated, and an aggregate of no user records is rejected.
 * DynamoDB Streams: the record must hold a `dynamodb` object with a decimal `SequenceNumber` and
 * a numeric `ApproximateCreationDateTime` (epoch seconds); its `Keys`, `NewImage` and `OldImage`
 * are decoded by `imageValue`.
 *
 * A record without a usable arrival time is rejected on both paths rather than given the
 * invocation time: that time would differ on every redelivery (a record retried, or fed again from
 * the dead-letter output, would land in another window and could be counted twice), while the
 * service always sets the field, so a record without it is malformed like one without a
 * `partitionKey`.
 *
 * A rejection's `data` is the event record as JSON, except when what is wrong is the payload (not
 * base64, an empty KPL aggregate): then it is the record's `data` text as delivered, so the
 * payload can be replayed as it came.
 */
import { deaggregateRecord, describeError, hasAggregateMagic, type SourceRecord } from '@tributary/core/spi';
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
  /**
   * The event record as delivered, as JSON text (text, so no sink can fail on its nesting); for a
   * payload that cannot be decoded, the Kinesis `data` text as delivered.
   */
  data: string;
}

const DIGITS = /^\d+$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

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
  | {
      shardId: string;
      sequenceNumber: string;
      records: SourceRecord[];
      /** De-aggregated user records dropped as belonging to another shard (absent: none). */
      dropped?: number;
    }
  | { shardId: string; sequenceNumber: string; rejected: RejectedRecord };

/** Epoch seconds of an arrival time (±8.64e12 s is the ±8.64e15 ms a JS date holds). */
const MAX_EPOCH_SECONDS = 8.64e12;

/** Why an arrival time field (`name`, epoch seconds) is not one, or undefined when it is. */
function arrivalProblem(v: unknown, name: string): string | undefined {
  if (typeof v === 'number' && Math.abs(v) <= MAX_EPOCH_SECONDS) return undefined;
  if (v === undefined) return `has no \`${name}\``;
  if (typeof v !== 'number') return `\`${name}\` is not a number (${describeValue(v)})`;
  return `\`${name}\` is not epoch seconds within ±8.64e12 (${String(v)})`;
}

/**
 * The length of what strict base64 text (standard alphabet, padded to a multiple of 4) decodes to;
 * -1 when its length cannot be base64. Node's decoder skips what is not base64, so a text with
 * characters outside the alphabet (or misplaced `=`) decodes to fewer bytes than this; only `-`
 * and `_` (base64url), which it takes as `+` and `/`, need looking for besides.
 */
function base64Length(text: string): number {
  const n = text.length;
  if ((n & 3) !== 0) return -1;
  const pad = n === 0 || text.charCodeAt(n - 1) !== 61 ? 0 : text.charCodeAt(n - 2) === 61 ? 2 : 1;
  return (n / 4) * 3 - pad;
}

/** What makes a text that failed the check above not base64 (the slow path: only for bad data). */
function base64Problem(text: string): string {
  const bad = /[^A-Za-z0-9+/=]/.exec(text);
  if (bad) return `${JSON.stringify(bad[0])} at offset ${bad.index}`;
  if (text.length % 4 !== 0) return `its length, ${text.length}, is not a multiple of 4`;
  return `misplaced "=" at offset ${text.indexOf('=')}`;
}

/**
 * The source record of a well-formed Kinesis event record of shard `eventShard` that is not a KPL
 * aggregate — what nearly every record is — made without the intermediate objects of
 * {@link decodeKinesisRecord}; `undefined` for any other record, which `decodeKinesisRecord` then
 * decodes or rejects. It accepts only what `decodeKinesisRecord` accepts, with the same result
 * except that `data` is the payload's UTF-8 text rather than its bytes (decoded the same).
 */
export function wellFormedKinesisRecord(r: unknown, eventShard: string): SourceRecord | undefined {
  if (!isObject(r)) return undefined;
  const id = r.eventID;
  const k = r.kinesis;
  if (typeof id !== 'string' || !id.startsWith(eventShard) || id.charCodeAt(eventShard.length) !== 58) return undefined;
  if (!isObject(k)) return undefined;
  const seq = k.sequenceNumber;
  const partitionKey = k.partitionKey;
  const text = k.data;
  const arrival = k.approximateArrivalTimestamp;
  if (typeof seq !== 'string' || typeof partitionKey !== 'string' || typeof text !== 'string') return undefined;
  if (typeof arrival !== 'number' || !(Math.abs(arrival) <= MAX_EPOCH_SECONDS) || !isDecimal(seq)) return undefined;
  const payload = payloadOf(text);
  if (payload === undefined) return undefined;
  return { data: payload, partitionKey, sequenceNumber: seq, arrivalTime: Math.round(arrival * 1000) };
}

/**
 * Whether `s` is a decimal number, as `DIGITS` tests it (this runs per record: a loop is a little
 * faster than the expression on short numbers and as fast on Kinesis's 56-digit ones).
 */
function isDecimal(s: string): boolean {
  const n = s.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * Where payloads are decoded from base64 on the fast path: one buffer for every record (the bytes
 * are read once, into the payload's text), so a record allocates no buffer of its own. A payload
 * larger than this takes the general path.
 */
const scratch = withNativeCodecs(Buffer.allocUnsafeSlow(64 * 1024));

/**
 * What `Buffer.prototype.write` and `toString` call for base64 and UTF-8, called directly: the
 * public methods are JavaScript shared with every other use of buffers in the process, whose
 * type feedback makes them polymorphic; these are the native codecs themselves (on every Buffer,
 * though not in Node's type declarations).
 */
interface NodeBufferCodecs {
  base64Write(text: string, offset: number, length: number): number;
  utf8Slice(start: number, end: number): string;
}

/**
 * `buffer` with the native codecs as its own methods: Node's (Node 20 and 22 have them), or, on
 * a runtime without them (they are not documented), `Buffer.from` and a lenient `TextDecoder`,
 * which give the same results — only the speed differs.
 */
export function withNativeCodecs(buffer: Buffer): Buffer & NodeBufferCodecs {
  const b = buffer as Buffer & Partial<NodeBufferCodecs>;
  // Not `write`/`toString` on `buffer` itself: Node's call these very methods.
  if (typeof b.base64Write !== 'function')
    b.base64Write = (text, offset, length) => Buffer.from(text, 'base64').copy(b, offset, 0, length);
  if (typeof b.utf8Slice !== 'function') {
    const lenient = new TextDecoder('utf-8', { ignoreBOM: true });
    b.utf8Slice = (start, end) => lenient.decode(b.subarray(start, end));
  }
  return b as Buffer & NodeBufferCodecs;
}

/**
 * The UTF-8 text of strict base64 `text` that is not a KPL aggregate, as `decodeKinesisRecord`
 * and decoding with a fatal TextDecoder would make it; undefined for anything else (not strict
 * base64, larger than `scratch`, an aggregate, not UTF-8), which the general path decides.
 */
function payloadOf(text: string): string | undefined {
  const length = base64Length(text);
  if (length < 0 || length > scratch.length) return undefined;
  // Node decodes leniently (what is not base64 is skipped): fewer bytes than expected, or `-`
  // and `_` (base64url) among them, is not strict base64.
  if (scratch.base64Write(text, 0, scratch.length) !== length || text.indexOf('-') >= 0 || text.indexOf('_') >= 0)
    return undefined;
  if (length > 0 && scratch[0] === 0xf3 && hasAggregateMagic(scratch.subarray(0, length))) return undefined;
  // Lenient decoding replaces each ill-formed sequence with U+FFFD: without one (nor a byte order
  // mark, which a TextDecoder drops), the text is what the fatal decoder gives. With one, the
  // fatal decoder decides (U+FFFD may also be in the payload as such).
  const payload = scratch.utf8Slice(0, length);
  if (payload.indexOf('\ufffd') < 0 && payload.charCodeAt(0) !== 0xfeff) return payload;
  try {
    return utf8.decode(scratch.subarray(0, length));
  } catch {
    return undefined;
  }
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
  const arrivalOk = typeof arrival === 'number' && Math.abs(arrival) <= MAX_EPOCH_SECONDS;
  const arrivalTime = arrivalOk ? Math.round(arrival * 1000) : 0;
  const reject = (problem: string, data?: string): Decoded => ({
    shardId,
    sequenceNumber: seq,
    rejected: {
      shardId,
      sequenceNumber: seq,
      partitionKey,
      arrivalTime,
      error: `Kinesis record #${index} of the event (shard ${shardId}, sequence number ${seq ? shown(seq) : 'unknown'}): ${problem}`,
      data: data ?? recordText(r),
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
  const text = k.data;
  if (typeof text !== 'string') return reject(`\`data\` is not base64 text (${describeValue(text)})`);
  if (!arrivalOk) return reject(arrivalProblem(arrival, 'approximateArrivalTimestamp') as string);
  try {
    const data = Buffer.from(text, 'base64');
    // Node decodes leniently (what is not base64 is skipped): a length check is the strict one.
    if (data.length !== base64Length(text) || text.indexOf('-') >= 0 || text.indexOf('_') >= 0) {
      return reject(`data is not base64 (${base64Problem(text)})`, text);
    }
    if (!hasAggregateMagic(data))
      return { shardId, sequenceNumber: seq, records: [{ data, partitionKey, sequenceNumber: seq, arrivalTime }] };
    const decoded = aggregateRecords(data, shardId, partitionKey, seq, arrivalTime, hashRange);
    return decoded ?? reject('KPL aggregate holds no user records', text);
  } catch (err) {
    return reject(`cannot be decoded: ${describeError(err)}`);
  }
}

/**
 * The source records of a KPL aggregate (kept out of the per-record function: most records are
 * not aggregates); undefined for an aggregate of no user records.
 */
function aggregateRecords(
  data: Buffer,
  shardId: string,
  partitionKey: string,
  seq: string,
  arrivalTime: number,
  hashRange: ((shardId: string) => { start: bigint; end: bigint } | undefined) | undefined,
): Decoded | undefined {
  const agg = deaggregateRecord(data, partitionKey, hashRange?.(shardId));
  if (agg.aggregate && agg.total === 0) return undefined;
  const records: SourceRecord[] = [];
  for (const u of agg.users) {
    const src: SourceRecord = { data: u.data, partitionKey: u.partitionKey, sequenceNumber: seq, arrivalTime };
    if (u.subSequenceNumber !== undefined) src.subSequenceNumber = u.subSequenceNumber;
    records.push(src);
  }
  return agg.dropped > 0
    ? { shardId, sequenceNumber: seq, records, dropped: agg.dropped }
    : { shardId, sequenceNumber: seq, records };
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
  const arrivalOk = typeof created === 'number' && Math.abs(created) <= MAX_EPOCH_SECONDS;
  const arrivalTime = arrivalOk ? Math.round(created * 1000) : 0;
  const reject = (problem: string): Decoded => ({
    shardId,
    sequenceNumber: seq,
    rejected: {
      shardId,
      sequenceNumber: seq,
      partitionKey: '',
      arrivalTime,
      error: `DynamoDB Streams record #${index} of the event (shard ${shardId}, sequence number ${seq ? shown(seq) : 'unknown'}): ${problem}`,
      data: recordText(r),
    },
  });
  if (!isObject(r)) return reject(`not an object (${describeValue(r)})`);
  if (d === undefined) return reject('has no `dynamodb`');
  if (!isObject(d)) return reject(`\`dynamodb\` is ${d === null ? 'null' : `not an object (${describeValue(d)})`}`);
  if (typeof d.SequenceNumber !== 'string') return reject('has no `SequenceNumber`');
  if (!DIGITS.test(seq)) return reject('its sequence number is not a decimal number');
  if (!arrivalOk) return reject(arrivalProblem(created, 'ApproximateCreationDateTime') as string);
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
