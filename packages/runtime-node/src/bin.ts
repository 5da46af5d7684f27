#!/usr/bin/env node
import { describeError } from '@tributary/core';
import { EXIT, main } from './cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`tributary: ${describeError(err)}\n`);
    process.exitCode = EXIT.failed;
  },
);
