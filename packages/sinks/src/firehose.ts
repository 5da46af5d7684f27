/**
 * `firehose`: records to an Amazon Data Firehose (Kinesis Data Firehose) delivery stream with
 * PutRecordBatch, in calls of up to 500 records / 4 MiB. Each record is its value as JSON and a
 * newline (`format: jsonl`, the default), so the objects Firehose writes to S3 are JSON Lines;
 * `format: json` leaves the newline out (for a stream whose processing adds its own delimiter).
 *
 * Firehose answers a call with one entry per record, in order: an entry with an `ErrorCode`
 * (FailedPutCount > 0; `ServiceUnavailableException` or `InternalFailure`) was not taken and is
 * sent again — only those entries — with the backoff every sink of this package uses, until
 * `retry.maxAttempts`; then the write fails and the batch is delivered again. A whole call that
 * fails transiently (throttling, 5xx, a dropped connection) is sent again the same way; one
 * refused for good (a missing delivery stream, access denied) fails the write at once. A record
 * over 1,000 KiB (its JSON and the newline) is dead-lettered, not sent.
 *
 * Firehose has no idempotent put: a replayed batch is delivered again — set `idField` and
 * de-duplicate downstream on the record id.
 */
import type { FirehoseClient, _Record as FirehoseRecord } from '@aws-sdk/client-firehose';
import { PutRecordBatchCommand } from '@aws-sdk/client-firehose';
import { firehoseClient } from '@tributary/aws/firehose';
import type { RecordEnvelope } from '@tributary/core';
import { register, type SinkDefinition } from '@tributary/core/spi';
import Type, { type Static } from 'typebox';
import { awsFields, batchSinkFields } from './aws.js';
import { BatchSink, type BatchSinkOptions, type Encoded, type EntryFailure } from './BatchSink.js';
import { recordJson } from './json.js';

export const firehoseSinkSchema = Type.Object(
  {
    deliveryStream: Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: '^[a-zA-Z0-9_.-]+$',
      description: 'delivery stream name',
    }),
    format: Type.Optional(
      Type.Union([Type.Literal('jsonl'), Type.Literal('json')], {
        description: 'jsonl: each record is its JSON and a newline (default); json: the JSON alone',
      }),
    ),
    ...awsFields,
    ...batchSinkFields,
    // One call at a time by default (the shared field says 4): the records of a batch then arrive in order.
    concurrency: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 256,
        description: 'calls in flight (default 1: the records of a batch arrive in order)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type FirehoseSinkSpec = Static<typeof firehoseSinkSchema>;

declare module '@tributary/core' {
  interface SinkKinds {
    firehose: FirehoseSinkSpec;
  }
}

/** Firehose's limits: a record's data (before base64), and a PutRecordBatch call. */
const FIREHOSE_MAX_RECORD = 1000 * 1024;
const FIREHOSE_MAX_RECORDS_PER_CALL = 500;
const FIREHOSE_MAX_BYTES_PER_CALL = 4 * 1024 * 1024;

export interface FirehoseSinkOptions extends BatchSinkOptions {
  deliveryStream: string;
  /** `jsonl` (default): JSON and a newline; `json`: the JSON alone. */
  format?: 'jsonl' | 'json';
  region?: string;
  endpoint?: string;
  /** Your own client (not closed by Tributary). */
  client?: FirehoseClient;
}

export class FirehoseSink extends BatchSink<FirehoseRecord> {
  readonly summary: string;
  protected readonly maxRecordsPerCall = FIREHOSE_MAX_RECORDS_PER_CALL;
  protected readonly maxBytesPerCall = FIREHOSE_MAX_BYTES_PER_CALL;
  private readonly client: FirehoseClient;
  private readonly owned: boolean;
  private readonly newline: boolean;
  constructor(private readonly sinkOptions: FirehoseSinkOptions) {
    // One call at a time by default: a batch's records then reach the stream in order (but for
    // entries sent again after a partial failure). Raise `concurrency` when order does not matter.
    super({ concurrency: 1, ...sinkOptions });
    this.summary = `firehose delivery stream ${sinkOptions.deliveryStream}`;
    this.newline = (sinkOptions.format ?? 'jsonl') === 'jsonl';
    this.client = sinkOptions.client ?? firehoseClient(sinkOptions);
    this.owned = !sinkOptions.client;
  }

  protected encode(env: RecordEnvelope): Encoded<FirehoseRecord> | EntryFailure {
    const json = recordJson(this.valueOf(env));
    const data = Buffer.from(this.newline ? `${json}\n` : json);
    if (data.length > FIREHOSE_MAX_RECORD) {
      return {
        code: 'RecordTooLarge',
        message: `record of ${data.length} bytes is over Firehose's limit of 1,000 KiB (${FIREHOSE_MAX_RECORD} bytes)`,
        transient: false,
      };
    }
    return { env, payload: { Data: data }, bytes: data.length };
  }

  protected async send(entries: readonly Encoded<FirehoseRecord>[]): Promise<(EntryFailure | undefined)[]> {
    const res = await this.client.send(
      new PutRecordBatchCommand({
        DeliveryStreamName: this.sinkOptions.deliveryStream,
        Records: entries.map((e) => e.payload),
      }),
    );
    if (!res.FailedPutCount) return entries.map(() => undefined);
    const answers = res.RequestResponses ?? [];
    // Every failed entry is worth sending again: Firehose reports only service-side failures
    // per entry (ServiceUnavailableException, InternalFailure). An entry the answer leaves out
    // is counted as failed, so no record is taken for written without an answer.
    return entries.map((_, i) => {
      const r = answers[i];
      if (r && !r.ErrorCode) return undefined;
      const code = r?.ErrorCode ?? 'MissingEntry';
      return { code, message: r?.ErrorMessage ?? code, transient: true };
    });
  }

  override async close(): Promise<void> {
    if (this.owned) this.client.destroy();
  }
}

export function firehoseSink(options: FirehoseSinkOptions): FirehoseSink {
  return new FirehoseSink(options);
}

export const firehoseSinkDefinition: SinkDefinition<FirehoseSinkSpec> = register({
  kind: 'firehose',
  category: 'sink',
  module: '@tributary/sinks/firehose',
  schema: firehoseSinkSchema,
  description:
    'Writes records to an Amazon Data Firehose delivery stream as JSON Lines (each record its JSON and a newline; `format: json` for the JSON alone): PutRecordBatch in calls of up to 500 records / 4 MiB; entries the answer reports failed (FailedPutCount) are sent again alone with backoff until the retry budget is spent, then the batch fails and is retried; records over 1,000 KiB dead-lettered. One call at a time unless `concurrency` is raised, so the records of a batch arrive in order (but for entries sent again). A replayed batch is delivered again: set `idField` to de-duplicate downstream.',
  summary: (spec) => `delivery stream ${spec.deliveryStream}`,
  permissions: (spec) => [
    { actions: ['firehose:PutRecordBatch'], resource: { type: 'firehose-delivery-stream', name: spec.deliveryStream } },
  ],
  create: (spec) => firehoseSink(spec),
});
