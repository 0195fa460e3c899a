import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LetheErrors } from '../../src/errors/index.js';
import { parseFlow } from '../../src/flow/load.js';
import { runInline, tempDir } from '../helpers/engine.js';

const numbers = (n: number) => Array.from({ length: n }, (_, i) => ({ i }));

describe('engine', () => {
  it('runs a step after the steps named in `after`, without reading them', async () => {
    const dir = tempDir();
    try {
      const yaml = `
version: 1
name: t
steps:
  - id: source
    input: { values: [{ a: 1 }, { a: 2 }] }
  - id: write
    output: { from: source, file: data.csv }
  - id: read
    after: [write]
    input: { file: data.csv }
  - id: out
    output: { from: read, respond: true }
`;
      const run = await runInline(yaml, { baseDir: dir.path });
      expect(run.result.status).toBe('succeeded');
      expect(run.records).toEqual([{ a: 1 }, { a: 2 }]);
      const order = run.events
        .filter((e) => e.type === 'step.started')
        .map((e) => (e as { step: string }).step);
      expect(order.indexOf('read')).toBeGreaterThan(order.indexOf('write'));
      // `after` does not make the step read the other's table.
      expect(run.result.steps.find((s) => s.id === 'read')?.rowsIn).toBe(0);
    } finally {
      dir.cleanup();
    }
  });

  it('checks `after` like any reference: unknown steps and cycles are errors', () => {
    const yaml = `version: 1
name: t
steps:
  - id: a
    after: [c]
    input: { values: [{ x: 1 }] }
  - id: b
    after: [wirte]
    output: { from: a, respond: true }
  - id: c
    after: [a]
    input: { values: [] }
`;
    let thrown: unknown;
    try {
      parseFlow(yaml, 'flow.yaml', '.');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(LetheErrors);
    const messages = (thrown as LetheErrors).errors.map(
      (e) => `${e.details.location?.line}:${e.details.location?.column} ${e.message}`,
    );
    expect(messages).toContain('11:13 steps form a cycle: a → c → a');
    expect(messages).toContain('8:13 no step "wirte"');
  });

  it('stops every step at the first failure and reports the rest as cancelled or skipped', async () => {
    const yaml = `
version: 1
name: t
steps:
  - id: big
    input: { values: ${JSON.stringify(numbers(50_000))} }
  - id: slow
    compute: { from: big, columns: { j: "i * 2" } }
  - id: bad
    input: { values: [{ v: "x" }] }
  - id: fail
    filter: { from: bad, where: "v > 1" }
  - id: after-fail
    output: { from: fail, respond: true }
`;
    const run = await runInline(yaml);
    expect(run.result.status).toBe('failed');
    expect(run.result.error?.details.step).toBe('fail');
    const status = Object.fromEntries(run.result.steps.map((s) => [s.id, s.status]));
    expect(status.fail).toBe('failed');
    expect(status['after-fail']).toBe('skipped');
    expect(['cancelled', 'succeeded']).toContain(status.slow);
    expect(run.result.response).toBeUndefined();
  });

  it('cancels on the caller’s signal', async () => {
    const controller = new AbortController();
    const yaml = `
version: 1
name: t
steps:
  - id: big
    input: { values: ${JSON.stringify(numbers(200_000))} }
  - id: slow
    compute: { from: big, columns: { j: "$string(i) & 'x'" } }
  - id: out
    output: { from: slow, respond: true }
`;
    const run = runInline(yaml, {
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'step.progress' && event.step === 'slow') controller.abort();
      },
    });
    const { result } = await run;
    expect(result.status).toBe('cancelled');
    expect(result.error?.code).toBe('CANCELLED');
    const status = Object.fromEntries(result.steps.map((s) => [s.id, s.status]));
    expect(status).toEqual({ big: 'succeeded', slow: 'cancelled', out: 'skipped' });
  });

  it('emits run and step events in order, with statistics', async () => {
    const run = await runInline(`
version: 1
name: t
steps:
  - id: a
    input: { values: [{ x: 1 }, { x: 2 }, { x: 3 }] }
  - id: b
    filter: { from: a, where: "x > 1" }
  - id: c
    output: { from: b, respond: true }
`);
    const types = run.events
      .map((e) => ('step' in e ? `${e.type}:${e.step}` : e.type))
      .filter((t) => !t.startsWith('step.progress'));
    expect(types).toEqual([
      'run.started',
      'step.started:a',
      'step.finished:a',
      'step.started:b',
      'step.finished:b',
      'step.started:c',
      'step.finished:c',
      'run.finished',
    ]);
    const b = run.result.steps.find((s) => s.id === 'b')!;
    expect([b.rowsIn, b.rowsOut, b.status]).toEqual([3, 2, 'succeeded']);
    expect(b.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('uses the given start time for autonumber dates', async () => {
    const run = await runInline(
      `
version: 1
name: t
timezone: Asia/Tokyo
steps:
  - id: a
    input: { values: [{ x: 1 }] }
  - id: n
    autonumber: { from: a, field: no, counter: c, format: "{yyyy}{mm}{dd}-{seq}" }
  - id: out
    output: { from: n, respond: true }
`,
      { startedAt: new Date('2026-12-31T16:30:00Z') },
    );
    // 16:30 UTC on New Year's Eve is already 1 January in Tokyo.
    expect(run.records).toEqual([{ x: 1, no: '20270101-1' }]);
  });

  it('writes an output file atomically, keeping the flow folder clean on failure', async () => {
    const dir = tempDir();
    try {
      const run = await runInline(
        `
version: 1
name: t
steps:
  - id: a
    input: { values: [{ x: 1 }] }
  - id: save
    output: { from: a, file: out/x.json }
`,
        { baseDir: dir.path },
      );
      expect(run.result.status).toBe('succeeded');
      expect(JSON.parse(readFileSync(join(dir.path, 'out', 'x.json'), 'utf8'))).toEqual([{ x: 1 }]);
    } finally {
      dir.cleanup();
    }
  });
});
