import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { expectNoStackTrace, lethe, lines, useTempDir } from './support.js';

const WS = '/api/v1/workspaces/default';

const HELLO = `version: 1
name: hello
params:
  n: { type: integer }
steps:
  - id: values
    input: { values: [{ a: 1 }, { a: 2 }] }
  - id: times
    compute: { from: values, columns: { b: 'a * $params.n' } }
`;

const BROKEN = `version: 1
name: broken
steps:
  - id: read
    input: { file: not-there.csv }
`;

async function putFlow(t: TestServer, name: string, yaml: string): Promise<void> {
  const response = await t.api(`${WS}/flows/${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/yaml' },
    body: yaml,
  });
  expect(response.status).toBeLessThan(300);
}

async function runStatus(t: TestServer, id: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const response = await t.api(`${WS}/runs/${id}`);
    const { run } = (await response.json()) as { run: { status: string } };
    if (['succeeded', 'failed', 'incomplete'].includes(run.status)) return run.status;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`run ${id} did not end`);
}

describe('lethe run --server and lethe dlq', () => {
  let t: TestServer;
  let token: string;
  /** Environment without LETHE_SERVER/LETHE_TOKEN from outside. */
  const clean = { LETHE_SERVER: undefined, LETHE_TOKEN: undefined };
  const remote = () => ['--server', t.url, '--token', token];

  beforeAll(async () => {
    t = await startTestServer();
    token = await t.token('editor');
    await putFlow(t, 'hello', HELLO);
    await putFlow(t, 'broken', BROKEN);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('starts a run and prints its id', async () => {
    const result = await lethe(['run', 'hello', ...remote(), '--param', 'n=3'], { env: clean });
    expect(result.code, result.stderr).toBe(0);
    const [id] = lines(result.stdout);
    expect(id).toMatch(/^[0-9a-f]{28}$/);
    expect(result.stderr).toContain(`hello: run ${id} queued`);
    expect(await runStatus(t, id!)).toBe('succeeded');
  });

  it('waits for the run and prints its summary', async () => {
    const result = await lethe(['run', 'hello', ...remote(), '-p', 'n=2', '--wait'], { env: clean });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/step\s+command\s+rows in\s+rows out/);
    expect(result.stdout).toMatch(/times\s+compute\s+2\s+2/);
    expect(result.stdout).toMatch(/hello: succeeded in .* \(run [0-9a-f]{28}\)/);

    const json = await lethe(['run', 'hello', ...remote(), '-p', 'n=2', '--wait', '--json'], { env: clean });
    expect(json.code, json.stderr).toBe(0);
    const detail = JSON.parse(json.stdout) as { run: { status: string; rowsRead: number } };
    expect(detail.run).toMatchObject({ status: 'succeeded', rowsRead: 2 });
  });

  it('takes the server and token from LETHE_SERVER and LETHE_TOKEN', async () => {
    const result = await lethe(['run', 'hello', '-p', 'n=1', '--json'], {
      env: { LETHE_SERVER: t.url, LETHE_TOKEN: token },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'queued' });
  });

  it('starts no second run for the same idempotency key', async () => {
    const args = ['run', 'hello', ...remote(), '-p', 'n=1', '--idempotency-key', 'cli-key-1'];
    const first = await lethe(args, { env: clean });
    const second = await lethe(args, { env: clean });
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(second.stderr).toMatch(/no new run/);
  });

  it('exits 1 when the run fails, pointing at the dead-letter queue', async () => {
    const result = await lethe(['run', 'broken', ...remote(), '--wait'], { env: clean });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/broken: incomplete/);
    expect(result.stderr).toMatch(/not-there\.csv/);
    expect(result.stderr).toMatch(/lethe dlq retry [0-9a-f]{28}/);
    expectNoStackTrace(result);
  });

  it('exits 2 with the server’s message when the run cannot start', async () => {
    const cases: [string[], Record<string, string | undefined>, RegExp][] = [
      [['run', 'hello', ...remote()], clean, /missing parameter "n"/],
      [['run', 'hello', ...remote(), '-p', 'n=x', '-p', 'm=1'], clean, /unknown parameter "m"/],
      [['run', 'nope', ...remote()], clean, /flow "nope" not found/],
      [['run', 'hello', ...remote(), '-p', 'bad'], clean, /--param needs name=value/],
      [['run', 'hello', '--server', t.url, '-p', 'n=1'], clean, /--token \(or LETHE_TOKEN\)/],
      [['run', 'hello', '--server', t.url, '--token', 'lethe_wrong'], clean, /unknown, revoked or expired/],
      [['run', 'hello', ...remote(), '--workspace', 'elsewhere'], clean, /workspace "elsewhere" not found/],
      [['run', 'hello', '--server', 'ftp://x', '--token', 't'], clean, /http:\/\/ or https:\/\//],
      [['run', 'hello', '--server', 'http://127.0.0.1:1', '--token', 't'], clean, /cannot reach the server/],
      [['run', 'hello', ...remote(), '--input', 'x.csv'], clean, /--input is for local runs/],
      [['run', 'hello', ...remote(), '--wait', '--timeout', '-1'], clean, /--timeout must be/],
    ];
    const results = await Promise.all(cases.map(([args, env]) => lethe(args, { env })));
    for (const [i, [args, , message]] of cases.entries()) {
      const result = results[i]!;
      expect(result.code, `${args.join(' ')}\n${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(message);
      expectNoStackTrace(result);
    }
    const viewer = await t.token('viewer');
    const forbidden = await lethe(['run', 'hello', '--server', t.url, '--token', viewer, '-p', 'n=1'], {
      env: clean,
    });
    expect(forbidden.code).toBe(2);
    expect(forbidden.stderr).toMatch(/the role "viewer" may not/);
  });

  it('works the dead-letter queue: list, retry, discard', async () => {
    const [first, second] = (
      await Promise.all([1, 2].map(() => lethe(['run', 'broken', ...remote()], { env: clean })))
    ).map((result) => lines(result.stdout)[0]!) as [string, string];
    expect(await runStatus(t, first)).toBe('incomplete');
    expect(await runStatus(t, second)).toBe('incomplete');

    const list = await lethe(['dlq', 'list', ...remote(), '--flow', 'broken'], { env: clean });
    expect(list.code, list.stderr).toBe(0);
    const [header, ...rows] = lines(list.stdout);
    expect(header).toMatch(/^run\s+flow\s+ended\s+attempts\s+error\s+input$/);
    expect(rows.map((row) => row.split(/\s+/)[0])).toEqual(expect.arrayContaining([first, second]));
    expect(rows.find((row) => row.startsWith(first))).toMatch(/SOURCE_ERROR \(read\)\s+kept/);

    const paged = await lethe(['dlq', 'list', ...remote(), '--flow', 'broken', '--limit', '1', '--json'], {
      env: clean,
    });
    const page = JSON.parse(paged.stdout) as { items: { id: string }[]; next: string | null };
    expect(page.items).toHaveLength(1);
    expect(page.next).not.toBeNull();

    const retry = await lethe(['dlq', 'retry', first, ...remote()], { env: clean });
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stderr).toMatch(/queued again/);
    expect(await runStatus(t, first)).toBe('incomplete'); // the file is still missing

    const discard = await lethe(['dlq', 'discard', second, ...remote()], { env: clean });
    expect(discard.code, discard.stderr).toBe(0);
    expect(await runStatus(t, second)).toBe('failed');
    const again = await lethe(['dlq', 'discard', second, ...remote()], { env: clean });
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/is failed, not in the dead-letter queue/);
    const unknown = await lethe(['dlq', 'retry', '0000000000000000000000000000', ...remote()], {
      env: clean,
    });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/not found/);
  });

  describe('local runs are unchanged', () => {
    const dir = useTempDir();

    it('runs a file without --server, and refuses server options there', async () => {
      const file = join(dir(), 'flow.yaml');
      writeFileSync(file, HELLO);
      const local = await lethe(['run', file, '-p', 'n=2', '--json'], { env: clean });
      expect(local.code, local.stderr).toBe(0);
      expect(JSON.parse(local.stdout)).toMatchObject({ flow: 'hello', status: 'succeeded' });
      const wait = await lethe(['run', file, '-p', 'n=2', '--wait'], { env: clean });
      expect(wait.code).toBe(2);
      expect(wait.stderr).toMatch(/--wait needs --server/);
    });
  });
});

describe('lethe run --server --wait gives up after --timeout', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
    await putFlow(t, 'hello', HELLO);
    // A runner that takes nothing: runs stay queued.
    await t.server.context.runner.stop(0);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('exits 1 and says the run goes on', async () => {
    const started = Date.now();
    const result = await lethe(
      [
        'run',
        'hello',
        '--server',
        t.url,
        '--token',
        await t.token('editor'),
        '-p',
        'n=1',
        '--wait',
        '--timeout',
        '0.5',
      ],
      { env: { LETHE_SERVER: undefined, LETHE_TOKEN: undefined } },
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/has not ended after .*; it goes on on the server/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
