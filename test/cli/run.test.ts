/**
 * `lethe run`: exit codes (0 success, 1 failed run, 2 invalid flow or usage), typed `--param`,
 * the `--json` result, plain progress lines on a non-TTY stderr, and paths resolved against
 * the flow's folder. A user's mistake never prints a stack trace.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectNoStackTrace, files, inTempDir, lethe, lines, runJson, type CliResult } from './support.js';

/** Run lethe in a fresh temporary folder holding `contents`. */
function inDir(
  contents: Record<string, string>,
  args: string[],
  after?: (dir: string) => void,
): Promise<CliResult> {
  return inTempDir(async (dir) => {
    files(dir, contents);
    const result = await lethe(args, { cwd: dir });
    after?.(dir);
    return result;
  });
}

const ok = `version: 1
name: ok
steps:
  - id: src
    input: { values: [{ a: 1, b: "x" }, { a: 2, b: "y" }] }
  - id: c
    compute: { from: src, columns: { twice: "a * 2" } }
  - id: out
    output: { from: c, respond: true }
`;

const typeError = `version: 1
name: typeerr
steps:
  - id: src
    input: { values: [{ b: 5 }, { b: "abc" }, { b: 1 }] }
  - id: f
    filter: { from: src, where: "b > 3" }
  - id: out
    output: { from: f, respond: true }
`;

const invalid = `version: 1
name: bad
steps:
  - id: src
    input: { values: [{ a: 1 }] }
  - id: f
    filter: { from: sorc, where: "a > 0" }
`;

const params = `version: 1
name: typed-params
params:
  s: { type: string }
  n: { type: number, default: 1.5 }
  i: { type: integer, default: 1 }
  b: { type: boolean, default: false }
  d: { type: date, default: "1970-01-01" }
  t: { type: datetime, default: "1970-01-01T00:00:00Z" }
steps:
  - id: src
    input: { values: [{ row: 1 }] }
  - id: c
    compute:
      from: src
      columns: { s: "$params.s", n: "$params.n", i: "$params.i", b: "$params.b", d: "$params.d", t: "$params.t", ti: "$type($params.i)" }
  - id: out
    output: { from: c, respond: true }
`;

// Durations print as "12 ms" or "1.25 s" (a loaded machine may well take a second).
describe.concurrent('exit codes', () => {
  it('0 for a successful run, with the response and a summary on stdout', async () => {
    const result = await inDir({ 'flow.yaml': ok }, ['run', 'flow.yaml']);
    expect(result.code).toBe(0);
    expect(
      result.stdout.startsWith(
        'response (2 rows):\n{"a":1,"b":"x","twice":2}\n{"a":2,"b":"y","twice":4}\n\n',
      ),
    ).toBe(true);
    const out = lines(result.stdout);
    // column widths follow the content (a slow step's time is wider than "time")
    expect(out).toContainEqual(
      expect.stringMatching(/^step {2}command {2}rows in {2}rows out +time {2}status$/),
    );
    expect(out[out.length - 1]).toMatch(/^ok: succeeded in (\d+ ms|\d+\.\d\d s), peak memory [\d,]+ MB$/);
    expectNoStackTrace(result);
  });

  it('1 for a failed run: a type error names the step, the row and the expression', async () => {
    const result = await inDir({ 'typeerr.yaml': typeError }, ['run', 'typeerr.yaml']);
    expect(result.code).toBe(1);
    const errors = lines(result.stderr).filter((line) => line.startsWith('typeerr.yaml:'));
    expect(errors).toEqual([
      expect.stringMatching(
        /^typeerr\.yaml:7:\d+: steps\[1\]\.filter\.where: step "f" \(filter\), row 2: .*\(in expression "b > 3"\)$/,
      ),
    ]);
    expect(lines(result.stdout).pop()).toMatch(/^typeerr: failed in (\d+ ms|\d+\.\d\d s)/);
    expectNoStackTrace(result);
  });

  it('1 for a failed run in compute, naming step, row and expression', async () => {
    const flow = `version: 1
name: computeerr
steps:
  - id: src
    input: { values: [{ a: 1 }, { a: 2 }, { a: "x" }] }
  - id: calc
    compute: { from: src, columns: { b: "a + 1" } }
`;
    const result = await inDir({ 'flow.yaml': flow }, ['run', 'flow.yaml']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/step "calc" \(compute\), row 3: .*\(in expression "a \+ 1"\)/);
    expectNoStackTrace(result);
  });

  it('1 when an input file is missing at run time', async () => {
    const flow = `version: 1
name: missing
steps:
  - id: src
    input: { file: nothere.csv }
`;
    const result = await inDir({ 'flow.yaml': flow }, ['run', 'flow.yaml']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/step "src" \(input\): cannot read ".*nothere\.csv": no such file/);
    expectNoStackTrace(result);
  });

  it('2 for an invalid flow, every problem as file:line:col', async () => {
    const result = await inDir({ 'bad.yaml': invalid }, ['run', 'bad.yaml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('bad.yaml:7:21: steps[1].filter.from: no step "sorc" (did you mean "src"?)\n');
    expect(result.stdout).toBe('');
  });

  it('2 for a flow that is not YAML', async () => {
    const result = await inDir({ 'bad.yaml': 'version: 1\nname: [\n' }, ['run', 'bad.yaml']);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)[0]).toMatch(/^bad\.yaml:\d+:\d+: /);
    expectNoStackTrace(result);
  });

  it('2 for a missing flow file', async () => {
    const result = await inDir({}, ['run', 'nothere.yaml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('no such flow file: nothere.yaml\n');
  });
});

describe.concurrent('--param', () => {
  it('types values by the declared type', async () => {
    const result = await inDir({ 'flow.yaml': params }, [
      'run',
      'flow.yaml',
      '--json',
      '--param',
      's=007',
      '-p',
      'n=1e3',
      '-p',
      'i=42',
      '-p',
      'b=YES',
      '-p',
      'd=2024-02-29',
      '-p',
      't=2024-02-29T10:00:00+09:00',
    ]);
    expect(result.code).toBe(0);
    expect(runJson(result).response).toEqual([
      {
        row: 1,
        s: '007',
        n: 1000,
        i: 42,
        b: true,
        d: '2024-02-29',
        t: '2024-02-29T01:00:00.000Z',
        ti: 'number',
      },
    ]);
  });

  it('uses defaults for params not given; a value may contain "="', async () => {
    const result = await inDir({ 'flow.yaml': params }, ['run', 'flow.yaml', '--json', '-p', 's=a=b']);
    expect(result.code).toBe(0);
    expect(runJson(result).response).toEqual([
      {
        row: 1,
        s: 'a=b',
        n: 1.5,
        i: 1,
        b: false,
        d: '1970-01-01',
        t: '1970-01-01T00:00:00.000Z',
        ti: 'number',
      },
    ]);
  });

  it('an integer param given "1.5" exits 2 with a clear message', async () => {
    const result = await inDir({ 'flow.yaml': params }, ['run', 'flow.yaml', '-p', 's=x', '-p', 'i=1.5']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('parameter "i": "1.5" is not an integer (declared integer)\n');
    expect(result.stdout).toBe('');
  });

  it.each([
    ['n=abc', 'parameter "n": "abc" is not a number (declared number)'],
    ['b=maybe', 'parameter "b": "maybe" is not a boolean'],
    ['d=2024-02-30', 'parameter "d": "2024-02-30" is not a valid date'],
    ['t=2024-02-29T10:00:00', 'parameter "t": "2024-02-29T10:00:00" is not an ISO 8601 date-time'],
  ])('%s exits 2', async (pair, message) => {
    const result = await inDir({ 'flow.yaml': params }, ['run', 'flow.yaml', '-p', 's=x', '-p', pair]);
    expect(result.code).toBe(2);
    expect(result.stderr.startsWith(message)).toBe(true);
    expectNoStackTrace(result);
  });

  it('an unknown param exits 2 naming it and the declared ones', async () => {
    const result = await inDir({ 'flow.yaml': params }, ['run', 'flow.yaml', '-p', 's=x', '-p', 'zz=1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('unknown parameter "zz"; the flow declares s, n, i, b, d, t\n');
  });

  it('a param for a flow without params exits 2', async () => {
    const result = await inDir({ 'flow.yaml': ok }, ['run', 'flow.yaml', '-p', 'x=1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('unknown parameter "x": the flow declares no params\n');
  });

  it('a missing param (no default) exits 2 naming it', async () => {
    const result = await inDir({ 'flow.yaml': params }, ['run', 'flow.yaml']);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([
      'missing parameter "s" (string)',
      '  hint: give it with --param s=…',
    ]);
  });

  it('--param without "=" exits 2', async () => {
    const result = await inDir({ 'flow.yaml': params }, ['run', 'flow.yaml', '-p', 'novalue']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('--param needs name=value, got "novalue"\n');
  });
});

describe.concurrent('--json', () => {
  it('prints the result: status, steps with rowsIn/rowsOut/durationMs, peakRssBytes, response', async () => {
    const result = await inDir({ 'flow.yaml': ok }, ['run', 'flow.yaml', '--json']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const json = runJson(result);
    expect(json.status).toBe('succeeded');
    expect(json.flow).toBe('ok');
    expect(json.runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(
      json.steps.map(({ id, command, status, rowsIn, rowsOut }) => ({
        id,
        command,
        status,
        rowsIn,
        rowsOut,
      })),
    ).toEqual([
      { id: 'src', command: 'input', status: 'succeeded', rowsIn: 0, rowsOut: 2 },
      { id: 'c', command: 'compute', status: 'succeeded', rowsIn: 2, rowsOut: 2 },
      { id: 'out', command: 'output', status: 'succeeded', rowsIn: 2, rowsOut: 2 },
    ]);
    for (const step of json.steps) {
      expect(typeof step.durationMs).toBe('number');
      expect(step.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(Number.isInteger(json.peakRssBytes)).toBe(true);
    expect(json.peakRssBytes).toBeGreaterThan(1024 * 1024);
    expect(json.response).toEqual([
      { a: 1, b: 'x', twice: 2 },
      { a: 2, b: 'y', twice: 4 },
    ]);
    expect(json.error).toBeUndefined();
  });

  it('has no response when no output responds', async () => {
    const flow = `version: 1
name: noresp
steps:
  - id: src
    input: { values: [{ a: 1 }] }
  - id: save
    output: { from: src, file: out/a.json }
`;
    const result = await inDir({ 'flow.yaml': flow }, ['run', 'flow.yaml', '--json'], (dir) => {
      expect(JSON.parse(readFileSync(join(dir, 'out', 'a.json'), 'utf8'))).toEqual([{ a: 1 }]);
    });
    expect(result.code).toBe(0);
    expect('response' in runJson(result)).toBe(false);
  });

  it('a failed run has status failed and the error with code and message', async () => {
    const result = await inDir({ 'typeerr.yaml': typeError }, ['run', 'typeerr.yaml', '--json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    const json = runJson(result);
    expect(json.status).toBe('failed');
    expect(json.steps.map((step) => [step.id, step.status])).toEqual([
      ['src', 'succeeded'],
      ['f', 'failed'],
      ['out', 'skipped'],
    ]);
    expect(json.error?.code).toBe('EXPRESSION_ERROR');
    expect(json.error?.message).toMatch(
      /^typeerr\.yaml:7:\d+: steps\[1\]\.filter\.where: step "f" \(filter\), row 2: /,
    );
    expect(json.error?.message).toMatch(/\(in expression "b > 3"\)$/);
    expect('response' in json).toBe(false);
  });
});

describe.concurrent('progress', () => {
  it('on a non-TTY stderr: one plain line per finished step', async () => {
    const result = await inDir({ 'flow.yaml': ok }, ['run', 'flow.yaml']);
    expect(result.code).toBe(0);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(/^✓ src \(input\): 0 → 2 rows in (\d+ ms|\d+\.\d\d s)$/),
      expect.stringMatching(/^✓ c \(compute\): 2 → 2 rows in (\d+ ms|\d+\.\d\d s)$/),
      expect.stringMatching(/^✓ out \(output\): 2 → 2 rows in (\d+ ms|\d+\.\d\d s)$/),
    ]);
    expect(result.stderr).not.toMatch(/\u001b\[/); // no terminal escape codes
  });

  it('a failed step has its own line, then the error', async () => {
    const result = await inDir({ 'typeerr.yaml': typeError }, ['run', 'typeerr.yaml']);
    const errLines = lines(result.stderr);
    expect(errLines[0]).toMatch(/^✓ src \(input\): 0 → 3 rows in (\d+ ms|\d+\.\d\d s)$/);
    expect(errLines[1]).toBe('✗ f (filter) failed');
    expect(errLines[2]).toMatch(/^typeerr\.yaml:7:\d+: /);
    expect(errLines.length).toBe(3);
  });

  it('--no-progress prints nothing on stderr', async () => {
    const result = await inDir({ 'flow.yaml': ok }, ['run', 'flow.yaml', '--no-progress']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
  });
});

describe.concurrent('paths', () => {
  it('resolve against the flow file’s folder, not the working directory', async () => {
    const flow = `version: 1
name: paths
steps:
  - id: src
    input: { file: data/in.csv }
  - id: save
    output: { from: src, file: out/copy.csv }
`;
    const result = await inDir(
      { 'sub/flow.yaml': flow, 'sub/data/in.csv': 'id,name\n1,a\n2,""\n3,\n' },
      ['run', 'sub/flow.yaml', '--no-progress'],
      (dir) => {
        expect(readFileSync(join(dir, 'sub', 'out', 'copy.csv'), 'utf8')).toBe('id,name\n1,a\n2,""\n3,\n');
        expect(existsSync(join(dir, 'out'))).toBe(false);
      },
    );
    expect(result.code).toBe(0);
  });
});
