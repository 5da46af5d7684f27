// Preloaded with `node --import` by packageGraph.test.ts: records every module the process loads —
// ES modules as the module resolver resolves them (a `resolve` hook, which runs on the hooks thread
// and posts each URL here), CommonJS modules from the require cache — and gives the list to
// `globalThis[Symbol.for('tributary.loadedModules')]()`.
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MessageChannel } from 'node:worker_threads';

const hooks = `
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  port.postMessage(resolved.url);
  return resolved;
}`;
const { port1, port2 } = new MessageChannel();
const urls = new Set();
let sentinelSeen;
const SENTINEL = 'data:text/javascript,export default "tributary.loadedModules.sentinel"';
port1.on('message', (url) => {
  if (url === SENTINEL) sentinelSeen?.();
  else urls.add(url);
});
port1.unref();
register(`data:text/javascript,${encodeURIComponent(hooks)}`, { data: { port: port2 }, transferList: [port2] });

globalThis[Symbol.for('tributary.loadedModules')] = async () => {
  // The hooks thread posts in order: once the sentinel's URL is here, every earlier one is too.
  const seen = new Promise((resolve) => {
    sentinelSeen = resolve;
  });
  // Waiting for a message keeps the process alive only while the port is referenced.
  port1.ref();
  await import(SENTINEL);
  await seen;
  port1.unref();
  const cjs = Object.keys(createRequire(import.meta.url).cache).map((f) => pathToFileURL(f).href);
  return [...new Set([...urls, ...cjs])];
};
