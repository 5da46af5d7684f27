/**
 * Issue 12, expressions: hostile patterns and hostile field names. Each case here failed before
 * (a hang, or `Unsupported type: object`).
 */
import { describe, expect, it } from 'vitest';
import { ExpressionError } from '../src/errors.js';
import { compileCel } from '../src/expression.js';
import { expressionErrorOf as thrown } from './helpers.js';

describe('regular expressions run on RE2 (linear time)', () => {
  it('evaluates a catastrophic-backtracking pattern over a hostile string at once', () => {
    // With a backtracking engine, 40 a's and a "!" take about 2^40 steps (hours).
    const f = compileCel('event.s.matches("^(a+)+$")');
    expect(f({ s: `${'a'.repeat(40)}!` })).toBe(false);
    expect(f({ s: 'a'.repeat(40) })).toBe(true);
    // Also for a pattern that comes from the record, and a much longer input.
    const g = compileCel('event.s.matches(event.p)');
    expect(g({ s: `${'x'.repeat(100_000)}!`, p: '^(x+x+)+y$' })).toBe(false);
    expect(compileCel('matches(event.s, "^(a|aa)+$")')({ s: `${'a'.repeat(5000)}b` })).toBe(false);
  });

  it('keeps CEL search semantics: unanchored, RE2 syntax', () => {
    expect(compileCel('"abc".matches("b")')({})).toBe(true);
    expect(compileCel('"abc".matches("^b")')({})).toBe(false);
    expect(compileCel('event.s.matches("(?i)^HELLO\\\\s+\\\\w+$")')({ s: 'hello world' })).toBe(true);
    expect(compileCel('event.s.matches("^\\\\p{Greek}+$")')({ s: 'αβγ' })).toBe(true);
    expect(compileCel('event.xs.exists(x, x.matches("^a"))')({ xs: ['b', 'ab', 'ax'] })).toBe(true);
  });

  it('refuses an invalid literal pattern at compilation, with its offset', () => {
    const e = thrown(() => compileCel('event.s.matches("(")'));
    expect(e.message).toContain('invalid regular expression "("');
    expect(e.message).toContain('missing closing )');
    expect(e.offset).toBe(16);
    // Backreferences and lookaround are not RE2.
    expect(thrown(() => compileCel('event.s.matches("(a)\\\\1")')).message).toContain('invalid escape sequence');
    expect(thrown(() => compileCel('event.s.matches("a(?=b)")')).message).toContain('invalid regular expression');
    expect(thrown(() => compileCel('matches(event.s, "[")')).message).toContain('invalid regular expression "["');
  });

  it('fails the record (not the process) for an invalid pattern taken from the record', () => {
    const f = compileCel('event.s.matches(event.p)');
    const e = thrown(() => f({ s: 'a', p: '(' }));
    expect(e.message).toContain('invalid regular expression "("');
    expect(f({ s: 'a', p: 'a' })).toBe(true);
    expect(thrown(() => f({ s: 'a', p: 'x'.repeat(5000) })).message).toContain('longer than');
  });

  it('names the function `matches` in its errors', () => {
    const e = thrown(() => compileCel('event.s.matches(1)')({ s: 'a' }));
    expect(e.message).toContain('matches');
    expect(e.message).not.toContain('re2');
  });
});

describe('records with fields named like JavaScript internals', () => {
  const names = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'];
  /** A record as JSON.parse builds it (so `__proto__` is an own field, as it is from a stream). */
  const record = (name: string, value: unknown) =>
    JSON.parse(
      `{"a": 3, ${JSON.stringify(name)}: ${JSON.stringify(value)}, "n": {"b": 4, ${JSON.stringify(name)}: ${JSON.stringify(value)}}, "l": [{"c": 5, ${JSON.stringify(name)}: 1}]}`,
    );

  for (const name of names) {
    it(`evaluates expressions on a record with a field \`${name}\` (top level and nested)`, () => {
      for (const value of ['x', 7, { d: 1 }, null, [1]]) {
        const r = record(name, value);
        expect(compileCel('event.a == 3')(r)).toBe(true);
        expect(compileCel('event.a + event.n.b')(r)).toBe(7);
        expect(compileCel('event.l[0].c')(r)).toBe(5);
        expect(compileCel('size(event.n)')(r)).toBe(2);
        expect(compileCel('"a" in event')(r)).toBe(true);
        expect(compileCel(`${JSON.stringify(name)} in event.n`)(r)).toBe(true);
        // Reading the field itself gives what the record holds.
        expect(compileCel(`event[${JSON.stringify(name)}]`)(r)).toEqual(value);
        expect(compileCel(`event.n[${JSON.stringify(name)}]`)(r)).toEqual(value);
        expect(compileCel(`event.l[0][${JSON.stringify(name)}]`)(r)).toBe(1);
        expect(compileCel(`has(event.n.${name})`)(r)).toBe(true);
        expect(compileCel(`event.${name} == ${JSON.stringify(value)}`)(r)).toBe(true);
        // Returning the record (or part of it) gives back plain data, field included.
        const back = compileCel('event')(r) as Record<string, unknown>;
        expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
        expect(JSON.parse(JSON.stringify(back))).toEqual(JSON.parse(JSON.stringify(r)));
        expect(Object.getOwnPropertyNames(back)).toContain(name);
        const n = compileCel('event.n')(r) as Record<string, unknown>;
        expect(Object.getPrototypeOf(n)).toBe(Object.prototype);
        expect(Object.hasOwn(n, name)).toBe(true);
        expect(n[name]).toEqual(value);
        // The record itself is not changed.
        expect(r).toEqual(record(name, value));
      }
    });
  }

  it('reads such objects however the expression reaches them', () => {
    const r = JSON.parse(
      '{"k": "n", "n": {"a": 1, "constructor": "x"}, "l": [{"a": 1, "constructor": {"b": 2}}, {"a": 2}], "deep": {"x": [{"y": {"constructor": 0, "z": 9}}]}}',
    );
    // Optional selection swallows errors: before, this silently gave the default.
    expect(compileCel('event.n.?a.orValue(7)')(r)).toBe(1);
    expect(compileCel('event.?n.?a.orValue(7)')(r)).toBe(1);
    expect(compileCel('event[event.k].a')(r)).toBe(1);
    expect(compileCel('event.l.exists(x, x.a == 2)')(r)).toBe(true);
    expect(compileCel('event.l.filter(x, has(x.constructor)).map(x, x.constructor.b)')(r)).toEqual([2]);
    expect(compileCel('event.l[0].constructor.b')(r)).toBe(2);
    expect(compileCel('event.deep.x[0].y.z')(r)).toBe(9);
    expect(compileCel('event["deep"]["x"][0]["y"]["constructor"]')(r)).toBe(0);
    expect(compileCel('event.n == event.n')(r)).toBe(true);
    expect(compileCel('event.n == {"a": 1}')(r)).toBe(false); // it has two fields
    expect(compileCel('size(event.deep.x[0].y)')(r)).toBe(2);
    expect(compileCel('type(event.n) == map')(r)).toBe(true);
    expect(compileCel('[event.n][0].a')(r)).toBe(1);
    expect(compileCel('event.k')(r)).toBe('n'); // parts not reached are not looked at
  });

  it('does not reach JavaScript through fields that are absent', () => {
    for (const name of names) {
      expect(() => compileCel(`event.${name}`)({ a: 1 })).toThrow(`No such key: ${name}`);
      expect(compileCel(`has(event.${name})`)({ a: 1 })).toBe(false);
    }
  });

  it('passes ordinary records through unchanged', () => {
    const r = { a: 1, n: { b: [1, { c: 2 }] } };
    expect(compileCel('event')(r)).toBe(r);
    expect(compileCel('event.n')(r)).toBe(r.n);
  });

  it('dead-letters (ExpressionError), not crashes, on a record nested too deeply', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = { x: deep, constructor: 1 };
    expect(() => compileCel('event.a == 1')(deep)).toThrow(ExpressionError);
  });
});

describe('identifiers and functions are checked at compilation', () => {
  for (const text of [
    'process.env.HOME != ""',
    'globalThis.x',
    'require("fs")',
    'window',
    'this',
    'x.y == 1',
    'event.items.filter(i, j > 1)',
  ]) {
    it(`refuses ${text}`, () => {
      const e = thrown(() => compileCel(text));
      expect(e.message).toMatch(/Unknown variable|does not parse|no matching overload/);
    });
  }

  it('gives the offset of an unknown identifier', () => {
    const e = thrown(() => compileCel('event.a == 1 && process.env.HOME != ""'));
    expect(e.message).toContain('Unknown variable: process');
    expect(e.offset).toBe(16);
  });

  it('refuses unknown functions and expressions that fail for every record', () => {
    expect(thrown(() => compileCel('event.s.exec("x")')).message).toContain(
      "no matching overload for 'dyn.exec(string)'",
    );
    expect(thrown(() => compileCel('eval("1")')).message).toContain('no matching overload');
    expect(thrown(() => compileCel('"x" + 1')).message).toContain('no such overload');
  });

  it('accepts `event` and the variables of macros', () => {
    expect(compileCel('event.items.filter(i, i.qty > 1).map(i, i.sku)')({ items: [{ qty: 2, sku: 'a' }] })).toEqual([
      'a',
    ]);
    expect(compileCel('event.m.all(k, event.m[k] > 0)')({ m: { a: 1 } })).toBe(true);
  });
});
