/** Registers the built-in components (each file registers itself when loaded). */
import './steps/filter.js';
import './steps/map.js';
import './steps/flatMap.js';
import './steps/enrich.js';
import './steps/keyBy.js';
import './steps/branch.js';
import './steps/sink.js';
import './sources/file.js';
import './sources/stream.js';
import './sinks/file.js';
import './sinks/stdout.js';
import './sinks/memory.js';
import './lookups/static.js';
import './stores/memory.js';
import './steps/window.js';
import './windows/sharedOperators.js';
