import { fileSource, pipeline, testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from '../helpers.js';

type Ev = { user: string; amount: number; nested?: { a: number } };
const events: Ev[] = Array.from({ length: 40 }, (_, i) => ({ user: `u${i % 4}`, amount: i * 1.5, nested: { a: i } }));

describe('map', () => {
  const template = stepsPipeline(
    '  - map: { who: event.user, double: event.amount * 2, plusOne: event.nested.a + 1, fixed: 7, flag: true, inner: { a: event.nested.a } }',
  );

  it('emits nothing for empty input', async () => {
    expect((await testPipeline(template, [])).output).toEqual([]);
  });

  it('builds one record from a template of expressions, literals and nested templates', async () => {
    const run = await testPipeline(template, [{ user: 'a', amount: 2.5, nested: { a: 4 } }]);
    expect(run.output).toEqual([{ who: 'a', double: 5, plusOne: 5, fixed: 7, flag: true, inner: { a: 4 } }]);
  });

  it('maps many records, matching a plain-JS recomputation', async () => {
    const run = await testPipeline(template, events, { batchSize: 9 });
    expect(run.output).toEqual(
      events.map((e) => ({
        who: e.user,
        double: e.amount * 2,
        plusOne: (e.nested?.a ?? 0) + 1,
        fixed: 7,
        flag: true,
        inner: { a: e.nested?.a },
      })),
    );
  });

  it('accepts a whole-record CEL expression and normalises CEL ints to numbers', async () => {
    const p = stepsPipeline('  - map: \'{"n": size(event.xs), "first": event.xs[0]}\'');
    const run = await testPipeline(p, [{ xs: [3, 4, 5] }]);
    expect(run.output).toEqual([{ n: 3, first: 3 }]);
    expect(typeof (run.output[0] as { n: unknown }).n).toBe('number');
  });

  it('routes records whose function throws to the dead-letter output; the rest go on', async () => {
    const p = pipeline('t')
      .source(fileSource<Ev>({ path: 'x' }))
      .map((e) => {
        if (e.user === 'u2') throw new TypeError('no u2');
        return { u: e.user };
      })
      .build();
    const run = await testPipeline(p, events.slice(0, 8));
    expect(run.output).toEqual(
      events
        .slice(0, 8)
        .filter((e) => e.user !== 'u2')
        .map((e) => ({ u: e.user })),
    );
    expect(run.deadLetters.map((d) => [d.step, d.reason, d.sequenceNumber, d.error])).toEqual([
      ['map-0', 'function', '3', 'no u2'],
      ['map-0', 'function', '7', 'no u2'],
    ]);
  });

  it('does not let a later map change what an earlier sink received', async () => {
    const { MemorySink } = await import('@tributary/core');
    const early = new MemorySink();
    const p = pipeline('t')
      .source(fileSource<{ a: number }>({ path: 'x' }))
      .sink(early)
      .map((e) => ({ a: e.a + 100 }))
      .build();
    const run = await testPipeline(p, [{ a: 1 }, { a: 2 }]);
    expect(early.values).toEqual([{ a: 1 }, { a: 2 }]);
    expect(run.output).toEqual([{ a: 101 }, { a: 102 }]);
  });
});
