import { definitions } from '@tributary/core';
import * as state from '@tributary/state';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/state', () => {
  it('exports exactly this list, and registers its store and lookup kinds', () => {
    expect(Object.keys(state).sort()).toEqual([
      'DynamoDbBackend',
      'DynamoDbLookup',
      'ItemSessionStore',
      'ItemStateStore',
      'ItemWindowStore',
      'RedisBackend',
      'STATE_TABLE_KEYS',
      'StateConfigError',
      'StateStoreError',
      'createStateTable',
      'dynamoDbClient',
      'dynamoDbLookup',
      'dynamoDbLookupDefinition',
      'dynamoDbState',
      'dynamoDbStore',
      'mergeProgress',
      'redisState',
      'redisStore',
      'stateStoresOf',
      'windowStateFields',
      'withRetries',
    ]);
    expect(definitions('store').map((d) => d.kind)).toEqual(['memory', 'ref', 'dynamodb', 'redis']);
    expect(definitions('lookup').map((d) => d.kind)).toEqual(['static', 'ref', 'dynamodb']);
  });
});
