/**
 * Window aggregates: the mergeable aggregators that compute what a window step's aggregates
 * describe (YAML text such as `sum(event.amount)`, or the builder's aggregate functions in
 * `aggregateFunctions.ts`). Every aggregate is mergeable: partial accumulators from batches and
 * shards combine with `merge`, so a batch can be pre-aggregated into one delta per (key, window)
 * and a store can add deltas to what it holds. Accumulators are plain JSON values so external
 * stores can keep them.
 */
import { ConfigError } from '../errors.js';
import type { CompiledExpression } from '../expression.js';
import { comparePositions } from '../position.js';

/** Where a record sits in its shard: ties in event time are broken by it, for determinism. */
export interface Stamp {
  time: number;
  shardId: string;
  position: string;
}

/** A mergeable aggregate. `A` is the accumulator (JSON), `R` the result. */
export interface Aggregator<A = unknown, V = unknown, R = unknown> {
  /**
   * Checks an input before the record is added anywhere: `undefined` if the aggregate takes it,
   * else why not (e.g. `sum needs a number, got string "abc"`); the window step then dead-letters
   * the whole record (reason `expression`, naming the aggregate) rather than skip the value.
   */
  check?(value: unknown): string | undefined;
  init(): A;
  add(acc: A, value: V, stamp: Stamp): A;
  merge(a: A, b: A): A;
  result(acc: A): R;
}

/** A custom aggregator supplied in TypeScript; `add` sees the record's value. */
export interface CustomAggregator<A = unknown, V = unknown, R = unknown> {
  init(): A;
  add(acc: A, value: V): A;
  merge(a: A, b: A): A;
  result(acc: A): R;
}

export const AGGREGATE_OPS = [
  'count',
  'sum',
  'min',
  'max',
  'avg',
  'first',
  'last',
  'count_distinct',
  'collect',
] as const;
export type AggregateOp = (typeof AGGREGATE_OPS)[number];

/** Orders stamps by event time, then shard, then position (Kinesis order). */
export function compareStamps(a: Stamp, b: Stamp): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.shardId !== b.shardId) return a.shardId < b.shardId ? -1 : 1;
  return comparePositions(a.position, b.position);
}

type Comparable = number | string;
/** Accumulators hold numbers; strings only in state written before min/max took numbers only. */
function less(a: Comparable, b: Comparable): boolean {
  if (typeof a === typeof b) return a < b;
  return typeof a === 'number'; // numbers sort before strings
}

/** Values of count_distinct are told apart by their JSON text (so 1 and "1" differ). */
function distinctKey(v: unknown): string {
  return JSON.stringify(v) ?? 'null';
}

/** A short description of a value for messages: its type, and its text when short. */
export function describeValue(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return v === null ? 'null' : 'an object';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number') return String(v);
  return `${typeof v} ${String(v)}`;
}

/**
 * The input check of sum, avg, min and max: a finite number, or null / absent (skipped, as SQL
 * skips NULL); anything else (text, booleans, arrays, objects, NaN, ±Infinity) is refused.
 */
function numberInput(op: string): (v: unknown) => string | undefined {
  return (v) =>
    v === null || v === undefined || (typeof v === 'number' && Number.isFinite(v))
      ? undefined
      : `${op} needs a number (or null, which is skipped), got ${describeValue(v)}`;
}

type Timed = { t: number; s: string; p: string; v: unknown };
function stampOf(x: Timed): Stamp {
  return { time: x.t, shardId: x.s, position: x.p };
}

export const count: Aggregator<number, unknown, number> = {
  init: () => 0,
  add: (a) => a + 1,
  merge: (a, b) => a + b,
  result: (a) => a,
};

export const sum: Aggregator<number, unknown, number> = {
  check: numberInput('sum'),
  init: () => 0,
  add: (a, v) => (typeof v === 'number' ? a + v : a),
  merge: (a, b) => a + b,
  result: (a) => a,
};

/** min and max take numbers only (see `numberInput`): text would compare by UTF-16 code units, and a window's values could not be kept from mixing. */
function extreme(pickLess: boolean): Aggregator<Comparable | null, unknown, Comparable | null> {
  return {
    check: numberInput(pickLess ? 'min' : 'max'),
    init: () => null,
    add: (a, v) => (typeof v !== 'number' ? a : a === null || (pickLess ? less(v, a) : less(a, v)) ? v : a),
    merge: (a, b) => (a === null ? b : b === null ? a : (pickLess ? less(b, a) : less(a, b)) ? b : a),
    result: (a) => a,
  };
}
export const min = extreme(true);
export const max = extreme(false);

export const avg: Aggregator<{ sum: number; count: number }, unknown, number | null> = {
  check: numberInput('avg'),
  init: () => ({ sum: 0, count: 0 }),
  add: (a, v) => (typeof v === 'number' ? { sum: a.sum + v, count: a.count + 1 } : a),
  merge: (a, b) => ({ sum: a.sum + b.sum, count: a.count + b.count }),
  result: (a) => (a.count === 0 ? null : a.sum / a.count),
};

function edge(earliest: boolean): Aggregator<Timed | null, unknown, unknown> {
  const better = (x: Timed, y: Timed) =>
    earliest ? compareStamps(stampOf(x), stampOf(y)) < 0 : compareStamps(stampOf(x), stampOf(y)) > 0;
  return {
    init: () => null,
    add: (a, v, st) => {
      const x: Timed = { t: st.time, s: st.shardId, p: st.position, v };
      return a === null || better(x, a) ? x : a;
    },
    merge: (a, b) => (a === null ? b : b === null ? a : better(b, a) ? b : a),
    result: (a) => (a === null ? null : a.v),
  };
}
export const first = edge(true);
export const last = edge(false);

/** Exact distinct count: the accumulator is the sorted list of distinct values' JSON text. */
export const countDistinct: Aggregator<string[], unknown, number> = {
  init: () => [],
  add: (a, v) => insertSorted(a, distinctKey(v)),
  merge: (a, b) => {
    const out: string[] = [];
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      const x = a[i];
      const y = b[j];
      if (y === undefined || (x !== undefined && x < y)) {
        out.push(x as string);
        i++;
      } else if (x === undefined || y < x) {
        out.push(y);
        j++;
      } else {
        out.push(x);
        i++;
        j++;
      }
    }
    return out;
  },
  result: (a) => a.length,
};

function insertSorted(a: string[], k: string): string[] {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((a[mid] as string) < k) lo = mid + 1;
    else hi = mid;
  }
  if (a[lo] === k) return a;
  a.splice(lo, 0, k);
  return a;
}

/** The first `limit` values by event time (ties: shard, position): bounded and mergeable. */
export function collect(limit: number): Aggregator<Timed[], unknown, unknown[]> {
  const order = (x: Timed, y: Timed) => compareStamps(stampOf(x), stampOf(y));
  return {
    init: () => [],
    add: (a, v, st) => {
      const x: Timed = { t: st.time, s: st.shardId, p: st.position, v };
      if (a.length >= limit && order(x, a[a.length - 1] as Timed) >= 0) return a;
      let i = a.length;
      while (i > 0 && order(x, a[i - 1] as Timed) < 0) i--;
      a.splice(i, 0, x);
      if (a.length > limit) a.length = limit;
      return a;
    },
    merge: (a, b) => [...a, ...b].sort(order).slice(0, limit),
    result: (a) => a.map((x) => x.v),
  };
}

/** Wraps a user aggregator so it fits the stamped interface. */
export function custom<A, V, R>(agg: CustomAggregator<A, V, R>): Aggregator<A, V, R> {
  return {
    init: () => agg.init(),
    add: (a, v) => agg.add(a, v),
    merge: (a, b) => agg.merge(a, b),
    result: (a) => agg.result(a),
  };
}

/** One aggregate of a window: its output name, how to read its input, and its aggregator. */
export interface CompiledAggregate {
  name: string;
  input: CompiledExpression | undefined;
  aggregator: Aggregator;
}

/** Splits `a, f(b, c), "x,y"` at top-level commas. */
export function splitArguments(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  const tail = text.slice(start).trim();
  if (tail !== '' || out.length > 0) out.push(tail);
  return out;
}

export interface ParsedAggregate {
  op: AggregateOp;
  /** CEL text of the input, absent for count(). */
  input: string | undefined;
  /** collect's bound. */
  limit: number | undefined;
}

export const DEFAULT_COLLECT_LIMIT = 100;
export const MAX_COLLECT_LIMIT = 10_000;

/** Parses `sum(event.amount)`, `count()`, `collect(event.x, 50)`; throws with a clear message. */
export function parseAggregate(text: string): ParsedAggregate {
  const m = /^\s*([a-z_]+)\s*\(([\s\S]*)\)\s*$/.exec(text);
  if (!m)
    throw new ConfigError(
      `expected an aggregate call such as count() or sum(event.amount), got ${JSON.stringify(text)}`,
    );
  const op = m[1] as AggregateOp;
  if (!AGGREGATE_OPS.includes(op))
    throw new ConfigError(`unknown aggregate \`${m[1]}\`; expected one of ${AGGREGATE_OPS.join(', ')}`);
  const args = splitArguments(m[2] as string);
  if (op === 'count') {
    if (args.length !== 0) throw new ConfigError('count() takes no argument');
    return { op, input: undefined, limit: undefined };
  }
  if (op === 'collect') {
    if (args.length < 1 || args.length > 2 || args[0] === '')
      throw new ConfigError('collect takes an expression and an optional limit: collect(event.x, 100)');
    const limit = args[1] === undefined ? DEFAULT_COLLECT_LIMIT : Number(args[1]);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_COLLECT_LIMIT) {
      throw new ConfigError(
        `Expected the collect limit to be an integer from 1 to ${MAX_COLLECT_LIMIT}, got ${args[1]}`,
      );
    }
    return { op, input: args[0], limit };
  }
  if (args.length !== 1 || args[0] === '') throw new ConfigError(`${op} takes one expression: ${op}(event.field)`);
  return { op, input: args[0], limit: undefined };
}

const FIXED: Record<Exclude<AggregateOp, 'collect'>, Aggregator> = {
  count: count as Aggregator,
  sum: sum as Aggregator,
  min: min as Aggregator,
  max: max as Aggregator,
  avg: avg as Aggregator,
  first: first as Aggregator,
  last: last as Aggregator,
  count_distinct: countDistinct as Aggregator,
};

export function aggregatorFor(op: AggregateOp, limit: number | undefined): Aggregator {
  return op === 'collect' ? (collect(limit ?? DEFAULT_COLLECT_LIMIT) as Aggregator) : FIXED[op];
}
