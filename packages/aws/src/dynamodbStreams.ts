/** A DynamoDB Streams client with Tributary's configuration (see `awsClientConfig`). */
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { type AwsClientOptions, awsClientConfig } from './config.js';

export function dynamoDbStreamsClient(options: AwsClientOptions = {}): DynamoDBStreamsClient {
  return new DynamoDBStreamsClient(awsClientConfig({ service: 'DYNAMODB_STREAMS', ...options }));
}
