/**
 * `dynamodb`: `mode: put` writes each record as an item with BatchWriteItem, 25 per call,
 * UnprocessedItems sent again alone with backoff until done; `mode: update` updates the item
 * keyed by `key` with UpdateItem per record (`add` attributes are added — counters — the others
 * set). An item over 400 KB is dead-lettered. A put is idempotent (a replay overwrites the same
 * item); an update with `add` is not — replays add again unless `add` is empty.
 */
import {
  BatchWriteItemCommand,
  type BatchWriteItemCommandOutput,
  type DynamoDBClient,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { dynamoDbClient } from '@tributary/aws/dynamodb';
import { ConfigError, type RecordEnvelope } from '@tributary/core';
import { register, type SinkDefinition } from '@tributary/core/spi';
import Type, { type Static } from 'typebox';
import { awsFields, batchSinkFields } from './aws.js';
import { BatchSink, type BatchSinkOptions, type Encoded, type EntryFailure, failureOf } from './BatchSink.js';

export const dynamoDbSinkSchema = Type.Object(
  {
    table: Type.String({ minLength: 3, maxLength: 255, pattern: '^[A-Za-z0-9_.-]+$', description: 'table name' }),
    mode: Type.Optional(
      Type.Union([Type.Literal('put'), Type.Literal('update')], { description: 'put (default) or update' }),
    ),
    key: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        maxItems: 2,
        description: 'update: the key attributes, taken from the record',
      }),
    ),
    add: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description: 'update: numeric attributes added (ADD) rather than set',
      }),
    ),
    ...awsFields,
    ...batchSinkFields,
  },
  { additionalProperties: false },
);
export type DynamoDbSinkSpec = Static<typeof dynamoDbSinkSchema>;

declare module '@tributary/core' {
  interface SinkKinds {
    dynamodb: DynamoDbSinkSpec;
  }
}

export interface DynamoDbSinkOptions extends BatchSinkOptions {
  table: string;
  mode?: 'put' | 'update';
  key?: string[];
  add?: string[];
  region?: string;
  endpoint?: string;
  client?: DynamoDBClient;
}

/** DynamoDB counts attribute names and values; the marshalled JSON is a close upper bound. */
const MAX_ITEM = 400 * 1024;

type Payload = { item: Record<string, unknown> };

/** JSON with object keys sorted: the same item compares equal however its answer was ordered. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v instanceof Uint8Array) return JSON.stringify(Buffer.from(v).toString('base64'));
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

export class DynamoDbSink extends BatchSink<Payload> {
  readonly summary: string;
  protected readonly maxRecordsPerCall: number;
  protected readonly maxBytesPerCall = 16 * 1024 * 1024;
  private readonly client: DynamoDBClient;
  private readonly owned: boolean;
  constructor(private readonly sinkOptions: DynamoDbSinkOptions) {
    super(sinkOptions);
    if (sinkOptions.mode === 'update' && !sinkOptions.key?.length) {
      throw new ConfigError('Expected `key` (the key attributes) for a dynamodb sink in update mode');
    }
    this.summary = `dynamodb table ${sinkOptions.table}`;
    this.maxRecordsPerCall = sinkOptions.mode === 'update' ? 1 : 25;
    this.client = sinkOptions.client ?? dynamoDbClient(sinkOptions);
    this.owned = !sinkOptions.client;
  }

  protected encode(env: RecordEnvelope): Encoded<Payload> | EntryFailure {
    const value = this.valueOf(env);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return { code: 'ValidationException', message: 'an item must be a JSON object', transient: false };
    }
    let item: Record<string, unknown>;
    try {
      item = marshall(value as Record<string, unknown>, { removeUndefinedValues: true, convertEmptyValues: false });
    } catch (err) {
      return { ...failureOf(err), code: 'ValidationException', transient: false };
    }
    const bytes = Buffer.byteLength(JSON.stringify(item));
    if (bytes > MAX_ITEM) {
      return {
        code: 'ItemTooLarge',
        message: `item of about ${bytes} bytes is over the 400 KB limit`,
        transient: false,
      };
    }
    for (const k of this.sinkOptions.key ?? []) {
      if (!(k in item))
        return { code: 'ValidationException', message: `the item has no key attribute \`${k}\``, transient: false };
    }
    return { env, payload: { item }, bytes };
  }

  protected async send(entries: readonly Encoded<Payload>[]): Promise<(EntryFailure | undefined)[]> {
    if (this.sinkOptions.mode === 'update') return [await this.update(entries[0] as Encoded<Payload>)];
    const requests: WriteRequest[] = entries.map((e) => ({ PutRequest: { Item: e.payload.item as never } }));
    let res: BatchWriteItemCommandOutput;
    try {
      res = await this.client.send(new BatchWriteItemCommand({ RequestItems: { [this.sinkOptions.table]: requests } }));
    } catch (err) {
      // A validation error fails the whole call: find the bad item by sending them one by one.
      if ((err as { name?: string }).name === 'ValidationException') {
        if (entries.length === 1) return [{ ...failureOf(err), transient: false }];
        const results: (EntryFailure | undefined)[] = [];
        for (const e of entries) {
          try {
            results.push(...(await this.send([e])));
          } catch (one) {
            results.push(failureOf(one));
          }
        }
        return results;
      }
      throw err;
    }
    const returned = res.UnprocessedItems?.[this.sinkOptions.table] ?? [];
    const unprocessed = new Set(returned.map((r) => canonical(r.PutRequest?.Item)));
    const matched = entries.filter((e) => unprocessed.has(canonical(e.payload.item))).length;
    // If an unprocessed item cannot be matched to its entry, send them all again (puts are idempotent).
    const resendAll = matched < returned.length;
    return entries.map((e) =>
      resendAll || unprocessed.has(canonical(e.payload.item))
        ? { code: 'UnprocessedItems', message: 'not processed (throughput)', transient: true }
        : undefined,
    );
  }

  private async update(e: Encoded<Payload>): Promise<EntryFailure | undefined> {
    const keys = new Set(this.sinkOptions.key ?? []);
    const adds = new Set(this.sinkOptions.add ?? []);
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const set: string[] = [];
    const add: string[] = [];
    let i = 0;
    for (const [attr, v] of Object.entries(e.payload.item)) {
      if (keys.has(attr)) continue;
      names[`#a${i}`] = attr;
      values[`:v${i}`] = v;
      (adds.has(attr) ? add : set).push(adds.has(attr) ? `#a${i} :v${i}` : `#a${i} = :v${i}`);
      i++;
    }
    const Key = Object.fromEntries([...keys].map((k) => [k, e.payload.item[k]]));
    const expression = [set.length ? `SET ${set.join(', ')}` : '', add.length ? `ADD ${add.join(', ')}` : '']
      .filter(Boolean)
      .join(' ');
    if (expression === '') return undefined;
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.sinkOptions.table,
          Key: Key as never,
          UpdateExpression: expression,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values as never,
        }),
      );
      return undefined;
    } catch (err) {
      return failureOf(err);
    }
  }

  override async close(): Promise<void> {
    if (this.owned) this.client.destroy();
  }
}

export function dynamoDbSink(options: DynamoDbSinkOptions): DynamoDbSink {
  return new DynamoDbSink(options);
}

export const dynamodbSinkDefinition: SinkDefinition<DynamoDbSinkSpec> = register({
  kind: 'dynamodb',
  category: 'sink',
  module: '@tributary/sinks/dynamodb',
  schema: dynamoDbSinkSchema,
  description:
    'Writes records to a DynamoDB table: `put` (default) as items with BatchWriteItem, 25 per call, UnprocessedItems retried alone with backoff; `update` with UpdateItem per record keyed by `key` (`add` attributes added, the rest set). Items over 400 KB and invalid items go to the dead-letter output with the error code.',
  summary: (spec) => `table ${spec.table} (${spec.mode ?? 'put'})`,
  // `put` writes with BatchWriteItem only, `update` with UpdateItem only.
  permissions: (spec) => [
    {
      actions: [spec.mode === 'update' ? 'dynamodb:UpdateItem' : 'dynamodb:BatchWriteItem'],
      resource: { type: 'dynamodb-table', name: spec.table },
    },
  ],
  create: (spec) => dynamoDbSink(spec),
});
