// One cold start, in this fresh process: `node bench/lambdaFirstEvent.mjs <variant> <records>`
// builds the event, then loads the handler (import and set-up) and times its first invocation.
// Prints `{ loadMs, firstMs }` as JSON. Variants: tributary, hand.
import { handLoopHandler, makeEvent, tributaryHandler } from './lambdaWork.mjs';

const [variant, n] = process.argv.slice(2);
const event = makeEvent(Number(n));
const t0 = performance.now();
const { handler } = variant === 'tributary' ? await tributaryHandler() : handLoopHandler();
const t1 = performance.now();
const res = await handler(event);
const t2 = performance.now();
if (res.batchItemFailures.length > 0) throw new Error(`${variant}: the first event failed`);
console.log(JSON.stringify({ loadMs: t1 - t0, firstMs: t2 - t1 }));
