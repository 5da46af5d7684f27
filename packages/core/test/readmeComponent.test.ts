// README "Writing a component": its example is this folder's readmeComponent.ts, word for word
// (so it type-checks with the tests), and the sink it registers runs in a pipeline from YAML.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type PipelineSpec, parsePipelineYaml, testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { collected } from './readmeComponent.js';

const readme = readFileSync(join(import.meta.dirname, '..', '..', '..', 'README.md'), 'utf8');
const example = readFileSync(join(import.meta.dirname, 'readmeComponent.ts'), 'utf8');

const pipelineOf = (sink: string) => {
  const text = `version: 1\nname: clicks\nsource: { file: { path: in.jsonl } }\nsteps:\n  - filter: event.n > 1\n  - sink: ${sink}\n`;
  const parsed = parsePipelineYaml(text, 'p.yaml');
  return { parsed, pipeline: parsed.spec && { spec: parsed.spec, bindings: new Map(), baseDir: process.cwd() } };
};

describe('README: Writing a component', () => {
  it('shows readmeComponent.ts', () => {
    const section = readme.slice(readme.indexOf('### Writing a component'));
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBe(example);
  });

  it('registers a sink that a YAML pipeline names and runs', async () => {
    const { pipeline } = pipelineOf('{ collect: { name: clicks } }');
    if (!pipeline) throw new Error('the pipeline did not validate');
    await testPipeline(pipeline, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(collected.get('clicks')).toEqual([{ n: 2 }, { n: 3 }]);
  });

  it('validates its options with the schema it registers', () => {
    const { parsed } = pipelineOf('{ collect: { name: "" } }');
    expect(parsed.spec).toBeUndefined();
    expect(parsed.issues.map((i) => `${i.line}:${i.column} ${i.path}`)).toEqual([
      expect.stringMatching(/^6:\d+ \/steps\/1\/sink\/collect\/name$/),
    ]);
  });

  it('adds its spec to the kind maps: a spec naming it type-checks and runs', async () => {
    const spec: PipelineSpec = {
      version: 1,
      name: 'typed',
      source: { file: { path: 'in.jsonl' } },
      steps: [{ sink: { collect: { name: 'typed' } } }],
    };
    await testPipeline({ spec, bindings: new Map(), baseDir: process.cwd() }, [{ n: 1 }]);
    expect(collected.get('typed')).toEqual([{ n: 1 }]);
  });
});
