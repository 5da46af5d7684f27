/**
 * The modules that `fn: "./file.js#export"` references name, checked without running them.
 *
 * - **Project folder.** A pipeline's project folder is the nearest folder at or above the
 *   pipeline file that holds a `package.json` (else the pipeline file's own folder). A module
 *   whose real path (symbolic links resolved) lies outside it is refused, for validation and for
 *   runs alike, unless `allowOutsideProject` is set.
 * - **Exports without execution.** Validation reads the module's text and lexes it
 *   (es-module-lexer for ES modules, including TypeScript's erasable syntax — `export type` and
 *   `interface` are not values; cjs-module-lexer for CommonJS, which finds the same named exports
 *   Node's `import()` of CommonJS offers). `export * from './x.js'` is followed; a star re-export
 *   from a package cannot be known without running code, so any name is then accepted. Whether an
 *   export is a function is only known once it is imported, when the pipeline is loaded to run.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { init as initCjs, parse as parseCjs } from 'cjs-module-lexer';
import { init as initEsm, parse as parseEsm } from 'es-module-lexer';
import { describeError, PipelineFileError } from '../errors.js';

/** Options for the modules named by `fn:` references. */
export interface FunctionModuleOptions {
  /**
   * Import the modules to bind their functions (needed to run the pipeline). When false, each
   * module is only read and lexed — no user code runs — and the returned pipeline has no function
   * bindings: use it to validate, not to run. Default true.
   */
  importModules?: boolean;
  /**
   * With `importModules: false`: bind each function to a stand-in instead (one that throws if it
   * is ever called), so that the pipeline can be compiled — its components' option checks run —
   * still without running user code. A reference whose module or export is missing is reported
   * and stands in too, so that the other problems are found in the same run. What `validate`
   * wants. Default false.
   */
  standIns?: boolean;
  /** Accept modules outside the pipeline's project folder (see {@link projectFolder}). Default false. */
  allowOutsideProject?: boolean;
  /**
   * Whether this process can import TypeScript modules (`.ts`, `.mts`, `.cts`); when not, such a
   * module is refused at validation. Default: {@link canImportTypeScript}.
   */
  typeScript?: boolean;
}

const TYPESCRIPT = /\.[cm]?ts$/;

/** True when `file` is TypeScript by its name. */
export function isTypeScriptFile(file: string): boolean {
  return TYPESCRIPT.test(file);
}

/**
 * Whether the running Node can import TypeScript: it strips types itself
 * (`process.features.typescript`; Node 22.6 to 23.5 with `--experimental-strip-types`), or a
 * loader is registered on its command line (`--import tsx`, `--loader`, `--require`), which may
 * compile it. A loader registered from code (`module.register`) is not seen.
 */
export function canImportTypeScript(): boolean {
  const feature = (process.features as { typescript?: unknown }).typescript;
  if (feature !== undefined) return feature !== false;
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const flag = (f: string) => flags.some((x) => x === f || x.startsWith(`${f}=`));
  if (flag('--experimental-strip-types') || flag('--experimental-transform-types')) return true;
  return ['--import', '--loader', '--experimental-loader', '--require', '-r'].some(flag);
}

/** What to say about a TypeScript module this Node cannot import. */
export function typeScriptProblem(modulePath: string): string {
  return `module \`${modulePath}\` is TypeScript, which this Node (${process.version}) cannot import: run on Node 22.6 or later (before 23.6 with --experimental-strip-types), register a loader (node --import tsx), or compile it to JavaScript and name the .js file`;
}

/** Largest module read for its exports. */
export const MAX_MODULE_BYTES = 10 * 1024 * 1024;
const MAX_REEXPORT_DEPTH = 32;

async function exists(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** The nearest folder at or above `dir` with a `package.json`, else `dir` (real paths). */
export async function projectFolder(dir: string): Promise<string> {
  let start: string;
  try {
    start = await realpath(resolve(dir));
  } catch {
    start = resolve(dir);
  }
  for (let d = start; ; d = dirname(d)) {
    if (await exists(join(d, 'package.json'))) return d;
    if (dirname(d) === d) return start;
  }
}

function inside(folder: string, file: string): boolean {
  const rel = relative(folder, file);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** Where a module path leads, or why it may not be used. */
export type ModuleLocation = { file: string } | { problem: string };

/** Resolves `modulePath` against `baseDir`, checks the file exists and lies in `project` (unless allowed). */
export async function locateModule(
  modulePath: string,
  baseDir: string,
  project: string,
  options: FunctionModuleOptions = {},
): Promise<ModuleLocation> {
  const target = resolve(baseDir, modulePath);
  let file: string;
  try {
    file = await realpath(target);
    if (!(await stat(file)).isFile())
      return { problem: `cannot load module \`${modulePath}\`: ${target} is not a file` };
  } catch {
    return { problem: `cannot load module \`${modulePath}\`: Cannot find module ${target}` };
  }
  if (!options.allowOutsideProject && !inside(project, file)) {
    return {
      problem: `module \`${modulePath}\` lies outside the pipeline's project folder ${project} (the nearest folder with a package.json); move it inside, or allow it with --allow-outside-project (the option allowOutsideProject)`,
    };
  }
  if (options.importModules === false && isTypeScriptFile(file) && !(options.typeScript ?? canImportTypeScript())) {
    return { problem: typeScriptProblem(modulePath) };
  }
  return { file };
}

/** The names a module exports; `open` when a star re-export from a package may add any name. */
export interface ModuleExports {
  names: Set<string>;
  open: boolean;
}

let lexersReady: Promise<unknown> | undefined;

/** Reads and lexes `file` (never imports it); follows relative re-exports. Throws when it cannot. */
export async function moduleExports(file: string): Promise<ModuleExports> {
  lexersReady ??= Promise.all([initEsm(), initCjs()]);
  await lexersReady;
  const out: ModuleExports = { names: new Set(), open: false };
  await collect(file, out, new Set(), 0, true);
  return out;
}

async function collect(file: string, out: ModuleExports, seen: Set<string>, depth: number, top: boolean) {
  if (seen.has(file) || depth > MAX_REEXPORT_DEPTH) return;
  seen.add(file);
  const size = (await stat(file)).size;
  if (size > MAX_MODULE_BYTES) throw new PipelineFileError(`module is larger than ${MAX_MODULE_BYTES} bytes`);
  const source = await readFile(file, 'utf8');
  const ext = extname(file);
  let esm: ReturnType<typeof parseEsm> | undefined;
  if (ext !== '.cjs' && ext !== '.cts') {
    try {
      esm = parseEsm(source, file);
    } catch (err) {
      if (ext === '.mjs' || ext === '.mts') throw lexError(err);
      esm = undefined; // maybe CommonJS; cjs-module-lexer decides
    }
  }
  if (esm && (esm[3] || ext === '.mjs' || ext === '.mts')) {
    for (const e of esm[1]) {
      if (e.typeOnly) continue;
      if (e.type === 'reexport-all') {
        // `export *` does not re-export `default`.
        const sub: ModuleExports = { names: new Set(), open: false };
        await follow(e.from, file, sub, seen, depth, ['']);
        for (const n of sub.names) if (n !== 'default') out.names.add(n);
        out.open ||= sub.open;
      } else out.names.add(e.name);
    }
    return;
  }
  let cjs: ReturnType<typeof parseCjs>;
  try {
    cjs = parseCjs(source, file);
  } catch (err) {
    throw lexError(err);
  }
  // import() of CommonJS: `default` is module.exports, named exports are what the lexer finds.
  if (top) out.names.add('default');
  for (const n of cjs.exports) out.names.add(n);
  for (const r of cjs.reexports) await follow(r, file, out, seen, depth, ['', '.js', '.cjs', '/index.js']);
}

async function follow(
  specifier: string,
  from: string,
  out: ModuleExports,
  seen: Set<string>,
  depth: number,
  suffixes: string[],
) {
  if (!specifier.startsWith('./') && !specifier.startsWith('../') && !specifier.startsWith('/')) {
    out.open = true; // a package: its exports are known only by resolving and running it
    return;
  }
  const base = resolve(dirname(from), specifier);
  const candidates = suffixes.map((s) => base + s);
  // TypeScript sources name the emitted file: `./other.js` is `./other.ts` before compilation.
  const twin = /\.([cm]?)js$/.exec(base);
  if (twin) candidates.push(`${base.slice(0, -twin[0].length)}.${twin[1]}ts`);
  for (const c of candidates) {
    if (await exists(c)) {
      const sub: ModuleExports = { names: new Set(), open: false };
      await collect(await realpath(c), sub, seen, depth + 1, false);
      for (const n of sub.names) out.names.add(n);
      out.open ||= sub.open;
      return;
    }
  }
  out.open = true; // unresolvable here (e.g. a TypeScript `.js` specifier for a `.ts` file)
}

function lexError(err: unknown): PipelineFileError {
  return new PipelineFileError(`cannot read its exports: ${describeError(err)}`, { cause: err });
}
