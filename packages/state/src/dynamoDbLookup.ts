/**
 * `lookup: { dynamodb: { table, key: { id: event.user } } }` for `enrich`: per batch, the distinct
 * keys the enrich step's cache does not hold are fetched with BatchGetItem, 100 keys per call,
 * unprocessed keys retried with jittered backoff. The item (unmarshalled to plain JSON) is the
 * looked-up value; a missing item is a missing key (`onMissing` decides).
 */
import { BatchGetItemCommand, type BatchGetItemCommandOutput, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { awsClientFields } from '@tributary/aws';
import { dynamoDbClient } from '@tributary/aws/dynamodb';
import {
  type BackoffPolicy,
  backoff,
  Expression,
  type Lookup,
  type LookupDefinition,
  register,
} from '@tributary/core/spi';
import Type, { type Static } from 'typebox';
import { StateConfigError, StateStoreError } from './errors.js';
import { type RetryOptions, withRetries } from './retry.js';

export const dynamoDbLookupSchema = Type.Object(
  {
    table: Type.String({ minLength: 3, maxLength: 255, pattern: '^[A-Za-z0-9_.-]+$', description: 'table name' }),
    key: Type.Union(
      [
        Type.String({ minLength: 1, description: 'name of the partition key attribute (the enrich step gives `key`)' }),
        Type.Record(Type.String({ minLength: 1 }), Expression('the key value'), {
          minProperties: 1,
          maxProperties: 1,
          description: 'partition key attribute → expression, e.g. { id: event.user }',
        }),
      ],
      { description: 'the partition key: its attribute name, or { attribute: expression }' },
    ),
    keyType: Type.Optional(
      Type.Union([Type.Literal('S'), Type.Literal('N')], { description: 'type of the key attribute (default S)' }),
    ),
    attributes: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'attributes to fetch (default: all)' }),
    ),
    consistentRead: Type.Optional(Type.Boolean({ description: 'strongly consistent reads (default false)' })),
    ...awsClientFields,
  },
  { additionalProperties: false },
);
export type DynamoDbLookupSpec = Static<typeof dynamoDbLookupSchema>;

declare module '@tributary/core' {
  interface LookupKinds {
    dynamodb: DynamoDbLookupSpec;
  }
}

export interface DynamoDbLookupOptions {
  table: string;
  /** Name of the partition key attribute. */
  keyAttribute: string;
  keyType?: 'S' | 'N';
  attributes?: string[];
  consistentRead?: boolean;
  region?: string;
  endpoint?: string;
  /** Your own client (it is not closed by Tributary). */
  client?: DynamoDBClient;
  retry?: RetryOptions;
}

const BATCH = 100;
const MAX_ROUNDS = 12;
/** The wait before each further `BatchGetItem` round for unprocessed keys (round n: up to 25 · 2^n ms, at most 2 s). */
const UNPROCESSED_KEYS_BACKOFF: BackoffPolicy = { maxAttempts: MAX_ROUNDS, baseDelay: 50, maxDelay: 2000 };

export class DynamoDbLookup implements Lookup {
  /** BatchGetItem calls made so far. */
  calls = 0;
  private readonly client: DynamoDBClient;
  private readonly owned: boolean;
  constructor(private readonly options: DynamoDbLookupOptions) {
    if (typeof options.table !== 'string' || options.table.length < 3) {
      throw new StateConfigError(
        `Expected \`table\` to be a DynamoDB table name of 3 or more characters, got ${JSON.stringify(options.table)}`,
      );
    }
    this.client = options.client ?? dynamoDbClient(options);
    this.owned = !options.client;
  }

  async get(keys: readonly string[]): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += BATCH) chunks.push(keys.slice(i, i + BATCH));
    await Promise.all(chunks.map((chunk) => this.fetch(chunk, out)));
    return out;
  }

  private async fetch(chunk: readonly string[], out: Map<string, unknown>): Promise<void> {
    const { table, keyAttribute, keyType = 'S', attributes, consistentRead } = this.options;
    const names = attributes
      ? Object.fromEntries([keyAttribute, ...attributes].map((a, i) => [`#a${i}`, a]))
      : undefined;
    let pending: Record<string, unknown>[] | undefined = chunk.map((k) => ({ [keyAttribute]: { [keyType]: k } }));
    for (let round = 0; pending && pending.length > 0; round++) {
      if (round >= MAX_ROUNDS) {
        throw new StateStoreError(
          `dynamodb lookup ${table}: ${pending.length} key(s) still unprocessed after ${round} rounds`,
        );
      }
      if (round > 0) await backoff(UNPROCESSED_KEYS_BACKOFF, round);
      const request = pending;
      const res = await withRetries(
        `dynamodb lookup ${table}`,
        () => {
          this.calls++;
          return this.client.send(
            new BatchGetItemCommand({
              RequestItems: {
                [table]: {
                  Keys: request as never,
                  ConsistentRead: consistentRead === true,
                  ...(names
                    ? { ProjectionExpression: Object.keys(names).join(', '), ExpressionAttributeNames: names }
                    : {}),
                },
              },
            }),
          ) as Promise<BatchGetItemCommandOutput>;
        },
        this.options.retry,
      );
      for (const item of res.Responses?.[table] ?? []) {
        const value = unmarshall(item as never);
        const k = value[keyAttribute];
        if (k !== undefined) out.set(String(k), value);
      }
      pending = res.UnprocessedKeys?.[table]?.Keys as Record<string, unknown>[] | undefined;
    }
  }

  async close(): Promise<void> {
    if (this.owned) this.client.destroy();
  }
}

/** A DynamoDB lookup for `enrich` in TypeScript. */
export function dynamoDbLookup(options: DynamoDbLookupOptions): DynamoDbLookup {
  return new DynamoDbLookup(options);
}

export const dynamodbLookupDefinition: LookupDefinition<DynamoDbLookupSpec> = register({
  kind: 'dynamodb',
  category: 'lookup',
  module: '@tributary/state/dynamoDbLookup',
  schema: dynamoDbLookupSchema,
  description:
    'Items of a DynamoDB table by partition key: per batch the distinct keys not in the enrich cache are fetched with BatchGetItem (100 per call, unprocessed keys retried with backoff). `key: { id: event.user }` names the key attribute and its expression (or give the attribute name and the enrich step its `key`).',
  keyOf: (spec) => (typeof spec.key === 'string' ? undefined : Object.values(spec.key)[0]),
  permissions: (spec) => [
    { actions: ['dynamodb:BatchGetItem'], resource: { type: 'dynamodb-table', name: spec.table } },
  ],
  create(spec) {
    const keyAttribute = typeof spec.key === 'string' ? spec.key : (Object.keys(spec.key)[0] as string);
    return dynamoDbLookup({ ...spec, keyAttribute });
  },
});
