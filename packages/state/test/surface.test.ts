// As in a pipeline author's process: core's built-in components, then this package's.
import '@tributary/core';
import { definitions } from '@tributary/core/spi';
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
      'dynamoDbState',
      'dynamodbLookupDefinition',
      'dynamodbStoreDefinition',
      'redisState',
      'redisStoreDefinition',
      'stateStoresOf',
      'windowStateFields',
    ]);
    expect(definitions('store').map((d) => d.kind)).toEqual(['memory', 'ref', 'dynamodb', 'redis']);
    expect(definitions('lookup').map((d) => d.kind)).toEqual(['static', 'ref', 'dynamodb']);
  });

  it('each of its kinds names its module, which exports it as <kind><Category>Definition', async () => {
    const own = [...definitions('store'), ...definitions('lookup')].filter((d) =>
      d.module.startsWith('@tributary/state/'),
    );
    expect(own.map((d) => `${d.category} ${d.kind} ${d.module}`)).toEqual([
      'store dynamodb @tributary/state/dynamodb',
      'store redis @tributary/state/redis',
      'lookup dynamodb @tributary/state/dynamoDbLookup',
    ]);
    for (const d of own) {
      const name = `${d.kind}${d.category[0]?.toUpperCase()}${d.category.slice(1)}Definition`;
      expect((await import(d.module))[name], `${d.module} exports ${name}`).toBe(d);
    }
  });
});
