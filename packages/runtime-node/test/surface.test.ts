import * as worker from '@tributary/runtime-node';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/runtime-node', () => {
  it('exports the observability of the worker (the CLI is @tributary/cli)', () => {
    expect(Object.keys(worker).sort()).toEqual([
      'LOG_LEVELS',
      'PromWorkerMetrics',
      'ReaderStopped',
      'ShardReader',
      'checkWorkerWindowState',
      'createLogger',
      'createStatusLine',
      'createWorker',
      'entryLog',
      'formatStatus',
      'noMetrics',
      'parseLogLevel',
      'startHttpServer',
    ]);
  });
});
