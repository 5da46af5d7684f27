import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import Type, { type Static } from 'typebox';
import { boundObject } from '../bindings.js';
import { type Lookup, type LookupDefinition, lookupKey } from '../compile/types.js';
import { ConfigError } from '../errors.js';
import { register } from '../registry.js';

export const staticLookupSchema = Type.Object(
  {
    path: Type.String({ minLength: 1, description: 'JSON object keyed by id, or JSON array / JSON Lines of objects' }),
    keyField: Type.Optional(
      Type.String({ minLength: 1, description: 'field holding the key in an array or JSON Lines file (default `id`)' }),
    ),
  },
  { additionalProperties: false },
);
export type StaticLookupSpec = Static<typeof staticLookupSchema>;

declare module '../index.js' {
  interface LookupKinds {
    static: StaticLookupSpec;
    ref: string;
  }
}

/** Parses a lookup table file into a key → value map. */
export function parseTable(text: string, keyField: string, file: string): Map<string, unknown> {
  const table = new Map<string, unknown>();
  const addRow = (row: unknown, where: string) => {
    const k =
      row !== null && typeof row === 'object' ? lookupKey((row as Record<string, unknown>)[keyField]) : undefined;
    if (k === undefined) throw new ConfigError(`${file}: ${where} has no \`${keyField}\` key`);
    table.set(k, row);
  };
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[') || (trimmed.startsWith('{') && !file.endsWith('.jsonl'))) {
    const data = JSON.parse(text) as unknown;
    if (Array.isArray(data)) {
      for (const [i, row] of data.entries()) addRow(row, `element ${i}`);
    } else for (const [k, v] of Object.entries(data as object)) table.set(k, v);
  } else {
    for (const [i, line] of text.split('\n').entries()) {
      if (line.trim() !== '') addRow(JSON.parse(line), `line ${i + 1}`);
    }
  }
  return table;
}

/** A lookup table loaded once from a file and held in memory. */
export class StaticLookup implements Lookup {
  private table: Promise<Map<string, unknown>> | undefined;
  constructor(
    private readonly path: string,
    private readonly keyField = 'id',
  ) {}
  private load(): Promise<Map<string, unknown>> {
    this.table ??= readFile(this.path, 'utf8').then((text) => parseTable(text, this.keyField, this.path));
    return this.table;
  }
  async open(): Promise<void> {
    await this.load();
  }
  async get(keys: readonly string[]): Promise<Map<string, unknown>> {
    const table = await this.load();
    const out = new Map<string, unknown>();
    for (const k of keys) if (table.has(k)) out.set(k, table.get(k));
    return out;
  }
}

export const staticLookupDefinition: LookupDefinition<StaticLookupSpec> = register({
  kind: 'static',
  category: 'lookup',
  module: './lookups/static.js',
  schema: staticLookupSchema,
  description:
    'A table loaded once from a file: a JSON object keyed by id, or a JSON array / JSON Lines of objects keyed by `keyField`.',
  create(spec, ctx) {
    return new StaticLookup(isAbsolute(spec.path) ? spec.path : resolve(ctx.baseDir, spec.path), spec.keyField);
  },
});

export const refLookupDefinition: LookupDefinition<string> = register({
  kind: 'ref',
  category: 'lookup',
  module: './lookups/static.js',
  schema: Type.String({ minLength: 1, description: 'name of a lookup object bound by the TypeScript builder' }),
  description: 'A lookup object supplied in TypeScript, bound by name by the builder.',
  create: (name, ctx) =>
    boundObject(ctx.bindings, name, 'lookup', (v): v is Lookup => !!v && typeof (v as Lookup).get === 'function'),
});
