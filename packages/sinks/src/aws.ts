/** Shared pieces of the AWS sinks: client options for an endpoint/region, and the schema fields. */
import { NodeHttpHandler } from '@smithy/node-http-handler';
import Type from 'typebox';

/** Client configuration for `endpoint`/`region`, with the HTTP/1.1 handler (emulators need it). */
export function awsClientConfig(options: { region?: string; endpoint?: string }) {
  const config: {
    requestHandler: NodeHttpHandler;
    maxAttempts: number;
    region?: string;
    endpoint?: string;
    credentials?: { accessKeyId: string; secretAccessKey: string };
  } = {
    // Timeouts so a stalled connection fails the call (and is retried) instead of hanging the write.
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 30_000 }),
    maxAttempts: 1, // the sink retries itself
  };
  if (options.region) config.region = options.region;
  if (options.endpoint) {
    config.endpoint = options.endpoint;
    config.region ??= 'us-east-1';
    if (!process.env.AWS_ACCESS_KEY_ID) config.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  }
  return config;
}

export const awsFields = {
  region: Type.Optional(Type.String({ minLength: 1, description: 'AWS region (default: from the environment)' })),
  endpoint: Type.Optional(Type.String({ minLength: 1, description: 'endpoint URL (e.g. a local emulator)' })),
};

export const batchSinkFields = {
  concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 256, description: 'calls in flight (default 4)' })),
  maxInFlightBytes: Type.Optional(
    Type.Integer({ minimum: 1024, description: 'bytes in flight before writes wait (default 8 MiB)' }),
  ),
  idField: Type.Optional(
    Type.String({ minLength: 1, description: 'add the record id (shard/sequence) to each object under this field' }),
  ),
};
