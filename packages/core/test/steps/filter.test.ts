import { fileSource, pipeline, testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from '../helpers.js';

type Ev = { type: string; n: number };
const events: Ev[] = Array.from({ length: 50 }, (_, i) => ({ type: i % 3 === 0 ? 'click' : 'view', n: i }));

describe('filter', () => {
  const cel = stepsPipeline('  - filter: event.type == "click"');

  it('passes nothing through for empty input', async () => {
    const run = await testPipeline(cel, []);
    expect(run.output).toEqual([]);
    expect(run.results.map((r) => r.phase)).toEqual(['final']); // only the end-of-input flush
  });

  it('keeps one matching record and drops one that does not', async () => {
    expect((await testPipeline(cel, [{ type: 'click', n: 1 }])).output).toEqual([{ type: 'click', n: 1 }]);
    const dropped = await testPipeline(cel, [{ type: 'view', n: 1 }]);
    expect(dropped.output).toEqual([]);
    expect(dropped.results[0]?.filtered).toBe(1);
    expect(dropped.deadLetters).toEqual([]);
  });

  it('keeps exactly the matching records of many, in order, across batches', async () => {
    const run = await testPipeline(cel, events, { batchSize: 7 });
    expect(run.output).toEqual(events.filter((e) => e.type === 'click'));
    expect(run.results.reduce((n, r) => n + r.filtered, 0)).toBe(events.filter((e) => e.type !== 'click').length);
  });

  it('routes a record whose predicate throws to the dead-letter output and goes on', async () => {
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .filter((e) => {
        if (e.n === 3) throw new Error('boom at 3');
        return e.n % 2 === 1;
      })
      .build();
    const run = await testPipeline(p, events.slice(0, 6));
    expect(run.output.map((e) => (e as Ev).n)).toEqual([1, 5]);
    expect(run.deadLetters).toHaveLength(1);
    expect(run.deadLetters[0]).toMatchObject({
      reason: 'function',
      step: 'filter-0',
      error: 'boom at 3',
      shardId: 'shard-0',
      sequenceNumber: '4',
      value: events[3],
    });
  });

  it('dead-letters a CEL error (missing field) and a non-boolean result', async () => {
    const p = stepsPipeline('  - filter: event.n > 2\n  - filter: event.n');
    const run = await testPipeline(p, [{ n: 5 }, { m: 1 }, { n: 1 }]);
    expect(run.output).toEqual([]);
    expect(run.deadLetters.map((d) => [d.step, d.reason, d.sequenceNumber])).toEqual([
      ['filter-1', 'expression', '1'],
      ['filter-0', 'expression', '2'],
    ]);
    expect(run.deadLetters[0]?.error).toContain('expected a boolean');
    expect(run.deadLetters[1]?.error).toContain('No such key: n');
  });
});
