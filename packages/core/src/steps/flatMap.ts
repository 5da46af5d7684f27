import type { Static } from 'typebox';
import { evaluationReason, showExpression } from '../compile/reason.js';
import type { StepDefinition } from '../compile/types.js';
import { withValue } from '../envelope.js';
import { register } from '../registry.js';
import { Expression } from '../schema.js';

export const flatMapSchema = Expression('yields a list; each element becomes a record');
export type FlatMapSpec = Static<typeof flatMapSchema>;

declare module '../index.js' {
  interface StepKinds {
    flatMap: FlatMapSpec;
  }
}

/** `flatMap`: one record in, zero or more out (each keeps the parent's shard, sequence and times). */
export const flatMapStepDefinition: StepDefinition<FlatMapSpec> = register({
  kind: 'flatMap',
  category: 'step',
  module: './steps/flatMap.js',
  schema: flatMapSchema,
  description:
    "Replaces each record with the elements of the list its expression yields (zero or more records). Children keep the parent record's shard, sequence number and times. A result that is not a list, or an error, sends the record to the dead-letter output.",
  summary: showExpression,
  compile(spec, node, ctx) {
    const f = ctx.expression(spec);
    const name = node.name;
    return (next) => (env, batch) => {
      let items: unknown;
      try {
        items = f(env.value);
      } catch (err) {
        batch.deadLetter(env, name, evaluationReason(err), err);
        return;
      }
      if (Array.isArray(items)) {
        for (let i = 0; i < items.length; i++) next(withValue(env, items[i]), batch);
      } else if (items !== null && typeof items === 'object' && Symbol.iterator in items) {
        for (const item of items as Iterable<unknown>) next(withValue(env, item), batch);
      } else {
        batch.deadLetter(
          env,
          name,
          'expression',
          `flatMap yielded ${items === null ? 'null' : typeof items}, expected a list`,
        );
      }
    };
  },
});
