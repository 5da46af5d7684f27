/**
 * DynamoDB Streams images (`Keys`, `NewImage`, `OldImage`: maps of AttributeValues) → plain JSON
 * values, the same for every sink, so nothing is lost when a record is written as JSON:
 *
 * - `S`, `BOOL` as they are; `NULL` → `null`; `M` → an object; `L` → an array.
 * - `N` → a JS number when the number holds it exactly (its shortest text, `String(Number(n))`,
 *   has the same decimal value: `"0.1"`, `"1E+2"`, `"9007199254740992"`), else its exact decimal
 *   text as a string (`"9007199254740993"`, `"9007199254740992.5"`, `"1e400"`).
 * - `B` → base64 text (a Lambda event already carries it so; bytes, as the SDK gives them, are
 *   encoded).
 * - `SS`, `NS`, `BS` → arrays of the above (not JS `Set`s, which JSON writes as `{}`).
 *
 * A malformed attribute — an unknown type (`{ "Q": … }`), not exactly one type key, an `N` that is
 * not a decimal number, a `B` that is not base64, maps and lists nested deeper than
 * {@link MAX_NESTING} (counted over the whole record value) — throws an {@link AttributeError}
 * that names the attribute's path, e.g. `NewImage.items[2].price`.
 */
import { AttributeError, RecordFormatError } from './errors.js';

/**
 * The deepest a decoded record value may nest objects and arrays (the record's value is level 1,
 * an image level 2, a top-level `M` or `L` attribute level 3).
 */
export const MAX_NESTING = 512;

const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const SMALL_INTEGER = /^-?\d{1,15}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Text quoted for a message, cut short. */
function shown(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

/**
 * The decimal value of a number's text in one canonical form (`-123e-2` for `-1.230`), or
 * `undefined` when its exponent is beyond any double's.
 */
function canonicalDecimal(text: string): string | undefined {
  let i = 0;
  let negative = false;
  if (text[0] === '-' || text[0] === '+') {
    negative = text[0] === '-';
    i = 1;
  }
  const e = text.search(/[eE]/);
  const mantissa = text.slice(i, e < 0 ? text.length : e);
  const dot = mantissa.indexOf('.');
  const fraction = dot < 0 ? '' : mantissa.slice(dot + 1);
  let digits = dot < 0 ? mantissa : mantissa.slice(0, dot) + fraction;
  let start = 0;
  while (start < digits.length && digits.charCodeAt(start) === 48) start++;
  digits = digits.slice(start);
  if (digits === '') return '0';
  let end = digits.length;
  while (digits.charCodeAt(end - 1) === 48) end--;
  let exponentText = e < 0 ? '0' : text.slice(e + 1).replace(/^([+-]?)0+(?=\d)/, '$1');
  if (exponentText.replace(/^[+-]/, '').length > 15) return undefined;
  exponentText ||= '0';
  const exponent = Number(exponentText) - fraction.length + (digits.length - end);
  return `${negative ? '-' : ''}${digits.slice(0, end)}e${exponent}`;
}

/**
 * An `N` attribute's value: a JS number when it holds the decimal value exactly as written,
 * else the decimal text itself. Throws for text that is not a decimal number.
 */
export function numberValue(text: string): number | string {
  if (SMALL_INTEGER.test(text)) {
    const n = Number(text);
    return n === 0 ? 0 : n;
  }
  if (!DECIMAL.test(text)) throw new RecordFormatError(`N is not a number: ${shown(text)}`);
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  const exact = canonicalDecimal(text);
  if (exact !== undefined && exact === canonicalDecimal(String(n))) return n === 0 ? 0 : n;
  return text;
}

function base64Of(b: unknown): string {
  if (typeof b === 'string') {
    if (!BASE64.test(b)) throw new RecordFormatError(`B is not base64 text: ${shown(b)}`);
    return b;
  }
  if (b instanceof Uint8Array) return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
  throw new RecordFormatError(`B is not base64 text or bytes (${typeof b})`);
}

/** Sets a property, `__proto__` included, as an own property (as `JSON.parse` does). */
function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
  else o[key] = value;
}

const NAME = /^[A-Za-z_$][\w$-]*$/;

/** Decodes AttributeValues, tracking the path for messages. */
class Decoder {
  private readonly path: (string | number)[] = [];
  constructor(private readonly root: string) {}

  fail(problem: string): never {
    let p = this.root;
    for (const s of this.path.length > 12 ? [...this.path.slice(0, 12), '…'] : this.path) {
      if (typeof s === 'number') p += `[${s}]`;
      else if (s === '…') p += '…';
      else p += NAME.test(s) && s.length <= 40 ? `.${s}` : `[${shown(s)}]`;
    }
    throw new AttributeError(p, problem);
  }

  map(m: Record<string, unknown>, depth: number): Record<string, unknown> {
    if (depth > MAX_NESTING) this.fail(`maps and lists nested deeper than ${MAX_NESTING} levels`);
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(m)) {
      this.path.push(key);
      setOwn(out, key, this.value(m[key], depth + 1));
      this.path.pop();
    }
    return out;
  }

  private list(l: unknown[], depth: number, each: (v: unknown) => unknown): unknown[] {
    if (depth > MAX_NESTING) this.fail(`maps and lists nested deeper than ${MAX_NESTING} levels`);
    const out = new Array(l.length);
    for (let i = 0; i < l.length; i++) {
      this.path.push(i);
      out[i] = each(l[i]);
      this.path.pop();
    }
    return out;
  }

  private set(v: unknown, type: string, depth: number, each: (v: unknown) => unknown): unknown[] {
    if (!Array.isArray(v)) this.fail(`${type} is not a list`);
    return this.list(v, depth, (x) => {
      try {
        return each(x);
      } catch (err) {
        if (err instanceof AttributeError) throw err;
        return this.fail((err as Error).message);
      }
    });
  }

  /** One AttributeValue, which will sit at `depth` (its container's depth + 1). */
  value(av: unknown, depth: number): unknown {
    if (av === null || typeof av !== 'object' || Array.isArray(av)) {
      return this.fail(`not an attribute value (${av === null ? 'null' : Array.isArray(av) ? 'an array' : typeof av})`);
    }
    let type: string | undefined;
    let types = 0;
    for (const k in av) {
      if (!Object.hasOwn(av, k)) continue;
      type ??= k;
      types++;
    }
    if (types !== 1 || type === undefined) {
      const keys = Object.keys(av).slice(0, 4).map(shown).join(', ');
      return this.fail(`an attribute value must have exactly one type key, got ${types === 0 ? 'none' : keys}`);
    }
    const v = (av as Record<string, unknown>)[type];
    switch (type) {
      case 'S':
        return typeof v === 'string' ? v : this.fail(`S is not a string (${typeof v})`);
      case 'N':
        return this.number(v);
      case 'BOOL':
        return typeof v === 'boolean' ? v : this.fail(`BOOL is not a boolean (${typeof v})`);
      case 'NULL':
        return v === true ? null : this.fail('NULL is not true');
      case 'B':
        return this.bytes(v);
      case 'M':
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return this.fail('M is not a map');
        return this.map(v as Record<string, unknown>, depth);
      case 'L':
        if (!Array.isArray(v)) return this.fail('L is not a list');
        return this.list(v, depth, (x) => this.value(x, depth + 1));
      case 'SS':
        return this.set(v, 'SS', depth, (x) => {
          if (typeof x !== 'string') throw new RecordFormatError(`not a string (${typeof x})`);
          return x;
        });
      case 'NS':
        return this.set(v, 'NS', depth, (x) => this.number(x));
      case 'BS':
        return this.set(v, 'BS', depth, (x) => this.bytes(x));
      default:
        return this.fail(`unknown attribute type \`${type.length > 40 ? `${type.slice(0, 40)}…` : type}\``);
    }
  }

  private number(v: unknown): number | string {
    if (typeof v !== 'string') return this.fail(`N is not decimal text (${typeof v})`);
    try {
      return numberValue(v);
    } catch (err) {
      return this.fail((err as Error).message);
    }
  }

  private bytes(v: unknown): string {
    try {
      return base64Of(v);
    } catch (err) {
      return this.fail((err as Error).message);
    }
  }
}

/**
 * One image (`Keys`, `NewImage` or `OldImage`, named by `name` in messages) as a plain object;
 * `undefined` when absent. `depth` is the level the image sits at in the record value.
 */
export function imageValue(image: unknown, name: string, depth = 2): Record<string, unknown> | undefined {
  if (image === undefined || image === null) return undefined;
  const decoder = new Decoder(name);
  if (typeof image !== 'object' || Array.isArray(image)) {
    return decoder.fail(`not a map of attributes (${Array.isArray(image) ? 'an array' : typeof image})`);
  }
  return decoder.map(image as Record<string, unknown>, depth);
}
