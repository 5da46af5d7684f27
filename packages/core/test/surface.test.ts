import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as core from '@tributary/core';
import * as runtime from '@tributary/core/runtime';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/core', () => {
  it('exports exactly this list (a change here is a visible diff)', () => {
    expect(Object.keys(core).sort()).toEqual(
      [
        'COMPONENT_MODULES',
        'CompiledPipeline',
        'ComponentRef',
        'ConfigError',
        'DeliveryError',
        'DurationSchema',
        'Expression',
        'ExpressionError',
        'FIELD_TYPES',
        'FileSink',
        'FunctionRef',
        'MAX_ALIASES',
        'MAX_PIPELINE_BYTES',
        'MemorySink',
        'MemoryWindowStore',
        'PipelineBuilder',
        'PipelineValidationError',
        'StaticLookup',
        'StepsBuilder',
        'StreamSink',
        'TributaryError',
        'Watermarks',
        'X_EXPECTED',
        'aggregator',
        'avg',
        'checkPipelineFile',
        'classifyDelta',
        'collect',
        'comparePositions',
        'compareSequenceNumbers',
        'compile',
        'compileCel',
        'compileExpression',
        'count',
        'countDistinct',
        'definition',
        'definitions',
        'describeError',
        'durationMs',
        'envelope',
        'fileSink',
        'fileSource',
        'first',
        'formatIssue',
        'isStateStore',
        'isTransient',
        'kindOf',
        'last',
        'loadPipelineFile',
        'lowestWatermark',
        'max',
        'min',
        'parseAggregate',
        'parseDuration',
        'parsePipelineYaml',
        'pipeline',
        'pipelineSchema',
        'readJsonLines',
        'referenceMarkdown',
        'register',
        'resolveFunctions',
        'runPipeline',
        'staticLookup',
        'stdoutSink',
        'sum',
        'testPipeline',
        'toBatches',
        'toPlain',
        'validateSpec',
        'walkComponents',
        'withKey',
        'withValue',
      ].sort(),
    );
  });

  it('registers the built-in components', () => {
    expect(core.definitions('step').map((d) => d.kind)).toEqual([
      'filter',
      'map',
      'flatMap',
      'enrich',
      'keyBy',
      'branch',
      'sink',
      'window',
    ]);
    expect(core.definitions('source').map((d) => d.kind)).toEqual(['file']);
    expect(core.definitions('sink').map((d) => d.kind)).toEqual(['file', 'stdout', 'stderr', 'ref']);
    expect(core.definitions('lookup').map((d) => d.kind)).toEqual(['static', 'ref']);
    expect(core.definitions('store').map((d) => d.kind)).toEqual(['memory', 'ref']);
  });

  it('names, for every built-in kind, the module that registers it (bundles import only those)', () => {
    const categories = ['step', 'source', 'sink', 'lookup', 'store'] as const;
    for (const category of categories) {
      const table = core.COMPONENT_MODULES[category];
      expect(Object.keys(table).sort(), category).toEqual(
        core
          .definitions(category)
          .map((d) => d.kind)
          .sort(),
      );
      for (const [kind, file] of Object.entries(table)) {
        const source = readFileSync(join(import.meta.dirname, '..', 'src', file.replace(/\.js$/, '.ts')), 'utf8');
        expect(source, `${category} ${kind} in ${file}`).toMatch(
          new RegExp(`kind: '${kind}',\\s*category: '${category}'`),
        );
      }
    }
  });

  it('names, for every built-in kind, the module that registers it, exporting it as <kind><Category>Definition', async () => {
    for (const category of ['step', 'source', 'sink', 'lookup', 'store'] as const) {
      for (const def of core.definitions(category)) {
        // Relative to core's dist/, which mirrors src/.
        expect(def.module, `${category} ${def.kind}`).toMatch(/^\.\/[\w/]+\.js$/);
        const module = await import(join(import.meta.dirname, '..', 'src', def.module.replace(/\.js$/, '.ts')));
        const name = `${def.kind}${category[0]?.toUpperCase()}${category.slice(1)}Definition`;
        expect(module[name], `${def.module} exports ${name}`).toBe(def);
      }
    }
  });

  it('the runtime entry exports everything but the builder, the harness, the file runner, the YAML loader, the validator and the component classes', () => {
    const outside = [
      'MAX_ALIASES',
      'MAX_PIPELINE_BYTES',
      'checkPipelineFile',
      'loadPipelineFile',
      'parsePipelineYaml',
      'pipelineSchema',
      'resolveFunctions',
      'validateSpec',
      'FileSink',
      'MemorySink',
      'PipelineBuilder',
      'StaticLookup',
      'StepsBuilder',
      'StreamSink',
      'fileSink',
      'fileSource',
      'pipeline',
      'readJsonLines',
      'runPipeline',
      'staticLookup',
      'stdoutSink',
      'testPipeline',
      'toBatches',
    ];
    expect(Object.keys(runtime).sort()).toEqual(
      Object.keys(core)
        .filter((k) => !outside.includes(k))
        .sort(),
    );
  });

  it('the runtime entry alone registers no component and has no validator: compile says what to do', () => {
    // A fresh process (this one loaded @tributary/core), importing the built entry by name.
    const script = `
      const m = await import('@tributary/core/runtime');
      const kinds = ['step', 'source', 'sink', 'lookup', 'store'].flatMap((c) => m.definitions(c));
      let message = '';
      try {
        m.compile({ spec: { version: 1, name: 'x', source: { file: { path: 'a' } }, steps: [{ filter: 'true' }] }, bindings: new Map(), baseDir: '.' });
      } catch (err) {
        message = err.message;
      }
      console.log(JSON.stringify({ kinds: kinds.length, message }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: join(import.meta.dirname, '..'),
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toEqual({
      kinds: 0,
      message:
        'no pipeline validator is loaded (import @tributary/core, or compile a pipeline validated already with `validated: true`)',
    });
  });

  it('compares sequence numbers by value, as Kinesis orders them', () => {
    const seqs = [
      '49590338271490256608559692538361571095921575989136588898',
      '9',
      '10',
      '49590338271490256608559692538361571095921575989136588899',
    ];
    expect([...seqs].sort(core.compareSequenceNumbers)).toEqual([
      '9',
      '10',
      '49590338271490256608559692538361571095921575989136588898',
      '49590338271490256608559692538361571095921575989136588899',
    ]);
    expect(seqs.map((s) => core.compareSequenceNumbers(s, s))).toEqual([0, 0, 0, 0]);
  });
});
