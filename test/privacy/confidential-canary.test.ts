/**
 * SPEC §2 "all record data processed in memory and deleted immediately; never saved to DB or
 * disk" (krewData; Integromat's "Data is confidential"), proven with canaries: standard and
 * confidential flows run with a random canary in their payload — webhooks answering `accepted`
 * and `result` (at once, after a timeout, failing), manual runs with a parameter and an
 * Idempotency-Key, a failing run with retries that ends in the dead-letter queue, a poll, and
 * a `respond: result` run cut short by a graceful stop and finished after a restart — and then
 * every byte the server wrote is scanned: the data dir (SQLite file, -wal, -shm, -journal and
 * the rest), every table of its PostgreSQL schema, its log lines, the files that appeared in
 * the OS temp dirs, and every API answer about those runs. Each standard canary turns up where
 * a standard flow keeps it (the scan provably sees what is written); no confidential canary
 * turns up anywhere.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pgSchemaUrl, startTestServer, type TestServer } from '../helpers/server.js';
import { describeWithPostgres } from '../helpers/services.js';
import {
  canary,
  changedTempFiles,
  expectNowhere,
  expectSomewhere,
  folderBlobs,
  postgresBlobs,
  snapshotTemp,
  textBlob,
  type Blob,
} from './confidential-scan.js';

const WS = '/api/v1/workspaces/default';
/** About 0.2 s per row (it depends on the row, so it is evaluated for each). */
const SLOW = `"$count($filter([1..1500], function($x){ $x % 7 = $length($string(v)) % 7 }))"`;

function webhookFlow(
  name: string,
  privacy: 'standard' | 'confidential',
  options: {
    respond?: 'accepted' | 'result';
    timeout?: string;
    fail?: boolean;
    slow?: boolean;
    retry?: boolean;
  } = {},
): string {
  const respond = options.respond ?? 'accepted';
  const lines = [
    'version: 1',
    `name: ${name}`,
    `privacy: ${privacy}`,
    `trigger: { webhook: { path: ${name}, respond: ${respond}${options.timeout ? `, timeout: ${options.timeout}` : ''} } }`,
    ...(options.retry ? ['retry: { attempts: 2, backoff: fixed, delay: 20ms }'] : []),
    'steps:',
    '  - id: in',
    // A payload value that does not convert fails the run with a message quoting the value.
    `    input: { trigger: true${options.fail ? ', types: { v: number }' : ''} }`,
    '  - id: shaped',
    `    compute: { from: in, columns: { tag: ${options.slow ? SLOW : `"'seen'"`} } }`,
  ];
  if (respond === 'result') lines.push('  - id: out', '    output: { from: shaped, respond: true }');
  return `${lines.join('\n')}\n`;
}

/**
 * A long run that yields often (a checkpoint every 16,384 rows, each row ~20 µs of JSONata),
 * so that a graceful stop can cut it short; every row carries the trigger's value.
 */
function longFlow(name: string): string {
  return `version: 1
name: ${name}
privacy: confidential
trigger: { webhook: { path: ${name}, respond: result } }
steps:
  - id: in
    input: { trigger: true }
  - id: many
    compute: { from: in, columns: { xs: "[1..150000]" } }
  - id: rows
    unnest: { from: many, column: xs }
  - id: work
    compute: { from: rows, columns: { y: '$sift({"a": xs}, function($v){ $v > 0 }).a' } }
  - id: out
    output: { from: work, respond: true }
`;
}

function manualFlow(name: string, privacy: 'standard' | 'confidential'): string {
  return `version: 1
name: ${name}
privacy: ${privacy}
params: { p: { type: string }, n: { type: integer, default: 1 } }
steps:
  - id: values
    input: { values: [{ a: 1 }, { a: 2 }] }
  - id: tagged
    compute: { from: values, columns: { p: "$params.p", n: "$params.n" } }
`;
}

function pollFlow(name: string, privacy: 'standard' | 'confidential', file: string): string {
  return `version: 1
name: ${name}
privacy: ${privacy}
trigger: { poll: { every: 1h, step: source, key: [id], initial: fire } }
steps:
  - id: source
    input: { file: ${file} }
  - id: fired
    input: { trigger: true }
  - id: shaped
    compute: { from: fired, columns: { tag: "'seen'" } }
`;
}

interface RunDetail {
  run: { id: string; status: string; errorCode: string | null; inputKept: boolean; privacy: string };
  input: { kept: boolean; stored: boolean; note?: string };
  details: { steps: { sample?: unknown }[]; errorMessage: string | null } | null;
}

const ENDED = ['succeeded', 'failed', 'incomplete'];

async function scenario(kind: 'sqlite' | 'postgres'): Promise<void> {
  const c = {
    stdAccepted: canary('stdAccepted'),
    stdResult: canary('stdResult'),
    stdManual: canary('stdManual'),
    stdFail: canary('stdFail'),
    stdPoll: canary('stdPoll'),
    confAccepted: canary('confAccepted'),
    confAcceptedKey: canary('confAcceptedKey'),
    confResult: canary('confResult'),
    confResultFail: canary('confResultFail'),
    confSlow: canary('confSlow'),
    confManual: canary('confManual'),
    confManualKey: canary('confManualKey'),
    confBadParam: canary('confBadParam'),
    confFail: canary('confFail'),
    confRetry: canary('confRetry'),
    confPoll: canary('confPoll'),
    confShutdown: canary('confShutdown'),
  };
  const confidential = Object.entries(c).filter(([label]) => label.startsWith('conf'));
  const standard = Object.entries(c).filter(([label]) => label.startsWith('std'));

  const tempBefore = snapshotTemp();
  const dataDir = mkdtempSync(join(tmpdir(), 'lethe-canary-'));
  const schema = kind === 'postgres' ? await pgSchemaUrl() : undefined;
  const config = { databaseUrl: schema?.url, shutdownGraceMs: 300 };
  const logs: string[] = [];
  /** Every API answer about the runs, except a confidential flow's own answer to its caller. */
  const answers: string[] = [];
  let t: TestServer | undefined = await startTestServer({ dataDir, config });
  try {
    const server = t;
    const api = async (path: string, init: RequestInit = {}) => {
      const response = await server.api(path, init);
      const text = await response.text();
      answers.push(text);
      return { status: response.status, text, body: text === '' ? {} : (JSON.parse(text) as never) };
    };
    const put = async (name: string, yaml: string) => {
      const reply = await api(`${WS}/flows/${name}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/yaml' },
        body: yaml,
      });
      expect(reply.status, reply.text).toBeLessThan(300);
    };
    const hook = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
      const response = await fetch(`${server.url}/hooks/default/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      return { status: response.status, text: await response.text() };
    };
    const waitEnd = async (id: string, until = (d: RunDetail) => ENDED.includes(d.run.status)) => {
      for (let i = 0; i < 400; i++) {
        const reply = await api(`${WS}/runs/${id}`);
        expect(reply.status, reply.text).toBe(200);
        const detail = reply.body as RunDetail;
        if (until(detail)) return detail;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      throw new Error(`run ${id} did not end`);
    };
    const manual = async (flow: string, params: Record<string, unknown>, key?: string) => {
      const reply = await api(`${WS}/flows/${flow}/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        body: JSON.stringify({ params }),
      });
      return reply as { status: number; text: string; body: { runId: string } };
    };

    await put('std-accepted', webhookFlow('std-accepted', 'standard'));
    await put('std-result', webhookFlow('std-result', 'standard', { respond: 'result' }));
    await put('std-fail', webhookFlow('std-fail', 'standard', { fail: true }));
    await put('std-manual', manualFlow('std-manual', 'standard'));
    await put('conf-accepted', webhookFlow('conf-accepted', 'confidential'));
    await put('conf-result', webhookFlow('conf-result', 'confidential', { respond: 'result' }));
    await put(
      'conf-result-fail',
      webhookFlow('conf-result-fail', 'confidential', { respond: 'result', fail: true }),
    );
    await put(
      'conf-slow',
      webhookFlow('conf-slow', 'confidential', { respond: 'result', timeout: '50ms', slow: true }),
    );
    await put('conf-shutdown', longFlow('conf-shutdown'));
    await put('conf-fail', webhookFlow('conf-fail', 'confidential', { fail: true, retry: true }));
    await put('conf-manual', manualFlow('conf-manual', 'confidential'));
    // The polled files are the user's own data: they hold canaries and are left out of the scan.
    const pollDir = join(dataDir, 'files', 'default', 'polled');
    mkdirSync(pollDir, { recursive: true });
    const sourceFiles = [join(pollDir, 'std.csv'), join(pollDir, 'conf.csv')];
    writeFileSync(sourceFiles[0]!, `id,v\n1,${c.stdPoll}\n`);
    writeFileSync(sourceFiles[1]!, `id,v\n1,${c.confPoll}\n`);
    await put('std-poll', pollFlow('std-poll', 'standard', 'polled/std.csv'));
    await put('conf-poll', pollFlow('conf-poll', 'confidential', 'polled/conf.csv'));

    const runs: Record<string, string> = {};
    // Webhooks, respond: accepted (one with an Idempotency-Key made of data).
    for (const [flow, value, key] of [
      ['std-accepted', c.stdAccepted, undefined],
      ['std-fail', c.stdFail, undefined],
      ['conf-accepted', c.confAccepted, `order-${c.confAcceptedKey}`],
      ['conf-fail', c.confFail, undefined],
    ] as const) {
      const reply = await hook(
        flow,
        { v: value, email: `${value}@example.com` },
        key ? { 'idempotency-key': key } : {},
      );
      expect(reply.status, reply.text).toBe(202);
      runs[flow] = (JSON.parse(reply.text) as { runId: string }).runId;
    }
    // The same key again finds the first run (it is stored as a digest, not as given).
    const again = await hook(
      'conf-accepted',
      { v: c.confAccepted },
      { 'idempotency-key': `order-${c.confAcceptedKey}` },
    );
    expect(JSON.parse(again.text)).toEqual({ runId: runs['conf-accepted'], duplicate: true });

    // Webhooks, respond: result — the caller gets the flow's answer; nothing else keeps it.
    const stdResult = await hook('std-result', { v: c.stdResult });
    expect(stdResult.status, stdResult.text).toBe(200);
    expect(stdResult.text).toContain(c.stdResult);
    const confResult = await hook('conf-result', { v: c.confResult });
    expect(confResult.status, confResult.text).toBe(200);
    expect(confResult.text).toContain(c.confResult); // the caller's own answer: not scanned
    const confResultFail = await hook('conf-result-fail', { v: c.confResultFail });
    answers.push(confResultFail.text);
    expect(confResultFail.status).toBe(502);
    expect(JSON.parse(confResultFail.text)).toMatchObject({
      status: 'incomplete',
      error: { code: 'TYPE_CONVERSION' },
    });
    // One that outlasts its timeout is written while it runs (without its input).
    // Many rows of small work: it outlasts 50 ms while no row nears the 1 s expression limit.
    const slow = await hook('conf-slow', [
      { v: c.confSlow },
      ...Array.from({ length: 30 }, (_, i) => ({ v: i })),
    ]);
    answers.push(slow.text);
    expect(slow.status, slow.text).toBe(202);
    runs['conf-slow'] = (JSON.parse(slow.text) as { runId: string }).runId;

    // Manual runs with a parameter (and a key); a bad parameter is refused without its value.
    const stdManual = await manual('std-manual', { p: c.stdManual });
    expect(stdManual.status, stdManual.text).toBe(202);
    runs['std-manual'] = stdManual.body.runId;
    const confManual = await manual('conf-manual', { p: c.confManual }, `k-${c.confManualKey}`);
    expect(confManual.status, confManual.text).toBe(202);
    runs['conf-manual'] = confManual.body.runId;
    const bad = await manual('conf-manual', { p: 'x', n: c.confBadParam });
    expect(bad.status, bad.text).toBe(400);
    expect(JSON.parse(bad.text)).toMatchObject({ error: { code: 'PARAM_INVALID' } });
    expect((JSON.parse(bad.text) as { error: { message: string } }).error.message).toMatch(
      /parameter "n": "\[redacted\]" is not a number/,
    );

    // Polls fire one run per new row, with the row as the payload (the poll may have run
    // already when the flow was saved: then this one finds nothing new).
    const defaultWs = (await server.server.context.store.workspaces.byName('default'))!;
    await server.server.triggers.pollOnce(defaultWs.id, 'std-poll');
    await server.server.triggers.pollOnce(defaultWs.id, 'conf-poll');

    for (const id of Object.values(runs)) await waitEnd(id);
    const list = await api(`${WS}/runs?limit=100`);
    const items = (list.body as { items: { id: string; flow: string }[] }).items;
    for (const flow of ['std-result', 'std-poll', 'conf-result', 'conf-result-fail', 'conf-poll']) {
      const run = items.find((item) => item.flow === flow);
      expect(run, flow).toBeDefined();
      runs[flow] = run!.id;
      await waitEnd(run!.id);
    }

    // What the API says about confidential runs: classes and counts, a note, no details.
    for (const flow of ['conf-accepted', 'conf-result', 'conf-slow', 'conf-manual', 'conf-poll']) {
      const detail = await waitEnd(runs[flow]!);
      expect(detail.run, flow).toMatchObject({
        status: 'succeeded',
        privacy: 'confidential',
        inputKept: false,
      });
      expect(detail.details).toBeNull();
      expect(detail.input.note).toMatch(/not kept.*confidential/);
    }
    const failed = await waitEnd(runs['conf-fail']!);
    expect(failed.run).toMatchObject({
      status: 'incomplete',
      errorCode: 'TYPE_CONVERSION',
      inputKept: false,
    });
    expect((failed.run as unknown as { attempt: number }).attempt).toBe(2); // retried in memory
    expect(failed.details).toBeNull();
    expect(failed.input.note).toMatch(/cannot replay/);
    const dlq = await api(`${WS}/dlq?limit=100`);
    const entry = (dlq.body as { items: { id: string; note?: string; inputKept: boolean }[] }).items.find(
      (item) => item.id === runs['conf-fail'],
    );
    expect(entry).toMatchObject({ inputKept: false });
    expect(entry!.note).toMatch(/not kept.*confidential.*cannot replay/);
    const retry = await api(`${WS}/dlq/${runs['conf-fail']}/retry`, { method: 'POST' });
    expect(retry.status, retry.text).toBe(409);
    expect(JSON.parse(retry.text)).toMatchObject({ error: { code: 'INPUT_NOT_KEPT' } });
    await api(`${WS}/notifications?limit=100`);
    const gateway = await api(`${WS}/gateway-log?limit=100`);
    for (const flow of ['conf-accepted', 'conf-result', 'conf-result-fail', 'conf-slow', 'conf-fail']) {
      const logged = (gateway.body as { items: { flow: string; body?: string }[] }).items.filter(
        (i) => i.flow === flow,
      );
      expect(logged.length, flow).toBeGreaterThan(0);
      for (const item of logged) expect(item.body, flow).toBeUndefined();
    }

    // Standard runs keep what they say they keep: the scan below must find these.
    const stdFail = await waitEnd(runs['std-fail']!);
    expect(stdFail.run.status).toBe('incomplete');
    expect(stdFail.input).toMatchObject({ kept: true, stored: true });
    expect(stdFail.details?.errorMessage).toContain(c.stdFail);
    expect(JSON.stringify((await waitEnd(runs['std-manual']!)).details)).toContain(c.stdManual);
    expect(JSON.stringify((await waitEnd(runs['std-poll']!)).details)).toContain(c.stdPoll);
    expect(gateway.text).toContain(c.stdAccepted);

    const storeBlobs = async (): Promise<Blob[]> =>
      schema ? await postgresBlobs(schema.url) : folderBlobs(dataDir, (path) => sourceFiles.includes(path));
    const whileOpen = await storeBlobs();

    // A respond: result run cut short by a graceful stop goes back to the queue without its input.
    const shutdown = fetch(`${server.url}/hooks/default/conf-shutdown`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ v: c.confShutdown }),
    }).then(
      async (response) => ({ status: response.status, text: await response.text() }),
      () => ({ status: 0, text: '' }),
    );
    // Direct runs are written only when they end: the runner tells when this one is under way.
    for (let i = 0; i < 400 && server.server.context.runner.activeCount === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(server.server.context.runner.activeCount).toBe(1);
    logs.push(...server.logs);
    await server.close();
    t = undefined;
    const cut = await shutdown;
    answers.push(cut.text);
    expect([0, 503]).toContain(cut.status);
    const afterStop = await storeBlobs();

    // After the restart it cannot go on: it ends incomplete, saying its input is gone.
    t = await startTestServer({ dataDir, config });
    const restarted = t;
    const queued = await restarted.server.context.store.db
      .selectFrom('runs')
      .selectAll()
      .where('flow_name', '=', 'conf-shutdown')
      .execute();
    expect(queued).toHaveLength(1);
    expect(queued[0]!.input_kept).toBe(0);
    let lost: RunDetail | undefined;
    for (let i = 0; i < 400 && !ENDED.includes(lost?.run.status ?? ''); i++) {
      const response = await restarted.api(`${WS}/runs/${queued[0]!.id}`);
      const text = await response.text();
      answers.push(text);
      lost = JSON.parse(text) as RunDetail;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(lost!.run).toMatchObject({ status: 'incomplete', errorCode: 'INPUT_LOST', inputKept: false });
    expect(lost!.input.note).toMatch(/cannot replay/);
    const afterRestart = await storeBlobs();
    logs.push(...restarted.logs);
    await restarted.close();
    t = undefined;

    // Every byte written: the store (open, stopped, restarted), the data dir, logs, temp files.
    const everything: Blob[] = [
      ...whileOpen,
      ...afterStop,
      ...afterRestart,
      ...(schema ? await postgresBlobs(schema.url) : []),
      ...folderBlobs(dataDir, (path) => sourceFiles.includes(path)),
      textBlob('server logs', logs),
      textBlob('API answers', answers),
      ...changedTempFiles(tempBefore, [dataDir]),
    ];
    expect(logs.length).toBeGreaterThan(10);
    for (const [label, value] of confidential) expectNowhere(everything, value, label);
    const storeOnly = [...whileOpen, ...afterStop, ...afterRestart];
    for (const [label, value] of standard) {
      const found = expectSomewhere(storeOnly, value, label);
      if (kind === 'postgres') {
        // Where a standard flow keeps payloads: its input (DLQ), details (samples, error), gateway bodies.
        expect(
          found.some((where) => /run_inputs|run_details|gateway_log/.test(where)),
          label,
        ).toBe(true);
      }
    }
    // The logs carry ids only: no standard payload either.
    for (const [label, value] of standard) expectNowhere([textBlob('server logs', logs)], value, label);
  } finally {
    await t?.close();
    await schema?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('confidential flows leave no trace [sqlite]', () => {
  it('scans every byte written: the canaries of confidential flows are nowhere', async () => {
    await scenario('sqlite');
  });
});

await describeWithPostgres('confidential flows leave no trace [postgres]', () => {
  it('scans every table, the data dir, logs and temp files: the canaries of confidential flows are nowhere', async () => {
    await scenario('postgres');
  });
});
