/**
 * The HTTP connector against a local API started by the test: auth types, pagination styles,
 * records at a path, retries with Retry-After and back-off, redirects, error statuses, outputs
 * per row and in batches, and the SSRF guard on the way. Loopback is closed by default, so the
 * test opens exactly its servers' ports with the deployment allow-list (LETHE_EGRESS_ALLOW).
 */
import type { ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionPool } from '../../src/connectors/connections-file.js';
import { formatError, type LetheErrors } from '../../src/errors/index.js';
import { nextLink } from '../../src/connectors/http/read.js';
import { retryAfterMs } from '../../src/connectors/http/session.js';
import { parseFlow } from '../../src/flow/load.js';
import { runInline } from '../helpers/engine.js';
import { json, startHttpServer, type RecordedRequest, type TestHttpServer } from '../egress/support.js';

let api: TestHttpServer;
let elsewhere: TestHttpServer;
const savedAllow = process.env.LETHE_EGRESS_ALLOW;

const USERS = [1, 2, 3, 4, 5].map((id) => ({ id, name: `user ${id}` }));
let flaky: Record<string, number> = {};

function query(request: RecordedRequest): URLSearchParams {
  return new URL(request.url, 'http://x').searchParams;
}

function route(request: RecordedRequest, response: ServerResponse): unknown {
  const url = new URL(request.url, 'http://x');
  const q = url.searchParams;
  const count = (flaky[url.pathname] = (flaky[url.pathname] ?? 0) + 1);
  switch (url.pathname) {
    case '/v1/users': {
      const page = Number(q.get('page') ?? 1);
      const size = Number(q.get('per_page') ?? 2);
      return json(response, 200, { data: { items: USERS.slice((page - 1) * size, page * size) } });
    }
    case '/v1/items': {
      const offset = Number(q.get('offset'));
      const limit = Number(q.get('limit'));
      return json(response, 200, USERS.slice(offset, offset + limit));
    }
    case '/v1/events': {
      const at = q.get('after') === null ? 0 : Number(q.get('after'));
      const next = at + 2 < USERS.length ? String(at + 2) : null;
      return json(response, 200, { events: USERS.slice(at, at + 2), meta: { next } });
    }
    case '/v1/linked': {
      const p = Number(q.get('p') ?? 1);
      const headers: Record<string, string> =
        p < 3
          ? { link: `<${api.url}/v1/linked?p=${p + 1}>; rel="next", <${api.url}/v1/linked?p=1>; rel="first"` }
          : {};
      return json(response, 200, USERS.slice((p - 1) * 2, p * 2), headers);
    }
    case '/v1/body-links': {
      const p = Number(q.get('p') ?? 1);
      return json(response, 200, {
        rows: [{ p }],
        links: { next: p < 2 ? `/v1/body-links?p=${p + 1}` : null },
      });
    }
    case '/v1/forever':
      return json(response, 200, [{ n: count }], { link: `</v1/forever?n=${count + 1}>; rel="next"` });
    case '/v1/loop':
      return json(response, 200, { data: [{ n: 1 }], next: 'same' });
    case '/v1/offsite':
      return json(response, 200, [{ n: 1 }], { link: `<${elsewhere.url}/steal>; rel="next"` });
    case '/v1/one':
      return json(response, 200, { id: 7, tags: ['a', 'b'], address: { city: 'Kyoto' } });
    case '/v1/empty':
      response.writeHead(204);
      return response.end();
    case '/v1/html':
      response.writeHead(200, { 'content-type': 'text/html' });
      return response.end('<html>login</html>');
    case '/v1/search':
      return json(response, 200, {
        hits: [{ body: JSON.parse(request.body) as unknown, method: request.method }],
      });
    case '/auth/basic':
      return request.headers.authorization === `Basic ${Buffer.from('ada:pa:ss wörd').toString('base64')}`
        ? json(response, 200, [{ ok: 'basic' }])
        : json(response, 401, { error: 'no' });
    case '/auth/bearer':
      return request.headers.authorization === 'Bearer tok-123'
        ? json(response, 200, [{ ok: 'bearer' }])
        : json(response, 401, {});
    case '/auth/header':
      return request.headers['x-api-key'] === 'key-456'
        ? json(response, 200, [{ ok: 'header' }])
        : json(response, 403, {});
    case '/auth/query':
      return q.get('api_key') === 'key-789'
        ? json(response, 200, [{ ok: 'query' }])
        : json(response, 403, {});
    case '/retry/after':
      return count <= 2
        ? json(response, count === 1 ? 503 : 429, { busy: true }, { 'retry-after': count === 1 ? '0' : '1' })
        : json(response, 200, [{ attempt: count }]);
    case '/retry/backoff':
      return count <= 2 ? json(response, 503, {}) : json(response, 200, [{ attempt: count }]);
    case '/retry/long':
      return json(response, 429, {}, { 'retry-after': '3600' });
    case '/retry/always':
      return json(response, 503, {});
    case '/retry/reset':
      if (count === 1) {
        response.socket?.destroy();
        return;
      }
      return json(response, 200, [{ attempt: count }]);
    case '/redirect/same':
      response.writeHead(301, { location: '/v1/one' });
      return response.end();
    case '/redirect/away':
      response.writeHead(302, { location: `${elsewhere.url}/landing` });
      return response.end();
    case '/redirect/loopback':
      response.writeHead(307, { location: 'http://127.0.0.1:1/admin' });
      return response.end();
    case '/missing':
      return json(response, 404, { error: 'not here', secret: 'do-not-print' });
    case '/sink':
    case '/sink/batch':
      return json(response, 201, {});
    case '/sink/picky':
      return (JSON.parse(request.body) as { id: number }).id === 3
        ? json(response, 422, { error: 'bad row' })
        : json(response, 201, {});
    default:
      if (url.pathname.startsWith('/users/')) return json(response, 200, {});
      return json(response, 404, {});
  }
}

beforeAll(async () => {
  api = await startHttpServer(route);
  elsewhere = await startHttpServer((request, response) =>
    json(response, 200, [
      { auth: request.headers.authorization ?? null, key: request.headers['x-api-key'] ?? null },
    ]),
  );
  process.env.LETHE_EGRESS_ALLOW = `127.0.0.1:${api.port} 127.0.0.1:${elsewhere.port}`;
});

afterAll(async () => {
  if (savedAllow === undefined) delete process.env.LETHE_EGRESS_ALLOW;
  else process.env.LETHE_EGRESS_ALLOW = savedAllow;
  await Promise.all([api.close(), elsewhere.close()]);
});

afterEach(() => {
  api.requests.length = 0;
  elsewhere.requests.length = 0;
  flaky = {};
});

/** Run a flow whose `api` connection has these settings (baseUrl: the test API by default). */
async function run(steps: string, settings: Record<string, unknown> = {}) {
  const pool = new ConnectionPool([
    {
      name: 'api',
      type: 'http',
      settings: { baseUrl: `${api.url}/`, retryDelayMs: 10, ...settings },
      baseDir: process.cwd(),
    },
  ]);
  try {
    return await runInline(`version: 1\nname: t\nsteps:\n${steps}`, { connections: pool });
  } finally {
    await pool.closeAll();
  }
}

/** An input step reading `request`, answered with its records. */
function read(request: string): string {
  return `  - id: src\n    input: { connection: api, request: ${request} }\n  - id: out\n    output: { from: src, respond: true }\n`;
}

async function records(request: string, settings: Record<string, unknown> = {}) {
  const result = await run(read(request), settings);
  expect(result.result.error && formatError(result.result.error)).toBeUndefined();
  return result.records;
}

async function failure(steps: string, settings: Record<string, unknown> = {}) {
  const result = await run(steps, settings);
  expect(result.result.status).toBe('failed');
  return result.result.error!;
}

describe('http connector: reading', () => {
  it('reads one record, nested values kept', async () => {
    expect(await records('{ path: /v1/one }')).toEqual([
      { id: 7, tags: ['a', 'b'], address: { city: 'Kyoto' } },
    ]);
    expect(api.requests[0]).toMatchObject({ method: 'GET', url: '/v1/one' });
    expect(api.requests[0]!.headers.accept).toBe('application/json');
  });

  it('joins paths to the base path, and sends query parameters and headers', async () => {
    await records('{ path: one, query: { a: 1, b: "x y", c: true }, headers: { X-Trace: abc } }', {
      baseUrl: `${api.url}/v1`,
      headers: { 'X-Client': 'lethe' },
    });
    expect(api.requests[0]!.url).toBe('/v1/one?a=1&b=x+y&c=true');
    expect(api.requests[0]!.headers).toMatchObject({ 'x-trace': 'abc', 'x-client': 'lethe' });
  });

  it('page style: pages of a size until a short page', async () => {
    const rows = await records(
      '{ path: /v1/users, records: data.items, paginate: { style: page, sizeParam: per_page, size: 2 } }',
    );
    expect(rows).toEqual(USERS);
    expect(api.requests.map((r) => r.url)).toEqual([
      '/v1/users?page=1&per_page=2',
      '/v1/users?page=2&per_page=2',
      '/v1/users?page=3&per_page=2',
    ]);
  });

  it('page style without a size: until an empty page', async () => {
    const rows = await records(
      '{ path: /v1/users, records: data.items, paginate: { style: page, start: 1 } }',
    );
    expect(rows).toEqual(USERS);
    expect(api.requests).toHaveLength(4);
  });

  it('offset style', async () => {
    expect(await records('{ path: /v1/items, paginate: { style: offset, size: 2 } }')).toEqual(USERS);
    expect(api.requests.map((r) => r.url)).toEqual([
      '/v1/items?offset=0&limit=2',
      '/v1/items?offset=2&limit=2',
      '/v1/items?offset=4&limit=2',
    ]);
  });

  it('cursor style', async () => {
    expect(
      await records(
        '{ path: /v1/events, records: events, paginate: { style: cursor, param: after, cursorPath: meta.next } }',
      ),
    ).toEqual(USERS);
    expect(api.requests.map((r) => query(r).get('after'))).toEqual([null, '2', '4']);
  });

  it('link style: the Link header, or a next URL in the answer', async () => {
    expect(await records('{ path: /v1/linked, paginate: { style: link } }')).toEqual(USERS);
    expect(api.requests.map((r) => r.url)).toEqual(['/v1/linked', '/v1/linked?p=2', '/v1/linked?p=3']);
    expect(
      await records(
        '{ path: /v1/body-links, records: rows, paginate: { style: link, nextPath: links.next } }',
      ),
    ).toEqual([{ p: 1 }, { p: 2 }]);
  });

  it('pagination is bounded, loops are caught, and next links stay on the origin', async () => {
    const bounded = await failure(read('{ path: /v1/forever, paginate: { style: link, maxPages: 3 } }'));
    expect(bounded.message).toBe(
      'HTTP connection "api": more pages remain after 3 pages (paginate.maxPages)',
    );
    expect(api.requests).toHaveLength(3);
    const loop = await failure(
      read('{ path: /v1/loop, records: data, paginate: { style: cursor, cursorPath: next } }'),
    );
    expect(loop.message).toMatch(/points back to a page already read/);
    const offsite = await failure(read('{ path: /v1/offsite, paginate: { style: link } }'), {
      auth: 'bearer',
      token: 'tok-123',
    });
    expect(offsite.message).toBe(
      `HTTP connection "api": refused to follow a link to ${elsewhere.url}, outside the connection's ${api.url}`,
    );
    expect(elsewhere.requests).toEqual([]);
  });

  it('sends a JSON body (a search) with the method asked', async () => {
    expect(
      await records('{ method: POST, path: /v1/search, body: { q: "kyoto", limit: 5 }, records: hits }'),
    ).toEqual([{ body: { q: 'kyoto', limit: 5 }, method: 'POST' }]);
    expect(api.requests[0]!.headers['content-type']).toBe('application/json');
  });

  it('an empty answer is an empty table', async () => {
    const result = await run(read('{ path: /v1/empty }'));
    expect(result.result.status).toBe('succeeded');
    expect(result.records).toEqual([]);
  });

  it('fails clearly on an error status, a non-JSON answer, or missing records', async () => {
    const missing = await failure(read('{ path: /missing }'));
    expect(missing.code).toBe('SOURCE_ERROR');
    expect(formatError(missing)).toMatch(
      /step "src" \(input\): HTTP connection "api" answered 404 Not Found to GET \/missing\n {2}hint: check the path/,
    );
    expect(missing.message).not.toContain('do-not-print');
    const html = await failure(read('{ path: /v1/html }'));
    expect(html.message).toBe(
      'HTTP connection "api": the answer to GET /v1/html is not JSON (content-type text/html)',
    );
    const path = await failure(read('{ path: /v1/one, records: data.items }'));
    expect(path.message).toBe(
      'HTTP connection "api": the answer to GET /v1/one has no "data.items" (missing "data")',
    );
  });
});

describe('http connector: auth', () => {
  it('basic, bearer, API key in a header, API key in the query', async () => {
    expect(
      await records('{ path: /auth/basic }', { auth: 'basic', username: 'ada', password: 'pa:ss wörd' }),
    ).toEqual([{ ok: 'basic' }]);
    expect(await records('{ path: /auth/bearer }', { auth: 'bearer', token: 'tok-123' })).toEqual([
      { ok: 'bearer' },
    ]);
    expect(
      await records('{ path: /auth/header }', { auth: 'apiKey', apiKeyName: 'X-API-Key', apiKey: 'key-456' }),
    ).toEqual([{ ok: 'header' }]);
    expect(
      await records('{ path: /auth/query }', {
        auth: 'apiKey',
        apiKeyName: 'api_key',
        apiKeyIn: 'query',
        apiKey: 'key-789',
      }),
    ).toEqual([{ ok: 'query' }]);
  });

  it('wrong credentials fail with 401/403 and never print a secret, not even the API key in the URL', async () => {
    const basic = await failure(read('{ path: /auth/basic }'), {
      auth: 'basic',
      username: 'ada',
      password: 'wrong-password',
    });
    expect(basic.message).toBe('HTTP connection "api" answered 401 Unauthorized to GET /auth/basic');
    expect(basic.details.hint).toMatch(/credentials/);
    const key = await failure(read('{ path: /missing }'), {
      auth: 'apiKey',
      apiKeyName: 'api_key',
      apiKeyIn: 'query',
      apiKey: 'key-secret-789',
    });
    expect(key.message).toBe('HTTP connection "api" answered 404 Not Found to GET /missing?api_key=redacted');
  });

  it('checks the settings: auth and its fields, the base URL, TLS against the scheme', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ auth: 'basic' }, /uses auth: basic but has no "username"/],
      [{ auth: 'bearer', username: 'x' }, /has "username", which auth: bearer does not use/],
      [{ auth: 'apiKey', apiKey: 'k' }, /needs "apiKeyName" and "apiKey"/],
      [{ token: 't' }, /has "token", which auth: none does not use/],
      [{ baseUrl: 'http://user:pw@127.0.0.1/' }, /has user info \("…@"\) in its baseUrl/],
      [{ baseUrl: 'ftp://127.0.0.1/' }, /scheme ftp:; only http and https are allowed/],
      [{ baseUrl: `${api.url}/?key=1` }, /has a query or fragment in its baseUrl/],
      [{ tls: 'verify-full' }, /has tls: verify-full, but its baseUrl is http:\/\//],
      [{ baseUrl: 'https://127.0.0.1/', tls: 'disable' }, /has tls: disable, but its baseUrl is https:\/\//],
      [
        { auth: 'bearer', token: 't', headers: { Authorization: 'x' } },
        /sets the header "authorization" in headers, which its auth sets/,
      ],
      [{ clientKey: 'x' }, /has certificates, but its baseUrl is http:\/\//],
    ];
    for (const [settings, message] of cases) {
      const error = await failure(read('{ path: /v1/one }'), settings);
      expect(error.code, JSON.stringify(settings)).toBe('CONNECTION_ERROR');
      expect(error.message, JSON.stringify(settings)).toMatch(message);
      expect(error.message).not.toMatch(/user:pw|tok-|key-/);
    }
    expect(api.requests).toEqual([]);
  });
});

describe('http connector: retries and redirects', () => {
  it('retries 503 and 429, waiting as Retry-After says', async () => {
    const started = Date.now();
    expect(await records('{ path: /retry/after }')).toEqual([{ attempt: 3 }]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(api.requests).toHaveLength(3);
  });

  it('backs off exponentially without Retry-After, and gives up after the retries', async () => {
    const started = Date.now();
    expect(await records('{ path: /retry/backoff }', { retryDelayMs: 100 })).toEqual([{ attempt: 3 }]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    const error = await failure(read('{ path: /retry/always }'), { retries: 2 });
    expect(error.message).toBe(
      'HTTP connection "api" answered 503 Service Unavailable to GET /retry/always (after 2 retries)',
    );
    expect(api.requests).toHaveLength(3 + 3);
  });

  it('refuses to wait longer than retryMaxDelayMs', async () => {
    const error = await failure(read('{ path: /retry/long }'), { retryMaxDelayMs: 5000 });
    expect(error.message).toBe(
      'HTTP connection "api" answered 429 to GET /retry/long and asked to retry after 3600 s, longer than retryMaxDelayMs (5000 ms)',
    );
    expect(api.requests).toHaveLength(1);
  });

  it('retries a GET after a dropped connection, but never re-sends a POST', async () => {
    expect(await records('{ path: /retry/reset }')).toEqual([{ attempt: 2 }]);
    flaky = {};
    api.requests.length = 0;
    const error = await failure(read('{ method: POST, path: /retry/reset, body: {} }'));
    expect(error.code).toBe('CONNECTION_ERROR');
    expect(error.message).toMatch(/^HTTP connection "api": cannot reach http:\/\/127\.0\.0\.1:\d+: /);
    expect(api.requests).toHaveLength(1);
  });

  it('follows redirects on the origin, drops credentials when one leaves it, and refuses one to loopback', async () => {
    expect(await records('{ path: /redirect/same }', { auth: 'bearer', token: 'tok-123' })).toEqual([
      { id: 7, tags: ['a', 'b'], address: { city: 'Kyoto' } },
    ]);
    expect(api.requests.map((r) => [r.url, r.headers.authorization])).toEqual([
      ['/redirect/same', 'Bearer tok-123'],
      ['/v1/one', 'Bearer tok-123'],
    ]);
    expect(
      await records('{ path: /redirect/away }', {
        auth: 'apiKey',
        apiKeyName: 'X-API-Key',
        apiKey: 'key-456',
      }),
    ).toEqual([{ auth: null, key: null }]);
    const error = await failure(read('{ path: /redirect/loopback }'));
    expect(error.message).toBe(
      `HTTP connection "api": refused to connect to 127.0.0.1:1: it is a loopback address; allow-list it with LETHE_EGRESS_ALLOW=127.0.0.1:1 (or in the workspace's egress allow-list) if intended (redirected to by ${api.url})`,
    );
    const none = await failure(read('{ path: /redirect/same }'), { maxRedirects: 0 });
    expect(none.message).toMatch(/answered with a redirect \(301\), and this connection follows none/);
  });

  it('the SSRF guard holds for connections too: a server not allow-listed is refused', async () => {
    const saved = process.env.LETHE_EGRESS_ALLOW;
    process.env.LETHE_EGRESS_ALLOW = `127.0.0.1:${elsewhere.port}`;
    try {
      const error = await failure(read('{ path: /v1/one }'));
      expect(formatError(error)).toContain(
        `step "src" (input): HTTP connection "api": refused to connect to 127.0.0.1:${api.port}: it is a loopback address; allow-list it with LETHE_EGRESS_ALLOW=127.0.0.1:${api.port} (or in the workspace's egress allow-list) if intended`,
      );
      expect(api.requests).toEqual([]);
    } finally {
      process.env.LETHE_EGRESS_ALLOW = saved;
    }
  });
});

describe('http connector: writing', () => {
  const source = (rows: unknown[]) => `  - id: rows\n    input: { values: ${JSON.stringify(rows)} }\n`;

  it('sends one request per row, in order, filling {column} placeholders', async () => {
    const result = await run(
      `${source(USERS.slice(0, 3))}  - id: put\n    output: { from: rows, connection: api, request: { method: PUT, path: "/users/{id}", headers: { X-Batch: "no" } } }\n`,
    );
    expect(result.result.status).toBe('succeeded');
    expect(api.requests.map((r) => [r.method, r.url, r.body])).toEqual([
      ['PUT', '/users/1', '{"id":1,"name":"user 1"}'],
      ['PUT', '/users/2', '{"id":2,"name":"user 2"}'],
      ['PUT', '/users/3', '{"id":3,"name":"user 3"}'],
    ]);
    expect(api.requests[0]!.headers).toMatchObject({ 'content-type': 'application/json', 'x-batch': 'no' });
  });

  it('sends batches as JSON arrays', async () => {
    const result = await run(
      `${source(USERS)}  - id: post\n    output: { from: rows, connection: api, request: { path: /sink/batch, batch: 2 } }\n`,
    );
    expect(result.result.status).toBe('succeeded');
    expect(api.requests.map((r) => JSON.parse(r.body) as unknown[])).toEqual([
      USERS.slice(0, 2),
      USERS.slice(2, 4),
      USERS.slice(4),
    ]);
    expect(api.requests.every((r) => r.method === 'POST')).toBe(true);
  });

  it('stops at an error status, naming the row and what was sent before', async () => {
    const error = await failure(
      `${source(USERS)}  - id: post\n    output: { from: rows, connection: api, request: { path: /sink/picky } }\n`,
    );
    expect(error.code).toBe('SINK_ERROR');
    expect(error.message).toBe(
      'HTTP connection "api" answered 422 Unprocessable Entity to POST /sink/picky for input row 3',
    );
    expect(error.details.hint).toBe('input rows 1–2 were sent before (HTTP outputs are not transactional)');
    expect(error.message).not.toContain('bad row');
    expect(api.requests).toHaveLength(3);
  });
});

describe('http connector: flow checks', () => {
  function problems(step: string): string {
    try {
      parseFlow(
        `version: 1\nname: t\nsteps:\n  - id: rows\n    input: { values: [{ id: 1 }] }\n${step}`,
        'flow.yaml',
        process.cwd(),
      );
    } catch (error) {
      return (error as LetheErrors).errors.map(formatError).join('\n');
    }
    return '';
  }

  it('reports request mistakes with their place in the flow', () => {
    expect(
      problems('  - id: a\n    input: { connection: api, request: { path: "https://evil.example/x" } }\n'),
    ).toMatch(
      /steps\[1\]\.input\.request\.path: must be a path relative to the connection’s baseUrl, not a URL/,
    );
    expect(problems('  - id: a\n    input: { connection: api, request: { path: "/x?y=1" } }\n')).toMatch(
      /give query parameters in "query"/,
    );
    expect(
      problems(
        '  - id: a\n    input: { connection: api, request: { path: /x, paginate: { style: cursor } } }\n',
      ),
    ).toMatch(/style cursor needs "cursorPath"/);
    expect(
      problems(
        '  - id: a\n    input: { connection: api, request: { path: /x, paginate: { style: link, size: 5 } } }\n',
      ),
    ).toMatch(/paginate\.size: does not apply to style link/);
    expect(
      problems(
        '  - id: a\n    output: { from: rows, connection: api, request: { path: "/u/{id}", batch: 10 } }\n',
      ),
    ).toMatch(/request\.batch: a batch cannot fill \{id\} in the path/);
    expect(
      problems('  - id: a\n    output: { from: rows, connection: api, table: t, request: { path: /u } }\n'),
    ).toMatch(/"table" applies to table outputs, not to "request"/);
    expect(problems('  - id: a\n    input: { connection: api, request: { path: /x } }\n')).toBe('');
  });

  it('a request to a database connection, or SQL to an HTTP connection, fails clearly', async () => {
    const sql = await failure('  - id: q\n    input: { connection: api, sql: "select 1" }\n');
    expect(sql.message).toBe(
      'HTTP connection "api" is an HTTP connection: it reads with "request", not "sql"',
    );
    const pool = new ConnectionPool([
      { name: 'db', type: 'sqlite', settings: { path: ':memory:' }, baseDir: process.cwd() },
    ]);
    try {
      const result = await runInline(
        'version: 1\nname: t\nsteps:\n  - id: a\n    input: { connection: db, request: { path: /x } }\n',
        { connections: pool },
      );
      expect(result.result.error!.message).toBe(
        'connection "db" is not an HTTP connection, and "request" needs one',
      );
    } finally {
      await pool.closeAll();
    }
  });
});

describe('http connector: header parsing', () => {
  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(undefined, now)).toBeUndefined();
  });

  it('finds rel="next" in a Link header, and only that relation', () => {
    expect(nextLink('<https://a/p2>; rel="next", <https://a/p9>; rel="last"')).toBe('https://a/p2');
    expect(nextLink('<https://a/p1>; rel="prev", <https://a/p3>; rel=next')).toBe('https://a/p3');
    expect(nextLink('<https://a/x>; rel="next-archive"')).toBeUndefined();
    expect(nextLink('<https://a/p2?a=1,2>; title="x"; rel="prev next"')).toBe('https://a/p2?a=1,2');
    expect(nextLink(undefined)).toBeUndefined();
  });
});
