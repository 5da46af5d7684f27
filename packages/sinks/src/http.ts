/**
 * `http`: POSTs records as a JSON array, up to `batchSize` records / `maxBytes` per request,
 * `concurrency` requests at once. 2xx: durable. 429 and 5xx (and network errors, timeouts):
 * sent again after a jittered backoff, or after `Retry-After` when the server gives one. 413: the
 * request is split in halves and sent again (a single record that is still too large is
 * dead-lettered). Other statuses (400, 401, ...): the request's records go to the dead-letter
 * output with the status. Each request carries an `Idempotency-Key` header derived from its records' ids and
 * content, so a replayed batch sends the same key; the ids are also in `X-Tributary-Record-Ids`.
 */
import { ConfigError, type RecordEnvelope } from '@tributary/core';
import { register, type SinkDefinition } from '@tributary/core/spi';
import Type, { type Static } from 'typebox';
import { batchSinkFields } from './aws.js';
import {
  BatchSink,
  type BatchSinkOptions,
  contentHash,
  type Encoded,
  type EntryFailure,
  failureOf,
  recordId,
} from './BatchSink.js';
import { recordJson } from './json.js';

export const httpSinkSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, pattern: '^https?://', description: 'the endpoint (http:// or https://)' }),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'extra request headers' })),
    batchSize: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 10_000, description: 'records per request (default 500)' }),
    ),
    maxBytes: Type.Optional(Type.Integer({ minimum: 1024, description: 'bytes per request (default 1 MiB)' })),
    timeout: Type.Optional(
      Type.Integer({ minimum: 1, description: 'ms before a request is abandoned and retried (default 10000)' }),
    ),
    ...batchSinkFields,
  },
  { additionalProperties: false },
);
export type HttpSinkSpec = Static<typeof httpSinkSchema>;

declare module '@tributary/core' {
  interface SinkKinds {
    http: HttpSinkSpec;
  }
}

export interface HttpSinkOptions extends BatchSinkOptions {
  url: string;
  headers?: Record<string, string>;
  batchSize?: number;
  maxBytes?: number;
  timeout?: number;
}

/** Milliseconds from a Retry-After header (seconds, or an HTTP date). */
function retryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export class HttpSink extends BatchSink<string> {
  readonly summary: string;
  protected readonly maxRecordsPerCall: number;
  protected readonly maxBytesPerCall: number;
  constructor(private readonly sinkOptions: HttpSinkOptions) {
    super(sinkOptions);
    if (!/^https?:\/\//.test(sinkOptions.url))
      throw new ConfigError(`Expected \`url\` to start with http:// or https://, got ${sinkOptions.url}`);
    this.summary = `http ${new URL(sinkOptions.url).host}`;
    this.maxRecordsPerCall = sinkOptions.batchSize ?? 500;
    this.maxBytesPerCall = sinkOptions.maxBytes ?? 1024 * 1024;
  }

  protected encode(env: RecordEnvelope): Encoded<string> | EntryFailure {
    const json = recordJson(this.valueOf(env));
    const bytes = Buffer.byteLength(json) + 1;
    if (bytes > this.maxBytesPerCall) {
      return {
        code: 'TooLarge',
        message: `record of ${bytes} bytes is over maxBytes (${this.maxBytesPerCall})`,
        transient: false,
      };
    }
    return { env, payload: json, bytes };
  }

  protected async send(entries: readonly Encoded<string>[]): Promise<(EntryFailure | undefined)[]> {
    const ids = entries.map((e) => recordId(e.env));
    const body = `[${entries.map((e) => e.payload).join(',')}]`;
    // From the ids and the content: a replayed request repeats it, two requests never share it.
    const key = contentHash(`${ids.join('\n')}\n${body}`);
    let res: Response;
    try {
      res = await fetch(this.sinkOptions.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': key,
          'x-tributary-record-ids': ids.join(',').slice(0, 4096),
          ...this.sinkOptions.headers,
        },
        body,
        signal: AbortSignal.timeout(this.sinkOptions.timeout ?? 10_000),
      });
      await res.arrayBuffer(); // read the body so the connection is reused
    } catch (err) {
      const f = failureOf(err);
      return entries.map(() => ({ ...f, transient: true })); // network errors and timeouts: send again
    }
    if (res.ok) return entries.map(() => undefined);
    // Too large for the server: send each half on its own (down to single records).
    if (res.status === 413 && entries.length > 1) {
      const half = Math.ceil(entries.length / 2);
      return [...(await this.send(entries.slice(0, half))), ...(await this.send(entries.slice(half)))];
    }
    const failure: EntryFailure = {
      code: `HTTP ${res.status}`,
      message: res.statusText || `status ${res.status}`,
      transient: res.status === 429 || res.status >= 500 || res.status === 408,
      retryAfter: retryAfter(res.headers.get('retry-after')),
    };
    return entries.map(() => failure);
  }
}

export function httpSink(options: HttpSinkOptions): HttpSink {
  return new HttpSink(options);
}

export const httpSinkDefinition: SinkDefinition<HttpSinkSpec> = register({
  kind: 'http',
  category: 'sink',
  module: '@tributary/sinks/http',
  schema: httpSinkSchema,
  description:
    "POSTs records as JSON arrays (up to `batchSize` records / `maxBytes` per request, `concurrency` at once). 429, 5xx, timeouts and network errors are retried with jittered backoff, honouring Retry-After; other statuses dead-letter the request's records with the status. Requests carry an Idempotency-Key derived from their record ids.",
  summary: (spec) => spec.url,
  create: (spec) => httpSink(spec),
});
