import * as worker from '@tributary/runtime-node';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/runtime-node', () => {
  it('exports nothing yet (the Kinesis worker is to come; the CLI is @tributary/cli)', () => {
    expect(Object.keys(worker)).toEqual([]);
  });
});
