/** The configuration every AWS SDK client of Tributary is created with. */
import { NodeHttpHandler } from '@smithy/node-http-handler';
import Type from 'typebox';

export interface AwsClientOptions {
  /** AWS region (default: from the environment; `us-east-1` with an `endpoint`). */
  region?: string;
  /** Endpoint URL, e.g. a local emulator: then local credentials are used unless the environment has some. */
  endpoint?: string;
  /**
   * Attempts the SDK makes per call (default 1: Tributary's stores and sinks retry themselves,
   * with core's backoff; 3 is the SDK's own default).
   */
  maxAttempts?: number;
  /** Milliseconds to establish a connection (default 5,000). */
  connectionTimeout?: number;
  /** Milliseconds a request may take (default 30,000), so a stalled connection fails the call instead of hanging it. */
  requestTimeout?: number;
}

/** What an SDK client's constructor is given. */
export interface AwsClientConfig {
  requestHandler: NodeHttpHandler;
  maxAttempts: number;
  region?: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** Client configuration for these options: the HTTP/1.1 handler (emulators need it) with its timeouts. */
export function awsClientConfig(options: AwsClientOptions = {}): AwsClientConfig {
  const config: AwsClientConfig = {
    requestHandler: new NodeHttpHandler({
      connectionTimeout: options.connectionTimeout ?? 5_000,
      requestTimeout: options.requestTimeout ?? 30_000,
    }),
    maxAttempts: options.maxAttempts ?? 1,
  };
  if (options.region) config.region = options.region;
  if (options.endpoint) {
    config.endpoint = options.endpoint;
    config.region ??= 'us-east-1';
    // Local emulators accept any credentials; AWS itself uses the default provider chain.
    if (!process.env.AWS_ACCESS_KEY_ID) config.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  }
  return config;
}

/** The `region` and `endpoint` fields of a component's schema (sinks, stores, lookups). */
export const awsClientFields = {
  region: Type.Optional(Type.String({ minLength: 1, description: 'AWS region (default: from the environment)' })),
  endpoint: Type.Optional(Type.String({ minLength: 1, description: 'endpoint URL (e.g. a local emulator)' })),
};
