/**
 * `sqs`: SendMessageBatch, 10 messages and 256 KiB per call; a message over 256 KiB is
 * dead-lettered; entries the answer lists in `Failed` are sent again alone unless the queue says
 * the fault is the sender's (then dead-lettered with the code). Each message carries the record
 * id as the `tributary-record-id` attribute (and, for FIFO queues, a hash of the id and the body as
 * the deduplication id, so a replay within five minutes is dropped by SQS itself). Usable as the dead-letter output.
 */
import { SendMessageBatchCommand, type SendMessageBatchRequestEntry, type SQSClient } from '@aws-sdk/client-sqs';
import { sqsClient } from '@tributary/aws/sqs';
import type { RecordEnvelope } from '@tributary/core';
import { compileExpression, Expression, register, type SinkDefinition } from '@tributary/core/spi';
import Type, { type Static } from 'typebox';
import { awsFields, batchSinkFields, kmsKeyIdField } from './aws.js';
import {
  BatchSink,
  type BatchSinkOptions,
  contentHash,
  type Encoded,
  type EntryFailure,
  recordId,
} from './BatchSink.js';
import { recordJson } from './json.js';

export const sqsSinkSchema = Type.Object(
  {
    queueUrl: Type.String({ minLength: 1, description: 'the queue URL' }),
    messageGroupId: Type.Optional(Expression('FIFO queues: yields the message group id')),
    kmsKeyId: kmsKeyIdField(
      'the customer managed KMS key the queue is encrypted with, if any, by key id or ARN, not an alias (SQS uses it as the sender: the role is granted kms:GenerateDataKey and kms:Decrypt on it); SQS-owned and AWS-managed keys need nothing',
    ),
    ...awsFields,
    ...batchSinkFields,
  },
  { additionalProperties: false },
);
export type SqsSinkSpec = Static<typeof sqsSinkSchema>;

declare module '@tributary/core' {
  interface SinkKinds {
    sqs: SqsSinkSpec;
  }
}

const MAX_MESSAGE = 256 * 1024;

export interface SqsSinkOptions extends BatchSinkOptions {
  queueUrl: string;
  messageGroupId?: (value: unknown) => unknown;
  region?: string;
  endpoint?: string;
  client?: SQSClient;
}

export class SqsSink extends BatchSink<SendMessageBatchRequestEntry> {
  readonly summary: string;
  protected readonly maxRecordsPerCall = 10;
  protected readonly maxBytesPerCall = MAX_MESSAGE;
  private readonly client: SQSClient;
  private readonly owned: boolean;
  private readonly fifo: boolean;
  constructor(private readonly sinkOptions: SqsSinkOptions) {
    // FIFO queues keep order per message group only if calls go one at a time.
    super(sinkOptions.queueUrl.endsWith('.fifo') ? { concurrency: 1, ...sinkOptions } : sinkOptions);
    this.summary = `sqs queue ${sinkOptions.queueUrl.split('/').pop()}`;
    this.fifo = sinkOptions.queueUrl.endsWith('.fifo');
    this.client = sinkOptions.client ?? sqsClient(sinkOptions);
    this.owned = !sinkOptions.client;
  }

  protected encode(env: RecordEnvelope): Encoded<SendMessageBatchRequestEntry> | EntryFailure {
    const body = recordJson(this.valueOf(env));
    const id = recordId(env);
    const bytes = Buffer.byteLength(body) + 64 + id.length; // the body plus the id attribute
    if (bytes > MAX_MESSAGE) {
      return {
        code: 'MessageTooLong',
        message: `message of ${bytes} bytes is over the 256 KiB limit`,
        transient: false,
      };
    }
    const entry: SendMessageBatchRequestEntry = {
      Id: '', // set per call
      MessageBody: body,
      MessageAttributes: { 'tributary-record-id': { DataType: 'String', StringValue: id } },
    };
    if (this.fifo) {
      entry.MessageDeduplicationId = contentHash(`${id}\n${body}`, 64);
      entry.MessageGroupId = String(this.sinkOptions.messageGroupId?.(env.value) ?? env.partitionKey ?? 'default');
    }
    return { env, payload: entry, bytes };
  }

  protected async send(
    entries: readonly Encoded<SendMessageBatchRequestEntry>[],
  ): Promise<(EntryFailure | undefined)[]> {
    const res = await this.client.send(
      new SendMessageBatchCommand({
        QueueUrl: this.sinkOptions.queueUrl,
        Entries: entries.map((e, i) => ({ ...e.payload, Id: String(i) })),
      }),
    );
    const failed = new Map((res.Failed ?? []).map((f) => [f.Id, f]));
    return entries.map((_, i) => {
      const f = failed.get(String(i));
      return f
        ? { code: f.Code ?? 'Failed', message: f.Message ?? f.Code ?? 'failed', transient: f.SenderFault !== true }
        : undefined;
    });
  }

  override async close(): Promise<void> {
    if (this.owned) this.client.destroy();
  }
}

export function sqsSink(options: SqsSinkOptions): SqsSink {
  return new SqsSink(options);
}

export const sqsSinkDefinition: SinkDefinition<SqsSinkSpec> = register({
  kind: 'sqs',
  category: 'sink',
  module: '@tributary/sinks/sqs',
  schema: sqsSinkSchema,
  description:
    'Sends records to an SQS queue as JSON messages: SendMessageBatch, 10 per call (256 KiB); messages over 256 KiB and entries failed by the sender go to the dead-letter output, other failed entries are retried alone. Each message carries the record id (`tributary-record-id` attribute; FIFO: also the deduplication id).',
  summary: (spec) => `queue ${spec.queueUrl.split('/').pop()}`,
  // SendMessageBatch is authorised as sqs:SendMessage (SQS has no action of its own for a batch);
  // with `kmsKeyId`, what SQS asks KMS for as the sender.
  permissions: (spec) => [
    { actions: ['sqs:SendMessage'], resource: { type: 'sqs-queue', url: spec.queueUrl } },
    ...(spec.kmsKeyId
      ? [{ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resource: { type: 'kms-key' as const, id: spec.kmsKeyId } }]
      : []),
  ],
  create(spec, ctx) {
    const group =
      spec.messageGroupId === undefined
        ? undefined
        : compileExpression(spec.messageGroupId, (name) => ctx.bindings.get(name) as never);
    return sqsSink({ ...spec, messageGroupId: group });
  },
});
