import Type, { type Static } from 'typebox';
import { evaluationReason, showExpression } from '../compile/reason.js';
import type { CompileContext, StepDefinition } from '../compile/types.js';
import { updateValue } from '../envelope.js';
import type { CompiledExpression } from '../expression.js';
import { register } from '../registry.js';
import { Expression, FunctionRef, X_EXPECTED, X_EXPRESSION } from '../schema.js';

/** A field of a `map` template: an expression, a nested template, or a literal. */
export type MapTemplate = { [field: string]: string | number | boolean | null | MapTemplate };

const templateSchema = Type.Unsafe<MapTemplate>({
  type: 'object',
  minProperties: 1,
  additionalProperties: {
    anyOf: [
      { type: 'string', minLength: 1, [X_EXPRESSION]: true },
      { type: ['number', 'boolean', 'null'] },
      { $ref: '#/$defs/mapTemplate' },
    ],
    [X_EXPECTED]: 'an expression, a literal or a nested map of fields',
  },
  description: 'builds a record: each field is a CEL expression (strings), a literal, or a nested template',
});

export const mapSchema = Type.Union([Expression('yields the new record'), templateSchema], {
  [X_EXPECTED]: 'a CEL expression, { fn: "module.js#export" } or a map of field expressions',
  description: 'an expression yielding the new record, or a map of field names to expressions',
});
export type MapSpec = Static<typeof mapSchema>;

declare module '../index.js' {
  interface StepKinds {
    map: MapSpec;
  }
}

function isFunctionRef(spec: MapSpec): spec is { fn: string } {
  return (
    typeof spec === 'object' &&
    spec !== null &&
    Object.keys(spec).length === 1 &&
    typeof (spec as { fn?: unknown }).fn === 'string' &&
    FunctionRef !== undefined
  );
}

/** Compiles a template into one function that builds the object field by field. */
function compileTemplate(t: MapTemplate, ctx: CompileContext): CompiledExpression {
  const keys = Object.keys(t);
  const parts = keys.map((k): CompiledExpression => {
    const v = t[k];
    if (typeof v === 'string') return ctx.expression(v);
    if (v !== null && typeof v === 'object') return compileTemplate(v, ctx);
    return () => v;
  });
  const n = keys.length;
  return (event) => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) out[keys[i] as string] = (parts[i] as CompiledExpression)(event);
    return out;
  };
}

export function compileMapping(spec: MapSpec, ctx: CompileContext): CompiledExpression {
  if (typeof spec === 'string' || isFunctionRef(spec)) return ctx.expression(spec as string | { fn: string });
  return compileTemplate(spec as MapTemplate, ctx);
}

/** `map`: replaces each record's value (in the envelope it owns, see `Push`). */
export const mapStepDefinition: StepDefinition<MapSpec> = register({
  kind: 'map',
  category: 'step',
  module: './steps/map.js',
  schema: mapSchema,
  // Nested templates refer to the template schema by name.
  defs: { mapTemplate: templateSchema },
  description:
    'Replaces each record with a new value: an expression (or function) yielding it, or a template whose fields are expressions. An error sends the record to the dead-letter output.',
  summary: (spec) =>
    typeof spec === 'string' || isFunctionRef(spec)
      ? showExpression(spec as string)
      : `{ ${Object.keys(spec).join(', ')} }`,
  compile(spec, node, ctx) {
    const f = compileMapping(spec, ctx);
    const name = node.name;
    return (next) => (env, batch) => {
      let v: unknown;
      try {
        v = f(env.value);
      } catch (err) {
        batch.deadLetter(env, name, evaluationReason(err), err);
        return;
      }
      next(updateValue(env, v), batch);
    };
  },
});
