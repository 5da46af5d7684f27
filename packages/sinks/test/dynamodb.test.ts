// The DynamoDB sink against dynalite: every item written (in calls of 25, unprocessed items sent
// again), an invalid item dead-lettered alone, update mode adding counters, and values that
// cannot be marshalled dead-lettered while the rest is written.
import { type BatchWriteItemCommand, type DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { envelope } from '@tributary/core/spi';
import { dynamoDbSink } from '@tributary/sinks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTable, dynamoDbClient, type Emulator, startDynalite } from '../../../test-support/emulators.js';
import { deadLetters, fast, hostileBatch, recordsOf } from './records.js';

let dynamo: Emulator;
let client: DynamoDBClient;
beforeAll(async () => {
  dynamo = await startDynalite();
  client = dynamoDbClient(dynamo.endpoint);
  for (const t of ['items', 'counters']) await createTable(client, t);
});
afterAll(async () => {
  client?.destroy();
  await dynamo?.close();
});

describe('dynamodb sink (dynalite)', () => {
  it('puts every item in calls of 25; UnprocessedItems are sent again alone; an item over 400 KB is dead-lettered', async () => {
    const sizes: number[] = [];
    const stingy = {
      send: async (command: BatchWriteItemCommand) => {
        const requests = command.input.RequestItems?.items ?? [];
        sizes.push(requests.length);
        // Process the first half; hand the rest back as unprocessed, as DynamoDB does under load.
        const half = sizes.length <= 3 ? Math.ceil(requests.length / 2) : requests.length;
        await client.send(
          new (command.constructor as typeof BatchWriteItemCommand)({
            RequestItems: { items: requests.slice(0, half) },
          }),
        );
        return { UnprocessedItems: half < requests.length ? { items: requests.slice(half) } : {} };
      },
      destroy() {},
    } as unknown as DynamoDBClient;
    const sink = dynamoDbSink({ table: 'items', client: stingy, concurrency: 1, ...fast });
    const records = recordsOf(120);
    const big = envelope(
      { partitionKey: 'k', sequenceNumber: '999', arrivalTime: 0 },
      's',
      { id: 'big', blob: 'x'.repeat(420_000) },
      0,
    );
    const { dead, context } = deadLetters();
    await sink.write([...records, big], context);
    expect(dead.map((d) => d.error)).toEqual([
      expect.stringMatching(/^dynamodb table items: ItemTooLarge: item of about \d+ bytes is over the 400 KB limit$/),
    ]);
    // The first call's unprocessed halves are sent again alone (12, then 6, then 3), then the rest.
    expect(sizes).toEqual([25, 12, 6, 3, 25, 25, 25, 20]);
    const scan = await client.send(new ScanCommand({ TableName: 'items' }));
    const items = (scan.Items ?? []).map((i) => unmarshall(i));
    expect(items.sort((a, b) => a.n - b.n)).toEqual(records.map((r) => r.value));
  });

  it('one invalid item in a call: the others are written, only it is dead-lettered', async () => {
    const sink = dynamoDbSink({ table: 'items', endpoint: dynamo.endpoint, ...fast });
    const values = [1, 2, 3, 4, 5].map((i) => ({ id: i === 3 ? '' : `v${i}`, n: 1000 + i })); // an empty key is invalid
    const envs = values.map((v, i) =>
      envelope({ partitionKey: 'k', sequenceNumber: String(i), arrivalTime: 0 }, 's', v, 0),
    );
    const { dead, context } = deadLetters();
    await sink.write(envs, context);
    await sink.close();
    expect(dead.map((d) => [d.env.sequenceNumber, d.error.split(':')[0] + ':' + d.error.split(':')[1]])).toEqual([
      ['2', 'dynamodb table items: ValidationException'],
    ]);
    const scan = await client.send(new ScanCommand({ TableName: 'items' }));
    const ns = (scan.Items ?? []).map((i) => unmarshall(i).n).filter((n) => n > 1000);
    expect(ns.sort()).toEqual([1001, 1002, 1004, 1005]);
  });

  it('update mode adds counters and sets the other attributes', async () => {
    const sink = dynamoDbSink({
      table: 'counters',
      mode: 'update',
      key: ['id'],
      add: ['clicks'],
      endpoint: dynamo.endpoint,
      ...fast,
    });
    const events = Array.from({ length: 30 }, (_, i) => ({ id: `u${i % 4}`, clicks: 1 + (i % 3), last: i }));
    const envs = events.map((v, i) =>
      envelope({ partitionKey: v.id, sequenceNumber: String(i), arrivalTime: 0 }, 's', v, 0),
    );
    await sink.write(envs, deadLetters().context);
    await sink.close();
    const scan = await client.send(new ScanCommand({ TableName: 'counters' }));
    const got = Object.fromEntries((scan.Items ?? []).map((i) => unmarshall(i)).map((i) => [i.id, i]));
    const expected: Record<string, { id: string; clicks: number; last: number }> = {};
    for (const e of events) {
      const cur = expected[e.id] ?? { id: e.id, clicks: 0, last: 0 };
      expected[e.id] = { id: e.id, clicks: cur.clicks + e.clicks, last: e.last };
    }
    expect(got).toEqual(expected);
  });
});

describe('dynamodb sink: hostile values', () => {
  it('dead-letters the items it cannot marshall (circular, nested too deeply) and writes the rest', async () => {
    const written: unknown[] = [];
    const fake = {
      send: async (cmd: { input: { RequestItems: Record<string, { PutRequest: { Item: unknown } }[]> } }) => {
        for (const r of Object.values(cmd.input.RequestItems)[0] ?? []) written.push(r.PutRequest.Item);
        return { UnprocessedItems: {} };
      },
      destroy() {},
    } as unknown as DynamoDBClient;
    const sink = dynamoDbSink({ table: 't', client: fake, ...fast });
    const { dead, context } = deadLetters();
    await sink.write(hostileBatch(), context);
    expect(dead.map((d) => d.env.sequenceNumber)).toEqual(['2', '4']);
    expect(dead.every((d) => d.error.startsWith('dynamodb table t: ValidationException: '))).toBe(true);
    expect(written).toHaveLength(3);
  });
});
