// An offline check of a CloudFormation template against the CloudFormation resource specification
// (@aws-cdk/cfnspec): every resource type and property known, required properties present, nested
// property types and primitive kinds right; every reference resolvable — Ref, Fn::GetAtt (an
// attribute the type has), Fn::Sub's ${…}, Fn::If's and Condition's conditions, DependsOn; and
// every parameter of a known type, its default allowed, and used.
import { createRequire } from 'node:module';

export type Prop = {
  Required?: boolean;
  Type?: string;
  ItemType?: string;
  PrimitiveType?: string;
  PrimitiveItemType?: string;
};
type Spec = {
  ResourceTypes: Record<string, { Properties: Record<string, Prop>; Attributes?: Record<string, unknown> }>;
  PropertyTypes: Record<string, { Properties?: Record<string, Prop> }>;
};
export const cfnSpec = (
  createRequire(import.meta.url)('@aws-cdk/cfnspec') as { specification(): Spec }
).specification();

const PSEUDO = new Set([
  'AWS::AccountId',
  'AWS::NoValue',
  'AWS::Partition',
  'AWS::Region',
  'AWS::StackId',
  'AWS::StackName',
  'AWS::URLSuffix',
  'AWS::NotificationARNs',
]);

const isIntrinsic = (v: unknown) =>
  v !== null &&
  typeof v === 'object' &&
  !Array.isArray(v) &&
  Object.keys(v).length === 1 &&
  /^(Ref|Fn::)/.test(Object.keys(v)[0] as string);

/** Problems of one value against a property definition of resource type `type`. */
function check(type: string, path: string, def: Prop, value: unknown, problems: string[]): void {
  if (isIntrinsic(value)) return;
  const nested = (name: string) => cfnSpec.PropertyTypes[`${type}.${name}`] ?? cfnSpec.PropertyTypes[name];
  if (def.Type === 'List' || def.Type === 'Map') {
    const items = def.Type === 'List' ? value : Object.values(value as object);
    if (def.Type === 'List' && !Array.isArray(value)) problems.push(`${path}: expected a list`);
    if (def.ItemType && Array.isArray(items)) {
      for (const [i, v] of items.entries())
        checkObject(type, `${path}[${i}]`, nested(def.ItemType as string), v, problems);
    }
    return;
  }
  if (def.Type) {
    checkObject(type, path, nested(def.Type), value, problems);
    return;
  }
  if (def.PrimitiveType === 'Json') return;
  if (def.PrimitiveType && typeof value === 'object') problems.push(`${path}: expected a ${def.PrimitiveType}`);
  if (
    (def.PrimitiveType === 'Integer' || def.PrimitiveType === 'Double' || def.PrimitiveType === 'Long') &&
    !Number.isFinite(Number(value))
  )
    problems.push(`${path}: expected a ${def.PrimitiveType}`);
  if (def.PrimitiveType === 'Boolean' && typeof value !== 'boolean' && value !== 'true' && value !== 'false')
    problems.push(`${path}: expected a Boolean`);
}

function checkObject(
  type: string,
  path: string,
  pt: { Properties?: Record<string, Prop> } | undefined,
  value: unknown,
  problems: string[],
) {
  if (isIntrinsic(value)) return;
  if (!pt?.Properties) return;
  const props = pt.Properties;
  for (const [k, v] of Object.entries(value as object)) {
    const def = props[k];
    if (!def) problems.push(`${path}.${k}: not a property of ${type}`);
    else check(type, `${path}.${k}`, def, v, problems);
  }
  for (const [k, def] of Object.entries(props))
    if (def.Required && !(k in (value as object))) problems.push(`${path}.${k}: required`);
}

type Template = {
  Parameters?: Record<string, unknown>;
  Conditions?: Record<string, unknown>;
  Resources: Record<
    string,
    { Type: string; Properties?: object; Condition?: string; DependsOn?: string | string[]; DeletionPolicy?: string }
  >;
  Outputs?: Record<string, { Value: unknown; Condition?: string }>;
};

/** Problems of the references in `v` (at `path`). */
function checkRefs(t: Template, path: string, v: unknown, problems: string[]): void {
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) checkRefs(t, `${path}[${i}]`, x, problems);
    return;
  }
  if (v === null || typeof v !== 'object') return;
  const named = (name: string) => PSEUDO.has(name) || name in (t.Parameters ?? {}) || name in t.Resources;
  const attribute = (logical: string, attr: string) => {
    const r = t.Resources[logical];
    if (!r) problems.push(`${path}: Fn::GetAtt of ${logical}: no such resource`);
    else if (!cfnSpec.ResourceTypes[r.Type]?.Attributes?.[attr])
      problems.push(`${path}: Fn::GetAtt ${logical}.${attr}: ${r.Type} has no attribute ${attr}`);
  };
  for (const [k, arg] of Object.entries(v)) {
    if (k === 'Ref') {
      if (!named(arg as string)) problems.push(`${path}: Ref ${String(arg)}: unknown`);
    } else if (k === 'Fn::GetAtt') {
      const [logical, attr] = typeof arg === 'string' ? arg.split('.') : (arg as string[]);
      attribute(logical as string, attr as string);
    } else if (k === 'Fn::Sub') {
      const [text, vars] = Array.isArray(arg) ? (arg as [string, Record<string, unknown>]) : [arg as string, {}];
      for (const m of text.matchAll(/\$\{([^!}][^}]*)\}/g)) {
        const name = m[1] as string;
        if (name in vars) continue;
        const dot = name.indexOf('.');
        if (dot > 0 && !name.startsWith('AWS::')) attribute(name.slice(0, dot), name.slice(dot + 1));
        else if (!named(name)) problems.push(`${path}: Fn::Sub \${${name}}: unknown`);
      }
      checkRefs(t, path, vars, problems);
    } else if (k === 'Fn::If') {
      const [c, ...rest] = arg as [string, unknown, unknown];
      if (!(c in (t.Conditions ?? {}))) problems.push(`${path}: Fn::If ${c}: no such condition`);
      checkRefs(t, path, rest, problems);
    } else if (k === 'Condition' && typeof arg === 'string' && path.startsWith('Conditions')) {
      if (!(arg in (t.Conditions ?? {}))) problems.push(`${path}: Condition ${arg}: no such condition`);
    } else checkRefs(t, `${path}.${k}`, arg, problems);
  }
}

/**
 * Properties `aws cloudformation package` takes as a local path (it uploads the file and writes
 * its S3 location in their place): a string there is a file beside the template.
 */
const PACKAGED: Record<string, string> = { 'AWS::Lambda::Function': 'Code' };

/** Every problem of a template: against the resource specification, and its references. */
export function validate(template: Record<string, unknown>): string[] {
  const t = template as unknown as Template;
  const problems: string[] = [];
  for (const [name, r] of Object.entries(t.Resources)) {
    const rt = cfnSpec.ResourceTypes[r.Type];
    if (!rt) {
      problems.push(`${name}: unknown resource type ${r.Type}`);
      continue;
    }
    const properties = { ...(r.Properties ?? {}) } as Record<string, unknown>;
    const packaged = PACKAGED[r.Type];
    if (packaged !== undefined && typeof properties[packaged] === 'string') {
      if (!/^[^/\\].*\.zip$/.test(properties[packaged] as string))
        problems.push(`${name}.${packaged}: a local path must name a .zip file relative to the template`);
      properties[packaged] = {};
    }
    checkObject(r.Type, name, rt, properties, problems);
    checkRefs(t, name, properties, problems);
    if (r.Condition !== undefined && !(r.Condition in (t.Conditions ?? {})))
      problems.push(`${name}: Condition ${r.Condition}: no such condition`);
    for (const d of r.DependsOn === undefined ? [] : [r.DependsOn].flat())
      if (!(d in t.Resources)) problems.push(`${name}: DependsOn ${d}: no such resource`);
    if (
      r.DeletionPolicy !== undefined &&
      !['Delete', 'Retain', 'Snapshot', 'RetainExceptOnCreate'].includes(r.DeletionPolicy)
    )
      problems.push(`${name}: DeletionPolicy ${r.DeletionPolicy}`);
  }
  for (const [name, o] of Object.entries(t.Outputs ?? {})) {
    checkRefs(t, `Outputs.${name}`, o, problems);
    if (o.Condition !== undefined && !(o.Condition in (t.Conditions ?? {})))
      problems.push(`Outputs.${name}: Condition ${o.Condition}: no such condition`);
  }
  checkRefs(t, 'Conditions', t.Conditions ?? {}, problems);
  checkParameters(t, problems);
  return problems;
}

/** A parameter's type, default (against its allowed values and pattern), and that something uses it. */
function checkParameters(t: Template, problems: string[]): void {
  const used = JSON.stringify([t.Resources, t.Conditions ?? {}, t.Outputs ?? {}]);
  for (const [name, raw] of Object.entries(t.Parameters ?? {})) {
    const p = raw as { Type?: string; Default?: unknown; AllowedValues?: unknown[]; AllowedPattern?: string };
    if (!/^(String|Number|List<Number>|CommaDelimitedList|(List<)?AWS::EC2::[A-Za-z:]+>?)$/.test(p.Type ?? ''))
      problems.push(`Parameters.${name}: type ${String(p.Type)}`);
    if (p.Default !== undefined && p.AllowedValues && !p.AllowedValues.includes(p.Default))
      problems.push(`Parameters.${name}: default ${String(p.Default)} not among its allowed values`);
    if (p.Default !== undefined && p.AllowedPattern && !new RegExp(p.AllowedPattern).test(String(p.Default)))
      problems.push(`Parameters.${name}: default ${String(p.Default)} does not match its pattern`);
    if (!used.includes(JSON.stringify({ Ref: name })) && !used.includes(`\${${name}}`))
      problems.push(`Parameters.${name}: not used`);
  }
}
