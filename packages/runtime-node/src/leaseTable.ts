/**
 * The lease table in DynamoDB, laid out as the Kinesis Client Library 2.x lays out its own (see
 * `leaseTypes.ts` for the attributes), so that a table a KCL application wrote is read as it is
 * and a KCL application could read ours.
 *
 * - Every change of an existing lease is an `UpdateItem` (never a `PutItem`) conditional on the
 *   `leaseCounter` (and `leaseOwner`) the caller last saw, so attributes this module does not know
 *   (KCL's `pendingCheckpoint`, `pendingCheckpointSubSequenceNumber`, `throughputKBps`, ...) stay as
 *   they are: read and preserved, never written.
 * - Items of KCL 1.x (no `checkpointSubSequenceNumber`, no hash range) and of KCL 2.0–2.2 (children
 *   in `childShardId` rather than `childShardIds`) are read too.
 * - A failed condition resolves to `undefined` (someone else moved the lease). A transient failure
 *   is retried with core's backoff; when a retried write then meets a failed condition, the item
 *   is read: if it is exactly what the earlier, unanswered attempt would have written (same owner,
 *   counter one higher), that attempt landed, and the operation is applied once more on top of it,
 *   rather than reporting a lease as lost that this worker still holds.
 * - `delete` (an ended shard's lease, once its children have made progress) is a `DeleteItem`
 *   conditional on the counter and on the SHARD_END checkpoint.
 */
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue as RawAttributeValue,
  ResourceInUseException,
  ResourceNotFoundException,
  ScanCommand,
  UpdateContinuousBackupsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { isTransient, type RetryPolicy, retry } from '@tributary/core/spi';
import { LeaseTableError } from './errors.js';
import type { CheckpointPosition, Lease, LeaseTable } from './leaseTypes.js';

type Item = Record<string, RawAttributeValue>;

export { LeaseTableError };

export interface DynamoDbLeaseTableOptions {
  /** Retries of transient failures (default 4 attempts, 50 ms doubling to 1 s). */
  retry?: Omit<RetryPolicy, 'retryable'>;
  /** Polls of DescribeTable while a created table is not yet ACTIVE (default 600, 100 ms apart). */
  activePolls?: number;
  pollIntervalMs?: number;
  /** Called with every SDK call's outcome (metrics). */
  onCall?: (outcome: 'ok' | 'retry' | 'error') => void;
}

const DEFAULT_RETRY = { maxAttempts: 4, baseDelay: 50, maxDelay: 1_000 };

const str = (item: Item, name: string): string | undefined => item[name]?.S;
const num = (item: Item, name: string): number | undefined => {
  const n = item[name]?.N;
  return n === undefined ? undefined : Number(n);
};
const set = (item: Item, name: string): string[] => [...(item[name]?.SS ?? [])].sort();

/** A lease as the item holds it; absent optional attributes take KCL's defaults. */
export function leaseFromItem(item: Item, tableName = 'the lease table'): Lease {
  const leaseKey = str(item, 'leaseKey');
  if (!leaseKey) {
    throw new LeaseTableError(`An item of ${tableName} has no string leaseKey: it is not a KCL lease table`);
  }
  const lease: Lease = {
    leaseKey,
    leaseCounter: num(item, 'leaseCounter') ?? 0,
    // A lease without a checkpoint has processed nothing: read from the shard's start.
    checkpoint: str(item, 'checkpoint') ?? 'TRIM_HORIZON',
    checkpointSubSequenceNumber: num(item, 'checkpointSubSequenceNumber') ?? 0,
    ownerSwitchesSinceCheckpoint: num(item, 'ownerSwitchesSinceCheckpoint') ?? 0,
    parentShardIds: set(item, 'parentShardId'),
    // KCL 2.0–2.2 wrote `childShardId`; later versions `childShardIds`.
    childShardIds: item.childShardIds ? set(item, 'childShardIds') : set(item, 'childShardId'),
  };
  const owner = str(item, 'leaseOwner');
  if (owner !== undefined) lease.leaseOwner = owner;
  const processed = str(item, 'tributaryProcessed');
  const state = str(item, 'tributaryWindowState');
  if (processed !== undefined && state !== undefined) lease.held = { processed, state };
  const start = str(item, 'startingHashKey');
  const end = str(item, 'endingHashKey');
  if (start !== undefined && end !== undefined) {
    lease.startingHashKey = start;
    lease.endingHashKey = end;
  }
  return lease;
}

/** The item of a new lease (KCL's names and types; empty sets and absent values left out). */
export function itemFromLease(lease: Lease): Item {
  const item: Item = {
    leaseKey: { S: lease.leaseKey },
    leaseCounter: { N: String(lease.leaseCounter) },
    checkpoint: { S: lease.checkpoint },
    checkpointSubSequenceNumber: { N: String(lease.checkpointSubSequenceNumber) },
    ownerSwitchesSinceCheckpoint: { N: String(lease.ownerSwitchesSinceCheckpoint) },
  };
  if (lease.leaseOwner !== undefined) item.leaseOwner = { S: lease.leaseOwner };
  if (lease.parentShardIds.length > 0) item.parentShardId = { SS: [...lease.parentShardIds] };
  if (lease.childShardIds.length > 0) item.childShardIds = { SS: [...lease.childShardIds] };
  if (lease.startingHashKey !== undefined && lease.endingHashKey !== undefined) {
    item.startingHashKey = { S: lease.startingHashKey };
    item.endingHashKey = { S: lease.endingHashKey };
  }
  return item;
}

/** One conditional update: its expressions, without the counter condition (added per attempt). */
interface Update {
  set: Record<string, RawAttributeValue>;
  add?: Record<string, RawAttributeValue>;
  remove?: string[];
  /** Condition on the owner: the given value, or absent (`null`). */
  owner?: string | null;
}

export class DynamoDbLeaseTable implements LeaseTable {
  private readonly policy: RetryPolicy;
  private readonly activePolls: number;
  private readonly pollIntervalMs: number;
  /** Leases whose last write failed without an answer (it may have landed). */
  private readonly unanswered = new Set<string>();

  constructor(
    private readonly client: DynamoDBClient,
    readonly tableName: string,
    private readonly options: DynamoDbLeaseTableOptions = {},
  ) {
    this.policy = { ...DEFAULT_RETRY, ...options.retry };
    this.activePolls = options.activePolls ?? 600;
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
  }

  async ensure(): Promise<void> {
    const status = await this.tableStatus();
    if (status === undefined) {
      try {
        await this.call(() =>
          this.client.send(
            new CreateTableCommand({
              TableName: this.tableName,
              BillingMode: 'PAY_PER_REQUEST',
              KeySchema: [{ AttributeName: 'leaseKey', KeyType: 'HASH' }],
              AttributeDefinitions: [{ AttributeName: 'leaseKey', AttributeType: 'S' }],
            }),
          ),
        );
      } catch (err) {
        // Another worker created it at the same moment: wait for it as for ours.
        if (!(err instanceof LeaseTableError && err.cause instanceof ResourceInUseException)) throw err;
      }
      await this.waitActive();
      await this.enablePointInTimeRecovery();
    } else if (status !== 'ACTIVE') {
      await this.waitActive();
    }
  }

  async list(): Promise<Lease[]> {
    const leases: Lease[] = [];
    let start: Item | undefined;
    do {
      const res = await this.call(() =>
        this.client.send(
          new ScanCommand({ TableName: this.tableName, ConsistentRead: true, ExclusiveStartKey: start }),
        ),
      );
      for (const item of res.Items ?? []) leases.push(leaseFromItem(item, this.tableName));
      start = res.LastEvaluatedKey;
    } while (start);
    return leases.sort((a, b) => (a.leaseKey < b.leaseKey ? -1 : a.leaseKey > b.leaseKey ? 1 : 0));
  }

  async create(lease: Lease): Promise<boolean> {
    try {
      await this.call(() =>
        this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: itemFromLease(lease),
            ConditionExpression: 'attribute_not_exists(leaseKey)',
          }),
        ),
      );
      return true;
    } catch (err) {
      if (err instanceof LeaseTableError && err.cause instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  renew(lease: Lease): Promise<Lease | undefined> {
    return this.update(lease, { set: {}, owner: lease.leaseOwner ?? null });
  }

  take(lease: Lease, owner: string): Promise<Lease | undefined> {
    const update: Update = { set: { leaseOwner: { S: owner } }, owner: lease.leaseOwner ?? null };
    // As KCL: a switch counts only when the lease had another owner (not when it was free).
    if (lease.leaseOwner !== undefined && lease.leaseOwner !== owner) {
      update.add = { ownerSwitchesSinceCheckpoint: { N: '1' } };
    }
    return this.update(lease, update);
  }

  release(lease: Lease): Promise<Lease | undefined> {
    return this.update(lease, { set: {}, remove: ['leaseOwner'], owner: lease.leaseOwner ?? null });
  }

  checkpoint(lease: Lease, position: CheckpointPosition): Promise<Lease | undefined> {
    const set: Record<string, RawAttributeValue> = {
      checkpoint: { S: position.sequenceNumber },
      checkpointSubSequenceNumber: { N: String(position.subSequenceNumber) },
      ownerSwitchesSinceCheckpoint: { N: '0' },
    };
    // A held-back checkpoint carries how to replay up to the last record processed; any other
    // checkpoint removes what an earlier one carried.
    if (position.held) {
      set.tributaryProcessed = { S: position.held.processed };
      set.tributaryWindowState = { S: position.held.state };
    }
    return this.update(lease, {
      set,
      ...(position.held || !lease.held ? {} : { remove: ['tributaryProcessed', 'tributaryWindowState'] }),
      owner: lease.leaseOwner ?? null,
    });
  }

  setChildren(lease: Lease, childShardIds: string[]): Promise<Lease | undefined> {
    if (childShardIds.length === 0) return Promise.resolve(lease);
    return this.update(lease, { set: { childShardIds: { SS: [...childShardIds] } }, owner: lease.leaseOwner ?? null });
  }

  async delete(lease: Lease): Promise<boolean> {
    let unanswered = false;
    try {
      await this.call(
        () =>
          this.client.send(
            new DeleteItemCommand({
              TableName: this.tableName,
              Key: { leaseKey: { S: lease.leaseKey } },
              ConditionExpression: '#counter = :expected AND #checkpoint = :end',
              ExpressionAttributeNames: { '#counter': 'leaseCounter', '#checkpoint': 'checkpoint' },
              ExpressionAttributeValues: { ':expected': { N: String(lease.leaseCounter) }, ':end': { S: 'SHARD_END' } },
            }),
          ),
        () => {
          unanswered = true;
        },
      );
      this.unanswered.delete(lease.leaseKey);
      return true;
    } catch (err) {
      if (!(err instanceof LeaseTableError && err.cause instanceof ConditionalCheckFailedException)) throw err;
      if (!unanswered) return false;
      // An attempt got no answer: when the item is gone, that attempt (or another worker's
      // delete of the same ended lease) removed it — gone either way, and never created again.
      const res = await this.call(() =>
        this.client.send(
          new GetItemCommand({
            TableName: this.tableName,
            Key: { leaseKey: { S: lease.leaseKey } },
            ConsistentRead: true,
          }),
        ),
      );
      return res.Item === undefined;
    }
  }

  // ---- internals ------------------------------------------------------------------------------

  /**
   * Applies `update` and bumps the counter, conditional on the counter (and owner) of `lease`.
   * See the module comment for a condition that fails after an unanswered attempt.
   */
  private async update(lease: Lease, update: Update, again = true): Promise<Lease | undefined> {
    const names: Record<string, string> = { '#counter': 'leaseCounter' };
    const values: Record<string, RawAttributeValue> = {
      ':expected': { N: String(lease.leaseCounter) },
      ':next': { N: String(lease.leaseCounter + 1) },
    };
    const sets = ['#counter = :next'];
    Object.entries(update.set).forEach(([name, value], i) => {
      names[`#s${i}`] = name;
      values[`:s${i}`] = value;
      sets.push(`#s${i} = :s${i}`);
    });
    let expression = `SET ${sets.join(', ')}`;
    const adds = Object.entries(update.add ?? {}).map(([name, value], i) => {
      names[`#a${i}`] = name;
      values[`:a${i}`] = value;
      return `#a${i} :a${i}`;
    });
    if (adds.length > 0) expression += ` ADD ${adds.join(', ')}`;
    const removes = (update.remove ?? []).map((name, i) => {
      names[`#r${i}`] = name;
      return `#r${i}`;
    });
    if (removes.length > 0) expression += ` REMOVE ${removes.join(', ')}`;
    let condition = '#counter = :expected';
    if (update.owner !== undefined) {
      names['#owner'] = 'leaseOwner';
      if (update.owner === null) condition += ' AND attribute_not_exists(#owner)';
      else {
        values[':owner'] = { S: update.owner };
        condition += ' AND #owner = :owner';
      }
    }
    let unanswered = false;
    try {
      const res = await this.call(
        () =>
          this.client.send(
            new UpdateItemCommand({
              TableName: this.tableName,
              Key: { leaseKey: { S: lease.leaseKey } },
              UpdateExpression: expression,
              ConditionExpression: condition,
              ExpressionAttributeNames: names,
              ExpressionAttributeValues: values,
              ReturnValues: 'ALL_NEW',
            }),
          ),
        () => {
          unanswered = true;
        },
      );
      this.unanswered.delete(lease.leaseKey);
      return leaseFromItem(res.Attributes ?? {}, this.tableName);
    } catch (err) {
      if (!(err instanceof LeaseTableError && err.cause instanceof ConditionalCheckFailedException)) {
        // Every attempt failed; one may still have landed: the next write of this lease checks.
        if (unanswered || isTransient(err instanceof LeaseTableError ? err.cause : err)) {
          this.unanswered.add(lease.leaseKey);
        }
        throw err;
      }
      const earlier = this.unanswered.has(lease.leaseKey);
      this.unanswered.delete(lease.leaseKey);
      if (!(unanswered || earlier) || !again) return undefined;
      // An attempt got no answer: did it land? Only this worker's own write leaves its owner
      // in place with the counter one higher (a take changes the owner).
      const res = await this.call(() =>
        this.client.send(
          new GetItemCommand({
            TableName: this.tableName,
            Key: { leaseKey: { S: lease.leaseKey } },
            ConsistentRead: true,
          }),
        ),
      );
      if (!res.Item) return undefined;
      const current = leaseFromItem(res.Item, this.tableName);
      const owner = update.set.leaseOwner?.S ?? (update.remove?.includes('leaseOwner') ? undefined : lease.leaseOwner);
      if (current.leaseCounter !== lease.leaseCounter + 1) return undefined;
      if (unanswered) {
        // This call's own earlier attempt landed: `current` is its result.
        return current.leaseOwner === owner ? current : undefined;
      }
      // An earlier call's write landed (a renew, say): apply this one on top of it.
      if (current.leaseOwner !== lease.leaseOwner) return undefined;
      return this.update(current, update, false);
    }
  }

  /** One SDK call with retries of transient failures; other failures become a LeaseTableError. */
  private async call<T>(send: () => Promise<T>, onRetry?: () => void): Promise<T> {
    try {
      const out = await retry(() => send(), {
        ...this.policy,
        retryable: isTransient,
        onRetry: (err, n) => {
          onRetry?.();
          this.options.onCall?.('retry');
          this.policy.onRetry?.(err, n);
        },
      });
      this.options.onCall?.('ok');
      return out;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) this.options.onCall?.('error');
      else this.options.onCall?.('ok');
      const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      throw new LeaseTableError(`Lease table ${this.tableName}: ${what}`, { cause: err });
    }
  }

  private async tableStatus(): Promise<string | undefined> {
    try {
      const res = await this.call(() => this.client.send(new DescribeTableCommand({ TableName: this.tableName })));
      return res.Table?.TableStatus ?? 'ACTIVE';
    } catch (err) {
      if (err instanceof LeaseTableError && err.cause instanceof ResourceNotFoundException) return undefined;
      throw err;
    }
  }

  private async waitActive(): Promise<void> {
    for (let i = 0; i < this.activePolls; i++) {
      if ((await this.tableStatus()) === 'ACTIVE') return;
      await new Promise((resolve) => setTimeout(resolve, this.pollIntervalMs));
    }
    throw new LeaseTableError(
      `Lease table ${this.tableName} did not become ACTIVE within ${this.activePolls * this.pollIntervalMs} ms`,
    );
  }

  /** Point-in-time recovery on a table just created. Only an emulator that lacks the operation (dynalite) is let pass. */
  private async enablePointInTimeRecovery(): Promise<void> {
    try {
      await this.call(() =>
        this.client.send(
          new UpdateContinuousBackupsCommand({
            TableName: this.tableName,
            PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          }),
        ),
      );
    } catch (err) {
      if (isUnknownOperation(err instanceof LeaseTableError ? err.cause : err)) return;
      throw err;
    }
  }
}

/** The answer of an emulator that does not implement an operation (dynalite: UnknownOperationException). */
function isUnknownOperation(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name;
  return name === 'UnknownOperationException';
}
