/**
 * The aggregate functions a pipeline names in the builder's `.window()`:
 * `aggregate: { clicks: count(), revenue: sum((e) => e.amount), users: countDistinct((e) => e.user) }`.
 * Each function describes an aggregate and carries its input and result types, so the window's
 * output type is inferred; the mergeable aggregators that compute them are in `aggregates.ts`.
 */
import type { CustomAggregator } from './aggregates.js';

/** An aggregate over records of type `T` with result `R` (a description; bound by the builder). */
export interface Agg<T, R> {
  readonly op: string;
  readonly of?: ((event: T) => unknown) | string;
  readonly limit?: number;
  readonly custom?: CustomAggregator<unknown, T, R>;
  /** Phantom: the result type. */
  readonly __result?: R;
}

export type AggResult<A> = A extends Agg<never, infer R> ? R : never;

export function count<T = unknown>(): Agg<T, number> {
  return { op: 'count' };
}
export function sum<T>(of: ((event: T) => number) | string): Agg<T, number> {
  return { op: 'sum', of };
}
export function min<T, V extends number | string>(of: (event: T) => V): Agg<T, V | null>;
export function min<T>(of: string): Agg<T, number | string | null>;
export function min<T>(of: ((event: T) => number | string) | string): Agg<T, unknown> {
  return { op: 'min', of };
}
export function max<T, V extends number | string>(of: (event: T) => V): Agg<T, V | null>;
export function max<T>(of: string): Agg<T, number | string | null>;
export function max<T>(of: ((event: T) => number | string) | string): Agg<T, unknown> {
  return { op: 'max', of };
}
export function avg<T>(of: ((event: T) => number) | string): Agg<T, number | null> {
  return { op: 'avg', of };
}
export function first<T, V>(of: (event: T) => V): Agg<T, V | null> {
  return { op: 'first', of };
}
export function last<T, V>(of: (event: T) => V): Agg<T, V | null> {
  return { op: 'last', of };
}
export function countDistinct<T>(of: ((event: T) => unknown) | string): Agg<T, number> {
  return { op: 'count_distinct', of };
}
export function collect<T, V>(of: (event: T) => V, limit = 100): Agg<T, V[]> {
  return { op: 'collect', of, limit };
}
/** A custom mergeable aggregator: `{ init, add, merge, result }`. */
export function aggregator<T, A, R>(agg: CustomAggregator<A, T, R>): Agg<T, R> {
  return { op: 'custom', custom: agg as CustomAggregator<unknown, T, R> };
}
