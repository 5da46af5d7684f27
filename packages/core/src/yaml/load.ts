/**
 * Loads pipeline definitions from YAML, safely: input size capped, aliases bounded, no custom
 * tags, prototype keys refused, duplicate keys refused. Every problem is reported with file,
 * line and column, all at once.
 */
import { constants, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type CST,
  type Document,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  Parser,
  parseDocument,
  visit,
} from 'yaml';
import type { Pipeline } from '../compile/compile.js';
import {
  describeError,
  InternalError,
  PipelineFileError,
  PipelineValidationError,
  type ValidationIssue,
} from '../errors.js';
import type { PipelineSpec } from '../spec.js';
import { escapePointer, parsePointer, validateSpec } from '../validate.js';
import {
  type FunctionModuleOptions,
  isTypeScriptFile,
  locateModule,
  type ModuleExports,
  type ModuleLocation,
  moduleExports,
  projectFolder,
  typeScriptProblem,
} from './modules.js';
import { type Environment, substituteDocument, UNQUOTED_IN_FLOW, unquotedInFlow } from './substitute.js';

export const MAX_PIPELINE_BYTES = 1024 * 1024;
export const MAX_ALIASES = 100;
/** Deepest nesting of maps and lists accepted (the YAML library recurses once per level). */
export const MAX_NESTING = 64;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** An issue with the extra hints the locator uses. */
type LocatedIssue = ValidationIssue & { key?: boolean; offset?: number };

export interface ParsedPipeline {
  spec: PipelineSpec | undefined;
  issues: ValidationIssue[];
  /** Line and column of a JSON pointer into the spec (set with `spec`): where compile errors are reported. */
  locate?: (path: string) => { line: number; column: number };
}

/** Options of {@link parsePipelineYaml}. */
export interface PipelineYamlOptions {
  /**
   * Where `${NAME}` and `${NAME:-default}` in values are looked up (see `substitute.ts`);
   * default `process.env`.
   */
  env?: Environment;
}

/**
 * Parses and validates YAML text, after substituting `${NAME}` references in its values from
 * `options.env`. `spec` is set only when there are no issues.
 */
export function parsePipelineYaml(
  text: string,
  file = '<pipeline>',
  options: PipelineYamlOptions = {},
): ParsedPipeline {
  if (text.length > MAX_PIPELINE_BYTES) {
    return {
      spec: undefined,
      issues: [
        { file, line: 1, column: 1, path: '', message: `pipeline file is larger than ${MAX_PIPELINE_BYTES} bytes` },
      ],
    };
  }
  const lineCounter = new LineCounter();
  const deep = tooDeep(text);
  if (deep !== undefined) {
    lineCounter.addNewLine(0);
    for (let i = text.indexOf('\n'); i !== -1 && i < deep; i = text.indexOf('\n', i + 1)) lineCounter.addNewLine(i + 1);
    const pos = lineCounter.linePos(deep);
    const message = `nested more than ${MAX_NESTING} levels deep (maps and lists inside each other)`;
    return { spec: undefined, issues: [{ file, line: pos.line, column: pos.col, path: '', message }] };
  }
  const doc = parseDocument(text, {
    lineCounter,
    uniqueKeys: true,
    schema: 'core',
    merge: false,
    prettyErrors: false,
    strict: true,
  });
  const issues: ValidationIssue[] = [];
  // A `${NAME}` unquoted in a flow collection breaks the syntax from there on: that is said, once
  // per reference, instead of the errors that follow from it.
  const inFlow = unquotedInFlow(
    text,
    doc.errors.map((e) => e.pos[0]),
  ).map((o) => lineCounter.linePos(o));
  for (const pos of inFlow) issues.push({ file, line: pos.line, column: pos.col, path: '', message: UNQUOTED_IN_FLOW });
  for (const e of [...doc.errors, ...doc.warnings]) {
    const pos = e.linePos?.[0] ?? lineCounter.linePos(e.pos[0]);
    if (inFlow.length > 0 && pos.line >= (inFlow[0] as { line: number }).line) continue;
    const message =
      e.code === 'TAG_RESOLVE_FAILED' ? `tags are not allowed: ${firstLine(e.message)}` : firstLine(e.message);
    issues.push({ file, line: pos.line, column: pos.col, path: '', message });
  }
  visit(doc, {
    Pair(_key, pair) {
      if (isScalar(pair.key) && FORBIDDEN_KEYS.has(String(pair.key.value))) {
        issues.push({
          file,
          ...at(pair.key, lineCounter),
          path: '',
          message: `key \`${String(pair.key.value)}\` is not allowed`,
        });
      }
    },
    Node(_key, node) {
      if ((isScalar(node) || isMap(node) || isSeq(node)) && node.tag && !node.tag.startsWith('tag:yaml.org,2002:')) {
        issues.push({ file, ...at(node, lineCounter), path: '', message: `tags are not allowed (${node.tag})` });
      }
    },
  });
  if (issues.length > 0) return { spec: undefined, issues: dedupe(issues) };
  const { issues: unset, substituted } = substituteDocument(doc, text, lineCounter, file, options.env ?? process.env);
  if (unset.length > 0) return { spec: undefined, issues: unset };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    return { spec: undefined, issues: [{ file, line: 1, column: 1, path: '', message: describeError(err) }] };
  }
  const found = validateSpec(value) as LocatedIssue[];
  if (found.length > 0)
    return { spec: undefined, issues: found.map((i) => locate(i, doc, lineCounter, file, substituted)) };
  const position = (path: string) => {
    const { line = 1, column = 1 } = locate({ path, message: '' }, doc, lineCounter, file, substituted);
    return { line, column };
  };
  return { spec: value as PipelineSpec, issues: [], locate: position };
}

/**
 * The offset of the first map or list nested more than {@link MAX_NESTING} levels deep, found on
 * the syntax tree (built without recursion) before the document is composed (which recurses and
 * would overflow the stack).
 */
function tooDeep(text: string): number | undefined {
  const stack: [CST.Token | undefined, number][] = [];
  for (const token of new Parser().parse(text)) stack.push([token, 0]);
  while (stack.length > 0) {
    const [token, depth] = stack.pop() as [CST.Token | undefined, number];
    if (token === undefined) continue;
    switch (token.type) {
      case 'document':
        stack.push([token.value, depth]);
        break;
      case 'block-map':
      case 'block-seq':
      case 'flow-collection':
        if (depth + 1 > MAX_NESTING) return token.offset;
        for (const item of token.items) {
          const entry = item as { key?: CST.Token | null; value?: CST.Token };
          if (entry.key) stack.push([entry.key, depth + 1]);
          stack.push([entry.value, depth + 1]);
        }
        break;
      default:
        break;
    }
  }
  return undefined;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

function dedupe(issues: ValidationIssue[]): ValidationIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.line}:${i.column}:${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function at(node: Node, lc: LineCounter): { line: number; column: number } {
  const pos = lc.linePos(node.range?.[0] ?? 0);
  return { line: pos.line, column: pos.col };
}

/**
 * Finds the YAML node behind a JSON pointer and sets the issue's line and column. An offset into
 * a scalar whose `${...}` were substituted (`substituted`) is not applied: it counts in the
 * substituted text, not the source.
 */
function locate(
  issue: LocatedIssue,
  doc: Document,
  lc: LineCounter,
  file: string,
  substituted?: WeakSet<Node>,
): ValidationIssue {
  const segs = parsePointer(issue.path);
  let node: unknown = doc.contents;
  let target: Node | undefined = doc.contents ?? undefined;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i] as string;
    const last = i === segs.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === seg);
      if (!pair) break;
      if (last && issue.key) {
        target = pair.key as Node;
        break;
      }
      node = pair.value;
      target = (pair.value as Node | null) ?? (pair.key as Node);
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)];
      if (item === undefined) break;
      node = item;
      target = item as Node;
    } else break;
  }
  const out: ValidationIssue = { file, line: 1, column: 1, path: issue.path, message: issue.message };
  if (target?.range) {
    const pos = lc.linePos(target.range[0]);
    out.line = pos.line;
    out.column = pos.col;
    if (issue.offset !== undefined && isScalar(target) && !substituted?.has(target)) {
      const raw = lc.linePos(target.range[1]);
      if (
        raw.line === pos.line &&
        (target.type === 'PLAIN' || target.type === 'QUOTE_DOUBLE' || target.type === 'QUOTE_SINGLE')
      ) {
        out.column = pos.col + issue.offset + (target.type === 'PLAIN' ? 0 : 1);
      }
    }
  }
  return out;
}

/** Every `{ fn: "module#export" }` in a spec, with its JSON pointer. */
export function functionRefs(value: unknown, path = ''): { ref: string; path: string }[] {
  if (value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => functionRefs(v, `${path}/${i}`));
  const o = value as Record<string, unknown>;
  if (typeof o.fn === 'string' && Object.keys(o).length === 1) return [{ ref: o.fn, path: `${path}/fn` }];
  return Object.entries(o).flatMap(([k, v]) => functionRefs(v, `${path}/${escapePointer(k)}`));
}

/**
 * Checks the modules named by function references and, unless `importModules` is false, imports
 * them to bind the functions. Modules outside the pipeline's project folder are refused unless
 * `allowOutsideProject` (see `modules.ts`). Returns the bindings and any problems.
 */
export async function resolveFunctions(
  spec: unknown,
  baseDir: string,
  options: FunctionModuleOptions = {},
): Promise<{ bindings: Map<string, unknown>; issues: ValidationIssue[] }> {
  const bindings = new Map<string, unknown>();
  const issues: ValidationIssue[] = [];
  const refs = functionRefs(spec);
  if (refs.length === 0) return { bindings, issues };
  const project = await projectFolder(baseDir);
  const located = new Map<string, Promise<ModuleLocation>>();
  const modules = new Map<string, Promise<Record<string, unknown>>>();
  const lexed = new Map<string, Promise<ModuleExports>>();
  for (const { ref, path } of refs) {
    const hash = ref.lastIndexOf('#');
    const modulePath = ref.slice(0, hash);
    const exportName = ref.slice(hash + 1);
    if (modulePath === '') {
      issues.push({ path, message: `function \`${ref}\` names no module; use ./file.js#${exportName}` });
      continue;
    }
    let where = located.get(modulePath);
    if (!where) {
      where = locateModule(modulePath, baseDir, project, options);
      located.set(modulePath, where);
    }
    const location = await where;
    if ('problem' in location) {
      issues.push({ path, message: location.problem });
      continue;
    }
    if (options.importModules === false) {
      let exports = lexed.get(location.file);
      if (!exports) {
        exports = moduleExports(location.file);
        lexed.set(location.file, exports);
      }
      try {
        const { names, open } = await exports;
        if (!names.has(exportName) && !open) {
          issues.push({
            path,
            message: `module \`${modulePath}\` has no export \`${exportName}\`${exportList(names)}`,
          });
        } else if (options.standIns) bindings.set(ref, standIn(ref));
      } catch (err) {
        issues.push({ path, message: `cannot check module \`${modulePath}\`: ${describeError(err)}` });
      }
      continue;
    }
    const url = pathToFileURL(location.file).href;
    let mod = modules.get(url);
    if (!mod) {
      mod = import(url) as Promise<Record<string, unknown>>;
      modules.set(url, mod);
    }
    try {
      const f = (await mod)[exportName];
      if (typeof f !== 'function')
        issues.push({ path, message: `module \`${modulePath}\` has no exported function \`${exportName}\`` });
      else bindings.set(ref, f);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && isTypeScriptFile(location.file))
        issues.push({ path, message: typeScriptProblem(modulePath) });
      else issues.push({ path, message: `cannot load module \`${modulePath}\`: ${describeError(err)}` });
    }
  }
  // A reference with a problem stands in too, so that the pipeline still compiles for its others.
  if (options.importModules === false && options.standIns)
    for (const { ref } of refs) if (!bindings.has(ref)) bindings.set(ref, standIn(ref));
  return { bindings, issues };
}

/**
 * What a function reference is bound to when its module is not imported (see `standIns`): a
 * function, with the methods of an aggregator, that throws whenever it is called.
 */
function standIn(ref: string): unknown {
  const never = (): never => {
    throw new InternalError(`\`${ref}\` stands in for a function that was not imported (validation runs no user code)`);
  };
  return Object.assign(() => never(), { init: never, add: never, merge: never, result: never });
}

function exportList(names: Set<string>): string {
  if (names.size === 0) return ' (it exports nothing)';
  const shown = [...names].slice(0, 10).map((n) => `\`${n}\``);
  return ` (it exports ${shown.join(', ')}${names.size > 10 ? ', …' : ''})`;
}

/** Options of {@link checkPipelineFile} and {@link loadPipelineFile}. */
export type PipelineFileOptions = FunctionModuleOptions & PipelineYamlOptions;

/**
 * Every problem with a pipeline file (syntax, schema, expressions, functions), located. With
 * `importModules: false` (what `validate` wants) no user code runs: `fn:` modules are only read
 * and lexed, and the pipeline returned has no function bindings (or, with `standIns`, stand-ins
 * that are never to be called). The pipeline is undefined when there are issues — except with
 * `standIns`, where the only issues are of function references: then every reference with a
 * problem is bound to a stand-in as well, and the pipeline is returned beside its issues, so that
 * compiling it reports the problems of its components in the same run.
 */
export async function checkPipelineFile(
  path: string,
  options: PipelineFileOptions = {},
): Promise<{ pipeline: Pipeline | undefined; issues: ValidationIssue[] }> {
  const file = path;
  let text: string;
  try {
    const read = await readPipelineText(path);
    if (read === undefined) {
      const message = `pipeline file is larger than ${MAX_PIPELINE_BYTES} bytes (1 MiB)`;
      return { pipeline: undefined, issues: [{ file, line: 1, column: 1, path: '', message }] };
    }
    text = read;
  } catch (err) {
    return {
      pipeline: undefined,
      issues: [{ file, path: '', message: `cannot read pipeline file: ${describeError(err)}` }],
    };
  }
  const parsed = parsePipelineYaml(text, file, { env: options.env });
  if (!parsed.spec) return { pipeline: undefined, issues: parsed.issues };
  const baseDir = dirname(resolve(path));
  const { bindings, issues } = await resolveFunctions(parsed.spec, baseDir, options);
  const pipeline: Pipeline = { spec: parsed.spec, bindings, file, baseDir, locate: parsed.locate };
  if (issues.length > 0) {
    const relocated = parsePipelineLocations(text, file, issues);
    const standingIn = options.importModules === false && options.standIns === true;
    return { pipeline: standingIn ? pipeline : undefined, issues: relocated };
  }
  return { pipeline, issues: [] };
}

/**
 * Reads a pipeline file, at most {@link MAX_PIPELINE_BYTES} + 1 bytes of it: undefined when it
 * is larger. Only a regular file is read (opened without blocking, so a FIFO with no writer does
 * not hang): a device such as /dev/zero or /dev/urandom never ends.
 */
async function readPipelineText(path: string): Promise<string | undefined> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw new PipelineFileError('EISDIR: it is a directory', { code: 'EISDIR' });
    if (!st.isFile()) throw new PipelineFileError(`it is ${fileKind(st)}, not a regular file`);
    const buffer = Buffer.alloc(MAX_PIPELINE_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > MAX_PIPELINE_BYTES) return undefined;
    return buffer.toString('utf8', 0, length);
  } finally {
    await handle.close();
  }
}

function fileKind(st: Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

function parsePipelineLocations(text: string, file: string, issues: ValidationIssue[]): ValidationIssue[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  return issues.map((i) => locate(i, doc, lineCounter, file));
}

/**
 * Loads a pipeline file to run it (its `fn:` modules are imported); throws
 * {@link PipelineValidationError} listing every problem.
 */
export async function loadPipelineFile(
  path: string,
  options: Omit<PipelineFileOptions, 'importModules'> = {},
): Promise<Pipeline> {
  const { pipeline, issues } = await checkPipelineFile(path, { ...options, importModules: true });
  if (!pipeline) throw new PipelineValidationError(issues);
  return pipeline;
}
