// As in a pipeline author's process: core's built-in components, then this package's.
import '@tributary/core';
import { definitions } from '@tributary/core/spi';
import * as sinks from '@tributary/sinks';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/sinks', () => {
  it('exports exactly this list, and registers its sink kinds', () => {
    expect(Object.keys(sinks).sort()).toEqual([
      'BatchSink',
      'DynamoDbSink',
      'EncodeError',
      'FirehoseSink',
      'HttpSink',
      'KinesisSink',
      'RedisSink',
      'S3Sink',
      'SinkError',
      'SqsSink',
      'dynamoDbSink',
      'dynamodbSinkDefinition',
      'firehoseSink',
      'firehoseSinkDefinition',
      'httpSink',
      'httpSinkDefinition',
      'kinesisSink',
      'kinesisSinkDefinition',
      'redisSink',
      'redisSinkDefinition',
      's3Sink',
      's3SinkDefinition',
      'sqsSink',
      'sqsSinkDefinition',
    ]);
    expect(definitions('sink').map((d) => d.kind)).toEqual(
      expect.arrayContaining(['dynamodb', 'firehose', 'kinesis', 'redis', 'sqs', 'http', 's3']),
    );
  });

  it('each of its kinds names its module, which exports it as <kind>SinkDefinition', async () => {
    const own = definitions('sink').filter((d) => d.module.startsWith('@tributary/sinks/'));
    expect(own.map((d) => `${d.kind} ${d.module}`).sort()).toEqual(
      ['dynamodb', 'firehose', 'http', 'kinesis', 'redis', 's3', 'sqs'].map((k) => `${k} @tributary/sinks/${k}`),
    );
    for (const d of own) expect((await import(d.module))[`${d.kind}SinkDefinition`], d.module).toBe(d);
  });
});
