/** `tributary docs`: the step, source, sink, lookup and store reference (Markdown), from the registry. */
import { referenceMarkdown } from '@tributary/core';
import { type Command, EXIT } from '../command.js';

export const docs: Command = {
  name: 'docs',
  usage: 'docs',
  summary: 'print the step/source/sink reference (Markdown), generated from the registered schemas',
  options: {},
  async run(_, { io }) {
    io.out.write(referenceMarkdown());
    return EXIT.ok;
  },
};
