/**
 * `s3`: the Firehose delivery model, in process. Records are buffered as JSON Lines and written
 * as one object when the buffer reaches `bufferSize` (default 5 MiB) or `bufferInterval` has
 * passed since its first record (default 60 s), whichever comes first; `gzip` optional. A
 * `write` resolves only when the objects holding its records are written — so a batch waits at
 * most `bufferInterval` (lower it when few shards feed the sink, e.g. in Lambda).
 *
 * Objects are named `<prefix>YYYY/MM/DD/HH/<shard>-<sequence>-<hash>.jsonl[.gz]` by the arrival
 * time, shard and sequence number of their first record and a hash of their content: a replay
 * from the checkpoint rebuilds the same buffer and overwrites the same object instead of adding one. Records that cannot
 * be turned into JSON go, Firehose-style, to objects under `processing-failed/` with the error.
 * Objects over 5 MiB are written by multipart upload. With `kmsKeyId` the objects are encrypted
 * with that KMS key (SSE-KMS).
 */
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { s3Client } from '@tributary/aws/s3';
import type { RecordEnvelope } from '@tributary/core';
import {
  DurationSchema,
  durationMs,
  register,
  retry,
  type Sink,
  type SinkContext,
  type SinkDefinition,
} from '@tributary/core/spi';
import type { SchedulerLike, Subscription } from 'rxjs';
import Type, { type Static } from 'typebox';
import { awsFields, kmsKeyIdField } from './aws.js';
import { contentHash, emptyMetrics, recordId, type SinkMetrics, type SinkRetryOptions } from './BatchSink.js';
import { EncodeError, SinkError } from './errors.js';

const gzip = promisify(gzipCallback);

export const s3SinkSchema = Type.Object(
  {
    bucket: Type.String({ minLength: 3, maxLength: 63, description: 'bucket name' }),
    prefix: Type.Optional(Type.String({ description: 'key prefix, e.g. events/ (default none)' })),
    bufferSize: Type.Optional(
      Type.Integer({ minimum: 1024, maximum: 128 * 1024 * 1024, description: 'bytes per object (default 5 MiB)' }),
    ),
    bufferInterval: Type.Optional(DurationSchema('longest a record waits in the buffer (default 60s)')),
    gzip: Type.Optional(Type.Boolean({ description: 'gzip the objects (default false)' })),
    forcePathStyle: Type.Optional(Type.Boolean({ description: 'path-style URLs (local S3-compatible servers)' })),
    kmsKeyId: kmsKeyIdField(
      'encrypt the objects with this KMS key (SSE-KMS), by key id or ARN, not an alias (the role is granted kms:GenerateDataKey and kms:Decrypt on the key)',
    ),
    idField: Type.Optional(
      Type.String({ minLength: 1, description: 'add the record id (shard/sequence) to each object under this field' }),
    ),
    ...awsFields,
  },
  { additionalProperties: false },
);
export type S3SinkSpec = Static<typeof s3SinkSchema>;

declare module '@tributary/core' {
  interface SinkKinds {
    s3: S3SinkSpec;
  }
}

export interface S3SinkOptions {
  bucket: string;
  prefix?: string;
  bufferSize?: number;
  /** Milliseconds. */
  bufferInterval?: number;
  gzip?: boolean;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Encrypt the objects with this KMS key (SSE-KMS). */
  kmsKeyId?: string;
  client?: S3Client;
  idField?: string;
  retry?: SinkRetryOptions;
  /** Clock for the buffer interval (default: timers). */
  scheduler?: SchedulerLike;
}

interface Buffer_ {
  lines: string[];
  bytes: number;
  first: RecordEnvelope;
  failed: boolean;
  done: Promise<void>;
  settle: { resolve: () => void; reject: (err: unknown) => void };
  timer: Subscription | ReturnType<typeof setTimeout> | undefined;
}

const pad = (n: number) => String(n).padStart(2, '0');

export class S3Sink implements Sink {
  readonly summary: string;
  readonly metrics: SinkMetrics = emptyMetrics();
  /** Keys of the objects written, in order (for tests and logs). */
  readonly objects: string[] = [];
  private readonly client: S3Client;
  private readonly owned: boolean;
  private readonly bufferSize: number;
  private readonly interval: number;
  private current: Buffer_ | undefined;
  private failedBuffer: Buffer_ | undefined;

  constructor(private readonly options: S3SinkOptions) {
    this.summary = `s3 bucket ${options.bucket}`;
    this.bufferSize = options.bufferSize ?? 5 * 1024 * 1024;
    this.interval = options.bufferInterval ?? 60_000;
    this.client =
      options.client ?? s3Client({ ...options, forcePathStyle: options.forcePathStyle ?? Boolean(options.endpoint) });
    this.owned = !options.client;
  }

  private line(env: RecordEnvelope): string | Error {
    const field = this.options.idField;
    const v = env.value;
    const value =
      field !== undefined && v !== null && typeof v === 'object' && !Array.isArray(v)
        ? { ...v, [field]: recordId(env) }
        : v;
    try {
      const text = JSON.stringify(value);
      return text === undefined ? new EncodeError('the value has no JSON form') : text;
    } catch (err) {
      return err as Error;
    }
  }

  private openBuffer(first: RecordEnvelope, failed: boolean): Buffer_ {
    let settle!: Buffer_['settle'];
    const done = new Promise<void>((resolve, reject) => {
      settle = { resolve, reject };
    });
    done.catch(() => {}); // awaited by the writes that use it
    const b: Buffer_ = { lines: [], bytes: 0, first, failed, done, settle, timer: undefined };
    const flush = () => {
      if (failed ? this.failedBuffer === b : this.current === b) void this.flush(b);
    };
    b.timer = this.options.scheduler
      ? this.options.scheduler.schedule(flush, this.interval)
      : setTimeout(flush, this.interval);
    return b;
  }

  async write(records: readonly RecordEnvelope[], _context?: SinkContext): Promise<void> {
    const waits = new Set<Promise<void>>();
    for (const env of records) {
      const line = this.line(env);
      let failed = false;
      let text: string;
      if (line instanceof Error) {
        // Firehose's processing-failed record: the error and the raw data, base64.
        failed = true;
        text = JSON.stringify({
          errorCode: 'SerializationFailed',
          errorMessage: line.message,
          recordId: recordId(env),
          rawData: Buffer.from(env.source.data ?? '').toString('base64'),
        });
      } else text = line;
      let b = failed ? this.failedBuffer : this.current;
      if (!b) {
        b = this.openBuffer(env, failed);
        if (failed) this.failedBuffer = b;
        else this.current = b;
      }
      b.lines.push(text);
      b.bytes += Buffer.byteLength(text) + 1;
      waits.add(b.done);
      if (b.bytes >= this.bufferSize) void this.flush(b);
    }
    await Promise.all(waits);
  }

  /**
   * `<prefix>YYYY/MM/DD/HH/<shard>-<sequence>-<content hash>.jsonl[.gz]`: the time partition and
   * first record make it findable; the content hash makes a replay of the same buffer overwrite
   * its object, while buffers that merely start alike (records sharing a source record, another
   * shard's records mixed in) never overwrite each other.
   */
  private keyOf(b: Buffer_, text: string): string {
    const t = new Date(b.first.arrivalTime);
    const when = `${t.getUTCFullYear()}/${pad(t.getUTCMonth() + 1)}/${pad(t.getUTCDate())}/${pad(t.getUTCHours())}`;
    const seq = `${b.first.sequenceNumber}${b.first.subSequenceNumber === undefined ? '' : `-${b.first.subSequenceNumber}`}`;
    const name = `${b.first.shardId.replace(/[^A-Za-z0-9_.-]/g, '_')}-${seq}-${contentHash(text, 12)}.jsonl${this.options.gzip ? '.gz' : ''}`;
    return `${b.failed ? 'processing-failed/' : (this.options.prefix ?? '')}${when}/${name}`;
  }

  /** Writes a buffer as one object (retrying transient failures) and settles its writes. */
  private async flush(b: Buffer_): Promise<void> {
    if (b.failed) {
      if (this.failedBuffer === b) this.failedBuffer = undefined;
    } else if (this.current === b) this.current = undefined;
    if (b.timer && 'unsubscribe' in b.timer) b.timer.unsubscribe();
    else if (b.timer) clearTimeout(b.timer);
    const text = `${b.lines.join('\n')}\n`;
    const key = this.keyOf(b, text);
    let body: Buffer;
    try {
      body = this.options.gzip ? await gzip(text) : Buffer.from(text);
    } catch (err) {
      b.settle.reject(
        new SinkError(`${this.summary}: compressing ${key} failed: ${(err as Error).message}`, { cause: err }),
      );
      return;
    }
    const r = this.options.retry ?? {};
    const upload = async () => {
      const t0 = performance.now();
      try {
        this.metrics.calls++;
        await new Upload({
          client: this.client,
          params: {
            Bucket: this.options.bucket,
            Key: key,
            Body: body,
            ContentType: 'application/x-ndjson',
            ...(this.options.gzip ? { ContentEncoding: 'gzip' } : {}),
            ...(this.options.kmsKeyId
              ? { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: this.options.kmsKeyId }
              : {}),
          },
          partSize: 5 * 1024 * 1024,
          queueSize: 4,
        }).done();
      } finally {
        const ms = performance.now() - t0;
        this.metrics.latencyMs += ms;
        if (ms > this.metrics.maxLatencyMs) this.metrics.maxLatencyMs = ms;
      }
    };
    try {
      await retry(upload, {
        maxAttempts: r.maxAttempts ?? 8,
        baseDelay: r.minDelay ?? 50,
        maxDelay: r.maxDelay ?? 5000,
        onRetry: () => {
          this.metrics.retries++;
        },
      });
    } catch (err) {
      b.settle.reject(
        new SinkError(`${this.summary}: writing ${key} failed: ${(err as Error).message}`, { cause: err }),
      );
      return;
    }
    this.metrics.records += b.lines.length;
    this.metrics.bytes += body.length;
    this.objects.push(key);
    b.settle.resolve();
  }

  /** Writes what is buffered (end of input). */
  async close(): Promise<void> {
    const pending = [this.current, this.failedBuffer].filter((b): b is Buffer_ => b !== undefined);
    await Promise.all(pending.map((b) => this.flush(b)));
    await Promise.all(pending.map((b) => b.done));
    if (this.owned) this.client.destroy();
  }
}

export function s3Sink(options: S3SinkOptions): S3Sink {
  return new S3Sink(options);
}

export const s3SinkDefinition: SinkDefinition<S3SinkSpec> = register({
  kind: 's3',
  category: 'sink',
  module: '@tributary/sinks/s3',
  schema: s3SinkSchema,
  description:
    "Writes records to S3 as JSON Lines objects, Firehose-style: buffered by size (default 5 MiB) and time (default 60s), optionally gzipped, named by the time partition and the first record's shard and sequence number (a replay overwrites the same object); records that cannot be serialised go under processing-failed/. A batch is acknowledged when its objects are written.",
  summary: (spec) => `bucket ${spec.bucket}${spec.prefix ? `/${spec.prefix}` : ''}`,
  // PutObject (a multipart upload's steps are authorised as PutObject too), AbortMultipartUpload
  // when an upload fails; under the prefix and under processing-failed/. With `kmsKeyId`, S3 asks
  // KMS for a data key as the caller (GenerateDataKey) and, to complete a multipart upload, reads
  // the encrypted parts (Decrypt).
  permissions(spec) {
    const actions = ['s3:PutObject', 's3:AbortMultipartUpload'];
    const prefixes = [...new Set([spec.prefix ?? '', 'processing-failed/'])];
    const covered = prefixes.filter((p) => !prefixes.some((q) => q !== p && p.startsWith(q)));
    return [
      ...covered.map((prefix) => ({ actions, resource: { type: 's3-objects' as const, bucket: spec.bucket, prefix } })),
      ...(spec.kmsKeyId
        ? [
            {
              actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
              resource: { type: 'kms-key' as const, id: spec.kmsKeyId },
            },
          ]
        : []),
    ];
  },
  create: (spec, ctx) =>
    s3Sink({
      ...spec,
      bufferInterval: spec.bufferInterval === undefined ? undefined : durationMs(spec.bufferInterval),
      scheduler: ctx.scheduler,
    }),
});
