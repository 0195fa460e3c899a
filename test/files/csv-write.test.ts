/**
 * CSV out (SPEC 4.2): a header row always (also for zero rows), null → empty unquoted field,
 * empty string → `""`, numbers in JavaScript's shortest round-trip form, booleans
 * `true`/`false`, nested values as JSON text, RFC 4180 quoting; and read(write(t)) = t.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Table } from '../../src/table/index.js';
import { plain, readFile, useTempDir, writeFile } from './support.js';

const dir = useTempDir();

async function written(
  table: Table,
  name = 'out.csv',
  options: { delimiter?: string } = {},
): Promise<string> {
  const file = join(dir(), name);
  await writeFile(file, table, options);
  return readFileSync(file, 'utf8');
}

describe('CSV out', () => {
  it('writes the header row also for zero rows', async () => {
    expect(await written({ columns: ['a', 'b', 'c'], rows: [] })).toBe('a,b,c\n');
  });

  it('writes null as an empty unquoted field and the empty string as ""', async () => {
    expect(
      await written({
        columns: ['a', 'b', 'c'],
        rows: [
          [null, '', 'x'],
          ['', null, null],
        ],
      }),
    ).toBe('a,b,c\n,"",x\n"",,\n');
  });

  it('writes numbers in the shortest round-trip form', async () => {
    const rows = [[0.1 + 0.2], [1e21], [-0], [5e-7], [123456789012], [-12.5], [1e-7], [2 ** 53 + 2], [100]];
    expect(await written({ columns: ['n'], rows })).toBe(
      'n\n0.30000000000000004\n1e+21\n0\n5e-7\n123456789012\n-12.5\n1e-7\n9007199254740994\n100\n',
    );
  });

  it('writes booleans as true/false', async () => {
    expect(await written({ columns: ['yes', 'no'], rows: [[true, false]] })).toBe('yes,no\ntrue,false\n');
  });

  it('writes nested values as JSON text, quoted where RFC 4180 needs it', async () => {
    const text = await written({
      columns: ['obj', 'list', 'one'],
      rows: [[{ k: [1, 'x'], n: null }, [1, 2], ['a']]],
    });
    expect(text).toBe('obj,list,one\n"{""k"":[1,""x""],""n"":null}","[1,2]","[""a""]"\n');
  });

  it('quotes fields holding the delimiter, quotes, CR or LF, and nothing else', async () => {
    const text = await written({
      columns: ['v'],
      rows: [['a,b'], ['say "hi"'], ['l1\nl2'], ['l1\r\nl2'], [' lead'], ['plain'], ['é 東京 😀'], ["it's"]],
    });
    expect(text).toBe('v\n"a,b"\n"say ""hi"""\n"l1\nl2"\n"l1\r\nl2"\n lead\nplain\né 東京 😀\nit\'s\n');
  });

  it('quotes header names like values', async () => {
    expect(await written({ columns: ['a,b', 'say "x"', '__proto__'], rows: [[1, 2, 3]] })).toBe(
      '"a,b","say ""x""",__proto__\n1,2,3\n',
    );
  });

  it('.tsv writes tabs, and quotes tabs rather than commas', async () => {
    expect(
      await written(
        {
          columns: ['a', 'b'],
          rows: [
            ['x,y', 'p\tq'],
            [null, ''],
          ],
        },
        'out.tsv',
      ),
    ).toBe('a\tb\nx,y\t"p\tq"\n\t""\n');
  });

  it('`delimiter` sets another one', async () => {
    expect(await written({ columns: ['a', 'b'], rows: [['x;y', 1.5]] }, 'out.csv', { delimiter: ';' })).toBe(
      'a;b\n"x;y";1.5\n',
    );
  });
});

describe('CSV round trip: read(write(t)) = t', () => {
  it('keeps strings (tricky ones included), numbers and nulls', async () => {
    const table: Table = {
      columns: ['id', 'text', 'amount', 'note'],
      rows: [
        [1, 'plain', 0.1 + 0.2, null],
        [2, '', 1e21, 'a,b'],
        [3, 'say "hi"', -12.5, ''],
        [4, 'line1\nline2', 5e-7, '"'],
        [5, 'crlf\r\ninside', 0, '""'],
        [6, '東京 😀', null, ' spaced '],
        [7, null, 9007199254740991, 'null'],
      ],
    };
    const file = join(dir(), 'rt.csv');
    await writeFile(file, table);
    expect(plain(await readFile(file))).toEqual(plain(table));
  });

  it('keeps a zero-row table', async () => {
    const file = join(dir(), 'rt.csv');
    await writeFile(file, { columns: ['a', 'b'], rows: [] });
    expect(plain(await readFile(file))).toEqual({ columns: ['a', 'b'], rows: [] });
  });

  it('keeps many generated rows', async () => {
    const pieces = ['', 'a', ',', '"', '""', '\n', '\r\n', ' ', 'x y', 'é', '😀', '0', 'true'];
    let seed = 42;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed;
    };
    const rows = Array.from({ length: 15_000 }, (_, i) => {
      const text = Array.from({ length: next() % 4 }, () => pieces[next() % pieces.length]).join('');
      const maybeNull = next() % 7 === 0 ? null : text;
      return [i + 1, maybeNull, next() % 5 === 0 ? null : (next() % 100000) / 100];
    });
    const table: Table = { columns: ['id', 'text', 'amount'], rows };
    const file = join(dir(), 'rt.csv');
    await writeFile(file, table);
    const back = await readFile(file);
    expect(back.columns).toEqual(table.columns);
    expect(back.rows.length).toBe(rows.length);
    expect(back.rows).toEqual(rows);
  });

  it('reads written TSV back the same', async () => {
    const table: Table = {
      columns: ['a', 'b'],
      rows: [
        ['x,y', 1],
        ['p\tq', null],
        ['', 2.5],
      ],
    };
    const file = join(dir(), 'rt.tsv');
    await writeFile(file, table);
    expect(plain(await readFile(file))).toEqual(plain(table));
  });
});
