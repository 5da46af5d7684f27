/**
 * The record envelope: what every record carries through a pipeline. User code sees `value`;
 * the rest makes checkpoints, idempotent state and dead letters possible.
 */

/** A record as a source delivers it, before decoding. */
/** Records longer than this go to the dead-letter output (the Kinesis record limit). */
export const MAX_RECORD_BYTES = 1024 * 1024;

export interface SourceRecord {
  /** Encoded payload (JSON text or bytes). Ignored when `value` is given. */
  data?: string | Uint8Array;
  /** Already-decoded payload (e.g. an unmarshalled DynamoDB Streams image). */
  value?: unknown;
  partitionKey: string;
  sequenceNumber: string;
  /** Position inside a KPL-aggregated record. */
  subSequenceNumber?: number;
  /** Epoch ms at which the source received the record. */
  arrivalTime: number;
  /** Line number, for file sources. */
  line?: number;
  /** A record cut short by its source (a file line over the record limit): its size, and the bytes `data` kept. */
  truncated?: { bytes: number; kept: number };
}

/** The records of one shard delivered together (one Lambda event, one GetRecords page, one file chunk). */
export interface SourceBatch {
  shardId: string;
  records: readonly SourceRecord[];
  /** The source's own position after this batch (for checkpointing); defaults to the last sequence number. */
  checkpoint?: string;
  /** A watermark the source announces for this shard (epoch ms): no later record will be older. */
  watermark?: number;
  /**
   * What the batch's records are in order by: `shard` (default — the shard's records come in
   * sequence order, one batch at a time: Kinesis with ParallelizationFactor 1, the worker) or
   * `partitionKey` (only each partition key's records are in order: Lambda with a
   * ParallelizationFactor above 1, which runs several batches of a shard at once; DynamoDB
   * Streams, whose events do not name their shard). Window state applies each record exactly
   * once at that grain.
   */
  ordering?: Ordering;
  /**
   * Fencing: asked before the batch's first write to window state, before its sink writes and
   * before its dead-letter write; `false` stops the batch there with a `FencedError` (nothing
   * more is written). The worker passes whether its lease on the shard is still fresh.
   */
  mayWrite?: () => boolean;
}

/** See SourceBatch.ordering. */
export type Ordering = 'shard' | 'partitionKey';

export interface RecordEnvelope<T = unknown> {
  readonly value: T;
  readonly partitionKey: string;
  readonly shardId: string;
  readonly sequenceNumber: string;
  readonly subSequenceNumber: number | undefined;
  /** Event time, epoch ms (from the `eventTime` expression, else arrival time). */
  readonly eventTime: number;
  /** Arrival time, epoch ms. */
  readonly arrivalTime: number;
  /** Key set by `keyBy`; `undefined` until then. */
  readonly key: unknown;
  /** The record as the source delivered it, kept for the dead-letter output. */
  readonly source: SourceRecord;
}

/**
 * The envelope implementation: five own fields, the rest read from the source record, so the
 * copies made as a record moves through steps stay small (allocation is the hot path's cost).
 */
class Envelope<T> implements RecordEnvelope<T> {
  // `declare`d and assigned in the constructor: class fields would first define each field as
  // undefined (an extra store per field, and a tagged instead of a numeric `eventTime`).
  declare readonly value: T;
  declare readonly key: unknown;
  declare readonly eventTime: number;
  declare readonly shardId: string;
  declare readonly source: SourceRecord;
  constructor(value: T, key: unknown, eventTime: number, shardId: string, source: SourceRecord) {
    this.value = value;
    this.key = key;
    this.eventTime = eventTime;
    this.shardId = shardId;
    this.source = source;
  }
  get partitionKey(): string {
    return this.source.partitionKey;
  }
  get sequenceNumber(): string {
    return this.source.sequenceNumber;
  }
  get subSequenceNumber(): number | undefined {
    return this.source.subSequenceNumber;
  }
  get arrivalTime(): number {
    return this.source.arrivalTime;
  }
  toJSON(): object {
    return {
      value: this.value,
      partitionKey: this.partitionKey,
      shardId: this.shardId,
      sequenceNumber: this.sequenceNumber,
      subSequenceNumber: this.subSequenceNumber,
      eventTime: this.eventTime,
      arrivalTime: this.arrivalTime,
      key: this.key,
    };
  }
}

export function envelope<T>(source: SourceRecord, shardId: string, value: T, eventTime: number): RecordEnvelope<T> {
  return new Envelope(value, undefined, eventTime, shardId, source);
}

/**
 * What the records a stateful step emits together share: the source record they are attributed
 * to (its sequence number makes a replayed emission carry the same one), shard and event time.
 */
export interface Emission {
  readonly source: SourceRecord;
  readonly shardId: string;
  readonly eventTime: number;
}

/**
 * Canonical text of a key: distinct for 1 and "1", and a string key is its own text (no
 * allocation on the hot path). Non-string keys and strings starting with U+0001 are tagged.
 */
export function keyText(k: unknown): string {
  if (typeof k === 'string') return k.charCodeAt(0) === 1 ? `\u0001s${k}` : k;
  if (k === null || k === undefined) return '\u0001z';
  return `\u0001${(typeof k)[0]}${String(k)}`;
}

/**
 * An envelope emitted by a stateful step (a window result): its own value and key (its partition
 * key is the key's text); the rest from the emission it belongs to. Four fields fewer than a
 * copied envelope, which counts when a window step emits a million of them.
 */
class EmittedEnvelope<T> implements RecordEnvelope<T> {
  declare readonly value: T;
  declare readonly key: unknown;
  declare private readonly emission: Emission;
  constructor(emission: Emission, value: T, key: unknown) {
    this.value = value;
    this.key = key;
    this.emission = emission;
  }
  get partitionKey(): string {
    return keyText(this.key);
  }
  get eventTime(): number {
    return this.emission.eventTime;
  }
  get shardId(): string {
    return this.emission.shardId;
  }
  get source(): SourceRecord {
    return this.emission.source;
  }
  get sequenceNumber(): string {
    return this.emission.source.sequenceNumber;
  }
  get subSequenceNumber(): number | undefined {
    return this.emission.source.subSequenceNumber;
  }
  get arrivalTime(): number {
    return this.emission.source.arrivalTime;
  }
  toJSON(): object {
    return Envelope.prototype.toJSON.call(this);
  }
}

/** A new envelope emitted by a stateful step, with its own key (and so partition key). */
export function emitted<T>(emission: Emission, value: T, key: unknown): RecordEnvelope<T> {
  return new EmittedEnvelope(emission, value, key);
}

/** A copy of `env` with a new value (the envelope given is left as it is). */
export function withValue<T>(env: RecordEnvelope, value: T): RecordEnvelope<T> {
  return new Envelope(value, env.key, env.eventTime, env.shardId, env.source);
}

/** A copy of `env` with a new key. */
export function withKey<T>(env: RecordEnvelope<T>, key: unknown): RecordEnvelope<T> {
  return new Envelope(env.value, key, env.eventTime, env.shardId, env.source);
}

/** The writable view of an {@link Envelope} that the step holding it owns. */
type Owned = { value: unknown; key: unknown };

/**
 * `env` with a new value, changed in place. Only for a step of a fused chain, which owns the
 * envelope pushed to it (see `Push`): nothing upstream still reads it. Envelopes a stateful step
 * emitted are copied instead (they take their partition key from their key).
 */
export function updateValue<T>(env: RecordEnvelope, value: T): RecordEnvelope<T> {
  if (!(env instanceof Envelope)) return withValue(env, value);
  (env as Owned).value = value;
  return env as RecordEnvelope<T>;
}

/** `env` with a new key, changed in place (see {@link updateValue}). */
export function updateKey<T>(env: RecordEnvelope<T>, key: unknown): RecordEnvelope<T> {
  if (!(env instanceof Envelope)) return withKey(env, key);
  (env as Owned).key = key;
  return env;
}

/**
 * A record a step keeps beyond its push (a sink's buffer) while passing it on: a copy when later
 * steps may change the envelope in place, else the envelope itself.
 */
export function keptCopy<T>(env: RecordEnvelope<T>): RecordEnvelope<T> {
  return env instanceof Envelope ? new Envelope(env.value, env.key, env.eventTime, env.shardId, env.source) : env;
}

/** What the dead-letter output receives: enough to find the record again and replay it. */
export interface DeadLetterRecord {
  reason: DeadLetterReason;
  /** Node name of the step that failed, e.g. `map-0`, or `source`. */
  step: string;
  error: string;
  shardId: string;
  sequenceNumber: string;
  subSequenceNumber?: number;
  partitionKey: string;
  /** Line number in the input file, for file sources. */
  line?: number;
  /** The payload as delivered (text; base64 when it was not UTF-8). */
  data: unknown;
  /** The record's value when the step failed, if it had been decoded. */
  value?: unknown;
  pipeline: string;
  time: string;
}

/**
 * Why a record went to the dead-letter output:
 *
 * - `decode`: the record has no data, is over {@link MAX_RECORD_BYTES}, is not UTF-8 (`data` is
 *   then base64), is not JSON, or nests arrays and objects more than 512 levels deep;
 * - `schema`: it does not match the pipeline's declared `fields`;
 * - `event-time`: its event time is not a time (not epoch ms or ISO-8601, outside ±8.64e15 ms), or
 *   is more than the pipeline's `maxFutureSkew` ahead of its arrival time;
 * - `expression`: a CEL expression failed on it, or yielded a value of the wrong type: a window
 *   key that is not a string, number, boolean or null; an input of `sum`, `avg`, `min` or `max`
 *   that is not a number or null (the message names the aggregate);
 * - `function`: a user function (`fn:` or a TypeScript callback) threw;
 * - `lookup`, `missing-lookup`: an `enrich` lookup failed, or had no entry for the key;
 * - `sink`: a sink could never write it (too large, refused by the destination as invalid, or a
 *   value with no JSON form: circular, nested too deeply);
 * - `late`: it arrived after its window closed (when the window step has no late output);
 * - `state`: the window state store refused it (a limit of the store).
 */
export type DeadLetterReason =
  | 'decode'
  | 'schema'
  | 'event-time'
  | 'expression'
  | 'function'
  | 'lookup'
  | 'missing-lookup'
  | 'sink'
  | 'late'
  | 'state';
