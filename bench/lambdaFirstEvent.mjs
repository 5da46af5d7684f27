// One cold start, in this fresh process: `node bench/lambdaFirstEvent.mjs <variant> <records>`
// builds the event, then loads the handler (import and set-up) and times its first invocation.
// Prints `{ loadMs, firstMs }` as JSON. Variants: tributary; hand, the loop as it is deployed (it
// imports the Kinesis client it writes its windows with and creates it at load, as the
// hand-written handler of the bundle comparison does, so both processes have loaded an AWS SDK
// client before their first event); hand-bare, the loop alone (nothing imported).
import { handLoopHandler, makeEvent, tributaryHandler } from './lambdaWork.mjs';

const [variant, n] = process.argv.slice(2);
const event = makeEvent(Number(n));
const t0 = performance.now();
let handler;
if (variant === 'tributary') ({ handler } = await tributaryHandler());
else {
  if (variant === 'hand') {
    const { KinesisClient } = await import('@aws-sdk/client-kinesis');
    globalThis.kinesis = new KinesisClient({});
  }
  ({ handler } = handLoopHandler());
}
const t1 = performance.now();
const res = await handler(event);
const t2 = performance.now();
if (res.batchItemFailures.length > 0) throw new Error(`${variant}: the first event failed`);
console.log(JSON.stringify({ loadMs: t1 - t0, firstMs: t2 - t1 }));
