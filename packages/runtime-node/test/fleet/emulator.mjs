// A child process serving one emulator on a free loopback port — `kinesalite` or `dynalite`
// (argv[2]) — so that the fleet tests can kill worker processes without touching it. It prints
// one JSON line `{ "endpoint": … }` on standard output once listening, and exits when its parent
// closes its standard input (or on SIGTERM).
import { startDynalite, startKinesalite } from '../../../../test-support/servers.mjs';

const kind = process.argv[2];
const start = { kinesalite: startKinesalite, dynalite: startDynalite }[kind];
if (start === undefined) {
  process.stderr.write(`emulator.mjs: expected kinesalite or dynalite, got ${kind}\n`);
  process.exit(64);
}
const server = await start();
process.stdout.write(`${JSON.stringify({ endpoint: server.endpoint })}\n`);
const stop = () => server.close().then(() => process.exit(0));
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
