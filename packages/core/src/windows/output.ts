/**
 * Window output records: `{ key, windowStart, windowEnd, <aggregate>: result, ... }`.
 *
 * A window step may emit one record per key and window (a million per run is common), so the
 * records are built by a constructor: V8 then keeps every field inside the object itself (no
 * separate property store, no shape change per added field), about half the memory of an object
 * literal grown field by field. The records are still plain objects: their prototype is
 * `Object.prototype`, exactly like a literal's.
 */
import { ConfigError } from '../errors.js';
import type { Aggregator } from './aggregates.js';

export type WindowRecordFactory = (key: unknown, start: number, end: number, acc: unknown) => Record<string, unknown>;

/** Field names a window record reserves (an aggregate may not be named so). */
export const RESERVED_FIELDS = ['key', 'windowStart', 'windowEnd'] as const;

/**
 * A factory for the records of one window step. With a single aggregate `acc` is its accumulator;
 * with several, the array of their accumulators.
 */
export function windowRecordFactory(names: readonly string[], aggregators: readonly Aggregator[]): WindowRecordFactory {
  for (const name of names) {
    if ((RESERVED_FIELDS as readonly string[]).includes(name) || name === '__proto__') {
      throw new ConfigError(`aggregate name \`${name}\` is reserved for the window record itself`);
    }
  }
  const n = names.length;
  const single = n === 1;
  const only = aggregators[0] as Aggregator;
  function WindowRecord(this: Record<string, unknown>, key: unknown, start: number, end: number, acc: unknown) {
    this.key = key;
    this.windowStart = start;
    this.windowEnd = end;
    if (single) this[names[0] as string] = only.result(acc);
    else
      for (let i = 0; i < n; i++)
        this[names[i] as string] = (aggregators[i] as Aggregator).result((acc as unknown[])[i]);
  }
  WindowRecord.prototype = Object.prototype;
  const Ctor = WindowRecord as unknown as new (
    key: unknown,
    start: number,
    end: number,
    acc: unknown,
  ) => Record<string, unknown>;
  return (key, start, end, acc) => new Ctor(key, start, end, acc);
}
