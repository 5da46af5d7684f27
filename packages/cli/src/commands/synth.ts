/** `tributary synth <pipeline.yaml> --runtime lambda`: a bundle and CloudFormation template for Lambda. */
import { resolve } from 'node:path';
import { formatIssue } from '@tributary/core';
import { type Command, EXIT } from '../command.js';
import { loadPipeline, reportFailure } from '../pipeline.js';
import { localSettings } from '../synth/localCheck.js';

export const synth: Command = {
  name: 'synth',
  usage: 'synth <pipeline.yaml> --runtime lambda [--out <dir>] [--bundle-sdk] [--zip] [--allow-local]',
  summary: 'bundle a pipeline as a Lambda function and write its CloudFormation template',
  options: {
    'allow-local': { type: 'boolean' },
    runtime: { type: 'string' },
    out: { type: 'string' },
    'bundle-sdk': { type: 'boolean' },
    zip: { type: 'boolean' },
  },
  optionsHelp: `  --runtime lambda      the runtime to deploy to (lambda is the one there is)
  --allow-local         go on, with a warning each, where the pipeline has local settings (a
                        loopback endpoint or URL, a file sink, dead-letter or late output), which
                        synth otherwise refuses
  --out <dir>           where the bundle (index.mjs), the files it reads and template.json go
                        (default: dist-lambda)
  --bundle-sdk          bundle the AWS SDK too (default: the Lambda runtime's own SDK v3)
  --zip                 also write function.zip, which template.json then names as the function's
                        code (for \`aws cloudformation package\`; without it: parameters CodeBucket,
                        CodeKey)`,
  async run({ values, positionals }, context) {
    const file = positionals[0];
    if (file === undefined || positionals.length > 1 || values.runtime !== 'lambda')
      return context.usageError('synth needs a pipeline file and --runtime lambda');
    const loaded = await loadPipeline(file, context);
    if (!loaded) return EXIT.invalid;
    // Settings that only work on this machine: refused before anything is written (warned of with --allow-local).
    const local = localSettings(loaded);
    const allowLocal = values['allow-local'] === true;
    for (const issue of local) context.io.err.write(`${allowLocal ? 'warning: ' : ''}${formatIssue(issue)}\n`);
    if (local.length > 0 && !allowLocal) {
      context.io.err.write(
        `${file}: not synthesised: ${local.length} local setting${local.length === 1 ? '' : 's'} (give --allow-local to synthesise anyway)\n`,
      );
      return EXIT.invalid;
    }
    try {
      // esbuild is loaded only here, by the command that bundles.
      const { synth } = await import('../synth/index.js');
      const r = await synth(loaded, {
        outDir: resolve(process.cwd(), (values.out as string | undefined) ?? 'dist-lambda'),
        bundleSdk: values['bundle-sdk'] === true,
        zip: values.zip === true,
      });
      context.io.out.write(
        `${r.bundle} (${r.bundleBytes} bytes, ${r.bundleGzipBytes} gzipped)\n${r.files.map((f) => `${f}\n`).join('')}${r.template}\n${r.zip ? `${r.zip}\n` : ''}`,
      );
      return EXIT.ok;
    } catch (err) {
      reportFailure(file, 'synth', err, context);
      return EXIT.failed;
    }
  },
};
