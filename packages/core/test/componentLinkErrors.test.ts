// A custom step refuses its options with a ConfigError while compiling or while linking (in the
// `(next) => Push` it returns, where a step that needs to know its next — ctx.isEnd — checks):
// compile reports both alike, at the step's spec with file, line and column, with every other
// refused component of the pipeline.
import { compile, type Pipeline, PipelineValidationError, parsePipelineYaml } from '@tributary/core';
import { ConfigError, register, type StepDefinition } from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';

const base = {
  category: 'step',
  module: './steps/filter.js',
  schema: { type: 'object' },
  description: 'a step that refuses its options',
  summary: () => 'refuses',
} as const;
register({
  ...base,
  kind: 'refusesAtCompile',
  compile: () => {
    throw new ConfigError('refused at compile');
  },
} as unknown as StepDefinition<object>);
register({
  ...base,
  kind: 'refusesAtLink',
  compile: () => () => {
    throw new ConfigError('refused at link');
  },
} as unknown as StepDefinition<object>);
register({
  ...base,
  kind: 'failsAtLink',
  compile: () => () => {
    throw new TypeError('a bug in the step');
  },
} as unknown as StepDefinition<object>);

const pipelineOf = (steps: string): Pipeline => {
  const text = `version: 1\nname: link\nsource: { file: { path: in.jsonl } }\nsteps:\n${steps}`;
  const parsed = parsePipelineYaml(text, 'p.yaml');
  if (!parsed.spec) throw new Error(parsed.issues.map((i) => i.message).join('\n'));
  return { spec: parsed.spec, file: 'p.yaml', locate: parsed.locate, bindings: new Map(), baseDir: process.cwd() };
};

const issuesOf = (pipeline: Pipeline): string[] => {
  try {
    compile(pipeline);
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineValidationError);
    return (err as PipelineValidationError).issues.map((i) => `${i.file} ${i.path} ${i.line}:${i.column} ${i.message}`);
  }
  return expect.unreachable('expected a PipelineValidationError');
};

describe('a custom step that refuses its options', () => {
  it('is reported with the others, at its spec, when it refuses while linking', () => {
    expect(issuesOf(pipelineOf('  - refusesAtCompile: {}\n  - refusesAtLink: {}\n'))).toEqual([
      'p.yaml /steps/0/refusesAtCompile 5:23 refused at compile',
      'p.yaml /steps/1/refusesAtLink 6:20 refused at link',
    ]);
  });

  it('is reported inside a branch route, at its own path', () => {
    const issues = issuesOf(
      pipelineOf(
        '  - branch:\n      routes:\n        - when: "true"\n          steps:\n            - refusesAtLink: {}\n  - refusesAtLink: {}\n',
      ),
    );
    expect(issues).toEqual([
      expect.stringMatching(/^p\.yaml \/steps\/0\/branch\/routes\/0\/steps\/0\/refusesAtLink 9:\d+ refused at link$/),
      'p.yaml /steps/1/refusesAtLink 10:20 refused at link',
    ]);
  });

  it('still throws an error that is not a refusal (a bug) as it is', () => {
    expect(() => compile(pipelineOf('  - failsAtLink: {}\n'))).toThrow(TypeError);
  });
});
