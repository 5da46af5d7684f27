import type { ComponentCategory } from './registry.js';

/**
 * The module registering each built-in component kind, as a path under the package's `dist/`
 * (`components.ts` imports them all). A bundler that wants only what a pipeline uses imports
 * `@tributary/core/runtime` and these modules for the kinds the pipeline names.
 */
export const COMPONENT_MODULES: Readonly<Record<ComponentCategory, Readonly<Record<string, string>>>> = {
  step: {
    filter: 'steps/filter.js',
    map: 'steps/map.js',
    flatMap: 'steps/flatMap.js',
    enrich: 'steps/enrich.js',
    keyBy: 'steps/keyBy.js',
    branch: 'steps/branch.js',
    sink: 'steps/sink.js',
    window: 'steps/window.js',
  },
  source: { file: 'sources/file.js' },
  sink: { file: 'sinks/file.js', stdout: 'sinks/stdout.js', stderr: 'sinks/stdout.js', ref: 'sinks/memory.js' },
  lookup: { static: 'lookups/static.js', ref: 'lookups/static.js' },
  store: { memory: 'stores/memory.js', ref: 'stores/memory.js' },
};
