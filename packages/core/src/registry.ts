/**
 * Component registry. A step, source, sink, lookup or state-store kind is one file that exports its schema
 * fragment and its factory and registers itself here; the pipeline schema, the validator, the
 * compiler and the generated docs all read from this one place.
 */
import type { TSchema } from 'typebox';
import { ConfigError, type ValidationIssue } from './errors.js';

export type ComponentCategory = 'step' | 'source' | 'sink' | 'lookup' | 'store';

export interface ComponentDefinition {
  /** The YAML key, e.g. `filter` or `file`. */
  kind: string;
  category: ComponentCategory;
  /**
   * The module that registers this kind, as a bundle imports it: a package export
   * (`@tributary/sinks/kinesis`), or for core's built-ins a path relative to core's `dist/`
   * (`./steps/filter.js`). `tributary synth` bundles exactly the modules of the kinds a pipeline
   * uses (see `walkComponents`).
   */
  module: string;
  /** JSON Schema of the value under the kind key. */
  schema: TSchema;
  /** Schemas the kind's schema refers to as `#/$defs/<name>` (a recursive part), added to the pipeline schema. */
  defs?: Readonly<Record<string, TSchema>>;
  /** One paragraph for the generated docs. */
  description: string;
  /**
   * The AWS actions a configured component calls and what they act on, for the least-privilege
   * role `tributary synth` writes (one statement per component). Absent: it calls no AWS API.
   * The synth policy test checks every SDK command a real run sends against these.
   */
  permissions?(spec: never): AwsPermission[];
}

/**
 * What an AWS resource a component acts on is, by name as the pipeline gives it; synth turns it
 * into an ARN (or a reference to the resource when its template creates it).
 */
export type AwsResource =
  | { type: 'kinesis-stream'; name?: string; arn?: string }
  /** An enhanced fan-out consumer of a stream (its ARN is the stream's plus `/consumer/<name>:*`). */
  | { type: 'kinesis-consumer'; stream?: string; streamArn?: string; consumer: string }
  /** A table, and with `indexes` its secondary indexes too. */
  | { type: 'dynamodb-table'; name: string; indexes?: boolean }
  /** The stream of a table (`/stream/*`) or a stream ARN. */
  | { type: 'dynamodb-stream'; table?: string; arn?: string }
  /** Objects under a key prefix of a bucket (`arn:…:s3:::bucket/prefix*`); or the bucket itself. */
  | { type: 's3-objects'; bucket: string; prefix?: string }
  | { type: 's3-bucket'; bucket: string }
  /** A queue by its URL or name. */
  | { type: 'sqs-queue'; url?: string; name?: string }
  | { type: 'firehose-delivery-stream'; name: string }
  /** A Secrets Manager secret by name or ARN. */
  | { type: 'secret'; id: string }
  /** A KMS key by ARN, id or alias (`alias/…`). */
  | { type: 'kms-key'; id: string }
  /** A resource named by its full ARN. */
  | { type: 'arn'; arn: string };

export interface AwsPermission {
  /** IAM actions, `service:Action` (e.g. `dynamodb:UpdateItem`). */
  actions: string[];
  resource: AwsResource;
}

const components: Record<ComponentCategory, Map<string, ComponentDefinition>> = {
  step: new Map(),
  source: new Map(),
  sink: new Map(),
  lookup: new Map(),
  store: new Map(),
};

/**
 * Registers a component definition (its kind must be new in its category). The module exports
 * the result as `<kind><Category>Definition`: `filterStepDefinition`, `kinesisSinkDefinition`,
 * `dynamodbStoreDefinition`, `staticLookupDefinition`, `fileSourceDefinition`.
 */
export function register<D extends ComponentDefinition>(def: D): D {
  const map = components[def.category];
  if (map.has(def.kind)) throw new ConfigError(`a ${def.category} kind \`${def.kind}\` is already registered`);
  map.set(def.kind, def);
  return def;
}

export function definitions(category: ComponentCategory): ComponentDefinition[] {
  return [...components[category].values()];
}

export function definition<D extends ComponentDefinition>(category: ComponentCategory, kind: string): D {
  const def = components[category].get(kind);
  if (!def) throw new ConfigError(`unknown ${category} kind \`${kind}\``);
  return def as D;
}

/** The kind of a one-key component spec such as `{ file: { path } }` (ignoring `name`). */
export function kindOf(spec: object): string {
  for (const k of Object.keys(spec)) if (k !== 'name') return k;
  throw new ConfigError('component has no kind');
}

/** Checks a whole spec against the pipeline schema (set by `validate.ts` when it is loaded). */
export type SpecCheck = (spec: unknown) => ValidationIssue[];
let specCheck: SpecCheck | undefined;

/**
 * Installs the spec check `compile()` runs on specs not marked `validated`. `@tributary/core`
 * installs its JSON Schema validator; `@tributary/core/runtime` leaves it out (a bundle of an
 * already-validated pipeline does not carry ajv and the schemas).
 */
export function setSpecCheck(check: SpecCheck): void {
  specCheck = check;
}

export function installedSpecCheck(): SpecCheck | undefined {
  return specCheck;
}
