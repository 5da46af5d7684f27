/** `tributary schema`: the pipeline JSON Schema, with every component of the installed packages. */
import { pipelineSchema } from '@tributary/core';
import { type Command, EXIT } from '../command.js';

export const schema: Command = {
  name: 'schema',
  usage: 'schema',
  summary: 'print the pipeline JSON Schema',
  options: {},
  async run({ positionals }, { io, usageError }) {
    if (positionals.length > 0) return usageError(`schema takes no arguments, got \`${positionals[0]}\``);
    io.out.write(`${JSON.stringify(pipelineSchema(), null, 2)}\n`);
    return EXIT.ok;
  },
};
