import * as worker from '@tributary/runtime-node';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/runtime-node', () => {
  it('exports the observability of the worker (the CLI is @tributary/cli)', () => {
    expect(Object.keys(worker).sort()).toEqual([
      'EfoShardReader',
      'LOG_LEVELS',
      'PromWorkerMetrics',
      'ReaderStopped',
      'ShardReader',
      'StreamConsumerError',
      'checkWorkerWindowState',
      'createLogger',
      'createStatusLine',
      'createWorker',
      'efoSubscriptionClient',
      'entryLog',
      'formatStatus',
      'noMetrics',
      'parseLogLevel',
      'registerStreamConsumer',
      'startHttpServer',
    ]);
  });
});
