/** The `tributary` command line run in process: its exit status and what it wrote. */
import { Writable } from 'node:stream';
import { main } from '../../src/main.js';

export async function runMain(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk, _enc, cb) {
        append(String(chunk));
        cb();
      },
    });
  const code = await main(args, {
    out: sink((s) => {
      out += s;
    }),
    err: sink((s) => {
      err += s;
    }),
  });
  return { code, out, err };
}
