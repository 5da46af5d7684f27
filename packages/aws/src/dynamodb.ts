/** A DynamoDB client with Tributary's configuration (see `awsClientConfig`). */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type AwsClientOptions, awsClientConfig } from './config.js';

export function dynamoDbClient(options: AwsClientOptions = {}): DynamoDBClient {
  return new DynamoDBClient(awsClientConfig({ service: 'DYNAMODB', ...options }));
}
