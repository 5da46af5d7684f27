import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipelineSchema, referenceMarkdown } from '@tributary/core';
// Every package's components, as the CLI registers them.
import '@tributary/sinks';
import '@tributary/state';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');

describe('generated reference', () => {
  it('ships the JSON Schema generated from the registry, with every package loaded (run `pnpm schema` after changing a schema)', async () => {
    const shipped = JSON.parse(await readFile(join(root, 'packages/core/schema/pipeline.schema.json'), 'utf8'));
    expect(shipped).toEqual(JSON.parse(JSON.stringify(pipelineSchema())));
    expect(JSON.stringify(shipped)).toContain('"dynamodb"');
  });

  it('docs/reference.md is generated from the registered schemas (run `pnpm schema` after changing one)', async () => {
    const shipped = await readFile(join(import.meta.dirname, '..', '..', '..', 'docs', 'reference.md'), 'utf8');
    expect(shipped).toBe(referenceMarkdown());
  });
});
