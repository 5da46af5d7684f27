/**
 * @tributary/cli: the `tributary` command (bin `tributary`, see `main`). Importing it registers
 * the state stores and sinks for YAML pipelines. `@tributary/cli/synth` turns a pipeline into a
 * Lambda bundle and its CloudFormation template.
 */
export { EXIT } from './command.js';
export { UsageError } from './errors.js';
export { main } from './main.js';
export { type RunOverrides, withOverrides } from './overrides.js';
