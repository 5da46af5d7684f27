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
    // JSON.parse turns 1e999 into Infinity (written as null): only text with a 3-digit exponent
    // or a run of 309 digits can hold such a number, so only then is the value searched.
    if (mayOverflow(text)) {
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

/** Text that may hold a number JSON.parse makes infinite: an exponent of 3 digits, or 309 digits in a row. */
const MAY_OVERFLOW = /[eE][+-]?\d{3}|(?<!\d)\d{309}/;

/**
 * `MAY_OVERFLOW.test(text)`, at half its cost on the usual small record (this runs for every
 * record): the exponents are found with `indexOf`, and only text long enough to hold 309 digits
 * is searched by the expression.
 */
function mayOverflow(text: string): boolean {
  if (text.length >= 309) return MAY_OVERFLOW.test(text);
  return longExponent(text, 'e') || longExponent(text, 'E');
}

/** Whether `text` has a number token with `e` (or `E`) and an exponent of 3 or more digits. */
function longExponent(text: string, e: string): boolean {
  for (let i = text.indexOf(e, 1); i > 0; i = text.indexOf(e, i + 1)) {
    const before = text.charCodeAt(i - 1);
    if (before < 48 || before > 57) continue;
    let j = i + 1;
    const sign = text.charCodeAt(j);
    if (sign === 43 || sign === 45) j++;
    let digits = 0;
    for (; j < text.length; j++) {
      const c = text.charCodeAt(j);
      if (c < 48 || c > 57) break;
      digits++;
    }
    if (digits < 3) continue;
    // A number token starts the value: after `:`, `,`, `[`, white space or the start (not inside
    // text such as the hex id "3e451").
    let k = i - 1;
    for (; k >= 0; k--) {
      const c = text.charCodeAt(k);
      if (!((c >= 48 && c <= 57) || c === 46)) break;
    }
    if (k >= 0 && text.charCodeAt(k) === 45) k--;
    const start = k < 0 ? 32 : text.charCodeAt(k);
    if (start === 58 || start === 44 || start === 91 || start === 32 || start === 9 || start === 10 || start === 13)
      return true;
  }
  return false;
}

/** The JSON pointer of the first infinite number in `value` (`''`: the value itself), if any. */
function nonFinite(value: unknown): string | undefined {
  // Most values searched hold no such number (the text test is coarse: hex ids like "3e451"
  // pass it), so a first walk only looks, without building a path.
  if (!holdsNonFinite(value)) return undefined;
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

/** Whether a number in `value` is infinite (JSON.parse makes no NaN). */
function holdsNonFinite(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'number') {
      if (v === Number.POSITIVE_INFINITY || v === Number.NEGATIVE_INFINITY) return true;
    } else if (typeof v === 'object' && v !== null) {
      if (Array.isArray(v)) for (const x of v) stack.push(x);
      else for (const k in v) stack.push((v as Record<string, unknown>)[k]);
    }
  }
  return false;
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
