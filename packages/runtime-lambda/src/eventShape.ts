/**
 * What a Lambda event is: a Kinesis or DynamoDB Streams batch, a scheduled tick, or something
 * else — an SQS, S3 or SNS event, an object without `Records`, not an object at all — which is a
 * misconfigured trigger and is refused with a {@link LambdaEventError} that names what it got.
 */
import { LambdaEventError } from './errors.js';

export type EventShape =
  | { kind: 'tick' }
  | { kind: 'empty' }
  | { kind: 'kinesis' | 'dynamodb'; records: readonly unknown[] };

const EXPECTED = 'expected a Kinesis or DynamoDB Streams event';
const HINT = ' (a misconfigured trigger? check the function’s event source mapping)';

/** A short description of a value's type for messages: `null`, `a string`, `an array`. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  const t = typeof v;
  return t === 'object' ? 'an object' : /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Text from an event, made safe to quote in a message. */
function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}

type RecordShape = 'kinesis' | 'dynamodb' | string | undefined;

/** The source a record came from: `kinesis`, `dynamodb`, or a description of another shape. */
function recordShape(r: unknown): RecordShape {
  if (!isObject(r)) return undefined;
  const source = r.eventSource ?? r.EventSource;
  if (source === 'aws:kinesis') return 'kinesis';
  if (source === 'aws:dynamodb') return 'dynamodb';
  if (source === 'aws:sqs') return 'an SQS event';
  if (source === 'aws:s3') return 'an S3 event';
  if (source === 'aws:sns') return 'an SNS event';
  if (typeof source === 'string') return `an event from ${quote(source)}`;
  if ('kinesis' in r) return 'kinesis';
  if ('dynamodb' in r) return 'dynamodb';
  if ('receiptHandle' in r && 'body' in r) return 'an SQS event';
  if ('s3' in r) return 'an S3 event';
  if ('Sns' in r) return 'an SNS event';
  return undefined;
}

function refuse(got: string): never {
  throw new LambdaEventError(`${EXPECTED}, got ${got}${HINT}`);
}

function isTick(event: Record<string, unknown>): boolean {
  return (
    event.Records === undefined &&
    (event.source === 'aws.events' || event['detail-type'] === 'Scheduled Event' || event.tributary === 'tick')
  );
}

/**
 * The shape of an event. The first Kinesis or DynamoDB Streams record decides the event's kind
 * (Lambda never mixes them); other records of the event are then malformed records of that kind,
 * dead-lettered by the decoder. Throws a `LambdaEventError` for an event of any other shape.
 */
export function eventShape(event: unknown): EventShape {
  if (!isObject(event)) return refuse(describeValue(event));
  if (isTick(event)) return { kind: 'tick' };
  const records = event.Records;
  if (records === undefined) {
    if (typeof event.eventSource === 'string') return refuse(`an event from ${quote(event.eventSource)}`);
    const keys = Object.keys(event);
    const named = keys.length === 0 ? 'no keys' : `keys ${keys.slice(0, 5).map(quote).join(', ')}`;
    return refuse(`an object without \`Records\` (${named}${keys.length > 5 ? ', …' : ''})`);
  }
  if (!Array.isArray(records)) return refuse(`an event whose \`Records\` is not an array (${describeValue(records)})`);
  if (records.length === 0) return { kind: 'empty' };
  let other: string | undefined;
  for (const r of records) {
    const shape = recordShape(r);
    if (shape === 'kinesis' || shape === 'dynamodb') return { kind: shape, records };
    other ??= shape;
  }
  return refuse(other ?? 'an event whose records are of no known shape');
}
