import { avg, collect, count, fileSource, max, type PipelineBuilder, pipeline, sum } from '@tributary/core';
import { describe, expectTypeOf, it } from 'vitest';

type Click = { user: string; amount: number; ts: number; page: string };

describe('typed window', () => {
  it('infers the window output type from the aggregates and key', () => {
    const b = pipeline('w')
      .source(fileSource<Click>({ path: 'x' }))
      .window({
        key: (e) => e.user,
        tumbling: '1m',
        aggregate: {
          clicks: count(),
          revenue: sum((e) => e.amount),
          biggest: max((e) => e.amount),
          pages: collect((e) => e.page, 5),
          mean: avg('event.amount'),
        },
      });
    expectTypeOf(b).toEqualTypeOf<
      PipelineBuilder<
        { key: string; windowStart: number; windowEnd: number } & {
          clicks: number;
          revenue: number;
          biggest: number | null;
          pages: string[];
          mean: number | null;
        }
      >
    >();
    pipeline('w')
      .source(fileSource<Click>({ path: 'x' }))
      // @ts-expect-error `cost` is not a field of Click
      .window({ tumbling: '1m', aggregate: { s: sum((e) => e.cost) } });
  });
});
