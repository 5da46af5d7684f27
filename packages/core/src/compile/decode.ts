/**
 * Decoding a source record into the value user code sees. A record that cannot be decoded is
 * dead-lettered by the caller (reason `decode`) with the problem named here; the batch goes on.
 */
import { MAX_RECORD_BYTES, type SourceRecord } from '../envelope.js';
import { DecodeProblem, describeError } from '../errors.js';
import { jsonSafe, MAX_NESTING, nestingExceeds } from '../sinks/json.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Marks a record its source cut short (a file line over the record limit): decoding dead-letters it. */
export function markOversized(src: SourceRecord, bytes: number, kept: number): void {
  src.truncated = { bytes, kept };
}

function byteLength(data: string | Uint8Array): number {
  // A UTF-8 string is at most 3 bytes per UTF-16 unit; only measure when it could exceed the cap.
  if (typeof data !== 'string') return data.byteLength;
  return data.length * 3 <= MAX_RECORD_BYTES ? data.length : Buffer.byteLength(data);
}

/**
 * The record's value: `value` when the source decoded it already, else its `data` as UTF-8 JSON.
 * Throws a {@link DecodeProblem} when the record has no data, is over {@link MAX_RECORD_BYTES},
 * is not UTF-8, is not JSON, nests arrays and objects more than {@link MAX_NESTING} levels, or holds
 * a number JSON.parse makes infinite (`1e999`).
 */
export function decodeRecord(src: SourceRecord): unknown {
  let value: unknown;
  if (src.value !== undefined) value = src.value;
  else {
    const data = src.data;
    if (data === undefined) throw new DecodeProblem('record has no data');
    const cut = src.truncated;
    if (cut !== undefined)
      throw new DecodeProblem(
        `record exceeds ${MAX_RECORD_BYTES} bytes (${cut.bytes} bytes; data holds its first ${cut.kept} bytes)`,
      );
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
    if (text.length > 2 * MAX_NESTING + 1 && nestingExceeds(value, MAX_NESTING)) throw tooDeep();
    // JSON.parse turns 1e999 into Infinity (written as null). The value is searched for one
    // rather than the text for a long exponent: a parsed record is smaller than its text and
    // fresh in cache, and most of a text's `e`s are in words (about 35 ns a record, against
    // 130 ns for the text, on the Lambda benchmark's records).
    if (holdsInfinity(value)) {
      const where = nonFinite(value);
      if (where !== undefined)
        throw new DecodeProblem(`number out of range${where === '' ? '' : ` at ${where}`} (beyond ±1.8e308)`);
    }
    return value;
  }
  if (nestingExceeds(value, MAX_NESTING)) throw tooDeep();
  return value;
}

const tooDeep = () => new DecodeProblem(`record nests arrays and objects more than ${MAX_NESTING} levels deep`);

/**
 * Whether a number in `value` (from JSON.parse, which makes no NaN) is infinite. Recursive: the
 * value nests at most MAX_NESTING levels (checked before).
 */
function holdsInfinity(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return v === Number.POSITIVE_INFINITY || v === Number.NEGATIVE_INFINITY;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (isOrHoldsInfinity(v[i])) return true;
    return false;
  }
  for (const k in v) if (isOrHoldsInfinity((v as Record<string, unknown>)[k])) return true;
  return false;
}

/** One member of an array or object: an infinite number, or a value holding one. */
function isOrHoldsInfinity(x: unknown): boolean {
  return typeof x === 'object'
    ? x !== null && holdsInfinity(x)
    : x === Number.POSITIVE_INFINITY || x === Number.NEGATIVE_INFINITY;
}

/** The JSON pointer of the first infinite number in `value` (`''`: the value itself), if any. */
function nonFinite(value: unknown): string | undefined {
  const stack: [unknown, string][] = [[value, '']];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, path] = top;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return path;
    } else if (typeof v === 'object' && v !== null) {
      if (Array.isArray(v)) for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}/${i}`]);
      else
        for (const k of Object.keys(v).reverse())
          stack.push([(v as Record<string, unknown>)[k], `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`]);
    }
  }
  return undefined;
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
