/** A Kinesis client with Tributary's configuration (see `awsClientConfig`). */
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { type AwsClientOptions, awsClientConfig } from './config.js';

export function kinesisClient(options: AwsClientOptions = {}): KinesisClient {
  return new KinesisClient(awsClientConfig({ service: 'KINESIS', ...options }));
}
