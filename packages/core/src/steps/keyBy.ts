import type { Static } from 'typebox';
import { evaluationReason, showExpression } from '../compile/reason.js';
import type { StepDefinition } from '../compile/types.js';
import { updateKey } from '../envelope.js';
import { register } from '../registry.js';
import { Expression } from '../schema.js';

export const keyBySchema = Expression('yields the record key used by later windows');
export type KeyBySpec = Static<typeof keyBySchema>;

declare module '../index.js' {
  interface StepKinds {
    keyBy: KeyBySpec;
  }
}

/** `keyBy`: sets the record key (used by windows), in the envelope it owns (see `Push`); the value is unchanged. */
export const keyByStepDefinition: StepDefinition<KeyBySpec> = register({
  kind: 'keyBy',
  category: 'step',
  module: './steps/keyBy.js',
  schema: keyBySchema,
  description:
    'Sets the record key, which later steps (windows, sinks) group by; the value is unchanged. The key must be a string, number or boolean; anything else, or an error, sends the record to the dead-letter output.',
  summary: showExpression,
  compile(spec, node, ctx) {
    const f = ctx.expression(spec);
    const name = node.name;
    return (next) => (env, batch) => {
      let key: unknown;
      try {
        key = f(env.value);
      } catch (err) {
        batch.deadLetter(env, name, evaluationReason(err), err);
        return;
      }
      const t = typeof key;
      if (t === 'string' || t === 'number' || t === 'boolean') next(updateKey(env, key), batch);
      else
        batch.deadLetter(
          env,
          name,
          'expression',
          `key is ${key === null ? 'null' : t}, expected a string, number or boolean`,
        );
    };
  },
});
