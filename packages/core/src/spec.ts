/**
 * The pipeline model. `PipelineSpec` is plain, serialisable data; the TypeScript builder and the
 * YAML loader both produce it. Its TypeScript types derive from the same TypeBox schemas that
 * validate it; the JSON Schema shipped in `schema/pipeline.schema.json` is generated from them.
 *
 * Other packages add kinds by registering a definition and augmenting the kind maps:
 * `declare module '@tributary/core' { interface SinkKinds { dynamodb: DynamoDbSinkSpec } }`.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { type ComponentCategory, definitions } from './registry.js';
import { ComponentRef, DurationSchema, Expression, X_FIELD_TYPE, X_UNION } from './schema.js';

/**
 * The kind maps: each kind's spec under its key. Each kind's own file adds itself through the
 * package entry, core's as other packages do (`declare module '../index.js' { interface
 * StepKinds { filter: FilterSpec } }`; elsewhere `'@tributary/core'`), so adding a kind touches
 * its file and its test only. Every augmentation names that one entry: TypeScript may drop
 * augmentations of one interface made through different modules.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each kind's file
export interface StepKinds {}
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each kind's file
export interface SourceKinds {}
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each kind's file
export interface SinkKinds {}
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each kind's file
export interface LookupKinds {}
/** Window state stores (`stores/memory.ts` adds memory and ref, `@tributary/state` dynamodb and redis). */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each kind's file
export interface StoreKinds {}

type OneOf<M> = { [K in keyof M]: { [P in K]: M[K] } }[keyof M];
/** A step: one kind key (plus an optional node `name`). */
export type StepSpec = OneOf<StepKinds> & { name?: string };
export type SourceSpec = OneOf<SourceKinds>;
export type SinkSpec = OneOf<SinkKinds> & { name?: string };
export type LookupSpec = OneOf<LookupKinds>;
export type StoreSpec = OneOf<StoreKinds>;

export const pipelineRootSchema = Type.Object(
  {
    version: Type.Literal(1, { description: 'format version; always 1' }),
    name: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$',
      description: 'pipeline name (letters, digits, _ . -)',
    }),
    description: Type.Optional(Type.String()),
    source: ComponentRef<SourceSpec>('source'),
    fields: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.String({ [X_FIELD_TYPE]: true }), {
        description:
          'declared fields of input records and their types (string, number, integer, boolean, object, array, timestamp, any; `?` = optional); records that do not match go to the dead-letter output',
      }),
    ),
    eventTime: Type.Optional(Expression('yields the event time: epoch ms, or an ISO-8601 string')),
    maxFutureSkew: Type.Optional(
      DurationSchema(
        "with `eventTime`: how far ahead of its arrival time a record's event time may be (default: no bound). A record further ahead is dead-lettered (reason `event-time`) before it moves any watermark: one far-future record (a clock or parsing error, year 9999) would otherwise close every open window and send what follows to the late output",
      ),
    ),
    steps: Type.Array(ComponentRef<StepSpec>('step'), { description: 'the steps, in order' }),
    deadLetter: Type.Optional(ComponentRef<SinkSpec>('sink')),
  },
  { additionalProperties: false },
);

export type PipelineSpec = Omit<Static<typeof pipelineRootSchema>, 'source' | 'steps' | 'deadLetter'> & {
  source: SourceSpec;
  steps: StepSpec[];
  deadLetter?: SinkSpec;
};

const NAMED: Record<ComponentCategory, boolean> = {
  step: true,
  sink: true,
  source: false,
  lookup: false,
  store: false,
};

/** The schema of a one-key component union: exactly one registered kind, validated by that kind's schema. */
function union(category: ComponentCategory): TSchema {
  const defs = definitions(category);
  const kinds = defs.map((d) => d.kind);
  const extra: Record<string, unknown> = NAMED[category]
    ? {
        name: {
          type: 'string',
          pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
          description: 'node name (default: kind-N)',
        },
      }
    : {};
  const allowed = [...Object.keys(extra)];
  return {
    type: 'object',
    [X_UNION]: category,
    description: `a ${category}: an object with exactly one of ${kinds.join(', ')}`,
    propertyNames: { enum: [...kinds, ...allowed], [X_UNION]: category },
    anyOf: kinds.map((k) => ({ required: [k] })),
    allOf: defs.map((d) => ({
      if: { required: [d.kind] },
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword
      then: {
        properties: { [d.kind]: d.schema, ...extra },
        propertyNames: { enum: [d.kind, ...allowed], [X_UNION]: category },
        description: d.description,
      },
    })),
  } as unknown as TSchema;
}

/** The `$defs` the registered kinds' schemas refer to (see `ComponentDefinition.defs`). */
function kindDefs(): Record<string, TSchema> {
  const out: Record<string, TSchema> = {};
  for (const category of Object.keys(NAMED) as ComponentCategory[])
    for (const d of definitions(category)) Object.assign(out, d.defs);
  return out;
}

/** The whole pipeline JSON Schema (draft-07), built from the registry. */
export function pipelineSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Tributary pipeline',
    ...JSON.parse(JSON.stringify(pipelineRootSchema)),
    $defs: {
      step: union('step'),
      source: union('source'),
      sink: union('sink'),
      lookup: union('lookup'),
      store: union('store'),
      ...kindDefs(),
    },
  };
}
