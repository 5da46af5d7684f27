/**
 * What a command of the `tributary` line is: its name, synopsis, own flags and help, and the
 * function that runs it. `main` parses a command's flags (its own and the global ones), then
 * calls `run`; one file per command under `commands/`.
 */
import type { ParseArgsConfig } from 'node:util';
import type { PipelineFileOptions } from '@tributary/core';

/**
 * Exit statuses. `internal` (EX_SOFTWARE) is an error Tributary did not expect (a bug); a run
 * stopped by a signal exits 128 + the signal's number, as a shell reports a process it killed.
 */
export const EXIT = {
  ok: 0,
  invalid: 1,
  failed: 2,
  deadLettered: 3,
  usage: 64,
  internal: 70,
  sigint: 130,
  sigterm: 143,
} as const;

/** Where a command writes: its output and its messages (standard output and error in the bin). */
export interface Io {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

/** The flags of a command, as `node:util` `parseArgs` takes them. */
export type CommandOptions = NonNullable<ParseArgsConfig['options']>;

/** A command line as parsed for a command: its flags' values and its positional arguments. */
export interface CommandArgs {
  values: Readonly<Record<string, string | boolean | undefined>>;
  positionals: readonly string[];
}

/** What `main` gives a command besides its arguments. */
export interface CommandContext {
  io: Io;
  /** `--verbose` or `TRIBUTARY_DEBUG=1`: errors are printed with their stacks. */
  verbose: boolean;
  /** How pipeline files are loaded (`--allow-outside-project`). */
  modules: PipelineFileOptions;
  /** One line for an error, naming the file it concerns; with `verbose`, the stacks follow. */
  errorText(err: unknown): string;
  /** Prints `message` and the usage after it; returns the usage status. */
  usageError(message: string): number;
}

export interface Command {
  /** The word that selects it: `tributary <name>`. */
  name: string;
  /** Its synopsis after `tributary ` (continuation lines indented as printed). */
  usage: string;
  /** What it does, one line (its `--help`). */
  summary: string;
  /** Its own flags; `--verbose`, `--allow-outside-project` and `--help` are every command's. */
  options: CommandOptions;
  /** The help of its flags, one `  --flag <value>  what it does` line each, as printed. */
  optionsHelp?: string;
  /** Runs it; resolves to its exit status (see EXIT). */
  run(args: CommandArgs, context: CommandContext): Promise<number>;
}
