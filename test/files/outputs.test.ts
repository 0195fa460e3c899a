/**
 * readTableFile / writeTableFile: the format comes from `format` or the extension (an unknown
 * one is a clear error); outputs are atomic — a failed write leaves no partial file, no
 * temporary file, and an existing file unchanged.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { resolveFormat } from '../../src/connectors/files/index.js';
import type { Table } from '../../src/table/index.js';
import { io, listing, plain, readFile, readText, rejection, useTempDir, writeFile } from './support.js';

const dir = useTempDir();
const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');

const small: Table = { columns: ['a', 'b'], rows: [[1, 'x']] };
const FORMATS = ['csv', 'tsv', 'json', 'ndjson', 'xlsx'] as const;

describe('formats by extension', () => {
  it('knows .csv .tsv .json .ndjson .jsonl .xlsx, in any case', () => {
    const names = ['a.csv', 'a.TSV', 'a.json', 'a.NDJSON', 'a.jsonl', 'a.xlsx', 'A.CSV'].map((path) => {
      const format = resolveFormat(path, undefined);
      return typeof format === 'string' ? format : format.name;
    });
    expect(names).toEqual(['csv', 'csv', 'json', 'ndjson', 'ndjson', 'xlsx', 'csv']);
  });

  it('reading an unknown extension is a clear error', async () => {
    const error = await rejection(readText(dir(), 'data.dat', 'a\n1\n'));
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.message).toBe(
      'cannot tell the format of "data.dat" from its extension; set format: csv | json | ndjson | xlsx',
    );
  });

  it('writing an unknown extension is a clear error and writes nothing', async () => {
    const error = await rejection(writeFile(join(dir(), 'out.parquet'), small));
    expect(error.code).toBe('SINK_ERROR');
    expect(error.message).toBe(
      'cannot tell the format of "out.parquet" from its extension; set format: csv | json | ndjson | xlsx',
    );
    expect(listing(dir())).toEqual([]);
  });

  it('`format` overrides the extension', async () => {
    const file = join(dir(), 'out.dat');
    await writeFile(file, small, { format: 'ndjson' });
    expect(readFileSync(file, 'utf8')).toBe('{"a":1,"b":"x"}\n');
    expect(plain(await readFile(file, { format: 'ndjson' }))).toEqual(plain(small));
  });

  it('a missing file is an error saying so', async () => {
    const error = await rejection(readFile(join(dir(), 'nope.csv')));
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.message).toBe(`cannot read "${join(dir(), 'nope.csv')}": no such file`);
  });

  it('reading a folder is an error saying so', async () => {
    mkdirSync(join(dir(), 'folder.csv'));
    const error = await rejection(readFile(join(dir(), 'folder.csv')));
    expect(error.message).toBe(`cannot read "${join(dir(), 'folder.csv')}": it is a folder`);
  });

  it('creates missing parent folders for an output', async () => {
    const file = join(dir(), 'a', 'b', 'out.csv');
    await writeFile(file, small);
    expect(readFileSync(file, 'utf8')).toBe('a,b\n1,x\n');
    expect(listing(join(dir(), 'a', 'b'))).toEqual(['out.csv']);
  });
});

describe('atomic outputs', () => {
  it.each(FORMATS)('%s: a write into a path whose parent is a file fails and leaves nothing', async (ext) => {
    writeFileSync(join(dir(), 'blocker'), 'x');
    const error = await rejection(writeFile(join(dir(), 'blocker', `out.${ext}`), small));
    expect(error.code).toBe('SINK_ERROR');
    expect(error.message).toMatch(/^cannot write "/);
    expect(listing(dir())).toEqual(['blocker']);
    expect(readFileSync(join(dir(), 'blocker'), 'utf8')).toBe('x');
  });

  it.each(FORMATS)(
    '%s: a write onto a folder fails after writing and removes its temporary file',
    async (ext) => {
      mkdirSync(join(dir(), `out.${ext}`));
      const error = await rejection(writeFile(join(dir(), `out.${ext}`), small));
      expect(error.code).toBe('SINK_ERROR');
      expect(error.message).toBe(`cannot write "${join(dir(), `out.${ext}`)}": it is a folder`);
      expect(listing(dir())).toEqual([`out.${ext}`]);
      expect(statSync(join(dir(), `out.${ext}`)).isDirectory()).toBe(true);
    },
  );

  it.each(['json', 'ndjson'] as const)(
    '%s: a cancelled write keeps the old file and leaves no temporary file',
    async (ext) => {
      const file = join(dir(), `keep.${ext}`);
      writeFileSync(file, 'old content\n');
      const controller = new AbortController();
      controller.abort(new Error('stop'));
      const rows = Array.from({ length: 60_000 }, (_, i) => [i]);
      await expect(writeFile(file, { columns: ['n'], rows }, {}, io(controller.signal))).rejects.toThrow(
        'stop',
      );
      expect(readFileSync(file, 'utf8')).toBe('old content\n');
      expect(listing(dir())).toEqual([`keep.${ext}`]);
    },
  );

  // BUG: src/connectors/files/index.ts writeTableFile: on failure it calls sink.destroy() and
  // at once unlinks the temporary file, without waiting for the write stream to have opened
  // (created) it. The XLSX writer sends nothing to the sink before commit, so when a write is
  // cancelled the unlink can run before the stream's open and the open then creates an empty
  // `.keep.xlsx.<hex>.tmp` that stays behind (9 times in 10 here). Fix: wait for the sink's
  // 'close' (or 'open') before unlinking. Tried several times since it is a race.
  it('xlsx: a cancelled write keeps the old file and leaves no temporary file', async () => {
    const rows = Array.from({ length: 50_001 }, (_, i) => [i]);
    const expected: string[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      const file = join(dir(), `keep${attempt}.xlsx`);
      writeFileSync(file, 'old content\n');
      expected.push(`keep${attempt}.xlsx`);
      const controller = new AbortController();
      controller.abort(new Error('stop'));
      await expect(writeFile(file, { columns: ['n'], rows }, {}, io(controller.signal))).rejects.toThrow(
        'stop',
      );
      expect(readFileSync(file, 'utf8')).toBe('old content\n');
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(listing(dir())).toEqual(expected);
  });

  it('a successful write replaces the old file whole', async () => {
    const file = join(dir(), 'keep.csv');
    writeFileSync(file, 'old,content,much,longer,than,the,new,one\n'.repeat(100));
    await writeFile(file, small);
    expect(readFileSync(file, 'utf8')).toBe('a,b\n1,x\n');
    expect(listing(dir())).toEqual(['keep.csv']);
  });

  // BUG: src/connectors/files/csv.ts write(): when the signal aborts mid-table, the loop throws
  // while csv-stringify is still piped into the sink that writeTableFile then destroys; the
  // stringifier's next write fails with ERR_STREAM_DESTROYED and rejects the `done` promise
  // that nobody awaits any more: an unhandled rejection, which kills the process (Ctrl-C
  // during a large CSV output crashes `lethe run` with a stack trace). Run in a child process
  // so the crash cannot take the test runner with it.
  it('csv: a cancelled write keeps the old file, leaves no temporary file and does not crash', async () => {
    const file = join(dir(), 'keep.csv');
    writeFileSync(file, 'old content\n');
    const script = join(dir(), 'cancel.mts');
    writeFileSync(
      script,
      [
        `import { writeTableFile } from ${JSON.stringify(pathToFileURL(join(root, 'src/connectors/files/index.ts')).href)};`,
        'const controller = new AbortController();',
        "controller.abort(new Error('stop'));",
        'const rows = Array.from({ length: 120000 }, (_, i) => [i]);',
        'try {',
        `  await writeTableFile(${JSON.stringify(file)}, undefined, { columns: ['n'], rows }, {}, { signal: controller.signal, progress() {} });`,
        "  console.log('written');",
        '} catch (error) {',
        "  console.log('rejected: ' + error.message);",
        '}',
        'await new Promise((resolve) => setTimeout(resolve, 300));',
        "console.log('alive');",
      ].join('\n'),
    );
    let result: { stdout: string; stderr: string; code: number };
    try {
      const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', script], {
        cwd: root,
        timeout: 30_000,
      });
      result = { stdout, stderr, code: 0 };
    } catch (error) {
      const e = error as { stdout: string; stderr: string; code: number };
      result = { stdout: e.stdout, stderr: e.stderr, code: e.code };
    }
    expect(readFileSync(file, 'utf8')).toBe('old content\n');
    expect(listing(dir())).toEqual(['cancel.mts', 'keep.csv']);
    expect(result.stdout).toBe('rejected: stop\nalive\n');
    expect(result.stderr).not.toMatch(/ERR_STREAM_DESTROYED/);
    expect(result.code).toBe(0);
  });
});
