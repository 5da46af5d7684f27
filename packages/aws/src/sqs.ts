/** A SQS client with Tributary's configuration (see `awsClientConfig`). */
import { SQSClient } from '@aws-sdk/client-sqs';
import { type AwsClientOptions, awsClientConfig } from './config.js';

export function sqsClient(options: AwsClientOptions = {}): SQSClient {
  return new SQSClient(awsClientConfig({ service: 'SQS', ...options }));
}
