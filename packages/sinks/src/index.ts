/**
 * @tributary/sinks: batched, retried sinks that never lose a record — DynamoDB, Kinesis, Firehose,
 * Redis, S3, SQS and HTTP. Importing the package registers their kinds for YAML.
 */
export {
  BatchSink,
  type BatchSinkOptions,
  type Encoded,
  type EntryFailure,
  type SinkMetrics,
  type SinkRetryOptions,
} from './BatchSink.js';
export {
  DynamoDbSink,
  type DynamoDbSinkOptions,
  type DynamoDbSinkSpec,
  dynamoDbSink,
  dynamodbSinkDefinition,
} from './dynamodb.js';
export { EncodeError, SinkError } from './errors.js';
export {
  FirehoseSink,
  type FirehoseSinkOptions,
  type FirehoseSinkSpec,
  firehoseSink,
  firehoseSinkDefinition,
} from './firehose.js';
export { HttpSink, type HttpSinkOptions, type HttpSinkSpec, httpSink, httpSinkDefinition } from './http.js';
export {
  KinesisSink,
  type KinesisSinkOptions,
  type KinesisSinkSpec,
  kinesisSink,
  kinesisSinkDefinition,
} from './kinesis.js';
export { RedisSink, type RedisSinkOptions, type RedisSinkSpec, redisSink, redisSinkDefinition } from './redis.js';
export { S3Sink, type S3SinkOptions, type S3SinkSpec, s3Sink, s3SinkDefinition } from './s3.js';
export { SqsSink, type SqsSinkOptions, type SqsSinkSpec, sqsSink, sqsSinkDefinition } from './sqs.js';
