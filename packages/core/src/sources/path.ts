/** Where a file source reads (no registration here: the compiler imports it). */
import { isAbsolute, resolve } from 'node:path';

/** The file a file source reads: its path resolved against `baseDir`, or `-` (standard input). */
export function fileSourcePath(spec: { path: string }, baseDir: string): string {
  return spec.path === '-' ? '-' : isAbsolute(spec.path) ? spec.path : resolve(baseDir, spec.path);
}
