// enrich with a DynamoDB lookup, against dynalite: items joined by key, BatchGetItem in hundreds,
// unprocessed keys retried, the enrich cache saving calls.
import { type BatchGetItemCommand, BatchWriteItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { compile, type DeadLetterRecord, MemorySink, type Pipeline, parsePipelineYaml } from '@tributary/core';
import { DynamoDbLookup } from '@tributary/state';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTable, dynamoDbClient, type Emulator, startDynalite } from '../../../test-support/emulators.js';

let dynamo: Emulator;
let client: DynamoDBClient;
const users = Array.from({ length: 250 }, (_, i) => ({
  id: `u${i}`,
  tier: i % 3 === 0 ? 'gold' : 'basic',
  age: 20 + (i % 40),
}));

beforeAll(async () => {
  dynamo = await startDynalite();
  client = dynamoDbClient(dynamo.endpoint);
  await createTable(client, 'users');
  for (let i = 0; i < users.length; i += 25) {
    await client.send(
      new BatchWriteItemCommand({
        RequestItems: {
          users: users.slice(i, i + 25).map((u) => ({
            PutRequest: { Item: { id: { S: u.id }, tier: { S: u.tier }, age: { N: String(u.age) } } },
          })),
        },
      }),
    );
  }
});
afterAll(async () => {
  client?.destroy();
  await dynamo?.close();
});

const yaml = (lookup: string, extra = '', bindings: Record<string, unknown> = {}): Pipeline => {
  const parsed = parsePipelineYaml(
    `version: 1\nname: enrich-test\nsource: { file: { path: in.jsonl } }\nsteps:\n  - enrich:\n      lookup: ${lookup}\n      as: profile\n${extra}`,
    'p.yaml',
  );
  if (!parsed.spec) throw new Error(parsed.issues.map((i) => i.message).join('\n'));
  return { spec: parsed.spec, bindings: new Map(Object.entries(bindings)), baseDir: process.cwd() };
};

const batchOf = (ids: string[]) => ({
  shardId: 's0',
  records: ids.map((uid, i) => ({ value: { uid }, partitionKey: uid, sequenceNumber: String(i + 1), arrivalTime: 0 })),
});

/** The oracle: the seeded users by id. */
const byId = new Map(users.map((u) => [u.id, u]));
const expectedFor = (ids: string[]) => ids.map((uid) => ({ uid, profile: byId.get(uid) ?? null }));

describe('enrich with a DynamoDB lookup', () => {
  it('YAML: key: { id: event.uid } joins each record with its item; missing items are null', async () => {
    const p = yaml(`{ dynamodb: { table: users, key: { id: event.uid }, endpoint: '${dynamo.endpoint}' } }`);
    const compiled = compile(p, { collectTail: true, deadLetter: new MemorySink() });
    const ids = Array.from({ length: 600 }, (_, i) => `u${(i * 7) % 300}`); // u250..u299 do not exist
    const result = await compiled.process(batchOf(ids));
    expect(result.tail?.map((e) => e.value)).toEqual(expectedFor(ids));
    expect(compiled.describe()).toContain('dynamodb by event.uid as profile');
    await compiled.close();
  });

  it('fetches distinct keys in calls of 100, and the enrich cache saves the next batch a call', async () => {
    const lookup = new DynamoDbLookup({ table: 'users', keyAttribute: 'id', endpoint: dynamo.endpoint });
    const p = yaml('{ ref: users }', '      key: event.uid\n', { users: lookup });
    const compiled = compile(p, { collectTail: true, deadLetter: new MemorySink() });
    const ids = Array.from({ length: 900 }, (_, i) => `u${i % 250}`);
    const first = await compiled.process(batchOf(ids));
    expect(first.tail?.map((e) => e.value)).toEqual(expectedFor(ids));
    expect(lookup.calls).toBe(3); // 250 distinct keys
    await compiled.process(batchOf(ids.slice(0, 100)));
    expect(lookup.calls).toBe(3);
    await compiled.close();
    await lookup.close();
  });

  it('retries unprocessed keys until every key is answered', async () => {
    let throttled = 0;
    // The real server, with the first answers cut short as DynamoDB does under load.
    const stingy = {
      send: async (command: BatchGetItemCommand) => {
        const res = (await client.send(command)) as {
          Responses?: Record<string, unknown[]>;
          UnprocessedKeys?: unknown;
        };
        const keys = command.input.RequestItems?.users?.Keys ?? [];
        if (throttled < 3 && keys.length > 1) {
          throttled++;
          const half = Math.ceil(keys.length / 2);
          const kept = new Set(keys.slice(0, half).map((k) => (k.id as { S: string }).S));
          return {
            Responses: {
              users: (res.Responses?.users ?? []).filter((it) => kept.has((it as { id: { S: string } }).id.S)),
            },
            UnprocessedKeys: { users: { Keys: keys.slice(half) } },
          };
        }
        return res;
      },
      destroy() {},
    } as unknown as DynamoDBClient;
    const lookup = new DynamoDbLookup({ table: 'users', keyAttribute: 'id', client: stingy });
    const keys = Array.from({ length: 120 }, (_, i) => `u${i}`);
    const got = await lookup.get(keys);
    expect(throttled).toBe(3);
    expect(new Map([...got].sort())).toEqual(new Map(keys.map((k) => [k, byId.get(k)] as const).sort()));
    expect(lookup.calls).toBeGreaterThan(2);
  });

  it('onMissing: dead-letter names the key; a lookup that fails fails the batch (retried, not lost)', async () => {
    const dead = new MemorySink<DeadLetterRecord>();
    const p = yaml(
      `{ dynamodb: { table: users, key: { id: event.uid }, endpoint: '${dynamo.endpoint}' } }`,
      '      onMissing: dead-letter\n',
    );
    const compiled = compile(p, { collectTail: true, deadLetter: dead });
    const r = await compiled.process(batchOf(['u1', 'nobody', 'u2']));
    expect(r.tail?.map((e) => e.value)).toEqual(expectedFor(['u1', 'u2']));
    expect(dead.values.map((d) => [d.reason, d.error])).toEqual([
      ['missing-lookup', 'no dynamodb entry for key "nobody"'],
    ]);
    await compiled.close();
    const broken = compile(
      yaml(`{ dynamodb: { table: no-such-table, key: { id: event.uid }, endpoint: '${dynamo.endpoint}' } }`),
      {
        deadLetter: new MemorySink(),
      },
    );
    await expect(broken.process(batchOf(['u1']))).rejects.toThrow(/lookup failed: .*ResourceNotFoundException/);
    await broken.close();
  });

  it('enrich without a key is refused when the lookup names none', () => {
    const p = yaml(`{ dynamodb: { table: users, key: id, endpoint: '${dynamo.endpoint}' } }`);
    expect(() => compile(p)).toThrow(/enrich needs a `key`/);
  });
});
