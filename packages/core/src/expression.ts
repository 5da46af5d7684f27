/**
 * Expressions in YAML pipelines are CEL (Common Expression Language): non-Turing-complete,
 * side-effect free, compiled once per pipeline. The current record is `event`. User text is
 * never passed to `eval`, `new Function` or `vm`.
 *
 * JSON numbers reach CEL as doubles, while CEL literals such as `2` are ints; mixed arithmetic
 * (`event.amount * 2`, `event.n % 2`) is therefore defined here and yields a double. Results are normalised back
 * to plain JSON values: CEL ints become numbers (strings when beyond 2^53).
 */
import { Environment } from '@marcbachmann/cel-js';
import { ExpressionError } from './errors.js';

/** A compiled expression: the record's value in, a plain value out. */
export type CompiledExpression = (event: unknown) => unknown;

/** CEL or a reference to a function exported by a module (`./handlers.js#isClick`). */
export type ExpressionSource = string | { fn: string };

const MAX_EXPRESSION_LENGTH = 4096;

function createEnvironment(): Environment {
  const env = new Environment({
    homogeneousAggregateLiterals: false,
    enableOptionalTypes: true,
    limits: { maxAstNodes: 1000, maxDepth: 32, maxListElements: 1000, maxMapEntries: 1000, maxCallArguments: 16 },
  }).registerVariable('event', 'dyn');
  const ops: Record<string, (a: number, b: number) => number> = {
    '+': (a, b) => a + b,
    '-': (a, b) => a - b,
    '*': (a, b) => a * b,
    '/': (a, b) => a / b,
    '%': (a, b) => a % b,
  };
  for (const [op, f] of Object.entries(ops)) {
    env.registerOperator(`double ${op} int`, (a: number, b: bigint) => f(a, Number(b)));
    env.registerOperator(`int ${op} double`, (a: bigint, b: number) => f(Number(a), b));
  }
  // CEL defines % for ints only; JSON numbers are doubles, so give them JavaScript's remainder.
  env.registerOperator('double % double', (a: number, b: number) => a % b);
  return env;
}

let shared: Environment | undefined;
function environment(): Environment {
  shared ??= createEnvironment();
  return shared;
}

interface CelFailure {
  summary?: string;
  range?: { start: number; end: number };
  message: string;
}

/** Parses CEL text; throws {@link ExpressionError} with the offset of the problem. */
export function compileCel(text: string): CompiledExpression {
  if (text.length > MAX_EXPRESSION_LENGTH) {
    throw new ExpressionError(`expression is longer than ${MAX_EXPRESSION_LENGTH} characters`, 0);
  }
  if (text.trim() === '') throw new ExpressionError('expression is empty', 0);
  let program: (ctx: Record<string, unknown>) => unknown;
  try {
    program = environment().parse(text) as unknown as (ctx: Record<string, unknown>) => unknown;
  } catch (err) {
    const e = err as CelFailure;
    throw new ExpressionError(`expression does not parse: ${e.summary ?? e.message}`, e.range?.start, {
      cause: err,
    });
  }
  // One context object per compiled expression: evaluation is synchronous, so reuse is safe.
  const ctx: Record<string, unknown> = { event: undefined };
  return (event) => {
    ctx.event = event;
    try {
      return toPlain(program(ctx));
    } catch (err) {
      const e = err as CelFailure;
      throw new ExpressionError(`${e.summary ?? e.message} in \`${text}\``, e.range?.start, { cause: err });
    } finally {
      ctx.event = undefined;
    }
  };
}

/** Converts CEL results (bigint, Map, Optional) into plain JSON-friendly values. */
export function toPlain(v: unknown): unknown {
  switch (typeof v) {
    case 'bigint':
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
    case 'object': {
      if (v === null || v instanceof Date || v instanceof Uint8Array) return v;
      if (Array.isArray(v)) {
        let out: unknown[] | undefined;
        for (let i = 0; i < v.length; i++) {
          const p = toPlain(v[i]);
          if (p !== v[i]) {
            out ??= v.slice();
            out[i] = p;
          }
        }
        return out ?? v;
      }
      if (v instanceof Map) {
        const o: Record<string, unknown> = {};
        for (const [k, x] of v) o[String(k)] = toPlain(x);
        return o;
      }
      const o = v as Record<string, unknown>;
      let out: Record<string, unknown> | undefined;
      for (const k of Object.keys(o)) {
        const p = toPlain(o[k]);
        if (p !== o[k]) {
          out ??= { ...o };
          out[k] = p;
        }
      }
      return out ?? v;
    }
    default:
      return v;
  }
}

/** Resolves user functions named in a pipeline (`module#export` or `#inline-name`). */
export type FunctionResolver = (ref: string) => ((...args: never[]) => unknown) | undefined;

/**
 * Compiles an expression source: CEL text, or `{ fn }` naming a bound function.
 * Throws {@link ExpressionError} when it cannot.
 */
export function compileExpression(source: ExpressionSource, resolve: FunctionResolver): CompiledExpression {
  if (typeof source === 'string') return compileCel(source);
  const f = resolve(source.fn);
  if (typeof f !== 'function') {
    throw new ExpressionError(
      `function \`${source.fn}\` is not defined (no such export, or not a function)`,
      undefined,
    );
  }
  return f as CompiledExpression;
}
