import { type RecordEnvelope, register, type SinkDefinition, Type } from '@tributary/core/spi';

/** The options under the kind's key: `sink: { collect: { name: clicks } }`. */
export interface CollectSinkSpec {
  name: string;
}

// The kind joins the spec types, so `pipeline(...).sink({ collect: { name } })` type-checks.
declare module '@tributary/core' {
  interface SinkKinds {
    collect: CollectSinkSpec;
  }
}

/** The values each `collect` sink was given, by name. */
export const collected = new Map<string, unknown[]>();

export const collectSinkDefinition: SinkDefinition<CollectSinkSpec> = register({
  kind: 'collect',
  category: 'sink',
  // What a `tributary synth` bundle imports to register the kind: this module, as published.
  module: '@example/tributary-collect',
  schema: Type.Object({ name: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  description: 'Keeps the values of its records in memory, under a name.',
  summary: (spec) => spec.name,
  create: (spec) => ({
    async write(records: readonly RecordEnvelope[]) {
      const values = collected.get(spec.name) ?? [];
      for (const r of records) values.push(r.value);
      collected.set(spec.name, values);
    },
    async close() {},
  }),
});
