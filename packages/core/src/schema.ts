/**
 * Building blocks of the pipeline JSON Schema. Types are derived from these schemas with
 * TypeBox's `Static`, so the schema is the single source of types, validation and docs.
 */
import Type from 'typebox';
import type { ComponentCategory } from './registry.js';

/** Annotation keywords understood by the validator (custom ajv keywords). */
export const X_EXPRESSION = 'x-expression';
export const X_DURATION = 'x-duration';
export const X_FIELD_TYPE = 'x-field-type';
export const X_UNION = 'x-union';
export const X_EXPECTED = 'x-expected';
/** An ISO 8601 time that is a real calendar time; `{ notFuture: true }`: not later than now. */
export const X_TIMESTAMP = 'x-timestamp';

/** A reference to a function exported by a module: `./handlers.js#isClick`. */
export const FunctionRef = Type.Object(
  {
    fn: Type.String({
      pattern: '^[^#]*#[A-Za-z_$][\\w$]*$',
      description:
        'a function reference: module path relative to the pipeline file, `#`, export name (e.g. ./handlers.js#isClick)',
    }),
  },
  { additionalProperties: false },
);

/** A CEL expression over `event`, or a function reference. */
export const Expression = (description: string) =>
  Type.Union([Type.String({ minLength: 1, [X_EXPRESSION]: true, description: `CEL: ${description}` }), FunctionRef], {
    [X_EXPECTED]: 'a CEL expression or { fn: "module.js#export" }',
    description,
  });

export const DurationSchema = (description: string, bounds?: DurationBounds) =>
  Type.Union(
    [
      Type.String({ [X_DURATION]: bounds ?? true }),
      Type.Number({ minimum: 0, ...(bounds ? { [X_DURATION]: bounds } : {}) }),
    ],
    {
      [X_EXPECTED]: 'a duration such as 500ms, 30s, 5m, 1h or a number of milliseconds',
      description,
    },
  );

/**
 * Limits of a duration option (all in milliseconds), checked by the `x-duration` keyword on both
 * forms (`30s` and `30000`): `min`/`max` inclusive, `step` the unit it must be a whole number of
 * (e.g. 1000: whole seconds). `text` is the limit as the message states it ("from 60s to 7d").
 */
export interface DurationBounds {
  min?: number;
  max?: number;
  step?: number;
  text: string;
}

/** A `$ref` to a component union (`step`, `sink`, …) defined in the root schema's `$defs`. */
export const ComponentRef = <T>(category: ComponentCategory) => Type.Unsafe<T>({ $ref: `#/$defs/${category}` });

export const FIELD_TYPES = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'timestamp', 'any'] as const;
export type FieldType = (typeof FIELD_TYPES)[number];
