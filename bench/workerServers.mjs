// An emulator in a child process of its own for the worker benchmark: `node workerServers.mjs
// kinesalite|dynalite` prints `{"endpoint": ...}` once listening and exits when its standard
// input closes (the benchmark ending, however it ends). Each emulator has its own process so that
// neither it nor the consumer measured shares an event loop with the other.
import { startDynalite, startKinesalite } from '../test-support/servers.mjs';

const which = process.argv[2];
const start = { kinesalite: startKinesalite, dynalite: startDynalite }[which];
if (!start) {
  console.error(`usage: workerServers.mjs kinesalite|dynalite (got ${which})`);
  process.exit(64);
}
const server = await start();
process.stdout.write(`${JSON.stringify({ endpoint: server.endpoint })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
