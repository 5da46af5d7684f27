/** `tributary state init <pipeline.yaml>`: creates the tables the pipeline's window state needs. */
import { type Command, EXIT } from '../command.js';
import { validatedPipeline } from '../pipeline.js';
import { initState } from '../stateInit.js';

export const stateInit: Command = {
  name: 'state',
  usage: 'state init <pipeline.yaml>',
  summary: 'create the tables the window state needs (a DynamoDB table per dynamodb store); safe to run again',
  options: {},
  async run({ positionals }, context) {
    const [sub, file, ...more] = positionals;
    if (sub !== 'init' || file === undefined || more.length > 0)
      return context.usageError('state needs: state init <pipeline.yaml>');
    // Refused as validate refuses it (the same problems, located), before any table is created.
    const loaded = await validatedPipeline(file, context);
    if (!loaded) return EXIT.invalid;
    try {
      for (const line of await initState(loaded.spec)) context.io.out.write(`${line}\n`);
      return EXIT.ok;
    } catch (err) {
      context.io.err.write(`${file}: state init failed: ${context.errorText(err)}\n`);
      return EXIT.failed;
    }
  },
};
