// A small IAM evaluator for the policy test: the role statements of a synthesised template, their
// CloudFormation intrinsics resolved (`Fn::Sub` with a fixed partition, region and account;
// `Ref`/`Fn::GetAtt` of the template's resources to the ARNs the test assigns; `Fn::If` by the
// template's conditions on its parameters' values), and a check of an action on a resource ARN
// against them with IAM's matching: `*` and `?` in actions (case-insensitive) and in each ARN
// segment, the resource part matching across `/` and `:`. Only `Allow` statements with `Action`
// and `Resource` are understood (the template writes no others; anything else is an error).
import { ACCOUNT, type Authorisation } from './recorder.js';

export interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}

/** What a template's references stand for in the test's account. */
export interface Environment {
  /** Logical id → its `Arn` (Fn::GetAtt) and its `Ref` value (defaults to the Arn). */
  resources?: Record<string, { Arn?: string; Ref?: string; [attribute: string]: string | undefined }>;
  /** Parameter values (defaults: the template's `Default`s). */
  parameters?: Record<string, string>;
  stackName?: string;
}

type Template = {
  Parameters?: Record<string, { Default?: unknown }>;
  Conditions?: Record<string, unknown>;
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
};

/** The resolver of one template's intrinsics in an environment. */
export function resolver(template: Template, env: Environment = {}) {
  const parameters: Record<string, string> = {};
  for (const [name, p] of Object.entries(template.Parameters ?? {}))
    if (p.Default !== undefined) parameters[name] = String(p.Default);
  Object.assign(parameters, env.parameters);
  const pseudo: Record<string, string> = {
    'AWS::Partition': ACCOUNT.partition,
    'AWS::Region': ACCOUNT.region,
    'AWS::AccountId': ACCOUNT.accountId,
    'AWS::StackName': env.stackName ?? 'tributary-test',
    'AWS::URLSuffix': 'amazonaws.com',
  };
  const attribute = (logical: string, attr: string): string => {
    const assigned = env.resources?.[logical]?.[attr];
    if (assigned !== undefined) return assigned;
    if (!template.Resources[logical]) throw new Error(`Fn::GetAtt of ${logical}.${attr}: no such resource`);
    throw new Error(`Fn::GetAtt of ${logical}.${attr}: the test assigns it no value`);
  };
  const ref = (name: string): string => {
    if (name in pseudo) return pseudo[name] as string;
    if (name in parameters) return parameters[name] as string;
    if (template.Parameters?.[name]) throw new Error(`Ref ${name}: a parameter without a value`);
    const r = env.resources?.[name];
    const v = r?.Ref ?? r?.Arn;
    if (v !== undefined) return v;
    throw new Error(`Ref ${name}: ${template.Resources[name] ? 'the test assigns it no value' : 'unknown'}`);
  };
  const condition = (name: string): boolean => {
    const c = template.Conditions?.[name];
    if (c === undefined) throw new Error(`condition ${name}: not in the template`);
    return truth(c);
  };
  const truth = (c: unknown): boolean => {
    const [fn, args] = Object.entries(c as object)[0] as [string, unknown[]];
    switch (fn) {
      case 'Fn::Equals':
        return value(args[0]) === value(args[1]);
      case 'Fn::Not':
        return !truth(args[0]);
      case 'Fn::And':
        return args.every(truth);
      case 'Fn::Or':
        return args.some(truth);
      case 'Condition':
        return condition(args as unknown as string);
      default:
        throw new Error(`condition function ${fn}: not understood`);
    }
  };
  const sub = (text: string, vars: Record<string, unknown> = {}): string =>
    text.replace(/\$\{(!?)([^}]*)\}/g, (_, bang: string, name: string) => {
      if (bang) return `\${${name}}`;
      if (name in vars) return value(vars[name]);
      const dot = name.indexOf('.');
      if (dot > 0 && !name.startsWith('AWS::')) return attribute(name.slice(0, dot), name.slice(dot + 1));
      return ref(name);
    });
  /** One intrinsic (or a literal) as a string; a list (`Fn::Split`, …) is not expected in a resource. */
  const value = (v: unknown): string => {
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`not a value: ${JSON.stringify(v)}`);
    const [fn, arg] = Object.entries(v)[0] as [string, unknown];
    switch (fn) {
      case 'Ref':
        return ref(arg as string);
      case 'Fn::GetAtt': {
        const [logical, attr] = typeof arg === 'string' ? arg.split('.') : (arg as string[]);
        return attribute(logical as string, attr as string);
      }
      case 'Fn::Sub':
        return Array.isArray(arg) ? sub(arg[0] as string, arg[1] as Record<string, unknown>) : sub(arg as string);
      case 'Fn::Join': {
        const [sep, parts] = arg as [string, unknown[]];
        return parts.map(value).join(sep);
      }
      case 'Fn::If': {
        const [c, yes, no] = arg as [string, unknown, unknown];
        return value(condition(c) ? yes : no);
      }
      case 'Fn::Select': {
        const [i, list] = arg as [number, unknown[]];
        return value(list[Number(i)]);
      }
      default:
        throw new Error(`intrinsic ${fn}: not understood`);
    }
  };
  /** A Resource entry or list, resolved; `AWS::NoValue` (through Fn::If) drops an entry. */
  const resources = (r: unknown): string[] =>
    (Array.isArray(r) ? r : [r]).flatMap((x) => {
      if (x !== null && typeof x === 'object' && 'Fn::If' in x) {
        const [c, yes, no] = (x as { 'Fn::If': [string, unknown, unknown] })['Fn::If'];
        const pick = condition(c) ? yes : no;
        if (pick !== null && typeof pick === 'object' && (pick as { Ref?: string }).Ref === 'AWS::NoValue') return [];
        return resources(pick);
      }
      return [value(x)];
    });
  return { value, resources, condition };
}

/** The statements of the template's role(s), with their Resource entries resolved. */
export function roleStatements(template: Template, env: Environment = {}): (Statement & { Resource: string[] })[] {
  const r = resolver(template, env);
  const out: (Statement & { Resource: string[] })[] = [];
  for (const res of Object.values(template.Resources)) {
    if (res.Type !== 'AWS::IAM::Role' && res.Type !== 'AWS::IAM::Policy' && res.Type !== 'AWS::IAM::ManagedPolicy')
      continue;
    const docs =
      res.Type === 'AWS::IAM::Role'
        ? ((res.Properties?.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]).map(
            (p) => p.PolicyDocument,
          )
        : [res.Properties?.PolicyDocument as { Statement: Statement[] }];
    for (const doc of docs)
      for (const entry of doc.Statement) {
        // A statement under a condition (`Fn::If` → the statement or AWS::NoValue).
        let s: unknown = entry;
        while (s !== null && typeof s === 'object' && 'Fn::If' in s) {
          const [c, yes, no] = (s as { 'Fn::If': [string, unknown, unknown] })['Fn::If'];
          s = r.condition(c) ? yes : no;
        }
        if ((s as { Ref?: string }).Ref === 'AWS::NoValue') continue;
        const st = s as Statement;
        out.push({ ...st, Resource: r.resources(st.Resource) });
      }
  }
  return out;
}

/** IAM's wildcard match (`*`: any run of characters, `?`: one), optionally ignoring case. */
export function globMatch(pattern: string, text: string, ignoreCase = false): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, ignoreCase ? 'is' : 's').test(text);
}

/** Whether an ARN pattern covers an ARN: each of the first five segments alone, then the rest. */
export function arnMatch(pattern: string, arn: string): boolean {
  if (pattern === '*') return true;
  const split = (s: string) => {
    const parts = s.split(':');
    return [...parts.slice(0, 5), parts.slice(5).join(':')];
  };
  const p = split(pattern);
  const a = split(arn);
  if (p.length !== a.length) return false;
  return p.every((seg, i) => globMatch(seg, a[i] as string));
}

const asList = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

function checkShape(s: Statement): void {
  const keys = Object.keys(s).filter((k) => k !== 'Sid');
  const known = new Set(['Effect', 'Action', 'Resource']);
  const other = keys.filter((k) => !known.has(k));
  if (other.length > 0 || s.Effect !== 'Allow')
    throw new Error(
      `statement ${s.Sid ?? '?'}: only Allow with Action and Resource is understood (${other.join(', ')})`,
    );
}

/** The statements allowing `need` (empty: it is denied). */
export function allowing(statements: readonly (Statement & { Resource: string[] })[], need: Authorisation) {
  return statements.filter((s) => {
    checkShape(s);
    return (
      asList(s.Action).some((a) => globMatch(a, need.action, true)) &&
      s.Resource.some((r) => arnMatch(r, need.resource))
    );
  });
}

/** Every need that no statement allows, as `action on resource` lines. */
export function denied(statements: readonly (Statement & { Resource: string[] })[], needs: readonly Authorisation[]) {
  const out = new Set<string>();
  for (const n of needs) if (allowing(statements, n).length === 0) out.add(`${n.action} on ${n.resource}`);
  return [...out];
}
