import type { Aggregator, Stamp } from '@tributary/core/spi';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { aggregatorFor, parseAggregate } from '../../src/windows/aggregates.js';

const ops = ['count', 'sum', 'min', 'max', 'avg', 'first', 'last', 'count_distinct', 'collect'] as const;
type Item = { v: number | string; stamp: Stamp };
const item = fc.record({
  v: fc.oneof(fc.integer({ min: -50, max: 50 }), fc.constantFrom('a', 'b', 'c')),
  stamp: fc.record({
    time: fc.integer({ min: 0, max: 20 }),
    shardId: fc.constantFrom('s0', 's1'),
    position: fc.nat({ max: 999 }).map(String),
  }),
});
/** Two disjoint sets of records: a (shard, position) identifies one record, so no stamp repeats. */
const twoParts = fc
  .tuple(
    fc.uniqueArray(item, { maxLength: 60, selector: (x) => `${x.stamp.shardId}:${x.stamp.position}` }),
    fc.nat({ max: 60 }),
  )
  .map(([items, cut]) => [items.slice(0, cut), items.slice(cut)] as const);
const fold = (agg: Aggregator, items: readonly Item[]) =>
  items.reduce((acc, x) => agg.add(acc, x.v, x.stamp), agg.init());

describe('aggregates are mergeable', () => {
  for (const op of ops) {
    it(`${op}: merging partial accumulators equals aggregating everything at once`, () => {
      fc.assert(
        fc.property(twoParts, ([a, b]) => {
          const agg = aggregatorFor(op, 5);
          const whole = agg.result(fold(agg, [...a, ...b]));
          const merged = agg.result(agg.merge(fold(agg, a), fold(agg, b)));
          const swapped = agg.result(agg.merge(fold(agg, b), fold(agg, a)));
          expect(merged).toEqual(whole);
          expect(swapped).toEqual(whole);
        }),
        { numRuns: 200 },
      );
    });
  }

  it('parses aggregate calls and rejects bad ones with clear messages', () => {
    expect(parseAggregate('count()')).toEqual({ op: 'count', input: undefined, limit: undefined });
    expect(parseAggregate('sum(event.a + f(1, 2))')).toEqual({
      op: 'sum',
      input: 'event.a + f(1, 2)',
      limit: undefined,
    });
    expect(parseAggregate('collect(event.xs[0], 7)')).toEqual({ op: 'collect', input: 'event.xs[0]', limit: 7 });
    expect(parseAggregate('collect("a,b")').limit).toBe(100);
    expect(() => parseAggregate('median(event.x)')).toThrow('unknown aggregate `median`');
    expect(() => parseAggregate('count(event.x)')).toThrow('count() takes no argument');
    expect(() => parseAggregate('collect(event.x, 0)')).toThrow(
      'Expected the collect limit to be an integer from 1 to 10000, got 0',
    );
    expect(() => parseAggregate('sum')).toThrow('expected an aggregate call');
  });
});
