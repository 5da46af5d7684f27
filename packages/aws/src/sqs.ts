/** A SQS client with Tributary's configuration (see `awsClientConfig`). */
import { SQSClient } from '@aws-sdk/client-sqs';
import { type AwsClientOptions, awsClientConfig, environmentEndpoint } from './config.js';

export function sqsClient(options: AwsClientOptions = {}): SQSClient {
  const config = awsClientConfig({ service: 'SQS', ...options });
  // The SDK sends a request to its queue URL's host unless the endpoint is set in code; one from
  // the environment (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL) is not, so a queue URL of AWS would
  // bypass it: kept, so that the variable points the queue at an emulator as it does the other services.
  const fromEnvironment = options.endpoint === undefined && environmentEndpoint('SQS') !== undefined;
  return new SQSClient(fromEnvironment ? { ...config, useQueueUrlAsEndpoint: false } : config);
}
