// A pipeline a component refuses when it is compiled fails the Lambda function at its cold start,
// before any record of the event is read, naming the file, line, column and path of the spec.
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PipelineValidationError } from '@tributary/core';
import { createHandler } from '@tributary/runtime-lambda';
import { describe, expect, it } from 'vitest';
import { kinesisEventRecord, kinesisStreamArn } from '../../../test-support/lambdaEvents.js';

describe('lambda handler: a pipeline refused at compile time', () => {
  it('fails the cold start with the located issue; the event is not read and no output is opened', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-lambda-compile-'));
    const file = join(dir, 'pipeline.yaml');
    await writeFile(
      file,
      `version: 1
name: p
source: { file: { path: in.jsonl } }
steps:
  - sink: { file: { path: seen.jsonl } }
  - window:
      hopping: { size: 1m, every: 2m }
      aggregate: { n: count() }
      state: { memory: { volatile: true } }
  - sink: { file: { path: out.jsonl } }
`,
    );
    const handler = createHandler(file, { log: () => {}, listShards: async () => [] });
    const issue = {
      file,
      line: 7,
      column: 7,
      path: '/steps/1/window',
      message: 'hopping `every` must not exceed `size` (records would fall between windows)',
    };
    await expect(handler.ready).rejects.toThrow(PipelineValidationError);
    await handler.ready.catch((err: PipelineValidationError) => expect(err.issues).toEqual([issue]));
    const arn = kinesisStreamArn('clicks');
    const event = {
      Records: [
        kinesisEventRecord({
          shardId: 'shardId-000000000000',
          arn,
          sequenceNumber: '1',
          partitionKey: 'u1',
          data: Buffer.from('{"user":"u1"}').toString('base64'),
        }),
      ],
    };
    await expect(handler(event)).rejects.toThrow(PipelineValidationError);
    expect(existsSync(join(dir, 'seen.jsonl'))).toBe(false);
    expect(existsSync(join(dir, 'out.jsonl'))).toBe(false);
  });
});
