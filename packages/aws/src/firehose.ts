/** A Kinesis Data Firehose client with Tributary's configuration (see `awsClientConfig`). */
import { FirehoseClient } from '@aws-sdk/client-firehose';
import { type AwsClientOptions, awsClientConfig } from './config.js';

export function firehoseClient(options: AwsClientOptions = {}): FirehoseClient {
  return new FirehoseClient(awsClientConfig({ service: 'FIREHOSE', ...options }));
}
