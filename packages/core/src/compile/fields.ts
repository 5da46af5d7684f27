import type { FieldType } from '../schema.js';

type Check = (v: unknown) => boolean;
const checks: Record<FieldType, Check> = {
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  integer: (v) => typeof v === 'number' && Number.isInteger(v),
  boolean: (v) => typeof v === 'boolean',
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
  array: (v) => Array.isArray(v),
  timestamp: (v) =>
    (typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && !Number.isNaN(Date.parse(v))),
  any: () => true,
};

/**
 * Compiles the declared `fields` into a check returning the first problem with a record, or
 * `undefined`. Written by hand (no generated code) because field names are user text.
 */
export function compileFieldCheck(fields: Record<string, string>): (v: unknown) => string | undefined {
  const list = Object.entries(fields).map(([name, t]) => {
    const optional = t.endsWith('?');
    const type = (optional ? t.slice(0, -1) : t) as FieldType;
    return { name, optional, type, check: checks[type] };
  });
  return (v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'record is not a JSON object';
    const o = v as Record<string, unknown>;
    for (const f of list) {
      const x = Object.hasOwn(o, f.name) ? o[f.name] : undefined;
      if (x === undefined || x === null) {
        if (!f.optional) return `field \`${f.name}\` is missing`;
        continue;
      }
      if (!f.check(x)) return `field \`${f.name}\` should be ${f.type}, got ${Array.isArray(x) ? 'array' : typeof x}`;
    }
    return undefined;
  };
}
