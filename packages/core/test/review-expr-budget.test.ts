/**
 * Review of issue 12: nested comprehensions cost the product of their lists' sizes, and CEL
 * evaluation is synchronous, so a small record could block a run (and a Lambda shard) for
 * minutes. Evaluation is metered; a record over the limit fails with an ExpressionError
 * (dead-lettered as `expression`). Each case here took seconds to minutes before.
 */
import { testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { compileCel, MAX_COMPREHENSION_STEPS } from '../src/expression.js';
import { stepsPipeline, expressionErrorOf as thrown } from './helpers.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const limit = `more than ${MAX_COMPREHENSION_STEPS} steps`;

describe('comprehensions are metered per record', () => {
  it('fails nested comprehensions over a small record instead of running 10^9 steps', () => {
    const a = range(1000);
    for (const text of [
      'event.a.all(x, event.a.all(y, event.a.all(z, x + y + z >= 0)))',
      'event.a.exists(x, event.a.exists(y, event.a.exists(z, x + y + z < 0)))',
      'event.a.filter(x, event.a.exists_one(y, event.a.filter(z, z > x).size() > 0)).size() > 0',
      'cel.bind(v, event.a, v.all(x, v.all(y, v.all(z, x + y + z >= 0))))',
      'size(event.a.map(x, event.a.map(y, event.a.map(z, event.s)))) > 0',
    ]) {
      const e = thrown(() => compileCel(text)({ a, s: 'x' }));
      expect(e.message).toContain(limit);
      expect(e.message).toContain(text);
    }
  });

  it('fails the record even where CEL absorbs errors (`|| true`)', () => {
    const f = compileCel('event.a.all(x, event.a.all(y, event.a.all(z, x + y + z >= 0))) || true');
    expect(thrown(() => f({ a: range(400) })).message).toContain(limit);
    expect(f({ a: range(10) })).toBe(true);
  });

  it('counts work linear in a value inside a step: map iteration and `in` over a list', () => {
    const m = Object.fromEntries(range(20_000).map((i) => [`k${i}`, i]));
    expect(thrown(() => compileCel('event.m.all(k, event.m.exists(j, true))')({ m })).message).toContain(limit);
    const a = range(20_000);
    expect(thrown(() => compileCel('event.a.all(x, x in event.a)')({ a })).message).toContain(limit);
    // Once per record (outside any loop) they are not counted.
    expect(compileCel('19999 in event.a && event.m.exists(k, true)')({ a, m })).toBe(true);
    expect(compileCel('event.a.all(x, x in [1, 2]) || true')({ a })).toBe(true);
  });

  it('allows up to the limit, and each record starts afresh', () => {
    const f = compileCel('event.a.all(x, x >= 0)');
    expect(f({ a: range(MAX_COMPREHENSION_STEPS) })).toBe(true);
    expect(thrown(() => f({ a: range(MAX_COMPREHENSION_STEPS + 1) })).message).toContain(limit);
    expect(f({ a: range(MAX_COMPREHENSION_STEPS) })).toBe(true);
    // Two nested comprehensions over 300 items each (90,000 steps) are fine.
    const g = compileCel('event.a.all(x, event.a.exists(y, y == x))');
    expect(g({ a: range(300) })).toBe(true);
    expect(compileCel('event.a.map(x, x * 2)')({ a: [1, 2] })).toEqual([2, 4]);
  });

  it('dead-letters such a record as `expression` and handles the rest', async () => {
    const p = stepsPipeline(`  - filter: 'event.a.all(x, event.a.all(y, event.a.all(z, x + y + z >= 0)))'\n`);
    const run = await testPipeline(p, [{ a: range(400) }, { a: [1, 2] }]);
    expect(run.output).toEqual([{ a: [1, 2] }]);
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason])).toEqual([['1', 'expression']]);
    expect(run.deadLetters[0]?.error).toContain(limit);
  });
});
