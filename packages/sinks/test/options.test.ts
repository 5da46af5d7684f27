// Sink options a sink refuses when it is created (the schema accepts them): compiling the
// pipeline reports each at that sink's spec, with the file, line and column of the YAML.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, compile, loadPipelineFile, PipelineValidationError } from '@tributary/core';
import '@tributary/sinks';
import { describe, expect, it } from 'vitest';

async function compileError(text: string): Promise<{ file: string; error: PipelineValidationError }> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-sink-options-'));
  const file = join(dir, 'pipeline.yaml');
  await writeFile(file, text);
  const p = await loadPipelineFile(file);
  try {
    compile(p);
  } catch (error) {
    if (error instanceof PipelineValidationError) return { file, error };
    throw error;
  }
  throw new Error('the pipeline compiled');
}

const head = 'version: 1\nname: p\nsource: { file: { path: in.jsonl } }\n';

describe('sink options refused at construction', () => {
  it("a redis zadd without a score: the step's sink spec", async () => {
    const { file, error } = await compileError(
      `${head}steps:\n  - filter: event.n > 0\n  - sink:\n      redis: { url: "redis://localhost:1", command: zadd, key: event.user }\n`,
    );
    expect(error.issues).toEqual([
      { file, line: 7, column: 7, path: '/steps/1/sink', message: 'Expected `score` for zadd' },
    ]);
    expect(error.cause).toBeInstanceOf(ConfigError);
  });

  it("a dynamodb sink in update mode without key attributes, as a window step's late output", async () => {
    const { file, error } = await compileError(
      `${head}steps:
  - window:
      tumbling: 1m
      aggregate: { n: count() }
      late: { sink: { dynamodb: { table: late-records, mode: update } } }
`,
    );
    expect(error.issues).toEqual([
      {
        file,
        line: 8,
        column: 21,
        path: '/steps/0/window/late/sink',
        message: 'Expected `key` (the key attributes) for a dynamodb sink in update mode',
      },
    ]);
  });

  it('the dead-letter output', async () => {
    const { file, error } = await compileError(
      `${head}steps: []\ndeadLetter:\n  redis: { url: "redis://localhost:1", command: zadd, key: event.user }\n`,
    );
    expect(error.issues).toEqual([
      { file, line: 6, column: 3, path: '/deadLetter', message: 'Expected `score` for zadd' },
    ]);
  });
});
