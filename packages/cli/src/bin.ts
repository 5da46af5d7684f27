#!/usr/bin/env node
import { debugWanted, EXIT, errorText, main } from './main.js';

// A reader that stops early (`tributary schema | head`) closes the pipe: the rest of the output
// has nowhere to go, and that is not an error — the command ends quietly with its own status (0
// for the printing commands; a run whose records went to standard output fails, exit 2, as its
// sink could not deliver). Without a listener, Node would crash with an unhandled EPIPE.
let stdoutClosed = false;
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') {
      if (stream === process.stdout) stdoutClosed = true;
      return;
    }
    if (stream === process.stdout) process.stderr.write(`tributary: standard output: ${errorText(err)}\n`);
    process.exitCode = EXIT.failed;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code === EXIT.sigint || code === EXIT.sigterm) {
      // Interrupted: the outputs are closed; a read of standard input may still be pending.
      process.exit(code);
    }
    if (process.exitCode === undefined || process.exitCode === 0) process.exitCode = code;
  },
  (err) => {
    // Every expected failure is handled in `main`; this is a bug. One line, the stack on request.
    if (stdoutClosed && (err as { code?: string })?.code === 'EPIPE') return;
    process.stderr.write(
      `tributary: internal error: ${errorText(err, debugWanted(process.argv))}${debugWanted(process.argv) ? '' : ' (--verbose or TRIBUTARY_DEBUG=1 shows the stack)'}\n`,
    );
    process.exitCode = EXIT.internal;
  },
);
