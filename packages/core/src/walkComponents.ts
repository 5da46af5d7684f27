/**
 * The one walk over a pipeline spec that finds its components: every step, source, sink, lookup
 * and store, however deeply nested (branch routes, dead-letter and late outputs, window state,
 * enrich lookups). It follows the schemas, not a list of places: where a kind's schema refers to
 * a component (`ComponentRef`), the walk finds one, so a new kind with a nested sink needs no
 * change here.
 */
import type { TSchema } from 'typebox';
import { type ComponentCategory, type ComponentDefinition, definitions } from './registry.js';
import { type PipelineSpec, pipelineRootSchema } from './spec.js';

/** One component of a spec. */
export interface ComponentUse {
  category: ComponentCategory;
  kind: string;
  /** JSON pointer of the component (the object holding its kind key), e.g. `/steps/2/window/state`. */
  path: string;
  /** What is under the kind key: the options the kind's definition receives. */
  spec: unknown;
}

const CATEGORIES = new Set<string>(['step', 'source', 'sink', 'lookup', 'store']);

type Schema = Record<string, unknown>;
interface Registered {
  kinds: Record<ComponentCategory, Map<string, ComponentDefinition>>;
  defs: Map<string, Schema>;
}

/**
 * Every component of `spec`, in document order, a component before those nested in it. A kind
 * not registered is reported but not looked into (its schema is unknown).
 */
export function* walkComponents(spec: PipelineSpec): Generator<ComponentUse> {
  const kinds = {} as Registered['kinds'];
  const defs = new Map<string, Schema>();
  for (const category of CATEGORIES as Set<ComponentCategory>) {
    kinds[category] = new Map(definitions(category).map((d) => [d.kind, d]));
    for (const d of kinds[category].values())
      for (const [name, s] of Object.entries(d.defs ?? {})) defs.set(name, s as Schema);
  }
  yield* walk(pipelineRootSchema as unknown as Schema, spec, '', { kinds, defs });
}

function* walk(schema: Schema, value: unknown, path: string, reg: Registered): Generator<ComponentUse> {
  if (value === null || typeof value !== 'object') return;
  const ref = schema.$ref;
  if (typeof ref === 'string') {
    const name = ref.startsWith('#/$defs/') ? ref.slice('#/$defs/'.length) : undefined;
    if (name !== undefined && CATEGORIES.has(name)) yield* component(name as ComponentCategory, value, path, reg);
    else if (name !== undefined && reg.defs.has(name)) yield* walk(reg.defs.get(name) as Schema, value, path, reg);
    return;
  }
  // A value matching several alternatives is looked into once per place found.
  const seen = new Set<string>();
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    const alternatives = schema[key];
    if (!Array.isArray(alternatives)) continue;
    for (const alt of alternatives)
      for (const use of walk(alt as Schema, value, path, reg)) {
        const id = `${use.category}\u0000${use.path}`;
        if (seen.has(id)) continue;
        seen.add(id);
        yield use;
      }
  }
  if (Array.isArray(value)) {
    const items = schema.items;
    if (items === undefined || items === null || typeof items !== 'object') return;
    for (let i = 0; i < value.length; i++) {
      const item = Array.isArray(items) ? items[i] : items;
      if (item !== undefined) yield* walk(item as Schema, value[i], `${path}/${i}`, reg);
    }
    return;
  }
  const properties = (schema.properties ?? {}) as Record<string, Schema>;
  const patterns = Object.entries((schema.patternProperties ?? {}) as Record<string, Schema>);
  const additional = schema.additionalProperties;
  for (const [key, v] of Object.entries(value)) {
    const at = `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    if (Object.hasOwn(properties, key)) {
      yield* walk(properties[key] as Schema, v, at, reg);
      continue;
    }
    const pattern = patterns.find(([p]) => new RegExp(p, 'u').test(key));
    if (pattern) yield* walk(pattern[1], v, at, reg);
    else if (additional !== null && typeof additional === 'object') yield* walk(additional as Schema, v, at, reg);
  }
}

function* component(category: ComponentCategory, value: object, path: string, reg: Registered) {
  if (Array.isArray(value)) return;
  const kind = Object.keys(value).find((k) => k !== 'name');
  if (kind === undefined) return;
  const spec = (value as Record<string, unknown>)[kind];
  yield { category, kind, path, spec } satisfies ComponentUse;
  const def = reg.kinds[category].get(kind);
  if (def) yield* walk(def.schema as TSchema as unknown as Schema, spec, `${path}/${kind}`, reg);
}
