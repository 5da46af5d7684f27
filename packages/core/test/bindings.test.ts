// A `ref` names an object the TypeScript builder bound: a sink, a lookup or a state store. A name
// bound to nothing of that kind fails compiling, at the spec of the ref.
import { compile, MemorySink, PipelineValidationError } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { yamlPipeline } from './helpers.js';

const refs = [
  ['sink', '  - sink: { ref: out }', '/steps/0/sink'],
  ['lookup', '  - enrich: { lookup: { ref: out }, key: event.k, as: x }', '/steps/0/enrich/lookup'],
  [
    'state store',
    '  - window: { tumbling: 1m, aggregate: { n: count() }, state: { ref: out } }',
    '/steps/0/window/state',
  ],
] as const;

describe('ref: an object bound by name', () => {
  for (const [what, step, path] of refs) {
    it(`a ${what} ref bound to nothing, or to something else, is refused at its spec`, () => {
      for (const bound of [undefined, 5, what === 'sink' ? { get: () => undefined } : new MemorySink()]) {
        const spec = yamlPipeline(`version: 1\nname: t\nsource: { file: { path: in.jsonl } }\nsteps:\n${step}\n`);
        const p = { ...spec, bindings: new Map(bound === undefined ? [] : [['out', bound]]) };
        const err = (() => {
          try {
            compile(p);
          } catch (e) {
            return e;
          }
        })();
        expect(err).toBeInstanceOf(PipelineValidationError);
        expect(String((err as Error).message)).toContain(`no ${what} is bound under the name \`out\` (at ${path})`);
      }
    });
  }
});
