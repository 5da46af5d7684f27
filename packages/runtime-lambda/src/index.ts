/**
 * @tributary/runtime-lambda: runs a pipeline, unchanged, as an AWS Lambda function for Kinesis
 * and DynamoDB Streams events. Importing it registers the state stores and sinks for YAML.
 */
import '@tributary/sinks';
import '@tributary/state';

// The KPL codec is core's (one copy for the sink that writes aggregates and the runtimes that read them).
export { deaggregate, hashKeyOf, type UserRecord } from '@tributary/core/spi';
export { dynamoDbStreamDescriber } from './dynamoDbStreams.js';
export {
  type BatchItemFailure,
  createHandler,
  type Handler,
  type HandlerOptions,
  type HandlerResponse,
} from './handler.js';
export { checkLambdaWindowState } from './memoryState.js';
export {
  type DescribeDynamoDbStream,
  type DynamoDbStreamShard,
  kinesisShardLister,
  type ListShards,
  type StreamShard,
} from './shards.js';
export {
  type CheckpointStore,
  type EventSourceMapping,
  type FailedBatch,
  LambdaSimulator,
  MemoryCheckpoints,
  type SimulatorOptions,
} from './simulator.js';
