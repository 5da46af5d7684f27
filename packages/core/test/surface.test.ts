import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as core from '@tributary/core';
import * as runtime from '@tributary/core/runtime';
import * as spi from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/core', () => {
  it('@tributary/core, for pipeline authors, exports exactly this list (a change here is a visible diff)', () => {
    expect(Object.keys(core).sort()).toEqual(
      [
        'CompiledPipeline',
        'ConfigError',
        'DeliveryError',
        'ExpressionError',
        'FileSink',
        'MAX_ALIASES',
        'MAX_PIPELINE_BYTES',
        'MemorySink',
        'PipelineBuilder',
        'PipelineValidationError',
        'StaticLookup',
        'StepsBuilder',
        'StreamSink',
        'TributaryError',
        'aggregator',
        'avg',
        'checkPipelineFile',
        'collect',
        'compile',
        'count',
        'countDistinct',
        'fileSink',
        'fileSource',
        'first',
        'formatIssue',
        'last',
        'loadPipelineFile',
        'max',
        'min',
        'parsePipelineYaml',
        'pipeline',
        'pipelineSchema',
        'readJsonLines',
        'referenceMarkdown',
        'resolveFunctions',
        'runPipeline',
        'staticLookup',
        'stdoutSink',
        'sum',
        'testPipeline',
        'toBatches',
        'validateSpec',
      ].sort(),
    );
  });

  it('@tributary/core/spi, for component authors, exports exactly this list (a change here is a visible diff)', () => {
    expect(Object.keys(spi).sort()).toEqual(
      [
        'ComponentRef',
        'ConfigError',
        'DeliveryError',
        'DurationSchema',
        'Expression',
        'ExpressionError',
        'FencedError',
        'FunctionRef',
        'PipelineValidationError',
        'TributaryError',
        'Type',
        'X_EXPECTED',
        'aggregateUserRecords',
        'backoff',
        'backoffDelay',
        'classifyDelta',
        'comparePositions',
        'compareSequenceNumbers',
        'compileExpression',
        'deaggregate',
        'deaggregateRecord',
        'definitions',
        'describeError',
        'durationMs',
        'envelope',
        'hasAggregateMagic',
        'hashKeyOf',
        'kinesisStreamName',
        'isTransient',
        'kindOf',
        'parseDuration',
        'register',
        'retry',
        'sleep',
        'userRecordSize',
        'walkComponents',
        'withKey',
        'withValue',
      ].sort(),
    );
  });

  it('no entry exports the internals (watermarks, the CEL compiler, the in-memory window store, ...)', () => {
    const internals = ['Watermarks', 'lowestWatermark', 'compileCel', 'toPlain', 'MemoryWindowStore', 'isStateStore'];
    for (const entry of [core, spi, runtime])
      expect(Object.keys(entry).filter((k) => internals.includes(k))).toEqual([]);
  });

  it('registers the built-in components', () => {
    expect(spi.definitions('step').map((d) => d.kind)).toEqual([
      'filter',
      'map',
      'flatMap',
      'enrich',
      'keyBy',
      'branch',
      'sink',
      'window',
    ]);
    expect(spi.definitions('source').map((d) => d.kind)).toEqual(['file', 'kinesis', 'dynamodbStream']);
    expect(spi.definitions('sink').map((d) => d.kind)).toEqual(['file', 'stdout', 'stderr', 'ref']);
    expect(spi.definitions('lookup').map((d) => d.kind)).toEqual(['static', 'ref']);
    expect(spi.definitions('store').map((d) => d.kind)).toEqual(['memory', 'ref']);
  });

  it('names, for every built-in kind, the module that registers it, exporting it as <kind><Category>Definition', async () => {
    for (const category of ['step', 'source', 'sink', 'lookup', 'store'] as const) {
      for (const def of spi.definitions(category)) {
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
      'referenceMarkdown',
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

  it('the runtime and spi entries alone register no component and have no validator: compile says what to do', () => {
    // A fresh process (this one loaded @tributary/core), importing the built entries by name.
    const script = `
      const m = await import('@tributary/core/runtime');
      const spi = await import('@tributary/core/spi');
      const kinds = ['step', 'source', 'sink', 'lookup', 'store'].flatMap((c) => spi.definitions(c));
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
    expect([...seqs].sort(spi.compareSequenceNumbers)).toEqual([
      '9',
      '10',
      '49590338271490256608559692538361571095921575989136588898',
      '49590338271490256608559692538361571095921575989136588899',
    ]);
    expect(seqs.map((s) => spi.compareSequenceNumbers(s, s))).toEqual([0, 0, 0, 0]);
  });
});
