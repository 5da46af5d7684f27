import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { referenceMarkdown } from '@tributary/runtime-node';
import { describe, expect, it } from 'vitest';

describe('generated reference', () => {
  it('docs/reference.md is generated from the registered schemas (run `pnpm schema` after changing one)', async () => {
    const shipped = await readFile(join(import.meta.dirname, '..', '..', '..', 'docs', 'reference.md'), 'utf8');
    expect(shipped).toBe(referenceMarkdown());
  });
});
