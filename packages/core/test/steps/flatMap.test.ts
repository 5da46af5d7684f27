import { fileSource, pipeline, testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from '../helpers.js';

type Order = { id: number; items: { sku: string; qty: number }[] };
const orders: Order[] = Array.from({ length: 30 }, (_, i) => ({
  id: i,
  items: Array.from({ length: i % 4 }, (_, j) => ({ sku: `s${j}`, qty: i + j })),
}));

describe('flatMap', () => {
  const p = stepsPipeline('  - flatMap: event.items');

  it('emits nothing for empty input and for an empty list', async () => {
    expect((await testPipeline(p, [])).output).toEqual([]);
    expect((await testPipeline(p, [{ items: [] }])).output).toEqual([]);
  });

  it('emits each element of one record, keeping its shard and sequence number', async () => {
    const run = await testPipeline(p, [{ items: [1, 2, 3] }]);
    expect(run.output).toEqual([1, 2, 3]);
  });

  it('flattens many records in order', async () => {
    const run = await testPipeline(p, orders, { batchSize: 4 });
    expect(run.output).toEqual(orders.flatMap((o) => o.items));
    const seqs = run.results.flatMap((r) => (r.tail ?? []).map((e) => e.sequenceNumber));
    expect(seqs).toEqual(orders.flatMap((o, i) => o.items.map(() => String(i + 1))));
  });

  it('dead-letters a record whose expression yields no list, or whose function throws', async () => {
    const run = await testPipeline(p, [{ items: 5 }, { items: [1] }, {}]);
    expect(run.output).toEqual([1]);
    expect(run.deadLetters.map((d) => [d.reason, d.sequenceNumber])).toEqual([
      ['expression', '1'],
      ['expression', '3'],
    ]);
    expect(run.deadLetters[0]?.error).toContain('expected a list');

    const fn = pipeline('t')
      .source(fileSource<Order>({ path: 'x' }))
      .flatMap((o) => {
        if (o.id === 2) throw new Error('bad order');
        return o.items;
      })
      .build();
    const r2 = await testPipeline(fn, orders.slice(0, 4));
    expect(r2.output).toEqual([orders[1], orders[3]].flatMap((o) => o?.items ?? []));
    expect(r2.deadLetters).toMatchObject([
      { reason: 'function', step: 'flatMap-0', error: 'bad order', sequenceNumber: '3' },
    ]);
  });
});
