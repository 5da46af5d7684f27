export { EXIT, main } from './cli.js';
export { type RunOverrides, withOverrides } from './overrides.js';
export { referenceMarkdown } from './reference.js';
