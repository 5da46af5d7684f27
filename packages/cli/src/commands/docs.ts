/** `tributary docs`: the step, source, sink, lookup and store reference (Markdown), from the registry. */
import { referenceMarkdown } from '@tributary/core';
import { type Command, EXIT } from '../command.js';

export const docs: Command = {
  name: 'docs',
  usage: 'docs',
  summary: 'print the step/source/sink/lookup/store reference (Markdown), generated from the registered schemas',
  options: {},
  async run({ positionals }, { io, usageError }) {
    if (positionals.length > 0) return usageError(`docs takes no arguments, got \`${positionals[0]}\``);
    io.out.write(referenceMarkdown());
    return EXIT.ok;
  },
};
