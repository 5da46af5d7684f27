/** A S3 client with Tributary's configuration (see `awsClientConfig`). */
import { S3Client } from '@aws-sdk/client-s3';
import { type AwsClientOptions, awsClientConfig } from './config.js';

export function s3Client(options: AwsClientOptions = {}): S3Client {
  return new S3Client(awsClientConfig(options));
}
