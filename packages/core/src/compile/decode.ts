/**
 * Decoding a source record into the value user code sees. A record that cannot be decoded is
 * dead-lettered by the caller (reason `decode`) with the problem named here; the batch goes on.
 */
import { MAX_RECORD_BYTES, type SourceRecord } from '../envelope.js';
import { describeError } from '../errors.js';
import { jsonSafe, MAX_NESTING, nestingExceeds } from '../sinks/json.js';

/** Why a record could not be decoded (its message is the dead letter's `error`). */
export class DecodeProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeProblem';
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function byteLength(data: string | Uint8Array): number {
  // A UTF-8 string is at most 3 bytes per UTF-16 unit; only measure when it could exceed the cap.
  if (typeof data !== 'string') return data.byteLength;
  return data.length * 3 <= MAX_RECORD_BYTES ? data.length : Buffer.byteLength(data);
}

/**
 * The record's value: `value` when the source decoded it already, else its `data` as UTF-8 JSON.
 * Throws a {@link DecodeProblem} when the record has no data, is over {@link MAX_RECORD_BYTES},
 * is not UTF-8, is not JSON, or nests arrays and objects more than {@link MAX_NESTING} levels.
 */
export function decodeRecord(src: SourceRecord): unknown {
  let value: unknown;
  if (src.value !== undefined) value = src.value;
  else {
    const data = src.data;
    if (data === undefined) throw new DecodeProblem('record has no data');
    if (byteLength(data) > MAX_RECORD_BYTES) throw new DecodeProblem(`record exceeds ${MAX_RECORD_BYTES} bytes`);
    let text: string;
    if (typeof data === 'string') text = data;
    else {
      try {
        text = utf8.decode(data);
      } catch {
        throw new DecodeProblem('record is not valid UTF-8');
      }
    }
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new DecodeProblem(`not valid JSON: ${describeError(err)}`);
    }
    // Nesting deeper than MAX_NESTING takes at least 2 × (MAX_NESTING + 1) characters.
    if (text.length <= 2 * MAX_NESTING + 1) return value;
  }
  if (nestingExceeds(value, MAX_NESTING)) {
    throw new DecodeProblem(`record nests arrays and objects more than ${MAX_NESTING} levels deep`);
  }
  return value;
}

/**
 * The payload as the dead-letter output shows it: the text; base64 when it is not UTF-8; an
 * already-decoded value in a form that can always be written (see `jsonSafe`).
 */
export function payloadText(src: SourceRecord): unknown {
  if (src.data === undefined) return jsonSafe(src.value);
  if (typeof src.data === 'string') return src.data;
  try {
    return utf8.decode(src.data);
  } catch {
    return Buffer.from(src.data).toString('base64');
  }
}
