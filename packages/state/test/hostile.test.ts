// Hostile conditions at the store boundary (issue 12): a state table deleted mid-run, and SDK
// errors that cannot be changed (frozen, non-configurable properties). The store's error must be
// a StateStoreError that says what happened, never a TypeError from translating it.
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { isTransient } from '@tributary/core/spi';
import { dynamoDbState, StateStoreError } from '@tributary/state';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStateTables, dynamoDbClient, startDynalite } from '../../../test-support/emulators.js';
import { toBatch } from '../../core/test/windows/reference.js';
import { withRetries } from '../src/retry.js';
import { processOf, yamlPipeline } from './backends.js';

describe('withRetries never changes the error it translates', () => {
  it('a frozen error with a non-configurable $response: a StateStoreError whose cause is that error, unchanged', async () => {
    const response = { statusCode: 400, body: 'x'.repeat(10) };
    const sdkError = Object.defineProperty(new Error('Requested resource not found'), '$response', {
      value: response,
      enumerable: false,
      writable: false,
      configurable: false,
    });
    sdkError.name = 'ResourceNotFoundException';
    Object.freeze(sdkError);
    const err = await withRetries('read (dynamodb table gone-table)', () => Promise.reject(sdkError), {
      retries: 0,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateStoreError);
    expect((err as Error).message).toBe(
      'state store: read (dynamodb table gone-table) failed: table gone-table not found (deleted?): ResourceNotFoundException: Requested resource not found',
    );
    expect((err as Error).cause).toBe(sdkError);
    expect((sdkError as unknown as { $response: unknown }).$response).toBe(response);
  });

  it('an error whose name and message getters throw, and a thrown non-error, still become StateStoreErrors', async () => {
    const hostile = new Proxy(new Error('x'), {
      get(_t, prop) {
        if (prop === 'name' || prop === 'message') throw new RangeError('no');
        return undefined;
      },
    });
    const a = await withRetries('write (dynamodb table t)', () => Promise.reject(hostile), { retries: 0 }).catch(
      (e: unknown) => e,
    );
    expect(a).toBeInstanceOf(StateStoreError);
    expect((a as Error).message).toMatch(/^state store: write \(dynamodb table t\) failed: /);
    const b = await withRetries('write (dynamodb table t)', () => Promise.reject(Object.freeze({ code: 42 })), {
      retries: 0,
    }).catch((e: unknown) => e);
    expect(b).toBeInstanceOf(StateStoreError);
  });
});

describe('a DynamoDB state table deleted mid-run', () => {
  let dyn: { endpoint: string; close: () => Promise<void> };
  beforeAll(async () => {
    dyn = await startDynalite();
  });
  afterAll(async () => {
    await dyn?.close();
  });

  it('fails the batch with a StateStoreError naming the table, not retried (ResourceNotFoundException)', async () => {
    const table = 'hostile-deleted';
    await createStateTables(dyn.endpoint, table);
    const client = dynamoDbClient(dyn.endpoint);
    const store = dynamoDbState({ table, endpoint: dyn.endpoint, retry: { retries: 3, minDelay: 1, maxDelay: 5 } });
    const yaml = `version: 1
name: deleted-table
source: { file: { path: in.jsonl } }
eventTime: event.t
steps:
  - window:
      key: event.k
      tumbling: 100ms
      aggregate: { n: count() }
      state: { ref: store }
`;
    const proc = processOf(yamlPipeline(yaml, { store }));
    proc.compiled.registerShard('s0');
    await proc.process(toBatch([{ k: 'a', t: 1000, v: 1, shard: 's0', seq: 1 }]));
    await client.send(new DeleteTableCommand({ TableName: table }));
    const err = await proc.process(toBatch([{ k: 'a', t: 1010, v: 1, shard: 's0', seq: 2 }])).catch((e: unknown) => e);
    client.destroy();
    await proc.close().catch(() => {});
    expect(err).toBeInstanceOf(StateStoreError);
    expect((err as Error).message).toMatch(
      /^state store: .*\(dynamodb table hostile-deleted\) failed: table hostile-deleted not found \(deleted\?\): ResourceNotFoundException/,
    );
    const cause = (err as Error).cause as Error;
    expect(cause.name).toBe('ResourceNotFoundException');
    expect(isTransient(cause)).toBe(false);
  });
});
