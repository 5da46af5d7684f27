/** `tributary validate <pipeline.yaml>...`: every problem of each file, as file:line:column: message. */
import { type Command, EXIT } from '../command.js';
import { validatedPipeline } from '../pipeline.js';

export const validate: Command = {
  name: 'validate',
  usage: 'validate <pipeline.yaml>...',
  summary: 'check pipeline files without running them: every problem, as file:line:column: message',
  options: {},
  async run({ positionals }, context) {
    if (positionals.length === 0) return context.usageError('validate needs at least one pipeline file');
    let ok = true;
    for (const file of positionals) {
      if (await validatedPipeline(file, context)) context.io.err.write(`${file}: ok\n`);
      else ok = false;
    }
    return ok ? EXIT.ok : EXIT.invalid;
  },
};
