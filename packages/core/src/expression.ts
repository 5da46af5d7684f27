/**
 * Expressions in YAML pipelines are CEL (Common Expression Language): non-Turing-complete,
 * side-effect free, compiled once per pipeline. The current record is `event`. User text is
 * never passed to `eval`, `new Function` or `vm`.
 *
 * Compilation parses and type-checks: an unknown identifier (`process`, `globalThis`; only
 * `event` and the variables of macros such as `filter(x, …)` exist), an unknown function, or a
 * regular-expression literal that RE2 refuses is an error before any record is read.
 * Regular expressions (`matches`) run on RE2, in linear time (see `regex.ts`).
 *
 * Evaluation is bounded: the iterations of comprehension macros (`all`, `exists`, `exists_one`,
 * `map`, `filter`) are counted per evaluation, and a record that needs more than
 * {@link MAX_COMPREHENSION_STEPS} fails (nested comprehensions would otherwise cost the product
 * of the list sizes: three nested `all` over 1,000 items is 10^9 steps, minutes of blocked CPU).
 * Everything else an expression does is linear in its size and the record's.
 *
 * Records are plain JSON: a field may be called `constructor`, `__proto__`, `toString`, …; such
 * objects reach CEL as maps, so every field reads as written and none reaches JavaScript.
 *
 * JSON numbers reach CEL as doubles, while CEL literals such as `2` are ints; mixed arithmetic
 * (`event.amount * 2`, `event.n % 2`) is therefore defined here and yields a double. Results are normalised back
 * to plain JSON values: CEL ints become numbers (strings when beyond 2^53).
 */
import { type ASTNode, Environment } from '@marcbachmann/cel-js';
import { BudgetExceeded, ExpressionError } from './errors.js';
import { regexMatches, regexProblem } from './regex.js';

/** A compiled expression: the record's value in, a plain value out. */
export type CompiledExpression = (event: unknown) => unknown;

/** CEL or a reference to a function exported by a module (`./handlers.js#isClick`). */
export type ExpressionSource = string | { fn: string };

const MAX_EXPRESSION_LENGTH = 4096;

/**
 * Most comprehension iterations one evaluation may take (all comprehensions of the expression
 * together): some milliseconds of CPU. A filter over a 10,000-item list, or two nested ones over
 * 300 items each, stays below it.
 */
export const MAX_COMPREHENSION_STEPS = 100_000;

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
  // The library's `string.matches` backtracks (JavaScript RegExp) and cannot be replaced, so
  // calls to it are renamed to this RE2 overload at compilation (see `useRe2`).
  env.registerFunction(`string.${RE2_MATCHES}(string): bool`, regexMatches);
  env.registerFunction('matches(string, string): bool', regexMatches);
  return env;
}

/** Internal name of the RE2 `matches` (CEL identifiers may not be reserved, so it is unlikely). */
const RE2_MATCHES = '__tributary_re2_matches';

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

/** The library's messages name the RE2 overload by its internal name; users wrote `matches`. */
function celMessage(e: CelFailure): string {
  return (e.summary ?? e.message).split(RE2_MATCHES).join('matches');
}

/**
 * Routes every `x.matches(re)` of a parsed expression to the RE2 overload, and checks each
 * pattern written as a literal. Runs before type-checking, which binds the calls.
 */
function useRe2(root: ASTNode): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (const x of v) if (typeof x === 'object' && x !== null) stack.push(x);
      continue;
    }
    if (typeof v !== 'object' || v === null || !('op' in v)) continue;
    const node = v as ASTNode;
    if (node.op === 'value' || node.op === 'id') continue;
    let pattern: ASTNode | undefined;
    if (node.op === 'rcall' && node.args[0] === 'matches' && node.args[2].length === 1) {
      // The AST is the library's documented structure; the call's name is the first argument.
      (node.args as unknown as unknown[])[0] = RE2_MATCHES;
      pattern = node.args[2][0];
    } else if (node.op === 'call' && node.args[0] === 'matches' && node.args[1].length === 2) {
      pattern = node.args[1][1];
    }
    if (pattern?.op === 'value' && typeof pattern.args === 'string') {
      const problem = regexProblem(pattern.args);
      if (problem !== undefined) throw new ExpressionError(problem, pattern.start);
    }
    stack.push(node.args);
  }
}

/** Parses and type-checks CEL text; throws {@link ExpressionError} with the offset of the problem. */
export function compileCel(text: string): CompiledExpression {
  if (text.length > MAX_EXPRESSION_LENGTH) {
    throw new ExpressionError(`expression is longer than ${MAX_EXPRESSION_LENGTH} characters`, 0);
  }
  if (text.trim() === '') throw new ExpressionError('expression is empty', 0);
  let parsed: ReturnType<Environment['parse']>;
  try {
    parsed = environment().parse(text);
  } catch (err) {
    const e = err as CelFailure;
    throw new ExpressionError(`expression does not parse: ${celMessage(e)}`, e.range?.start, { cause: err });
  }
  useRe2(parsed.ast);
  // Type-checking finds unknown identifiers and functions, and anything else that would fail for
  // every record; the checked program then evaluates without re-checking per record.
  const checked = parsed.check();
  if (!checked.valid) {
    const e = checked.error as unknown as CelFailure;
    throw new ExpressionError(`expression is invalid: ${celMessage(e)}`, e.range?.start, { cause: e });
  }
  const program = parsed as unknown as (ctx: Record<string, unknown>) => unknown;
  const reach = eventPaths(parsed.ast);
  // One context object and one step meter per compiled expression: evaluation is synchronous,
  // so reuse is safe.
  const ctx: Record<string, unknown> = { event: undefined };
  const meter: StepMeter = { steps: 0 };
  meterComprehensions(parsed.ast, meter);
  return (event) => {
    try {
      ctx.event = typeof event === 'object' && event !== null && reachesHidden(event, reach) ? celValue(event) : event;
      meter.steps = 0;
      const result = program(ctx);
      // `||`, `&&` and the quantifiers absorb errors (`x || true` is true), so look again.
      if (meter.steps > MAX_COMPREHENSION_STEPS) throw new BudgetExceeded();
      return toPlain(result);
    } catch (err) {
      if (err instanceof BudgetExceeded || meter.steps > MAX_COMPREHENSION_STEPS) {
        throw new ExpressionError(
          `expression needs more than ${MAX_COMPREHENSION_STEPS} steps for this record (the limit: one per comprehension iteration and per item a map iteration or \`in\` inside one reads) in \`${text}\``,
          undefined,
          { cause: err },
        );
      }
      if (err instanceof RangeError) {
        throw new ExpressionError(`record is nested too deeply to evaluate \`${text}\``, undefined, { cause: err });
      }
      const e = err as CelFailure;
      throw new ExpressionError(`${celMessage(e)} in \`${text}\``, e.range?.start, { cause: err });
    } finally {
      ctx.event = undefined;
    }
  };
}

interface StepMeter {
  steps: number;
}

/** A comprehension node's arguments, as the library's macros build them (`macros.js`). */
interface ComprehensionArgs {
  iterable: unknown;
  init: unknown;
  step: unknown;
  condition?: (accu: unknown) => boolean;
}

/**
 * Counts the work of every comprehension in a checked expression. The library's macros (`all`,
 * `exists`, `map`, …) become `comprehension` nodes whose loop calls `condition` before each step
 * (`operators.js`: `iterateLoop`, `iterateQuantifier`); the meter wraps it, one step per
 * iteration. It throws outside the step's error handling, so a loop stops at once, and every
 * enclosing loop stops at its next iteration.
 *
 * Inside a step, work that is linear in a value is counted too, at one step per item: iterating
 * a map (its keys are copied on every entry, even when the loop stops after one) and `x in list`
 * (a scan). Outside any step these happen once per record and are not counted.
 */
function meterComprehensions(root: ASTNode, meter: StepMeter): void {
  const charge = (n: number): void => {
    meter.steps += n;
    if (meter.steps > MAX_COMPREHENSION_STEPS) throw new BudgetExceeded();
  };
  const seen = new Set<object>();
  const stack: [unknown, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [v, inStep] = stack.pop() as [unknown, boolean];
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    if (Array.isArray(v)) {
      for (const x of v) stack.push([x, inStep]);
      continue;
    }
    if (!('op' in v)) continue;
    const node = v as MeteredNode;
    // A macro call's expansion is its `alternate` (the comprehension); `cel.bind` keeps its parts.
    // (It holds the call's arguments, so they are reached through it, within the step.)
    const meta = node.meta;
    if (meta?.alternate) {
      stack.push([meta.alternate, inStep]);
      continue;
    }
    if (meta?.macro) stack.push([meta.macro.val, inStep], [meta.macro.exp, inStep]);
    if (node.op === 'comprehension') {
      const args = node.args as unknown as ComprehensionArgs;
      const condition = args.condition;
      args.condition = condition
        ? (accu) => {
            charge(1);
            return condition(accu);
          }
        : () => {
            charge(1);
            return true;
          };
      if (inStep)
        afterEvaluate(args.iterable as MeteredNode, (items) => charge(Array.isArray(items) ? 0 : keyCount(items)));
      stack.push([args.iterable, inStep], [args.init, inStep], [args.step, true]);
      continue;
    }
    if (inStep && node.op === 'in') {
      const list = (node.args as unknown as MeteredNode[])[1] as MeteredNode;
      afterEvaluate(list, (items) => charge(Array.isArray(items) ? items.length : 0));
    }
    if (node.op !== 'value' && node.op !== 'id') stack.push([node.args, inStep]);
  }
}

/** An AST node as the evaluator sees it (`parser.js`: `ASTNode`, its private `meta`). */
interface MeteredNode {
  op: string;
  args: unknown;
  meta?: {
    alternate?: MeteredNode;
    macro?: { args?: unknown; val?: unknown; exp?: unknown; evaluate: Evaluate };
    evaluate: Evaluate;
  };
  evaluate: Evaluate;
}
type Evaluate = (this: unknown, ev: unknown, ast: unknown, ctx: unknown) => unknown;

/**
 * Calls `observe` with each value `node` evaluates to. The library's `ASTNode.evaluate` picks
 * the node's evaluator on first use and stores it on the node; this does the same choice now,
 * once (after type-checking, which sets the evaluators), and stores a wrapper instead.
 */
function afterEvaluate(node: MeteredNode, observe: (value: unknown) => void): void {
  const meta = node.meta;
  if (meta === undefined || typeof meta.evaluate !== 'function') return;
  const alternate = meta.alternate;
  const macro = meta.macro;
  const inner: Evaluate = alternate
    ? (ev, _ast, ctx) => alternate.evaluate(ev, alternate, ctx)
    : macro
      ? (ev, _ast, ctx) => macro.evaluate(ev, macro, ctx)
      : meta.evaluate;
  node.evaluate = function (ev, ast, ctx) {
    const value = inner.call(this, ev, ast, ctx);
    if (typeof value === 'object' && value !== null && !(value instanceof Promise)) observe(value);
    return value;
  };
}

/** The number of entries a comprehension over `v` visits (a map's or object's keys). */
function keyCount(v: unknown): number {
  if (v instanceof Map || v instanceof Set) return v.size;
  let n = 0;
  for (const _ in v as object) n++;
  return n;
}

type FieldPath = readonly (string | number)[];

/** The key a field selection reads when it is a literal (`.a`, `["a"]`, `[0]`). */
function literalKey(node: ASTNode): string | number | undefined {
  switch (node.op) {
    case '.':
    case '.?':
      return node.args[1];
    case '[]':
    case '[?]': {
      const i = node.args[1];
      if (i.op !== 'value') return undefined;
      if (typeof i.args === 'string') return i.args;
      if (typeof i.args === 'bigint') return Number(i.args);
      return undefined;
    }
    default:
      return undefined;
  }
}

/** `event.a[0].b` as `['a', 0, 'b']`; undefined when `node` is not such a chain. */
function fieldPath(node: ASTNode): FieldPath | undefined {
  if (node.op === 'id') return node.args === 'event' ? [] : undefined;
  const k = literalKey(node);
  if (k === undefined) return undefined;
  const base = fieldPath((node.args as readonly unknown[])[0] as ASTNode);
  return base && [...base, k];
}

/**
 * What of the record an expression can reach: for each chain of literal field selections from
 * `event`, its path. CEL looks at each object along a path by itself and may look anywhere below
 * the end (the end is compared, iterated, measured, …); nothing else of the record is reached.
 */
function eventPaths(root: ASTNode): FieldPath[] {
  const paths = new Map<string, FieldPath>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (typeof v !== 'object' || v === null || !('op' in v)) return;
    const node = v as ASTNode;
    if (node.op === 'value') return;
    const p = fieldPath(node);
    if (p !== undefined) {
      paths.set(JSON.stringify(p), p);
      return;
    }
    visit(node.args);
  };
  visit(root);
  // A path whose prefix is also a path adds nothing: the prefix's end is searched entirely.
  const all = [...paths.values()];
  return all.filter((p) => !all.some((q) => q !== p && q.length < p.length && q.every((k, i) => p[i] === k)));
}

/** True when CEL, reading `paths` of `event`, could meet an object whose `constructor` is hidden. */
function reachesHidden(event: object, paths: readonly FieldPath[]): boolean {
  for (const path of paths) {
    let v: unknown = event;
    let i = 0;
    for (; i < path.length; i++) {
      if (typeof v !== 'object' || v === null) break;
      const c = (v as { constructor?: unknown }).constructor;
      if (c !== undefined && typeof c !== 'function') return true;
      v = field(v, path[i] as string | number);
    }
    if (i === path.length && typeof v === 'object' && v !== null && hidesConstructor(v)) return true;
  }
  return false;
}

function field(v: object, k: string | number): unknown {
  if (Array.isArray(v)) return typeof k === 'number' ? v[k] : undefined;
  if (v instanceof Map) return v.get(k);
  const key = String(k);
  return Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
}

/**
 * True when an object in `v` has a `constructor` that is not a function (a field of that name),
 * which CEL cannot handle as a plain object. Walks the record without allocating.
 */
function hidesConstructor(v: object): boolean {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x === 'object' && x !== null && hidesConstructor(x)) return true;
    }
    return false;
  }
  const c = (v as { constructor?: unknown }).constructor;
  if (c === Object || c === undefined) {
    for (const k in v) {
      const x = (v as Record<string, unknown>)[k];
      if (typeof x === 'object' && x !== null && hidesConstructor(x)) return true;
    }
    return false;
  }
  if (c === Map) {
    for (const x of (v as Map<unknown, unknown>).values()) {
      if (typeof x === 'object' && x !== null && hidesConstructor(x)) return true;
    }
    return false;
  }
  return typeof c !== 'function';
}

/**
 * Prepares a record for CEL. The library tells maps from other objects by their `constructor`,
 * which an own field of that name hides (`{"constructor": "x"}` would be "Unsupported type"), so
 * such objects — and the objects and arrays holding them — are given to CEL as `Map`s (copies;
 * the record is not changed). Anything else is passed as it is, at the cost of one walk.
 */
function celValue(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (typeof x !== 'object' || x === null) continue;
      const y = celValue(x);
      if (y !== x) {
        out ??= v.slice();
        out[i] = y;
      }
    }
    return out ?? v;
  }
  const c = (v as { constructor?: unknown }).constructor;
  if (c === Map) {
    let out: Map<unknown, unknown> | undefined;
    for (const [k, x] of v as Map<unknown, unknown>) {
      const y = celValue(x);
      if (y !== x) {
        out ??= new Map(v as Map<unknown, unknown>);
        out.set(k, y);
      }
    }
    return out ?? v;
  }
  const plain = c === Object || c === undefined;
  // A non-function `constructor` is a field (or a prototype built from data): the object is data.
  if (!plain && typeof c === 'function') return v; // Date, Uint8Array, Set, class instances
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  let m: Map<string, unknown> | undefined = plain ? undefined : new Map();
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    const x = o[k];
    const y = typeof x === 'object' && x !== null ? celValue(x) : x;
    if (m === undefined && y !== x) {
      m = new Map();
      for (let j = 0; j < i; j++) m.set(keys[j] as string, o[keys[j] as string]);
    }
    m?.set(k, y);
  }
  return m ?? v;
}

/** Sets an own data property, also for the key `__proto__` (plain assignment would set the prototype). */
function setField(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__')
    Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
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
        for (const [k, x] of v) setField(o, String(k), toPlain(x));
        return o;
      }
      const o = v as Record<string, unknown>;
      let out: Record<string, unknown> | undefined;
      for (const k of Object.keys(o)) {
        const p = toPlain(o[k]);
        if (p !== o[k]) {
          out ??= { ...o };
          setField(out, k, p);
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
