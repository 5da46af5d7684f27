import { definitions } from '@tributary/core/spi';
import * as lambda from '@tributary/runtime-lambda';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/runtime-lambda', () => {
  it('exports exactly this list (a change here is a visible diff)', () => {
    expect(Object.keys(lambda).sort()).toEqual([
      'LambdaSimulator',
      'MemoryCheckpoints',
      'checkLambdaWindowState',
      'createHandler',
      'deaggregate',
      'dynamoDbStreamDescriber',
      'hashKeyOf',
      'kinesisShardLister',
    ]);
  });

  it('importing it registers the sinks and state stores of the other packages, for YAML', () => {
    expect(definitions('sink').map((d) => d.kind)).toEqual(
      expect.arrayContaining(['dynamodb', 'kinesis', 'redis', 'sqs', 'http', 's3']),
    );
    expect(definitions('store').map((d) => d.kind)).toEqual(expect.arrayContaining(['dynamodb', 'redis']));
    expect(definitions('lookup').map((d) => d.kind)).toEqual(expect.arrayContaining(['dynamodb']));
  });
});
