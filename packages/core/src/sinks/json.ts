/**
 * JSON text of record values for line-oriented outputs, and a form of any value that is always
 * writable (for the dead-letter output, which must never be crashed by the record it reports).
 */
import type { SinkContext } from '../compile/types.js';
import type { RecordEnvelope } from '../envelope.js';
import { describeError, TributaryError } from '../errors.js';

/**
 * The deepest nesting of arrays and objects a record may have. Decoding dead-letters deeper
 * records (reason `decode`): JSON.stringify, structured clone and most SDK marshallers recurse, and
 * overflow the stack a few thousand levels down.
 */
export const MAX_NESTING = 512;

/** True when `v` nests arrays and objects more than `limit` levels deep (the top level counts as 1). */
export function nestingExceeds(v: unknown, limit: number = MAX_NESTING): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (limit <= 0) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (typeof x === 'object' && x !== null && nestingExceeds(x, limit - 1)) return true;
    }
    return false;
  }
  for (const k in v) {
    const x = (v as Record<string, unknown>)[k];
    if (typeof x === 'object' && x !== null && nestingExceeds(x, limit - 1)) return true;
  }
  return false;
}

const bigintAsText = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v);

/**
 * JSON text of a value for line-oriented outputs; bigints become their decimal text, undefined
 * becomes null. Throws a {@link TributaryError} naming the problem when the value has no JSON form
 * (circular, nested too deeply, a getter or `toJSON` that throws).
 */
export function toJsonLine(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    try {
      return JSON.stringify(value, bigintAsText) ?? 'null';
    } catch (err) {
      throw new TributaryError(`the value cannot be written as JSON: ${jsonProblem(err)}`, { cause: err });
    }
  }
}

/** What made JSON.stringify fail, in words. */
function jsonProblem(err: unknown): string {
  if (err instanceof RangeError) return 'it is nested too deeply';
  const text = describeError(err);
  return /circular/i.test(text) ? 'it is circular' : text;
}

/**
 * `value` itself when it can be written as JSON, else a copy that can: nesting below
 * {@link MAX_NESTING} levels is replaced by a marker text, a repeated (circular) object by
 * `"[circular]"`, bigints by their decimal text, and a property that cannot be read by
 * `"[unreadable]"`. Never throws. The dead-letter output writes records through it.
 */
export function jsonSafe(value: unknown): unknown {
  try {
    // Plain JSON.stringify (no bigint replacer): what any sink may call on it must succeed.
    if (!nestingExceeds(value)) {
      JSON.stringify(value);
      return value;
    }
  } catch {
    // not writable as it is: make a copy that is
  }
  try {
    return safeCopy(value, MAX_NESTING, new Set());
  } catch {
    return '[value cannot be written as JSON]';
  }
}

function safeCopy(v: unknown, depth: number, path: Set<object>): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v !== 'object' || v === null) return typeof v === 'function' || typeof v === 'symbol' ? undefined : v;
  if (path.has(v)) return '[circular]';
  if (depth <= 0) return `[nested deeper than ${MAX_NESTING} levels]`;
  let source: unknown = v;
  const toJSON = (v as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    try {
      source = toJSON.call(v);
    } catch {
      return '[unreadable]';
    }
    if (typeof source !== 'object' || source === null) return safeCopy(source, depth, path);
  }
  path.add(v);
  try {
    if (Array.isArray(source)) {
      const out: unknown[] = [];
      for (let i = 0; i < source.length; i++) {
        let x: unknown;
        try {
          x = source[i];
        } catch {
          x = '[unreadable]';
        }
        out.push(safeCopy(x, depth - 1, path) ?? null);
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(source as object)) {
      let x: unknown;
      try {
        x = (source as Record<string, unknown>)[k];
      } catch {
        x = '[unreadable]';
      }
      const c = safeCopy(x, depth - 1, path);
      if (c !== undefined)
        Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
    }
    return out;
  } finally {
    path.delete(v);
  }
}

/** JSON text of any value, never throwing (see {@link jsonSafe}). */
export function safeJsonLine(value: unknown): string {
  try {
    return toJsonLine(value);
  } catch {
    try {
      return JSON.stringify(jsonSafe(value)) ?? 'null';
    } catch {
      return '"[value cannot be written as JSON]"';
    }
  }
}

/**
 * The records' values as JSON Lines. A value with no JSON form goes to `context`'s dead-letter
 * output (reason `sink`) and is left out; without a context (the sink is itself the dead-letter
 * output) a writable form of it is written instead (see {@link jsonSafe}).
 */
export function jsonLines(
  records: readonly RecordEnvelope[],
  context: SinkContext | undefined,
  format: (value: unknown) => string = toJsonLine,
): string {
  let text = '';
  for (const r of records) {
    let line: string;
    try {
      line = format(r.value);
    } catch (err) {
      if (context) {
        context.deadLetter(r, err);
        continue;
      }
      line = safeJsonLine(r.value);
    }
    text += `${line}\n`;
  }
  return text;
}
