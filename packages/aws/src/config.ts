/** The configuration every AWS SDK client of Tributary is created with. */
import { NodeHttpHandler } from '@smithy/node-http-handler';
import Type from 'typebox';

export interface AwsClientOptions {
  /** AWS region (default: from the environment; `us-east-1` with an `endpoint`). */
  region?: string;
  /** Endpoint URL, e.g. a local emulator: then local credentials are used unless the environment has some. */
  endpoint?: string;
  /**
   * The client's service as the SDK names its endpoint variable, `AWS_ENDPOINT_URL_<service>`
   * (`DYNAMODB`, `DYNAMODB_STREAMS`, `KINESIS`, `S3`, `SQS`, ...). Without an `endpoint`, the SDK
   * itself reads that variable (else `AWS_ENDPOINT_URL`); when the one it will use is a loopback
   * address (an emulator on this machine), the region defaults to `us-east-1` and local
   * credentials are used, as for an `endpoint`, unless the environment names credentials
   * (`AWS_ACCESS_KEY_ID` or `AWS_PROFILE`).
   */
  service?: string;
  /**
   * Attempts the SDK makes per call (default 1: Tributary's stores and sinks retry themselves,
   * with core's backoff; 3 is the SDK's own default).
   */
  maxAttempts?: number;
  /** Milliseconds to establish a connection (default 5,000). */
  connectionTimeout?: number;
  /**
   * Milliseconds a request may go without a byte sent or received (default 30,000), so a stalled
   * connection fails the call (TimeoutError) instead of hanging it.
   */
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
    // The handler's `requestTimeout` only logs a warning (without `throwOnRequestTimeout`): a
    // server that accepted the connection and never answered held the call, and the run, forever.
    // The socket timeout (no byte in or out for that long) fails the call with a TimeoutError,
    // which the SDK's and Tributary's retries treat as transient; an upload that keeps sending is not cut.
    requestHandler: new NodeHttpHandler({
      connectionTimeout: options.connectionTimeout ?? 5_000,
      socketTimeout: options.requestTimeout ?? 30_000,
    }),
    maxAttempts: options.maxAttempts ?? 1,
  };
  if (options.region) config.region = options.region;
  if (options.endpoint) {
    config.endpoint = options.endpoint;
    config.region ??= 'us-east-1';
    // Local emulators accept any credentials; AWS itself uses the default provider chain.
    if (!process.env.AWS_ACCESS_KEY_ID) config.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  } else if (options.service !== undefined) {
    const fromEnvironment = environmentEndpoint(options.service);
    if (fromEnvironment !== undefined && isLoopbackUrl(fromEnvironment)) {
      if (!process.env.AWS_REGION) config.region ??= 'us-east-1';
      if (!process.env.AWS_ACCESS_KEY_ID && !process.env.AWS_PROFILE)
        config.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
    }
  }
  return config;
}

/**
 * The endpoint the SDK takes from the environment for a service (see `AwsClientOptions.service`):
 * `AWS_ENDPOINT_URL_<service>`, else `AWS_ENDPOINT_URL`; none with `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`.
 */
export function environmentEndpoint(service: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === 'true') return undefined;
  return env[`AWS_ENDPOINT_URL_${service.toUpperCase().replace(/ /g, '_')}`] || env.AWS_ENDPOINT_URL || undefined;
}

/**
 * Whether a host name is this machine: `localhost` (and `*.localhost`), 127.0.0.0/8, `::1`,
 * `0.0.0.0`/`::` (which reach this machine when connected to), IPv4-mapped forms of these; brackets allowed.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (/^127(\.\d{1,3}){3}$/.test(h) || h === '0.0.0.0') return true;
  if (h === '::1' || h === '::' || h === '0:0:0:0:0:0:0:1' || h === '0:0:0:0:0:0:0:0') return true;
  // IPv4-mapped IPv6, as the URL parser writes it (::ffff:7f00:1) or as typed (::ffff:127.0.0.1).
  const mapped = /^::ffff:(.*)$/.exec(h)?.[1];
  if (mapped !== undefined)
    return /^127\./.test(mapped) || /^7f[0-9a-f]{2}:/.test(mapped) || mapped === '0.0.0.0' || mapped === '0:0';
  return false;
}

/** Whether a URL's host is this machine (see {@link isLoopbackHost}); false for text that is no URL. */
export function isLoopbackUrl(url: string): boolean {
  try {
    return isLoopbackHost(new URL(url).hostname);
  } catch {
    return false;
  }
}

/** The `region` and `endpoint` fields of a component's schema (sinks, stores, lookups). */
export const awsClientFields = {
  region: Type.Optional(Type.String({ minLength: 1, description: 'AWS region (default: from the environment)' })),
  endpoint: Type.Optional(Type.String({ minLength: 1, description: 'endpoint URL (e.g. a local emulator)' })),
};
