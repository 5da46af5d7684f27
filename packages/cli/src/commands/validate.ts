/** `tributary validate <pipeline.yaml>...`: every problem of each file, as file:line:column: message. */
import { type Command, EXIT } from '../command.js';
import { checkPipeline, compilePipeline } from '../pipeline.js';

export const validate: Command = {
  name: 'validate',
  usage: 'validate <pipeline.yaml>...',
  summary: 'check pipeline files without running them: every problem, as file:line:column: message',
  options: {},
  async run({ positionals }, context) {
    if (positionals.length === 0) return context.usageError('validate needs at least one pipeline file');
    let ok = true;
    for (const file of positionals) {
      // Validation never runs user code: `fn:` modules are lexed for their exports, not imported,
      // and their functions are bound to stand-ins that are never called (a missing one too).
      const { pipeline, problems } = await checkPipeline(file, context, { importModules: false, standIns: true });
      // Compiled as `run` compiles it, so that every option a component refuses is reported too.
      // Compiling opens nothing: sinks, stores and lookups open their files and connections when
      // first used, and a compiled pipeline that never ran closes without touching them.
      const compiled = pipeline && compilePipeline(pipeline, file, context, { validated: true });
      if (!compiled || problems > 0) {
        if (compiled) await compiled.close().catch(() => {});
        ok = false;
        continue;
      }
      try {
        await compiled.close();
      } catch (err) {
        context.io.err.write(`${file}: ${context.errorText(err)}\n`);
        ok = false;
        continue;
      }
      context.io.err.write(`${file}: ok\n`);
    }
    return ok ? EXIT.ok : EXIT.invalid;
  },
};
