import type { Static } from 'typebox';
import { evaluationReason, showExpression } from '../compile/reason.js';
import type { StepDefinition } from '../compile/types.js';
import { register } from '../registry.js';
import { Expression } from '../schema.js';

export const filterSchema = Expression('keeps the records for which it is true');
export type FilterSpec = Static<typeof filterSchema>;

declare module '../index.js' {
  interface StepKinds {
    filter: FilterSpec;
  }
}

/** `filter`: keeps records whose predicate is `true`; any other result or a throw goes to the dead-letter output. */
export const filterStepDefinition: StepDefinition<FilterSpec> = register({
  kind: 'filter',
  category: 'step',
  module: './steps/filter.js',
  schema: filterSchema,
  description:
    'Keeps the records for which the expression is `true`. A result that is not a boolean, or an error, sends the record to the dead-letter output. Filtering is not an error: dropped records are only counted.',
  summary: showExpression,
  compile(spec, node, ctx) {
    const predicate = ctx.expression(spec);
    const name = node.name;
    return (next) => (env, batch) => {
      let keep: unknown;
      try {
        keep = predicate(env.value);
      } catch (err) {
        batch.deadLetter(env, name, evaluationReason(err), err);
        return;
      }
      if (keep === true) next(env, batch);
      else if (keep === false) batch.counters.filtered++;
      else batch.deadLetter(env, name, 'expression', `filter returned ${typeof keep}, expected a boolean`);
    };
  },
});
