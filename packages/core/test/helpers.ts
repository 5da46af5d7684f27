import { type Pipeline, parsePipelineYaml } from '@tributary/core';

/** A pipeline from YAML text (steps only need to be given; a file source is filled in). */
export function yamlPipeline(text: string, baseDir = process.cwd()): Pipeline {
  const parsed = parsePipelineYaml(text, 'test.yaml');
  if (!parsed.spec) throw new Error(parsed.issues.map((i) => `${i.line}:${i.column}: ${i.message}`).join('\n'));
  return { spec: parsed.spec, bindings: new Map(), baseDir };
}

/** A pipeline whose steps are the given YAML list items. */
export function stepsPipeline(steps: string, extra = ''): Pipeline {
  return yamlPipeline(`version: 1\nname: test\nsource: { file: { path: in.jsonl } }\n${extra}steps:\n${steps}\n`);
}
