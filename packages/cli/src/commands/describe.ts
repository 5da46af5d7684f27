/** `tributary describe <pipeline.yaml>`: the compiled graph, one line per node. */
import { type Command, EXIT } from '../command.js';
import { OVERRIDE_OPTIONS, OVERRIDES_HELP } from '../overrides.js';
import { compiledPipeline } from '../pipeline.js';

export const describe: Command = {
  name: 'describe',
  usage: `describe <pipeline.yaml> [--input <file>] [--output <file>] [--dead-letter <file>]
                [--batch-size <n>]`,
  summary: 'print the compiled graph of a pipeline (with the run overrides given, as run would run it)',
  options: OVERRIDE_OPTIONS,
  optionsHelp: OVERRIDES_HELP,
  async run(args, context) {
    const file = args.positionals[0];
    if (file === undefined || args.positionals.length > 1)
      return context.usageError('describe needs exactly one pipeline file');
    const loaded = await compiledPipeline(file, args, context);
    if (typeof loaded === 'number') return loaded;
    context.io.out.write(`${loaded.compiled.describe()}\n`);
    await loaded.compiled.close();
    return EXIT.ok;
  },
};
