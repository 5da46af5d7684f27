import Type, { type Static } from 'typebox';
import { evaluationReason, showExpression } from '../compile/reason.js';
import type { Push, StepDefinition } from '../compile/types.js';
import { register } from '../registry.js';
import { ComponentRef, Expression } from '../schema.js';
import type { StepSpec } from '../spec.js';

export const branchSchema = Type.Object(
  {
    routes: Type.Array(
      Type.Object(
        {
          name: Type.Optional(Type.String({ minLength: 1 })),
          when: Expression('true when the record takes this route'),
          steps: Type.Array(ComponentRef<StepSpec>('step'), { minItems: 1, description: "the route's own steps" }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
  },
  { additionalProperties: false },
);
export type BranchSpec = Static<typeof branchSchema>;

declare module '../index.js' {
  interface StepKinds {
    branch: BranchSpec;
  }
}

/**
 * `branch`: sends each record down the first route whose `when` holds; the route's steps are
 * its own sub-pipeline. Records that match no route continue with the steps after the branch.
 */
export const branchStepDefinition: StepDefinition<BranchSpec> = register({
  kind: 'branch',
  category: 'step',
  module: './steps/branch.js',
  schema: branchSchema,
  description:
    'Sends each record down the first route whose `when` is true; a route is a sub-pipeline of its own steps (usually ending in a sink). Records that match no route continue with the steps after the branch. An error in `when` sends the record to the dead-letter output.',
  summary: (spec) => spec.routes.map((r) => showExpression(r.when)).join(' | '),
  compile(spec, node, ctx) {
    const whens = spec.routes.map((r) => ctx.expression(r.when));
    const name = node.name;
    // Routes are compiled now (not when linked) so their nodes are named in definition order.
    const routes = spec.routes.map((r, i) => ctx.steps(r.steps, `${node.path}/branch/routes/${i}/steps`));
    const n = routes.length;
    return (next) => {
      return (env, batch) => {
        for (let i = 0; i < n; i++) {
          let hit: unknown;
          try {
            hit = (whens[i] as (v: unknown) => unknown)(env.value);
          } catch (err) {
            batch.deadLetter(env, name, evaluationReason(err), err);
            return;
          }
          if (hit === true) {
            (routes[i] as Push)(env, batch);
            return;
          }
        }
        next(env, batch);
      };
    };
  },
});
