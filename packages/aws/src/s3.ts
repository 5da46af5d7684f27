/** A S3 client with Tributary's configuration (see `awsClientConfig`). */
import { S3Client } from '@aws-sdk/client-s3';
import { type AwsClientOptions, awsClientConfig } from './config.js';

/** `forcePathStyle`: address buckets by path (`endpoint/bucket/key`), as local S3 servers want. */
export function s3Client(options: AwsClientOptions & { forcePathStyle?: boolean } = {}): S3Client {
  const config = awsClientConfig({ service: 'S3', ...options });
  return new S3Client(
    options.forcePathStyle === undefined ? config : { ...config, forcePathStyle: options.forcePathStyle },
  );
}
