/**
 * @tributary/state: window state stores shared by processes. Importing the package registers the
 * `dynamodb` and `redis` store kinds for YAML (`state: { dynamodb: { table } }`).
 */
export type { ItemWrite, StateBackend, VersionedItem } from './backend.js';
export {
  DynamoDbLookup,
  type DynamoDbLookupOptions,
  type DynamoDbLookupSpec,
  dynamoDbLookup,
  dynamodbLookupDefinition,
} from './dynamoDbLookup.js';
export {
  createStateTable,
  DynamoDbBackend,
  type DynamoDbStateOptions,
  type DynamoDbStateSpec,
  dynamoDbClient,
  dynamoDbState,
  dynamodbStoreDefinition,
  STATE_TABLE_KEYS,
} from './dynamodb.js';
export { StateConfigError, StateStoreError } from './errors.js';
export { ItemSessionStore } from './ItemSessionStore.js';
export {
  ItemStateStore,
  ItemWindowStore,
  stateStoresOf,
  type WindowStateOptions,
  windowStateFields,
} from './ItemWindowStore.js';
export {
  RedisBackend,
  type RedisStateOptions,
  type RedisStateSpec,
  redisState,
  redisStoreDefinition,
} from './redis.js';
export type { RetryOptions } from './retry.js';
