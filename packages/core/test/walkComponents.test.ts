import { type PipelineSpec, parsePipelineYaml } from '@tributary/core';
import { walkComponents } from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';

const uses = (spec: PipelineSpec) => [...walkComponents(spec)].map((c) => `${c.category} ${c.kind} ${c.path}`);

describe('walkComponents', () => {
  it('finds the source and the steps of a pipeline without nesting', () => {
    const spec: PipelineSpec = {
      version: 1,
      name: 'flat',
      source: { file: { path: 'in.jsonl' } },
      steps: [{ filter: 'event.ok' }, { map: { id: 'event.id' } }],
    };
    expect(uses(spec)).toEqual(['source file /source', 'step filter /steps/0', 'step map /steps/1']);
  });

  it('finds every nested component: branch routes, sinks, enrich lookups, window state and late outputs, the dead-letter output', () => {
    const { spec, issues } = parsePipelineYaml(`
version: 1
name: nested
source: { file: { path: in.jsonl } }
steps:
  - enrich: { lookup: { static: { path: users.json } }, key: event.user }
  - branch:
      routes:
        - when: event.big
          steps:
            - window:
                tumbling: 1m
                aggregate: { n: count() }
                state: { memory: { volatile: true } }
                late: { sink: { file: { path: late.jsonl } } }
            - sink: { stdout: {} }
        - when: "true"
          steps:
            - sink: { name: all, file: { path: all.jsonl } }
  - window: { tumbling: 1m, aggregate: { n: count() }, state: memory }
deadLetter: { stderr: {} }
`);
    expect(issues).toEqual([]);
    if (!spec) throw new Error('not parsed');
    expect(uses(spec)).toEqual([
      'source file /source',
      'step enrich /steps/0',
      'lookup static /steps/0/enrich/lookup',
      'step branch /steps/1',
      'step window /steps/1/branch/routes/0/steps/0',
      'store memory /steps/1/branch/routes/0/steps/0/window/state',
      'sink file /steps/1/branch/routes/0/steps/0/window/late/sink',
      'step sink /steps/1/branch/routes/0/steps/1',
      'sink stdout /steps/1/branch/routes/0/steps/1/sink',
      'step sink /steps/1/branch/routes/1/steps/0',
      'sink file /steps/1/branch/routes/1/steps/0/sink',
      'step window /steps/2',
      'sink stderr /deadLetter',
    ]);
  });

  it('gives each component the options under its kind key, as its definition receives them', () => {
    const spec: PipelineSpec = {
      version: 1,
      name: 'x',
      source: { file: { path: 'in.jsonl' } },
      steps: [{ sink: { name: 'out', file: { path: 'out.jsonl' } } }],
    };
    const sink = [...walkComponents(spec)].find((c) => c.category === 'sink');
    expect(sink).toEqual({ category: 'sink', kind: 'file', path: '/steps/0/sink', spec: { path: 'out.jsonl' } });
  });

  it('reports a kind nothing registered without looking into it', () => {
    const spec = {
      version: 1,
      name: 'x',
      source: { file: { path: 'in.jsonl' } },
      steps: [{ custom: { sink: { stdout: {} } } }],
    } as unknown as PipelineSpec;
    expect(uses(spec)).toEqual(['source file /source', 'step custom /steps/0']);
  });
});
