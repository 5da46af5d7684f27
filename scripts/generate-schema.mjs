// Writes the generated artefacts: the pipeline JSON Schema and the component reference.
// `pnpm schema`; a test fails when they are out of date.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipelineSchema, referenceMarkdown } from '../packages/core/dist/index.js';
// Every package's components, as the CLI registers them.
import '../packages/sinks/dist/index.js';
import '../packages/state/dist/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(root, 'packages/core/schema'), { recursive: true });
mkdirSync(join(root, 'docs'), { recursive: true });
writeFileSync(
  join(root, 'packages/core/schema/pipeline.schema.json'),
  `${JSON.stringify(pipelineSchema(), null, 2)}\n`,
);
writeFileSync(join(root, 'docs/reference.md'), referenceMarkdown());
console.log('wrote packages/core/schema/pipeline.schema.json and docs/reference.md');
