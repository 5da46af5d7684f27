/**
 * Validation of pipeline definitions: one JSON Schema assembled from the registry, checked by
 * ajv with every error collected, then translated into messages a person can act on.
 * CEL expressions, durations and field types are checked by custom keywords in the same pass,
 * so `tributary validate` reports every problem at once.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseDuration } from './duration.js';
import type { ExpressionError, ValidationIssue } from './errors.js';
import { compileCel } from './expression.js';
import { type ComponentCategory, definitions, setSpecCheck } from './registry.js';
import {
  type DurationBounds,
  FIELD_TYPES,
  X_DURATION,
  X_EXPECTED,
  X_EXPRESSION,
  X_FIELD_TYPE,
  X_TIMESTAMP,
  X_UNION,
} from './schema.js';
import { pipelineSchema } from './spec.js';
import { X_AGGREGATE } from './steps/window.js';
import { parseAggregate } from './windows/aggregates.js';

const CATEGORY_WORD: Record<ComponentCategory, string> = {
  step: 'step',
  source: 'source',
  sink: 'sink',
  lookup: 'lookup',
  store: 'state store',
};

let compiled: { validate: ValidateFunction; kinds: number } | undefined;

function validator(): ValidateFunction {
  const kinds = (['step', 'source', 'sink', 'lookup', 'store'] as const).reduce((n, c) => n + definitions(c).length, 0);
  if (compiled && compiled.kinds === kinds) return compiled.validate;
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: false, allowUnionTypes: true });
  ajv.addKeyword({
    keyword: X_EXPRESSION,
    type: 'string',
    errors: true,
    validate: function checkExpression(this: unknown, _schema: unknown, data: string) {
      try {
        compileCel(data);
        return true;
      } catch (err) {
        const e = err as ExpressionError;
        (checkExpression as unknown as { errors: Partial<ErrorObject>[] }).errors = [
          { keyword: X_EXPRESSION, message: e.message, params: { offset: e.offset } },
        ];
        return false;
      }
    },
  });
  ajv.addKeyword({
    keyword: X_DURATION,
    type: ['string', 'number'],
    errors: true,
    validate: function checkDuration(schema: true | DurationBounds, data: string | number) {
      const fail = (message: string) => {
        (checkDuration as unknown as { errors: Partial<ErrorObject>[] }).errors = [
          { keyword: X_DURATION, message, params: {} },
        ];
        return false;
      };
      const ms = parseDuration(data);
      if (ms === undefined)
        return typeof data === 'number'
          ? true // the number branch's own minimum reports it
          : fail(`expected a duration such as 500ms, 30s, 5m or 1h, got ${JSON.stringify(data)}`);
      if (schema === true) return true;
      const got = typeof data === 'number' ? `${data} (ms)` : data;
      if ((schema.min !== undefined && ms < schema.min) || (schema.max !== undefined && ms > schema.max))
        return fail(`expected a duration ${schema.text}, got ${got}`);
      if (schema.step !== undefined && ms % schema.step !== 0)
        return fail(`expected a duration ${schema.text}, got ${got}`);
      return true;
    },
  });
  ajv.addKeyword({
    keyword: X_TIMESTAMP,
    type: 'string',
    errors: true,
    validate: function checkTimestamp(schema: { notFuture?: boolean }, data: string) {
      const fail = (message: string) => {
        (checkTimestamp as unknown as { errors: Partial<ErrorObject>[] }).errors = [
          { keyword: X_TIMESTAMP, message, params: {} },
        ];
        return false;
      };
      const ms = calendarTimeMs(data);
      // A text that is not of the ISO 8601 form at all is the pattern's to report.
      if (ms === null) return true;
      if (ms === undefined)
        return fail(`expected a time that exists (month 01-12, a day of that month, 00:00-23:59:59), got ${data}`);
      if (schema.notFuture === true && ms > Date.now())
        return fail(
          `expected a time that is not in the future (Lambda refuses a StartingPositionTimestamp after now), got ${data}`,
        );
      return true;
    },
  });
  ajv.addKeyword({
    keyword: X_FIELD_TYPE,
    type: 'string',
    errors: true,
    validate: function checkFieldType(_schema: unknown, data: string) {
      const t = data.endsWith('?') ? data.slice(0, -1) : data;
      if ((FIELD_TYPES as readonly string[]).includes(t)) return true;
      (checkFieldType as unknown as { errors: Partial<ErrorObject>[] }).errors = [
        {
          keyword: X_FIELD_TYPE,
          message: `unknown field type \`${data}\`${suggest(t, FIELD_TYPES)}; expected one of ${FIELD_TYPES.join(', ')} (append ? for optional)`,
          params: {},
        },
      ];
      return false;
    },
  });
  ajv.addKeyword({
    keyword: X_AGGREGATE,
    type: 'string',
    errors: true,
    validate: function checkAggregate(_schema: unknown, data: string) {
      let message: string | undefined;
      let offset: number | undefined;
      try {
        const parsed = parseAggregate(data);
        if (parsed.input !== undefined) {
          try {
            compileCel(parsed.input);
          } catch (err) {
            const e = err as ExpressionError;
            message = e.message;
            offset = e.offset === undefined ? undefined : data.indexOf(parsed.input) + e.offset;
          }
        }
      } catch (err) {
        message = (err as Error).message;
      }
      if (message === undefined) return true;
      (checkAggregate as unknown as { errors: Partial<ErrorObject>[] }).errors = [
        { keyword: X_EXPRESSION, message, params: { offset } },
      ];
      return false;
    },
  });
  const validate = ajv.compile(pipelineSchema());
  compiled = { validate, kinds };
  return validate;
}

/** Validates a plain pipeline definition; returns every problem found, each with its JSON path. */
export function validateSpec(spec: unknown): ValidationIssue[] {
  const validate = validator();
  const schemaIssues = validate(spec) ? [] : translate(validate.errors ?? [], spec);
  const numbers = nonFiniteNumbers(spec);
  // A schema issue about such a number would only say `got null` (how JSON writes it).
  const bad = new Set(numbers.map((i) => i.path));
  return [...schemaIssues.filter((i) => !bad.has(i.path)), ...numbers, ...crossFieldIssues(spec)];
}

/**
 * Numbers YAML reads as infinite or not a number (`1e999`, `.inf`, `.nan`): no option means
 * them, and JSON cannot carry them (they become `null`).
 */
function nonFiniteNumbers(value: unknown, path = '', out: ValidationIssue[] = [], depth = 0): ValidationIssue[] {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) out.push({ path, message: `expected a finite number, got ${value}` });
  } else if (typeof value === 'object' && value !== null && depth < 256) {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) nonFiniteNumbers(value[i], `${path}/${i}`, out, depth + 1);
    } else
      for (const [k, v] of Object.entries(value)) nonFiniteNumbers(v, `${path}/${escapePointer(k)}`, out, depth + 1);
  }
  return out;
}

/** Rules between top-level options, which the schema does not express (compile checks them too). */
function crossFieldIssues(spec: unknown): ValidationIssue[] {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return [];
  const s = spec as Record<string, unknown>;
  const issues: ValidationIssue[] = [];
  if (s.maxFutureSkew !== undefined && s.eventTime === undefined) {
    issues.push({
      path: '/maxFutureSkew',
      message: '`maxFutureSkew` bounds the `eventTime` of records; this pipeline has no `eventTime`',
    });
  }
  return issues;
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeMatches(schema: unknown, data: unknown): boolean {
  const s = schema as { type?: string | string[]; $ref?: string; anyOf?: unknown[] };
  if (s.anyOf) return s.anyOf.some((x) => typeMatches(x, data));
  if (s.$ref) return typeof data === 'object' && data !== null && !Array.isArray(data);
  if (s.type === undefined) return true;
  const types = Array.isArray(s.type) ? s.type : [s.type];
  const t = jsonType(data);
  return types.some((x) => x === t || (x === 'number' && t === 'integer'));
}

function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0] as number;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j] as number;
      dp[j] = Math.min((dp[j] as number) + 1, (dp[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length] as number;
}

function suggest(word: string, options: readonly string[]): string {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const o of options) {
    const d = levenshtein(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3)) ? ` (did you mean \`${best}\`?)` : '';
}

/** Turns ajv's raw errors into one clear issue per problem. */
function translate(errors: ErrorObject[], root: unknown): ValidationIssue[] {
  // For each failed anyOf, keep only the errors of the alternative that best fits the data.
  // ajv appends an anyOf's alternative errors just before the anyOf error itself.
  const dropped = new Set<ErrorObject>();
  errors.forEach((a, j) => {
    if (a.keyword === 'oneOf') {
      // Only used for "exactly one of these options": the inner `required` errors say nothing more.
      for (let k = j - 1; k >= 0 && (errors[k] as ErrorObject).schemaPath.startsWith(`${a.schemaPath}/`); k--) {
        dropped.add(errors[k] as ErrorObject);
      }
      return;
    }
    if (a.keyword !== 'anyOf') return;
    const inside: ErrorObject[] = [];
    for (let k = j - 1; k >= 0; k--) {
      const e = errors[k] as ErrorObject;
      if (e.instancePath !== a.instancePath && !e.instancePath.startsWith(`${a.instancePath}/`)) break;
      inside.push(e);
    }
    const parent = a.parentSchema as Record<string, unknown>;
    if (parent[X_UNION]) {
      for (const e of inside) dropped.add(e);
      // "needs one kind": only worth saying when nothing more precise was said about this object.
      const precise = errors.some(
        (e) => e !== a && !inside.includes(e) && e.instancePath === a.instancePath && e.keyword !== 'if',
      );
      if (precise) dropped.add(a);
      return;
    }
    const alternatives = (a.schema as Record<string, unknown>[]) ?? [];
    if (alternatives.every((alt) => 'const' in alt)) {
      for (const e of inside) dropped.add(e); // reported as one "expected one of" below
      return;
    }
    const refIndex = alternatives.findIndex((alt) => '$ref' in alt);
    const owner = (e: ErrorObject): number => {
      const m = e.schemaPath.startsWith(`${a.schemaPath}/`)
        ? /^\/(\d+)\//.exec(e.schemaPath.slice(a.schemaPath.length))
        : null;
      return m ? Number(m[1]) : refIndex;
    };
    let best = -1;
    let bestCount = Number.POSITIVE_INFINITY;
    alternatives.forEach((alt, i) => {
      if (!typeMatches(alt, a.data)) return;
      const n = inside.filter((e) => owner(e) === i && !dropped.has(e)).length;
      if (n < bestCount) {
        best = i;
        bestCount = n;
      }
    });
    if (best < 0) {
      for (const e of inside) dropped.add(e);
      return;
    }
    dropped.add(a);
    for (const e of inside) if (owner(e) !== best) dropped.add(e);
  });

  const issues: ValidationIssue[] = [];
  const seen = new Set<string>();
  const add = (
    path: string,
    message: string,
    extra?: Partial<ValidationIssue> & { key?: boolean; offset?: number },
  ) => {
    const id = `${path}\u0000${message}`;
    if (seen.has(id)) return;
    seen.add(id);
    issues.push({ path, message, ...(extra as object) });
  };

  for (const e of errors) {
    if (dropped.has(e) || e.keyword === 'if' || e.keyword === 'propertyNames') continue;
    const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
    const path = e.instancePath;
    const pname = (e as ErrorObject & { propertyName?: string }).propertyName;
    if (pname !== undefined && parent[X_EXPECTED] !== undefined && e.schemaPath.endsWith('/propertyNames/not')) {
      // A name the schema reserves (e.g. an aggregate called `key`).
      add(`${path}/${escapePointer(pname)}`, `\`${pname}\` is reserved: expected ${parent[X_EXPECTED]}`, {
        key: true,
      } as never);
      continue;
    }
    if (pname !== undefined) {
      // propertyNames failure: an unknown kind, or a second kind next to the first.
      const category = unionCategory(e.schemaPath, errors, e);
      const childPath = `${path}/${escapePointer(pname)}`;
      if (e.schemaPath.includes('/then/')) {
        const kinds = definitions(category as ComponentCategory).map((d) => d.kind);
        const present = Object.keys((valueAt(root, path) as object | undefined) ?? {}).filter((k) => kinds.includes(k));
        if (pname === present[present.length - 1]) {
          add(childPath, `a ${category} has exactly one kind, found ${present.map((k) => `\`${k}\``).join(' and ')}`, {
            key: true,
          } as never);
        }
      } else {
        const kinds = definitions(category as ComponentCategory).map((d) => d.kind);
        add(
          childPath,
          `unknown ${CATEGORY_WORD[category as ComponentCategory] ?? category} \`${pname}\`${suggest(pname, kinds)}; expected one of ${kinds.join(', ')}`,
          {
            key: true,
          } as never,
        );
      }
      continue;
    }
    switch (e.keyword) {
      case 'anyOf': {
        if (parent[X_UNION]) {
          const category = parent[X_UNION] as ComponentCategory;
          const kinds = definitions(category).map((d) => d.kind);
          add(path, `expected a ${CATEGORY_WORD[category]}: an object with one of ${kinds.join(', ')}`);
        } else if ((e.schema as Record<string, unknown>[]).every((alt) => 'const' in alt)) {
          const allowed = (e.schema as { const: unknown }[]).map((alt) => JSON.stringify(alt.const));
          add(path, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(e.data)}`);
        } else {
          const expected = (parent[X_EXPECTED] as string | undefined) ?? 'a different value';
          add(path, `expected ${expected}, got ${jsonType(e.data)}`);
        }
        break;
      }
      case 'oneOf':
        add(path, `expected ${(parent[X_EXPECTED] as string | undefined) ?? 'exactly one of the alternatives'}`);
        break;
      case 'additionalProperties': {
        const prop = (e.params as { additionalProperty: string }).additionalProperty;
        const known = Object.keys((parent.properties as object | undefined) ?? {});
        add(
          `${path}/${escapePointer(prop)}`,
          `unknown option \`${prop}\`${suggest(prop, known)}${known.length ? `; expected one of ${known.join(', ')}` : ''}`,
          { key: true } as never,
        );
        break;
      }
      case 'required':
        add(path, `missing required option \`${(e.params as { missingProperty: string }).missingProperty}\``);
        break;
      case 'type':
        add(path, `expected ${(e.params as { type: string }).type}, got ${jsonType(e.data)}`);
        break;
      case 'enum':
        add(
          path,
          `expected one of ${((e.params as { allowedValues: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(e.data)}`,
        );
        break;
      case 'pattern':
        add(
          path,
          `expected ${(parent.description as string | undefined) ?? `text matching ${(e.params as { pattern: string }).pattern}`}, got ${JSON.stringify(e.data)}`,
        );
        break;
      case 'const':
        add(
          path,
          `expected ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}, got ${JSON.stringify(e.data)}`,
        );
        break;
      case X_EXPRESSION:
        add(path, e.message ?? 'invalid expression', { offset: (e.params as { offset?: number }).offset } as never);
        break;
      case 'minLength':
      case 'maxLength': {
        const limit = (e.params as { limit: number }).limit;
        const bound = e.keyword === 'minLength' ? 'at least' : 'at most';
        add(path, `expected ${bound} ${limit} character${limit === 1 ? '' : 's'}, got ${JSON.stringify(e.data)}`);
        break;
      }
      case 'minimum':
      case 'maximum': {
        const limit = (e.params as { limit: number }).limit;
        add(path, `expected a number ${e.keyword === 'minimum' ? '>=' : '<='} ${limit}, got ${JSON.stringify(e.data)}`);
        break;
      }
      default:
        add(path, e.message ?? `invalid (${e.keyword})`);
    }
  }
  return issues;
}

function unionCategory(schemaPath: string, _errors: ErrorObject[], e: ErrorObject): string {
  const parent = e.parentSchema as Record<string, unknown> | undefined;
  if (parent?.[X_UNION]) return parent[X_UNION] as string;
  const m = /#\/\$defs\/(\w+)/.exec(schemaPath);
  return m?.[1] ?? 'component';
}

export function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function parsePointer(p: string): string[] {
  if (p === '') return [];
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function valueAt(root: unknown, pointer: string): unknown {
  let v = root;
  for (const seg of parsePointer(pointer)) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[seg];
  }
  return v;
}

// compile() runs this on specs not validated already.
setSpecCheck(validateSpec);

/**
 * Milliseconds since the epoch of an ISO 8601 time `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM)`;
 * `undefined` when it has that form but names no such time (2026-02-30, 24:00, 23:60, an offset
 * beyond ±23:59 — `Date.parse` rolls 2026-02-30 over to March 2); `null` when it is not of that form.
 */
function calendarTimeMs(text: string): number | undefined | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):(\d{2}))$/.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second = 0, offsetHours = 0, offsetMinutes = 0] = m
    .slice(1)
    .map((v) => (v === undefined ? undefined : Number(v))) as number[];
  const date = new Date(Date.UTC(year as number, (month as number) - 1, day));
  const exists =
    date.getUTCMonth() === (month as number) - 1 &&
    date.getUTCDate() === day &&
    (hour as number) <= 23 &&
    (minute as number) <= 59 &&
    second <= 59 &&
    offsetHours <= 23 &&
    offsetMinutes <= 59;
  const ms = Date.parse(text);
  return exists && Number.isFinite(ms) ? ms : undefined;
}
