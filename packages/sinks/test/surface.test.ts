import { definitions } from '@tributary/core';
import * as sinks from '@tributary/sinks';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/sinks', () => {
  it('exports exactly this list, and registers its sink kinds', () => {
    expect(Object.keys(sinks).sort()).toEqual([
      'BatchSink',
      'DynamoDbSink',
      'HttpSink',
      'KinesisSink',
      'RedisSink',
      'S3Sink',
      'SinkError',
      'SqsSink',
      'dynamoDbSink',
      'dynamoDbSinkDefinition',
      'failureOf',
      'httpSink',
      'httpSinkDefinition',
      'kinesisSink',
      'kinesisSinkDefinition',
      'recordId',
      'redisSink',
      'redisSinkDefinition',
      's3Sink',
      's3SinkDefinition',
      'sqsSink',
      'sqsSinkDefinition',
    ]);
    expect(definitions('sink').map((d) => d.kind)).toEqual(
      expect.arrayContaining(['dynamodb', 'kinesis', 'redis', 'sqs', 'http', 's3']),
    );
  });
});
