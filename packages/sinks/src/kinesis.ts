/**
 * `kinesis`: PutRecords in calls of up to 500 records / 5 MiB; entries the answer reports failed
 * (FailedRecordCount) are sent again alone when the error is throttling or an internal failure,
 * and dead-lettered (with the error code) otherwise. A record over 1 MiB (data + partition key)
 * is dead-lettered at once. Kinesis has no idempotent put: a replayed batch is written again —
 * set `idField` and de-duplicate downstream on the record id.
 */
import {
  type KinesisClient,
  ListShardsCommand,
  PutRecordsCommand,
  type PutRecordsRequestEntry,
} from '@aws-sdk/client-kinesis';
import { kinesisClient } from '@tributary/aws/kinesis';
import type { RecordEnvelope } from '@tributary/core';
import {
  aggregateUserRecords,
  type CompiledExpression,
  compileExpression,
  Expression,
  hashKeyOf,
  isTransient,
  register,
  type SinkDefinition,
  userRecordSize,
} from '@tributary/core/spi';
import Type, { type Static } from 'typebox';
import { awsFields, batchSinkFields, kmsKeyIdField } from './aws.js';
import { BatchSink, type BatchSinkOptions, type Encoded, type EntryFailure } from './BatchSink.js';
import { recordJson } from './json.js';

export const kinesisSinkSchema = Type.Object(
  {
    stream: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-zA-Z0-9_.-]+$', description: 'stream name' }),
    partitionKey: Expression('yields the partition key'),
    aggregate: Type.Optional(
      Type.Boolean({
        description: 'pack small records into KPL aggregated records, per shard (default false)',
      }),
    ),
    kmsKeyId: kmsKeyIdField(
      'the customer managed KMS key the stream is encrypted with, if any, by key id or ARN, not an alias (Kinesis uses it as the writer: the role is granted kms:GenerateDataKey on it); the AWS-managed key needs nothing',
    ),
    ...awsFields,
    ...batchSinkFields,
  },
  { additionalProperties: false },
);
export type KinesisSinkSpec = Static<typeof kinesisSinkSchema>;

declare module '@tributary/core' {
  interface SinkKinds {
    kinesis: KinesisSinkSpec;
  }
}

const MAX_RECORD = 1024 * 1024;

export interface KinesisSinkOptions extends BatchSinkOptions {
  stream: string;
  /** The partition key of a record (default: the record's key, else its own partition key). */
  partitionKey?: (env: RecordEnvelope) => string;
  region?: string;
  endpoint?: string;
  /** Your own client (not closed by Tributary). */
  client?: KinesisClient;
  /** Pack records into KPL aggregated records, one or more per shard (default false). */
  aggregate?: boolean;
}

/** An aggregated record stays under the 1 MiB record limit with room for its key and checksum. */
const MAX_AGGREGATE = 1000 * 1000;

interface ShardRange {
  start: bigint;
  end: bigint;
  startingHashKey: string;
}

export class KinesisSink extends BatchSink<PutRecordsRequestEntry> {
  readonly summary: string;
  protected readonly maxRecordsPerCall = 500;
  protected readonly maxBytesPerCall = 5 * 1024 * 1024;
  private readonly client: KinesisClient;
  private readonly owned: boolean;
  constructor(private readonly sinkOptions: KinesisSinkOptions) {
    // One call at a time by default: records of a partition key then reach the stream in order
    // (an entry retried after a partial failure can still land after later ones, as with any
    // PutRecords writer). Raise `concurrency` when order does not matter.
    super({ concurrency: 1, ...sinkOptions });
    this.summary = `kinesis stream ${sinkOptions.stream}`;
    this.client = sinkOptions.client ?? kinesisClient(sinkOptions);
    this.owned = !sinkOptions.client;
  }

  protected encode(env: RecordEnvelope): Encoded<PutRecordsRequestEntry> | EntryFailure {
    const data = Buffer.from(recordJson(this.valueOf(env)));
    let key: string;
    try {
      key = this.sinkOptions.partitionKey?.(env) ?? (env.key === undefined ? env.partitionKey : String(env.key));
    } catch (err) {
      return { code: 'PartitionKey', message: `partition key: ${(err as Error).message}`, transient: false };
    }
    const pk = key === '' ? '-' : key.slice(0, 256);
    const bytes = data.length + Buffer.byteLength(pk);
    if (bytes > MAX_RECORD) {
      return { code: 'RecordTooLarge', message: `record of ${bytes} bytes is over the 1 MiB limit`, transient: false };
    }
    return { env, payload: { Data: data, PartitionKey: pk }, bytes };
  }

  protected async send(entries: readonly Encoded<PutRecordsRequestEntry>[]): Promise<(EntryFailure | undefined)[]> {
    const res = await this.client.send(
      new PutRecordsCommand({ StreamName: this.sinkOptions.stream, Records: entries.map((e) => e.payload) }),
    );
    if (!res.FailedRecordCount) return entries.map(() => undefined);
    return (res.Records ?? []).map((r) =>
      r.ErrorCode
        ? { code: r.ErrorCode, message: r.ErrorMessage ?? r.ErrorCode, transient: isTransient({ name: r.ErrorCode }) }
        : undefined,
    );
  }

  private shards: { at: number; ranges: ShardRange[] } | undefined;

  /** The stream's open shards' hash ranges (re-read every 30 s, so resharding is followed). */
  private async shardRanges(): Promise<ShardRange[]> {
    if (this.shards && Date.now() - this.shards.at < 30_000) return this.shards.ranges;
    const ranges: ShardRange[] = [];
    let token: string | undefined;
    do {
      this.metrics.calls++;
      const res = await this.client.send(
        new ListShardsCommand(token ? { NextToken: token } : { StreamName: this.sinkOptions.stream }),
      );
      for (const s of res.Shards ?? []) {
        if (s.SequenceNumberRange?.EndingSequenceNumber) continue; // closed
        const r = s.HashKeyRange;
        if (!r?.StartingHashKey || !r.EndingHashKey) continue;
        ranges.push({
          start: BigInt(r.StartingHashKey),
          end: BigInt(r.EndingHashKey),
          startingHashKey: r.StartingHashKey,
        });
      }
      token = res.NextToken;
    } while (token);
    this.shards = { at: Date.now(), ranges };
    return ranges;
  }

  /**
   * With `aggregate`: records are grouped by the shard their partition key hashes to and packed
   * into KPL aggregated records (each routed to that shard by its explicit hash key), so a
   * consumer that checks user records against its shard's hash range keeps them all.
   */
  protected override async pack(
    encoded: Encoded<PutRecordsRequestEntry>[],
  ): Promise<Encoded<PutRecordsRequestEntry>[]> {
    if (!this.sinkOptions.aggregate || encoded.length === 0) return encoded;
    const ranges = await this.shardRanges();
    const groups = new Map<ShardRange | undefined, Encoded<PutRecordsRequestEntry>[]>();
    for (const e of encoded) {
      const h = hashKeyOf({ partitionKey: e.payload.PartitionKey as string });
      const shard = ranges.find((r) => h >= r.start && h <= r.end);
      const g = groups.get(shard);
      if (g) g.push(e);
      else groups.set(shard, [e]);
    }
    const out: Encoded<PutRecordsRequestEntry>[] = [];
    for (const [shard, members] of groups) {
      if (!shard) {
        out.push(...members); // no open shard known for these keys: send them as they are
        continue;
      }
      let batch: Encoded<PutRecordsRequestEntry>[] = [];
      let size = 0;
      const emit = (group: Encoded<PutRecordsRequestEntry>[]) => {
        const first = group[0] as Encoded<PutRecordsRequestEntry>;
        const data = aggregateUserRecords(
          group.map((e) => ({ partitionKey: e.payload.PartitionKey as string, data: e.payload.Data as Buffer })),
        );
        const bytes = data.length + Buffer.byteLength(first.payload.PartitionKey as string);
        if (bytes > MAX_RECORD && group.length > 1) {
          // The estimate fell short (it should not): split rather than send an oversize record.
          const half = Math.ceil(group.length / 2);
          emit(group.slice(0, half));
          emit(group.slice(half));
          return;
        }
        out.push({
          env: first.env,
          members: group.map((e) => e.env),
          payload: { Data: data, PartitionKey: first.payload.PartitionKey, ExplicitHashKey: shard.startingHashKey },
          bytes,
        });
      };
      const flush = () => {
        if (batch.length > 0) emit(batch);
        batch = [];
        size = 0;
      };
      for (const e of members) {
        const add = userRecordSize(
          { partitionKey: e.payload.PartitionKey as string, data: e.payload.Data as Buffer },
          batch.length,
        );
        if (size + add > MAX_AGGREGATE) flush();
        batch.push(e);
        size += add;
      }
      flush();
    }
    return out;
  }

  override async close(): Promise<void> {
    if (this.owned) this.client.destroy();
  }
}

export function kinesisSink(options: KinesisSinkOptions): KinesisSink {
  return new KinesisSink(options);
}

export const kinesisSinkDefinition: SinkDefinition<KinesisSinkSpec> = register({
  kind: 'kinesis',
  category: 'sink',
  module: '@tributary/sinks/kinesis',
  schema: kinesisSinkSchema,
  description:
    'Writes records to a Kinesis stream as JSON: PutRecords in calls of up to 500 records / 5 MiB; failed entries (FailedRecordCount) retried alone when throttled, dead-lettered with their error code otherwise; records over 1 MiB dead-lettered. A replayed batch is written again: set `idField` to de-duplicate downstream.',
  summary: (spec) => `stream ${spec.stream}`,
  // PutRecords; with `aggregate`, ListShards too (the open shards' hash ranges it packs records by);
  // with `kmsKeyId`, the data key Kinesis generates as the writer.
  permissions: (spec) => [
    {
      actions: spec.aggregate ? ['kinesis:PutRecords', 'kinesis:ListShards'] : ['kinesis:PutRecords'],
      resource: { type: 'kinesis-stream', name: spec.stream },
    },
    ...(spec.kmsKeyId
      ? [{ actions: ['kms:GenerateDataKey'], resource: { type: 'kms-key' as const, id: spec.kmsKeyId } }]
      : []),
  ],
  create(spec, ctx) {
    const key: CompiledExpression = compileExpression(spec.partitionKey, (name) => ctx.bindings.get(name) as never);
    return kinesisSink({ ...spec, partitionKey: (env) => String(key(env.value)) });
  },
});
