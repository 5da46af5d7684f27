import type { StepDefinition } from '../compile/types.js';
import { keptCopy } from '../envelope.js';
import { kindOf, register } from '../registry.js';
import { ComponentRef } from '../schema.js';
import type { SinkSpec } from '../spec.js';

export const sinkSchema = ComponentRef<SinkSpec>('sink');

declare module '../index.js' {
  interface StepKinds {
    sink: SinkSpec;
  }
}

/**
 * `sink`: writes each record to a destination and passes it on, so a pipeline may have several.
 * The batch is acknowledged only after every sink has made its records durable.
 */
export const sinkStepDefinition: StepDefinition<SinkSpec> = register({
  kind: 'sink',
  category: 'step',
  module: './steps/sink.js',
  schema: sinkSchema,
  description:
    'Writes records to a destination (see Sinks) and passes them on unchanged, so a pipeline may write to several sinks. The batch is acknowledged only when every sink has made its records durable.',
  summary: (spec) => kindOf(spec),
  compile(spec, node, ctx) {
    // The sink's own spec (reported by a sink that refuses its options) is under the step's `sink`.
    const buffer = ctx.sink(spec, { ...node, path: `${node.path}/sink` });
    return (next) => {
      // Last in its chain, the buffer may keep the envelope itself; else later steps may change
      // it in place (see `Push`) and the buffer keeps a copy.
      if (ctx.isEnd(next))
        return (env, batch) => {
          buffer(env, batch);
          next(env, batch);
        };
      return (env, batch) => {
        buffer(keptCopy(env), batch);
        next(env, batch);
      };
    };
  },
});
