/**
 * The `tributary` command line: `tributary <command> [arguments] [flags]`, one file per command
 * under `commands/` (see COMMANDS); `tributary --help` lists them, `tributary <command> --help`
 * prints one's help.
 *
 *   tributary validate <pipeline.yaml>...       every problem, as file:line:column: message
 *   tributary run <pipeline.yaml> [options]     run on the file source
 *   tributary describe <pipeline.yaml>          print the compiled graph
 *   tributary schema                            print the pipeline JSON Schema
 *   tributary docs                              print the step/source/sink/lookup/store reference (Markdown)
 *   tributary state init <pipeline.yaml>        create the tables the window state needs
 *   tributary synth <pipeline.yaml> --runtime lambda [--out <dir>]
 *                                               bundle and CloudFormation template for Lambda
 *   tributary lambda-local <pipeline.yaml> [--stream <name>] [--from ...] [--follow]
 *                                               run the Lambda handler on its Kinesis stream locally
 *   tributary worker <pipeline.yaml> [--app <name>] [--worker-id <id>] [--metrics-port <port>]
 *                                               run it as a long-running worker on its stream's shards
 *
 * Global flags (`--verbose`, `--allow-outside-project`, `--env-file <file>`) go before or after the command;
 * `tributary --version` prints the version. A usage error prints the usage of its command.
 * Errors are one line each, naming the file; `--verbose` (or `TRIBUTARY_DEBUG=1`) adds stacks.
 * SIGINT/SIGTERM during `run` or `lambda-local` stop after the batch in progress: the outputs are
 * closed (every line complete), the summary says "interrupted", and the exit status is 130/143.
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { describeError } from '@tributary/core/spi';
// Registers the state stores (dynamodb, redis) and the sinks (dynamodb, kinesis, redis, s3, sqs, http) for YAML pipelines.
import '@tributary/sinks';
import '@tributary/state';
import { type Command, type CommandArgs, type CommandContext, type CommandOptions, EXIT, type Io } from './command.js';
import { describe } from './commands/describe.js';
import { docs } from './commands/docs.js';
import { lambdaLocal } from './commands/lambdaLocal.js';
import { run } from './commands/run.js';
import { schema } from './commands/schema.js';
import { stateInit } from './commands/stateInit.js';
import { synth } from './commands/synth.js';
import { validate } from './commands/validate.js';
import { worker } from './commands/worker.js';
import { readEnvFiles } from './pipeline.js';

export { EXIT };

/** The commands, in the order the usage lists them. */
const COMMANDS: readonly Command[] = [validate, run, describe, schema, docs, stateInit, synth, lambdaLocal, worker];

/** The flags every command takes. */
const GLOBAL_OPTIONS = {
  verbose: { type: 'boolean' },
  'allow-outside-project': { type: 'boolean' },
  'env-file': { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const satisfies CommandOptions;

/** The global flags that may come before the command's name (those that take no value). */
const GLOBAL_FLAGS_BEFORE = new Set(['--verbose', '--allow-outside-project']);
/** The global flags with a value that may come before the command's name (`--env-file f` or `--env-file=f`). */
const GLOBAL_VALUE_FLAGS_BEFORE = new Set(['--env-file']);

/** How many arguments of `argv` from `at` are one global flag that may come before the command (0: none). */
function globalFlagBefore(argv: readonly string[], at: number): number {
  const arg = argv[at] as string;
  if (GLOBAL_FLAGS_BEFORE.has(arg)) return 1;
  if (GLOBAL_VALUE_FLAGS_BEFORE.has(arg)) return at + 1 < argv.length ? 2 : 0;
  const eq = arg.indexOf('=');
  return eq > 0 && GLOBAL_VALUE_FLAGS_BEFORE.has(arg.slice(0, eq)) ? 1 : 0;
}

const GLOBAL_HELP = `every command (before or after its name):
  --verbose             print the stack of an error (also: TRIBUTARY_DEBUG=1)
  --allow-outside-project
                        accept fn: modules outside the pipeline's project folder (the nearest
                        folder with a package.json at or above the pipeline file)
  --env-file <file>     variables (NAME=value lines, dotenv format) for the pipeline's \${NAME}
                        references and the AWS SDK (AWS_REGION, AWS_ENDPOINT_URL_<SERVICE>, ...),
                        over the environment's; repeatable, a later file wins`;

const EXIT_HELP = `Exit status: 0 ok, 1 invalid pipeline, 2 the run failed, 3 dead letters with --fail-on-dead-letter,
64 usage, 70 internal error (a bug), 130/143 interrupted by SIGINT/SIGTERM.`;

/** `tributary --help`: every command's synopsis, the options of the main one (run), the global flags. */
const USAGE = `Usage:
${COMMANDS.map((c) => `  tributary ${c.usage}`).join('\n')}
  tributary --version

${run.name} options:
${run.optionsHelp}

${GLOBAL_HELP}

${EXIT_HELP}`;

/** The version of this package (`tributary --version`). */
function version(): string {
  // This module is in src/ or dist/, one folder below the package's manifest.
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

/** What a usage error of `command` prints after its message: its synopsis and where its help is. */
function commandUsage(command: Command): string {
  return `Usage:\n  tributary ${command.usage}\n\nRun \`tributary ${command.name} --help\` for its options.`;
}

/** `tributary <command> --help`. */
function commandHelp(command: Command): string {
  const options = command.optionsHelp === undefined ? '' : `options:\n${command.optionsHelp}\n\n`;
  return `Usage:\n  tributary ${command.usage}\n\n${command.summary}\n\n${options}${GLOBAL_HELP}\n\n${EXIT_HELP}`;
}

/** Whether stacks are printed: `--verbose` or `TRIBUTARY_DEBUG=1`. */
export function debugWanted(argv: readonly string[] = []): boolean {
  const env = process.env.TRIBUTARY_DEBUG;
  return argv.includes('--verbose') || (env !== undefined && env !== '' && env !== '0' && env !== 'false');
}

/**
 * One line for an error, naming the file when the error knows it and its message does not (Node's
 * `EISDIR: illegal operation on a directory, read`). With `verbose`, the stacks follow (causes too).
 */
export function errorText(err: unknown, verbose = false): string {
  let line: string;
  try {
    line = describeError(err);
    const path = (err as { path?: unknown } | null)?.path;
    if (typeof path === 'string' && !line.includes(path)) line += ` (${path})`;
  } catch {
    line = Object.prototype.toString.call(err);
  }
  if (!verbose) return line;
  const stacks: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    stacks.push(`${depth === 0 ? '' : 'caused by: '}${e.stack ?? `${e.name}: ${e.message}`}`);
  }
  return stacks.length > 0 ? `${line}\n${stacks.join('\n')}` : line;
}

export async function main(argv: string[], io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  // Global flags may come before the command's name: they are parsed with its own flags.
  let at = 0;
  while (at < argv.length) {
    const n = globalFlagBefore(argv, at);
    if (n === 0) break;
    at += n;
  }
  const [name, ...after] = argv.slice(at);
  const rest = [...argv.slice(0, at), ...after];
  if (name === '--version' || name === '-V') {
    io.out.write(`${version()}\n`);
    return EXIT.ok;
  }
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    (name === undefined ? io.err : io.out).write(`${USAGE}\n`);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    io.err.write(`unknown command \`${name}\`\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  let args: CommandArgs;
  let envFiles: string[] = [];
  try {
    const parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { ...command.options, ...GLOBAL_OPTIONS },
    });
    // `--env-file` is the one flag declared `multiple` (its files are read here): every other value
    // is a string or a boolean.
    const { 'env-file': files, ...values } = parsed.values;
    envFiles = (files as string[] | undefined) ?? [];
    args = { values: values as CommandArgs['values'], positionals: parsed.positionals };
  } catch (err) {
    io.err.write(`${describeError(err)}\n\n${commandUsage(command)}\n`);
    return EXIT.usage;
  }
  if (args.values.help === true) {
    io.out.write(`${commandHelp(command)}\n`);
    return EXIT.ok;
  }
  const verbose = args.values.verbose === true || debugWanted();
  // The env files' variables join the environment (a later file wins over an earlier one and over
  // the environment), for the pipeline's `${NAME}` references and for the AWS SDK, which reads them there.
  const env = await readEnvFiles(envFiles);
  if (typeof env === 'string') {
    io.err.write(`${env}\n\n${commandUsage(command)}\n`);
    return EXIT.usage;
  }
  Object.assign(process.env, env);
  const context: CommandContext = {
    io,
    verbose,
    modules: { allowOutsideProject: args.values['allow-outside-project'] === true, env: process.env },
    errorText: (err) => errorText(err, verbose),
    usageError: (message) => {
      io.err.write(`${message}\n\n${commandUsage(command)}\n`);
      return EXIT.usage;
    },
  };
  return command.run(args, context);
}
