// checkLambdaWindowState is a public export: it takes the pipeline, and still takes a spec and
// its file (its former form). Given anything else it throws; it never reports "fine" on an
// argument it could not read.
import { type PipelineSpec, PipelineValidationError, parsePipelineYaml } from '@tributary/core';
import { ConfigError } from '@tributary/core/spi';
import { checkLambdaWindowState } from '@tributary/runtime-lambda';
import { describe, expect, it } from 'vitest';

const spec = {
  version: 1,
  name: 'memory-window',
  source: { file: { path: '-' } },
  steps: [{ window: { key: 'event.k', tumbling: '1m', aggregate: { n: 'count()' } } }],
} as unknown as PipelineSpec;

const issuesOf = (call: () => void) => {
  try {
    call();
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineValidationError);
    return (err as PipelineValidationError).issues.map((i) => `${i.file ?? ''}:${i.line ?? ''} ${i.path}`);
  }
  throw new Error('expected a PipelineValidationError');
};

describe('checkLambdaWindowState', () => {
  it('refuses a window in memory when given the pipeline', () => {
    expect(() => checkLambdaWindowState({ spec })).toThrow(/window state in memory/);
  });

  it('refuses it at its line when the pipeline came from YAML', () => {
    const yaml =
      'version: 1\nname: m\nsource: { file: { path: "-" } }\nsteps:\n  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() } }\n';
    const parsed = parsePipelineYaml(yaml, 'p.yaml');
    const pipeline = { spec: parsed.spec as PipelineSpec, file: 'p.yaml', locate: parsed.locate };
    expect(issuesOf(() => checkLambdaWindowState(pipeline))).toEqual(['p.yaml:5 /steps/0/window']);
  });

  it('refuses it when given a spec and its file (its former form)', () => {
    expect(issuesOf(() => checkLambdaWindowState(spec, 'p.yaml'))).toEqual(['p.yaml: /steps/0/window']);
    expect(issuesOf(() => checkLambdaWindowState(spec))).toEqual([': /steps/0/window']);
  });

  it('accepts a window in a shared store, in either form', () => {
    const shared = {
      ...spec,
      steps: [
        {
          window: {
            key: 'event.k',
            tumbling: '1m',
            aggregate: { n: 'count()' },
            state: { redis: { url: 'redis://x' } },
          },
        },
      ],
    } as unknown as PipelineSpec;
    expect(() => checkLambdaWindowState({ spec: shared })).not.toThrow();
    expect(() => checkLambdaWindowState(shared, 'p.yaml')).not.toThrow();
  });

  it('throws a ConfigError on an argument that is neither a pipeline nor a spec', () => {
    const loose = checkLambdaWindowState as unknown as (value: unknown) => void;
    for (const value of [undefined, null, 'p.yaml', [], {}, { spec: {} }, { steps: 'no' }]) {
      expect(() => loose(value)).toThrow(ConfigError);
    }
    expect(() => loose({})).toThrow(
      /expects a pipeline \(with a `spec`\) or a PipelineSpec \(with `steps`\), got an object with neither/,
    );
    expect(() => loose(undefined)).toThrow(/got undefined$/);
  });
});
