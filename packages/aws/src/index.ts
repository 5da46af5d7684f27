/**
 * `@tributary/aws`: the one AWS SDK client configuration of Tributary's stores, sinks and
 * runtimes — region, endpoint and local credentials, the HTTP handler with its timeouts, and the
 * SDK's own attempts. Each client has its own entry (`@tributary/aws/dynamodb`, `/dynamodb-streams`, `/kinesis`, `/s3`,
 * `/sqs`) so a bundle carries only the SDK clients it uses; this entry loads none.
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
