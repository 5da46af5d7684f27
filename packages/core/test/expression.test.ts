import { ExpressionError } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { compileCel, toPlain } from '../src/expression.js';

describe('CEL expressions', () => {
  it('mixes JSON numbers (doubles) with CEL int literals', () => {
    expect(compileCel('event.amount * 2')({ amount: 2.5 })).toBe(5);
    expect(compileCel('event.n + 1')({ n: 41 })).toBe(42);
    expect(compileCel('1 + event.n')({ n: 0.5 })).toBe(1.5);
    expect(compileCel('event.n > 100')({ n: 101 })).toBe(true);
    expect(compileCel('event.n == 5')({ n: 5 })).toBe(true);
  });

  it('returns plain JSON values: ints as numbers, large ints as strings, maps as objects', () => {
    expect(compileCel('size(event.xs)')({ xs: [1, 2] })).toBe(2);
    expect(compileCel('9007199254740993')({})).toBe('9007199254740993');
    expect(compileCel('{"a": [1, 2]}')({})).toEqual({ a: [1, 2] });
    expect(toPlain(new Map([['k', 1n]]))).toEqual({ k: 1 });
  });

  it('supports macros, has() and optional chaining', () => {
    expect(
      compileCel('event.items.filter(i, i.qty > 1).map(i, i.sku)')({
        items: [
          { sku: 'a', qty: 2 },
          { sku: 'b', qty: 1 },
        ],
      }),
    ).toEqual(['a']);
    expect(compileCel('has(event.x) ? event.x : "none"')({})).toBe('none');
    expect(compileCel('event.?x.orValue(7)')({})).toBe(7);
  });

  it('reports parse errors with their offset', () => {
    try {
      compileCel('event.a && ) ');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ExpressionError);
      expect((err as ExpressionError).offset).toBe(11);
    }
    expect(() => compileCel('')).toThrow('expression is empty');
    expect(() => compileCel('x'.repeat(5000))).toThrow('longer than');
  });

  it('throws an ExpressionError for a missing field at evaluation', () => {
    const f = compileCel('event.a.b');
    expect(() => f({})).toThrow(ExpressionError);
    expect(() => f({})).toThrow('No such key: a');
  });

  it('cannot reach JavaScript: no globals, prototypes or constructors', () => {
    for (const text of [
      'process.exit(1)',
      'globalThis',
      'require("fs")',
      'event.constructor',
      'event.__proto__',
      'this',
    ]) {
      let threw = false;
      try {
        const v = compileCel(text)({ a: 1 });
        expect(typeof v).not.toBe('function');
        expect(v).not.toBe(Object.prototype);
      } catch {
        threw = true;
      }
      expect(threw).toBe(true);
    }
  });

  it('bounds expression size and depth', () => {
    const deep = `${'('.repeat(100)}1${')'.repeat(100)}`;
    expect(() => compileCel(deep)).toThrow(ExpressionError);
  });
});
