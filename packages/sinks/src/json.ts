import { EncodeError } from './errors.js';

/**
 * JSON text of a record's value for the sinks of this package. A value with no JSON form
 * (circular, nested too deeply, holding a BigInt, a getter or `toJSON` that throws) throws an
 * error naming why; `BatchSink` turns it into a dead letter for that record (reason `sink`,
 * code `EncodeFailed`), so one record never fails its batch.
 */
export function recordJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new EncodeError(`the value cannot be written as JSON: ${jsonProblem(err)}`, { cause: err });
  }
  if (text === undefined) throw new EncodeError(`the value cannot be written as JSON: it is ${typeof value}`);
  return text;
}

function jsonProblem(err: unknown): string {
  if (err instanceof RangeError) return 'it is nested too deeply';
  const message = err instanceof Error ? err.message : String(err);
  if (/circular/i.test(message)) return 'it is circular';
  if (/BigInt/.test(message)) return 'it holds a BigInt';
  return message.split('\n')[0] ?? message;
}
