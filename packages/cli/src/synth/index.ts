/** `@tributary/cli/synth`: a pipeline as a Lambda bundle and its CloudFormation template. */
export { type SynthOptions, type SynthResult, synth } from './synth.js';
export { type TemplateOptions, template } from './template.js';
