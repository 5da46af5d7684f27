/**
 * DynamoDbLeaseTable on dynalite through the real SDK: KCL 2.x item layout, conditional writes on
 * counter and owner, unknown attributes kept, KCL 1.x / 2.0 items read, the table created on demand.
 */
import {
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { dynamoDbClient, startDynalite, useServers } from '../../../test-support/emulators.js';
import { DynamoDbLeaseTable, LeaseTableError, leaseFromItem } from '../src/leaseTable.js';
import type { Lease } from '../src/leaseTypes.js';

const servers = useServers(async () => {
  const dyn = await startDynalite();
  const client = dynamoDbClient(dyn.endpoint);
  return {
    client,
    close: async () => {
      client.destroy();
      await dyn.close();
    },
  };
});

let n = 0;
async function freshTable(): Promise<DynamoDbLeaseTable> {
  const table = new DynamoDbLeaseTable(servers.client, `leases-${process.pid}-${++n}`, { pollIntervalMs: 5 });
  await table.ensure();
  return table;
}

const lease = (leaseKey: string, extra: Partial<Lease> = {}): Lease => ({
  leaseKey,
  leaseCounter: 0,
  checkpoint: 'TRIM_HORIZON',
  checkpointSubSequenceNumber: 0,
  ownerSwitchesSinceCheckpoint: 0,
  parentShardIds: [],
  childShardIds: [],
  ...extra,
});

const rawItem = async (table: DynamoDbLeaseTable, key: string) =>
  (
    await servers.client.send(
      new GetItemCommand({ TableName: table.tableName, Key: { leaseKey: { S: key } }, ConsistentRead: true }),
    )
  ).Item;

describe('DynamoDbLeaseTable', () => {
  it('creates the table on demand (hash key leaseKey S, on demand) and a second ensure() leaves it as it is', async () => {
    const table = await freshTable();
    const d = (await servers.client.send(new DescribeTableCommand({ TableName: table.tableName }))).Table;
    expect(d?.TableStatus).toBe('ACTIVE');
    expect(d?.KeySchema).toEqual([{ AttributeName: 'leaseKey', KeyType: 'HASH' }]);
    expect(d?.AttributeDefinitions).toEqual([{ AttributeName: 'leaseKey', AttributeType: 'S' }]);
    expect(d?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(await table.create(lease('shardId-000000000000'))).toBe(true);
    await table.ensure();
    expect((await table.list()).map((l) => l.leaseKey)).toEqual(['shardId-000000000000']);
  });

  it('writes a new lease with KCL 2.x names and types, and only once', async () => {
    const table = await freshTable();
    const l = lease('shardId-000000000002', {
      parentShardIds: ['shardId-000000000000', 'shardId-000000000001'],
      startingHashKey: '0',
      endingHashKey: '170141183460469231731687303715884105727',
    });
    expect(await table.create(l)).toBe(true);
    expect(await table.create({ ...l, checkpoint: 'LATEST' })).toBe(false);
    expect(await rawItem(table, l.leaseKey)).toEqual({
      leaseKey: { S: 'shardId-000000000002' },
      leaseCounter: { N: '0' },
      checkpoint: { S: 'TRIM_HORIZON' },
      checkpointSubSequenceNumber: { N: '0' },
      ownerSwitchesSinceCheckpoint: { N: '0' },
      parentShardId: { SS: ['shardId-000000000000', 'shardId-000000000001'] },
      startingHashKey: { S: '0' },
      endingHashKey: { S: '170141183460469231731687303715884105727' },
    });
    expect(await table.list()).toEqual([l]);
  });

  it('take, renew, checkpoint and release bump the counter and hold only while counter and owner match', async () => {
    const table = await freshTable();
    await table.create(lease('s0'));
    const [free] = await table.list();
    const a = await table.take(free as Lease, 'worker-a');
    expect(a).toMatchObject({ leaseOwner: 'worker-a', leaseCounter: 1, ownerSwitchesSinceCheckpoint: 0 });
    // A second taker that saw the free lease loses the race.
    expect(await table.take(free as Lease, 'worker-b')).toBeUndefined();
    const renewed = await table.renew(a as Lease);
    expect(renewed?.leaseCounter).toBe(2);
    // A stale copy (counter 1) can neither renew nor checkpoint.
    expect(await table.renew(a as Lease)).toBeUndefined();
    expect(await table.checkpoint(a as Lease, { sequenceNumber: '49000', subSequenceNumber: 0 })).toBeUndefined();
    // Stolen by b (owner switch counted), a's current copy is refused.
    const b = await table.take(renewed as Lease, 'worker-b');
    expect(b).toMatchObject({ leaseOwner: 'worker-b', leaseCounter: 3, ownerSwitchesSinceCheckpoint: 1 });
    expect(await table.renew(renewed as Lease)).toBeUndefined();
    const cp = await table.checkpoint(b as Lease, {
      sequenceNumber: '49590338271490256608559692538361571095921575989136588898',
      subSequenceNumber: 3,
    });
    expect(cp).toMatchObject({
      checkpoint: '49590338271490256608559692538361571095921575989136588898',
      checkpointSubSequenceNumber: 3,
      ownerSwitchesSinceCheckpoint: 0,
      leaseCounter: 4,
    });
    const released = await table.release(cp as Lease);
    expect(released?.leaseOwner).toBeUndefined();
    expect(released?.leaseCounter).toBe(5);
    expect((await rawItem(table, 's0'))?.leaseOwner).toBeUndefined();
    // A free lease taken again: not an owner switch (as KCL counts them).
    expect((await table.take(released as Lease, 'worker-c'))?.ownerSwitchesSinceCheckpoint).toBe(0);
  });

  it('keeps attributes it does not know (KCL pendingCheckpoint, throughputKBps) through every write', async () => {
    const table = await freshTable();
    const extra = {
      pendingCheckpoint: { S: '49590338271490256608559692538361571095921575989136588900' },
      pendingCheckpointSubSequenceNumber: { N: '0' },
      throughputKBps: { N: '12.5' },
    };
    await servers.client.send(
      new PutItemCommand({
        TableName: table.tableName,
        Item: {
          leaseKey: { S: 's1' },
          leaseCounter: { N: '7' },
          checkpoint: { S: 'TRIM_HORIZON' },
          checkpointSubSequenceNumber: { N: '0' },
          ownerSwitchesSinceCheckpoint: { N: '0' },
          ...extra,
        },
      }),
    );
    const [l] = await table.list();
    const taken = await table.take(l as Lease, 'w');
    const renewed = await table.renew(taken as Lease);
    const cp = await table.checkpoint(renewed as Lease, { sequenceNumber: 'SHARD_END', subSequenceNumber: 0 });
    await table.setChildren(cp as Lease, ['s2', 's3']);
    const item = await rawItem(table, 's1');
    expect(item).toMatchObject({ ...extra, checkpoint: { S: 'SHARD_END' }, leaseCounter: { N: '11' } });
    expect(item?.childShardIds?.SS?.sort()).toEqual(['s2', 's3']);
  });

  it('reads KCL 1.x items (no sub-sequence, no hash range) and KCL 2.0 childShardId', () => {
    expect(
      leaseFromItem({
        leaseKey: { S: 'shardId-000000000001' },
        leaseOwner: { S: 'kcl-host:1234' },
        leaseCounter: { N: '42' },
        checkpoint: { S: '49590338271490256608559692538361571095921575989136588898' },
        ownerSwitchesSinceCheckpoint: { N: '2' },
        childShardId: { SS: ['shardId-000000000003'] },
      }),
    ).toEqual({
      leaseKey: 'shardId-000000000001',
      leaseOwner: 'kcl-host:1234',
      leaseCounter: 42,
      checkpoint: '49590338271490256608559692538361571095921575989136588898',
      checkpointSubSequenceNumber: 0,
      ownerSwitchesSinceCheckpoint: 2,
      parentShardIds: [],
      childShardIds: ['shardId-000000000003'],
    });
    expect(() => leaseFromItem({ shard: { S: 'x' } }, 'orders-app')).toThrow(
      'An item of orders-app has no string leaseKey: it is not a KCL lease table',
    );
  });

  it('a failure that is not a failed condition is a LeaseTableError naming the table', async () => {
    const table = new DynamoDbLeaseTable(servers.client, `absent-${process.pid}`, {
      retry: { maxAttempts: 1, baseDelay: 1, maxDelay: 1 },
    });
    const err = await table.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseTableError);
    expect(String((err as Error).message)).toContain(`Lease table absent-${process.pid}: ResourceNotFoundException`);
  });

  it('ensure() asks for point-in-time recovery on the table it creates; only an unknown-operation answer is let pass', async () => {
    const sent: string[] = [];
    const recording = (pitr: (input: unknown) => Promise<unknown> | undefined) =>
      ({
        send: (command: { constructor: { name: string }; input: unknown }) => {
          sent.push(command.constructor.name);
          if (command.constructor.name === 'UpdateContinuousBackupsCommand') {
            expect(command.input).toMatchObject({
              PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
            });
            const answer = pitr(command.input);
            if (answer) return answer;
          }
          return servers.client.send(command as never);
        },
      }) as unknown as DynamoDBClient;
    // dynalite answers UnknownOperationException: let pass.
    await new DynamoDbLeaseTable(
      recording(() => undefined),
      `pitr-${process.pid}-1`,
      { pollIntervalMs: 5 },
    ).ensure();
    expect(sent).toEqual([
      'DescribeTableCommand',
      'CreateTableCommand',
      'DescribeTableCommand',
      'UpdateContinuousBackupsCommand',
    ]);
    // Any other refusal (here: not allowed) fails ensure().
    const denied = Object.assign(new Error('not authorized to perform: dynamodb:UpdateContinuousBackups'), {
      name: 'AccessDeniedException',
    });
    const err = await new DynamoDbLeaseTable(
      recording(() => Promise.reject(denied)),
      `pitr-${process.pid}-2`,
      { pollIntervalMs: 5 },
    )
      .ensure()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseTableError);
    expect((err as Error).message).toContain('AccessDeniedException');
    // An existing table is left as it is (no second create, no PITR call).
    sent.length = 0;
    await new DynamoDbLeaseTable(
      recording(() => undefined),
      `pitr-${process.pid}-1`,
    ).ensure();
    expect(sent).toEqual(['DescribeTableCommand']);
  });

  describe('a write whose answer is lost (it landed, the connection dropped)', () => {
    /** The real client, except that the next `drops` UpdateItems are applied and then answered with a dropped connection. */
    const dropping = () => {
      const state = { drops: 0 };
      const client = {
        send: async (command: unknown) => {
          const out = await servers.client.send(command as UpdateItemCommand);
          if (command instanceof UpdateItemCommand && state.drops > 0) {
            state.drops--;
            throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
          }
          return out;
        },
      } as unknown as DynamoDBClient;
      return { client, state };
    };
    const retryFast = { maxAttempts: 3, baseDelay: 1, maxDelay: 1 };

    it('retried within the call: the landed write is the result, the counter bumped once', async () => {
      const base = await freshTable();
      const { client, state } = dropping();
      const table = new DynamoDbLeaseTable(client, base.tableName, { retry: retryFast });
      await table.create(lease('s0'));
      const taken = (await table.take(lease('s0'), 'a')) as Lease;
      state.drops = 1;
      const renewed = await table.renew(taken);
      expect(renewed).toMatchObject({ leaseOwner: 'a', leaseCounter: taken.leaseCounter + 1 });
      expect((await rawItem(base, 's0'))?.leaseCounter).toEqual({ N: String(taken.leaseCounter + 1) });
    });

    it('every attempt unanswered: the next write of the lease applies on top of the landed one', async () => {
      const base = await freshTable();
      const { client, state } = dropping();
      const table = new DynamoDbLeaseTable(client, base.tableName, { retry: { ...retryFast, maxAttempts: 1 } });
      await table.create(lease('s0'));
      const taken = (await table.take(lease('s0'), 'a')) as Lease;
      state.drops = 1;
      await expect(table.renew(taken)).rejects.toBeInstanceOf(LeaseTableError);
      // The caller still has counter 1; the item has 2 (the renew landed).
      const cp = await table.checkpoint(taken, {
        sequenceNumber: '49000000000000000000000000000000000000000000000000000005',
        subSequenceNumber: 1,
      });
      expect(cp).toMatchObject({
        leaseCounter: 3,
        checkpoint: '49000000000000000000000000000000000000000000000000000005',
        checkpointSubSequenceNumber: 1,
      });
      expect((await rawItem(base, 's0'))?.leaseCounter).toEqual({ N: '3' });
    });

    it('but not when another worker took the lease in between', async () => {
      const base = await freshTable();
      const { client, state } = dropping();
      const table = new DynamoDbLeaseTable(client, base.tableName, { retry: { ...retryFast, maxAttempts: 1 } });
      await table.create(lease('s0'));
      const taken = (await table.take(lease('s0'), 'a')) as Lease;
      state.drops = 1;
      await expect(table.renew(taken)).rejects.toBeInstanceOf(LeaseTableError);
      const [current] = await base.list();
      await base.take(current as Lease, 'b');
      const before = await rawItem(base, 's0');
      expect(
        await table.checkpoint(taken, {
          sequenceNumber: '49000000000000000000000000000000000000000000000000000006',
          subSequenceNumber: 0,
        }),
      ).toBeUndefined();
      expect(await rawItem(base, 's0')).toEqual(before);
    });
  });
});
