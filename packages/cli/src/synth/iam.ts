/**
 * The least-privilege policy of a synthesised stack, built from the components themselves: each
 * registered source, sink, lookup, store and dead-letter kind declares the AWS actions it calls
 * and what they act on (`permissions(spec)` on its definition, in its own file); here each
 * declaration becomes a statement naming that resource's ARN. A resource the template creates
 * itself (a state table with a generated name, the stream it makes) is named by the template's
 * reference instead (`refs`). No data action is granted on `"Resource": "*"`.
 */
import { ConfigError, type PipelineSpec } from '@tributary/core';
import {
  type AwsPermission,
  type AwsResource,
  type ComponentDefinition,
  type ComponentUse,
  definitions,
  walkComponents,
} from '@tributary/core/spi';

/** One IAM policy statement. */
export interface Statement {
  Sid: string;
  Effect: 'Allow';
  Action: string[];
  Resource: unknown[];
}

/**
 * The template's own reference for a resource it creates (e.g. `{ 'Fn::GetAtt': ['StateTable0', 'Arn'] }`),
 * or undefined to name it by its ARN. `use` is the component declaring it.
 */
export type ResourceRef = (resource: AwsResource, use: ComponentUse) => unknown[] | undefined;

const sub = (s: string) => ({ 'Fn::Sub': s });
const PREFIX = `arn:\${AWS::Partition}`;
/** A regional service's ARN prefix: the component's own `region` if it names one, else the stack's. */
const REGIONAL = (service: string, region?: string) =>
  `${PREFIX}:${service}:${region === undefined ? `\${AWS::Region}` : lit(region)}:\${AWS::AccountId}`;
/** `${…}` in a name would be read by Fn::Sub as a reference: `${!` writes it literally. */
const lit = (s: string) => s.replaceAll('${', '${!');

/**
 * An SQS queue's ARN from its URL: `https://sqs.<region>.amazonaws.com/<account>/<name>` (the
 * dual-stack `sqs.<region>.api.aws`, an interface endpoint's host, and the legacy
 * `https://<region>.queue.amazonaws.com/…`, `https://queue.amazonaws.com/…` of us-east-1) name
 * their region and account; any other host (an emulator) is read as a queue of this stack's
 * region, in the account its path names (or the stack's). By name: a queue of this stack.
 */
export function queueArn(r: { url?: string; name?: string }, region?: string): unknown {
  if (r.url === undefined) return sub(`${REGIONAL('sqs', region)}:${lit(r.name ?? '*')}`);
  let host = '';
  let path: string[] = [];
  try {
    const u = new URL(r.url);
    host = u.hostname;
    path = u.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    path = r.url
      .replace(/[?#].*$/, '')
      .split('/')
      .filter(Boolean);
  }
  const name = path.at(-1) ?? '*';
  const account = path.length >= 2 && /^\d{12}$/.test(path.at(-2) as string) ? (path.at(-2) as string) : undefined;
  const urlRegion =
    // sqs.<region>.amazonaws.com(.cn), the dual-stack sqs.<region>.api.aws, an interface endpoint's
    // vpce-….sqs.<region>.vpce.amazonaws.com
    /^(?:vpce-[a-z0-9-]+\.)?sqs\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com(\.cn)?$/.exec(host)?.[1] ??
    /^sqs\.([a-z0-9-]+)\.api\.aws$/.exec(host)?.[1] ??
    /^([a-z0-9-]+)\.queue\.amazonaws\.com(\.cn)?$/.exec(host)?.[1] ??
    (host === 'queue.amazonaws.com' ? 'us-east-1' : undefined);
  return sub(
    `${PREFIX}:sqs:${urlRegion ?? (region === undefined ? `\${AWS::Region}` : lit(region))}:${account ?? `\${AWS::AccountId}`}:${lit(name)}`,
  );
}

/**
 * The ARNs a resource declaration stands for. `region` is the component's own `region` option:
 * a component calling another region acts on that region's resources (default: the stack's).
 */
export function arnsOf(r: AwsResource, region?: string): unknown[] {
  switch (r.type) {
    case 'kinesis-stream':
      return [r.arn ?? sub(`${REGIONAL('kinesis', region)}:stream/${lit(r.name ?? '*')}`)];
    case 'kinesis-consumer': {
      const stream = r.streamArn ?? `${REGIONAL('kinesis', region)}:stream/${lit(r.stream ?? '*')}`;
      return [sub(`${r.streamArn ? lit(stream) : stream}/consumer/${lit(r.consumer)}:*`)];
    }
    case 'dynamodb-table': {
      const table = `${REGIONAL('dynamodb', region)}:table/${lit(r.name)}`;
      return r.indexes ? [sub(table), sub(`${table}/index/*`)] : [sub(table)];
    }
    case 'dynamodb-stream':
      return [r.arn ?? sub(`${REGIONAL('dynamodb', region)}:table/${lit(r.table ?? '*')}/stream/*`)];
    case 's3-objects':
      return [sub(`${PREFIX}:s3:::${lit(r.bucket)}/${lit(r.prefix ?? '')}*`)];
    case 's3-bucket':
      return [sub(`${PREFIX}:s3:::${lit(r.bucket)}`)];
    case 'sqs-queue':
      return [queueArn(r, region)];
    case 'firehose-delivery-stream':
      return [sub(`${REGIONAL('firehose', region)}:deliverystream/${lit(r.name)}`)];
    case 'secret':
      // A secret's ARN is its name, a hyphen and six characters: `-??????` (not `-*`, which also
      // matches the secrets named `<name>-<anything>`).
      return r.id.startsWith('arn:')
        ? [r.id]
        : [sub(`${REGIONAL('secretsmanager', region)}:secret:${lit(r.id)}-??????`)];
    case 'kms-key':
      if (r.id.startsWith('arn:')) return [r.id];
      return [sub(`${REGIONAL('kms', region)}:${r.id.startsWith('alias/') ? lit(r.id) : `key/${lit(r.id)}`}`)];
    case 'arn':
      return [r.arn];
  }
}

/** Whether a declaration names its resource (a statement on a whole service's resources is never written). */
function names(r: AwsResource): boolean {
  switch (r.type) {
    case 'kinesis-stream':
      return Boolean(r.name || r.arn);
    case 'kinesis-consumer':
      return Boolean(r.stream || r.streamArn);
    case 'dynamodb-stream':
      return Boolean(r.table || r.arn);
    case 'sqs-queue':
      return Boolean(r.url || r.name);
    case 'dynamodb-table':
      return Boolean(r.name);
    case 's3-objects':
    case 's3-bucket':
      return Boolean(r.bucket);
    case 'firehose-delivery-stream':
      return Boolean(r.name);
    case 'secret':
    case 'kms-key':
      return Boolean(r.id);
    case 'arn':
      return Boolean(r.arn) && r.arn !== '*';
  }
}

/** `Steps2WindowState` for `/steps/2/window/state`: a statement id (alphanumeric) naming the component. */
export function sidOf(path: string): string {
  const words = path
    .split('/')
    .filter(Boolean)
    .map((w) => w.replace(/[^A-Za-z0-9]/g, ''))
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1));
  return words.join('') || 'Pipeline';
}

/** Every component of `spec` with its declared permissions (the default dead-letter output, stderr, included). */
export function componentPermissions(spec: PipelineSpec): { use: ComponentUse; permissions: AwsPermission[] }[] {
  const defs = new Map<string, ComponentDefinition>();
  for (const category of ['step', 'source', 'sink', 'lookup', 'store'] as const)
    for (const d of definitions(category)) defs.set(`${category}:${d.kind}`, d);
  const out: { use: ComponentUse; permissions: AwsPermission[] }[] = [];
  for (const use of walkComponents({ ...spec, deadLetter: spec.deadLetter ?? { stderr: {} } })) {
    const def = defs.get(`${use.category}:${use.kind}`) as
      | (ComponentDefinition & { permissions?: (spec: unknown) => AwsPermission[] })
      | undefined;
    const permissions = def?.permissions?.(use.spec) ?? [];
    if (permissions.length > 0) out.push({ use, permissions });
  }
  return out;
}

/** A component's own `region` option (a client of another region than the function's), if any. */
function regionOf(use: ComponentUse): string | undefined {
  const region = (use.spec as { region?: unknown } | undefined)?.region;
  return typeof region === 'string' && region !== '' ? region : undefined;
}

/**
 * One statement per component and resource: its actions on that resource's ARNs (or the
 * template's reference to it). Actions sorted, duplicates dropped; ids unique.
 */
export function componentStatements(spec: PipelineSpec, ref: ResourceRef = () => undefined): Statement[] {
  const statements: Statement[] = [];
  const sids = new Set<string>();
  for (const { use, permissions } of componentPermissions(spec)) {
    permissions.forEach((p, i) => {
      if (!names(p.resource))
        throw new ConfigError(
          `${use.category} ${use.kind} at ${use.path} declares ${p.actions.join(', ')} on a ${p.resource.type} it does not name: its statement would grant them on every one`,
        );
      let sid = `${sidOf(use.path)}${permissions.length > 1 ? i : ''}`;
      for (let n = 2; sids.has(sid); n++) sid = `${sidOf(use.path)}${i}x${n}`;
      sids.add(sid);
      statements.push({
        Sid: sid,
        Effect: 'Allow',
        Action: [...new Set(p.actions)].sort(),
        Resource: ref(p.resource, use) ?? arnsOf(p.resource, regionOf(use)),
      });
    });
  }
  return statements;
}
