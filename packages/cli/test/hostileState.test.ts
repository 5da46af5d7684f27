// A DynamoDB state table deleted while `tributary run` uses it (issue 12): the run fails with one
// line naming the table and the cause — not `Cannot delete property '$response' of …`.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteTableCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStateTables, dynamoDbClient, startDynalite } from '../../../test-support/emulators.js';
import { startCli, until } from './hostileSupport.js';

let dyn: { endpoint: string; close: () => Promise<void> };
beforeAll(async () => {
  dyn = await startDynalite();
});
afterAll(async () => {
  await dyn?.close();
});

describe('a state table deleted mid-run', () => {
  it('tributary run fails (exit 2) with a StateStoreError naming the table: not found (deleted?)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-deleted-'));
    const table = 'deleted-mid-run';
    await createStateTables(dyn.endpoint, table);
    const client = dynamoDbClient(dyn.endpoint);
    const file = join(dir, 'p.yaml');
    await writeFile(
      file,
      `version: 1
name: deleted
source: { file: { path: '-', batchSize: 10 } }
eventTime: event.t
steps:
  - window:
      key: event.k
      tumbling: 1h
      aggregate: { n: count() }
      state: { dynamodb: { table: ${table}, endpoint: '${dyn.endpoint}' } }
  - sink: { file: { path: out.jsonl } }
`,
    );
    const cli = startCli(['run', file]);
    const lines = (from: number) =>
      Array.from({ length: 10 }, (_, i) => `${JSON.stringify({ k: `k${i % 3}`, t: 1000 + from + i })}\n`).join('');
    cli.child.stdin.write(lines(0));
    await until(async () => ((await client.send(new ScanCommand({ TableName: table }))).Count ?? 0) > 0, 'state');
    await client.send(new DeleteTableCommand({ TableName: table }));
    cli.child.stdin.end(lines(10));
    const { code } = await cli.exited;
    client.destroy();
    expect(cli.stderr()).toMatch(
      /^deleted: failed: state store: .*\(dynamodb table deleted-mid-run\) failed: table deleted-mid-run not found \(deleted\?\): ResourceNotFoundException: .*\n$/,
    );
    expect(code).toBe(2);
  });
});
