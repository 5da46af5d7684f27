/**
 * `@tributary/aws`: the one AWS SDK client configuration of Tributary's stores, sinks and
 * runtimes — region, endpoint and local credentials, the HTTP handler with its timeouts, and the
 * SDK's own attempts. Each client has its own entry (`@tributary/aws/dynamodb`, `/dynamodb-streams`, `/kinesis`, `/s3`,
 * `/sqs`, `/firehose`, `/secrets-manager`) so a bundle carries only the SDK clients it uses; this entry loads none.
 * `@tributary/aws/redis` holds the Redis connection settings for ElastiCache (TLS, an AUTH token
 * from the environment or Secrets Manager) that the Redis store and sink share.
 */
export {
  type AwsClientConfig,
  type AwsClientOptions,
  awsClientConfig,
  awsClientFields,
  environmentEndpoint,
  isLoopbackHost,
  isLoopbackUrl,
} from './config.js';
