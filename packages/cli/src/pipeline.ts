/** Loading the pipeline file a command names, with its problems printed one per line. */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import * as util from 'node:util';
import {
  type CompiledPipeline,
  type CompileOptions,
  checkPipelineFile,
  compile,
  formatIssue,
  type Pipeline,
  PipelineValidationError,
} from '@tributary/core';
import { type CommandArgs, type CommandContext, EXIT } from './command.js';
import { overridesOf, withOverrides } from './overrides.js';

/** The largest env file read (`--env-file`). */
const MAX_ENV_FILE_BYTES = 1024 * 1024;

/**
 * The first line of an env file that is not `NAME=value` (nor blank, nor a `#` comment, nor a
 * line of a quoted value spanning lines), with why: Node's parser would not refuse it but join
 * it to the next line's name. A name is one `${NAME}` can reference: `[A-Za-z_][A-Za-z0-9_]*`.
 */
function envFileProblem(text: string): { line: number; message: string } | undefined {
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = /^\s*(?:export\s+)?([^=\s]*)\s*=\s*(.*)$/.exec(line);
    if (!m) {
      const shown = trimmed.length > 40 ? `${trimmed.slice(0, 40)}…` : trimmed;
      return { line: i + 1, message: `expected NAME=value, got \`${shown}\`` };
    }
    const [, name = '', value = ''] = m;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      return {
        line: i + 1,
        message: `\`${name}\` is not a variable name (letters, digits and _, not starting with a digit)`,
      };
    // A quoted value may span lines, to the one with its closing quote.
    const quote = value[0];
    if ((quote === '"' || quote === "'" || quote === '`') && !value.includes(quote, 1)) {
      const close = lines.findIndex((l, j) => j > i && l.includes(quote));
      if (close !== -1) i = close;
    }
  }
  return undefined;
}

/**
 * The variables of the `--env-file` files, a later file's over an earlier one's; or, when one
 * cannot be read, the line that says which and why. The format is Node's (`util.parseEnv`, as
 * `node --env-file` reads): `NAME=value` lines, `#` comments, values optionally quoted, `export `
 * prefixes allowed.
 */
export async function readEnvFiles(files: readonly string[]): Promise<Record<string, string> | string> {
  const env: Record<string, string> = {};
  for (const file of files) {
    let text: string;
    try {
      // Opened without blocking, so a FIFO with no writer does not hang; only a regular file is read.
      const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        const st = await handle.stat();
        if (!st.isFile()) return `--env-file ${file}: not a regular file`;
        if (st.size > MAX_ENV_FILE_BYTES) return `--env-file ${file}: larger than ${MAX_ENV_FILE_BYTES} bytes`;
        // A byte order mark (as some Windows editors save) is not part of the first name: Node's
        // parser kept it there, so the first variable was silently never set.
        text = (await handle.readFile('utf8')).replace(/^\uFEFF/, '');
      } finally {
        await handle.close();
      }
    } catch (err) {
      return `--env-file ${file}: cannot read it: ${(err as Error).message}`;
    }
    const problem = envFileProblem(text);
    if (problem) return `--env-file ${file}:${problem.line}: ${problem.message}`;
    // util.parseEnv is Node 20.12's; this package's engines allow 20.11.
    const parseEnv = (util as { parseEnv?: (text: string) => Record<string, string | undefined> }).parseEnv;
    if (parseEnv === undefined) return `--env-file ${file}: reading env files needs Node 20.12 or later`;
    for (const [name, value] of Object.entries(parseEnv(text))) if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * The pipeline of `file`, or undefined when it cannot be loaded or is invalid: every problem is
 * printed, as `file:line:column: message`. `importModules: false` lexes `fn:` modules for their
 * exports instead of importing them (validation never runs user code).
 */
export async function loadPipeline(
  file: string,
  context: CommandContext,
  options: { importModules?: boolean } = {},
): Promise<Pipeline | undefined> {
  const { pipeline, problems } = await checkPipeline(file, context, options);
  return problems === 0 ? pipeline : undefined;
}

/**
 * As {@link loadPipeline}, with the number of problems printed; with `standIns` (and
 * `importModules: false`), the pipeline is returned even when some of its function references
 * have problems (they stand in too), so that compiling it finds the other problems in the same run.
 */
export async function checkPipeline(
  file: string,
  context: CommandContext,
  options: { importModules?: boolean; standIns?: boolean } = {},
): Promise<{ pipeline: Pipeline | undefined; problems: number }> {
  try {
    const { pipeline, issues } = await checkPipelineFile(file, { ...context.modules, ...options });
    for (const issue of issues) context.io.err.write(`${formatIssue(issue)}\n`);
    return { pipeline, problems: issues.length };
  } catch (err) {
    context.io.err.write(`${file}: cannot load the pipeline: ${context.errorText(err)}\n`);
    return { pipeline: undefined, problems: 1 };
  }
}

/**
 * The pipeline of `file` with the run overrides of the command line applied (`--input`,
 * `--output`, `--dead-letter`, `--batch-size`), compiled; or the exit status when it cannot be.
 */
export async function compiledPipeline(
  file: string,
  args: CommandArgs,
  context: CommandContext,
): Promise<{ pipeline: Pipeline; compiled: CompiledPipeline } | number> {
  const loaded = await loadPipeline(file, context);
  if (!loaded) return EXIT.invalid;
  let pipeline: Pipeline;
  try {
    pipeline = withOverrides(loaded, overridesOf(args.values));
  } catch (err) {
    context.io.err.write(`${context.errorText(err)}\n`);
    return EXIT.usage;
  }
  const compiled = compilePipeline(pipeline, file, context);
  return compiled ? { pipeline, compiled } : EXIT.invalid;
}

/**
 * Prints why a command on `file` failed (`what`: `synth`, `lambda-local`): the issues of a
 * pipeline a runtime refuses, one per line as `file:line:column: message` (as validate prints
 * them), or else one line for the error.
 */
export function reportFailure(file: string, what: string, err: unknown, context: CommandContext): void {
  if (err instanceof PipelineValidationError) for (const i of err.issues) context.io.err.write(`${formatIssue(i)}\n`);
  else context.io.err.write(`${file}: ${what} failed: ${context.errorText(err)}\n`);
}

/**
 * `pipeline` (of `file`) compiled, or undefined when a component refuses its options: every
 * problem is printed, as `file:line:column: message`.
 */
export function compilePipeline(
  pipeline: Pipeline,
  file: string,
  context: CommandContext,
  options?: CompileOptions,
): CompiledPipeline | undefined {
  try {
    return compile(pipeline, options);
  } catch (err) {
    if (err instanceof PipelineValidationError) for (const i of err.issues) context.io.err.write(`${formatIssue(i)}\n`);
    else context.io.err.write(`${file}: ${context.errorText(err)}\n`);
    return undefined;
  }
}

/**
 * The pipeline of `file` if `validate` accepts it, else undefined with every problem printed, as
 * `file:line:column: message`. No user code runs: `fn:` modules are lexed for their exports, not
 * imported, and their functions are bound to stand-ins that are never called (a missing one too,
 * so the other problems are still found). The pipeline is compiled as `run` compiles it, so that
 * every option a component refuses is reported too; compiling opens nothing (sinks, stores and
 * lookups open their files and connections when first used, and a compiled pipeline that never
 * ran closes without touching them). The pipeline returned has stand-ins for its functions: it is
 * for reading its spec, not for running.
 */
export async function validatedPipeline(file: string, context: CommandContext): Promise<Pipeline | undefined> {
  const { pipeline, problems } = await checkPipeline(file, context, { importModules: false, standIns: true });
  const compiled = pipeline && compilePipeline(pipeline, file, context, { validated: true });
  if (!compiled) return undefined;
  try {
    await compiled.close();
  } catch (err) {
    context.io.err.write(`${file}: ${context.errorText(err)}\n`);
    return undefined;
  }
  return problems === 0 ? pipeline : undefined;
}
