import { describe, expect, it } from 'vitest';
import { apiRoutes, serverRoutes } from '../../src/server/plugins/api.js';
import type { TestServer } from '../helpers/server.js';
import { call, describeStores, expectError, putFlow, useServer, WS } from './api-support.js';

const GOOD = `version: 1
name: good
steps:
  - id: values
    input: { values: [{ a: 1 }] }
`;

/** Three mistakes on known lines: an unknown field, a step without a command, a bad reference. */
const INVALID = `version: 1
name: invalid
privacy: standrd
steps:
  - id: values
    input: { values: [{ a: 1 }] }
  - id: keep
    filter: { from: valuez, where: 'a > 0' }
  - id: lost
`;

/** A concrete URL for a route pattern. */
function concrete(url: string, workspace = 'default'): string {
  return url
    .replace(':ws', workspace)
    .replace(':version', '1')
    .replace(/:[A-Za-z]+/g, 'x');
}

/** Every API route (per the server's own record), with a body where one is needed. */
function routes(t: TestServer) {
  return apiRoutes(t.server.context)
    .filter((route) => !route.hidden)
    .map((route) => ({ method: route.method, url: route.url }));
}

async function request(t: TestServer, method: string, url: string, token: string | undefined) {
  const response = await fetch(`${t.url}${url}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(method === 'POST' || method === 'PUT' ? { 'content-type': 'application/json' } : {}),
    },
    body: method === 'POST' || method === 'PUT' ? '{}' : undefined,
  });
  const text = await response.text();
  return {
    status: response.status,
    text,
    body: JSON.parse(text) as Record<string, unknown>,
    headers: response.headers,
  };
}

await describeStores('API access and bad input', (store) => {
  const server = useServer(store, { config: { bodyLimit: 4096 } });

  describe('who may call', () => {
    it('registers the routes of SPEC §9 and more', () => {
      const all = routes(server()).map((route) => `${route.method} ${route.url}`);
      for (const route of [
        'PUT /api/v1/workspaces/:ws/flows/:name',
        'GET /api/v1/workspaces/:ws/flows',
        'GET /api/v1/workspaces/:ws/flows/:name',
        'POST /api/v1/workspaces/:ws/flows/:name/runs',
        'GET /api/v1/workspaces/:ws/runs',
        'GET /api/v1/workspaces/:ws/runs/:id',
        'POST /api/v1/workspaces/:ws/runs/:id/cancel',
        'GET /api/v1/workspaces/:ws/dlq',
        'POST /api/v1/workspaces/:ws/dlq/:id/retry',
        'DELETE /api/v1/workspaces/:ws/dlq/:id',
        'PUT /api/v1/workspaces/:ws/connections/:name',
        'GET /api/v1/workspaces/:ws/connections',
        'GET /api/v1/workspaces/:ws/connections/:name',
        'DELETE /api/v1/workspaces/:ws/connections/:name',
        'GET /api/v1/workspaces/:ws/notifications',
        'POST /api/v1/workspaces/:ws/notifications/:id/read',
        'GET /api/v1/workspaces/:ws/gateway-log',
        'GET /api/v1/workspaces/:ws/tokens',
        'POST /api/v1/workspaces/:ws/tokens',
        'DELETE /api/v1/workspaces/:ws/tokens/:id',
      ])
        expect(all).toContain(route);
    });

    it('answers 401 on every route without a valid token', async () => {
      const t = server();
      for (const route of routes(t)) {
        for (const token of [undefined, 'lethe_not-a-real-token', 'Basic abc']) {
          const reply = await request(t, route.method, concrete(route.url), token);
          expectError(reply, 401, 'UNAUTHENTICATED');
        }
      }
      const plain = await fetch(`${t.url}${WS}/runs`);
      expect(((await plain.json()) as { error: { hint: string } }).error.hint).toMatch(/Bearer/);
    });

    it('answers 404 for an unknown workspace and for another workspace’s token — never data', async () => {
      const t = server();
      await putFlow(t, 'good', GOOD);
      const other = await t.token('owner', 'other');
      const mine = await t.token('owner');
      for (const route of routes(t)) {
        const foreign = await request(t, route.method, concrete(route.url), other);
        expect(expectError(foreign, 404, 'NOT_FOUND').message).toBe('workspace "default" not found');
        expect(foreign.text).not.toMatch(/good/);
        const unknown = await request(t, route.method, concrete(route.url, 'nowhere'), mine);
        expect(expectError(unknown, 404, 'NOT_FOUND').message).toBe('workspace "nowhere" not found');
      }
      // The other workspace sees its own (empty) world, not ours.
      const flows = await call<{ items: unknown[] }>(t, 'GET', '/api/v1/workspaces/other/flows', {
        token: other,
      });
      expect(flows.body).toEqual({ items: [], next: null });
    });

    it('answers 403 when the role is too low', async () => {
      const t = server();
      const viewer = await t.token('viewer');
      const editor = await t.token('editor');
      const cases: [string, string, string, unknown][] = [
        [viewer, 'PUT', `${WS}/flows/good`, GOOD],
        [viewer, 'POST', `${WS}/flows/good/runs`, {}],
        [viewer, 'POST', `${WS}/runs/x/cancel`, undefined],
        [viewer, 'POST', `${WS}/dlq/x/retry`, undefined],
        [viewer, 'DELETE', `${WS}/dlq/x`, undefined],
        [editor, 'PUT', `${WS}/connections/c`, { type: 'sqlite', settings: { path: 'a.db' } }],
        [editor, 'DELETE', `${WS}/connections/c`, undefined],
        [editor, 'GET', `${WS}/tokens`, undefined],
        [editor, 'POST', `${WS}/tokens`, { role: 'viewer', name: 'n' }],
        [editor, 'DELETE', `${WS}/tokens/x`, undefined],
      ];
      for (const [token, method, url, body] of cases) {
        const reply = await call(t, method, url, {
          token,
          body,
          headers: typeof body === 'string' ? { 'content-type': 'application/yaml' } : {},
        });
        expect(expectError(reply, 403, 'FORBIDDEN').message).toMatch(/the role "(viewer|editor)" may not/);
      }
      for (const url of ['flows', 'runs', 'dlq', 'connections', 'notifications', 'gateway-log']) {
        expect((await call(t, 'GET', `${WS}/${url}`, { token: viewer })).status).toBe(200);
      }
    });

    it('answers 404 with the error shape for unknown routes', async () => {
      const t = server();
      expectError(await call(t, 'GET', '/api/v1/nothing'), 404, 'NOT_FOUND');
      expectError(await call(t, 'GET', `${WS}/flows/good/nothing`), 404, 'NOT_FOUND');
    });
  });

  describe('bad bodies', () => {
    it('rejects malformed JSON with a message', async () => {
      const t = server();
      for (const [method, url] of [
        ['POST', `${WS}/flows/good/runs`],
        ['PUT', `${WS}/connections/c`],
        ['POST', `${WS}/tokens`],
      ] as const) {
        const reply = await call(t, method, url, { body: '{"a": [1, 2' });
        expect(expectError(reply, 400, 'INVALID_JSON').message).toBe('the body is not valid JSON');
        const empty = await call(t, method, url, {
          body: '',
          headers: { 'content-type': 'application/json' },
        });
        expectError(empty, 400);
      }
    });

    it('rejects oversized bodies with 413', async () => {
      const t = server();
      const big = JSON.stringify({ params: { text: 'x'.repeat(5000) } });
      expectError(await call(t, 'POST', `${WS}/flows/good/runs`, { body: big }), 413, 'BODY_TOO_LARGE');
      const yaml = `${GOOD}# ${'x'.repeat(5000)}\n`;
      const flow = await call(t, 'PUT', `${WS}/flows/good`, {
        body: yaml,
        headers: { 'content-type': 'application/yaml' },
      });
      expectError(flow, 413, 'BODY_TOO_LARGE');
      const connection = { type: 'sqlite', settings: { path: 'a.db', x: 'y'.repeat(5000) } };
      expectError(await call(t, 'PUT', `${WS}/connections/c`, { body: connection }), 413);
    });

    it('rejects an invalid flow with every problem’s line and column, writing nothing', async () => {
      const t = server();
      const reply = await call(t, 'PUT', `${WS}/flows/invalid`, {
        body: INVALID,
        headers: { 'content-type': 'application/yaml' },
      });
      expectError(reply, 400, 'FLOW_INVALID');
      const errors = (
        reply.body as { error: { errors: { message: string; line: number; column: number }[] } }
      ).error.errors;
      expect(errors.length).toBe(3);
      for (const error of errors) {
        expect(error.line).toBeGreaterThan(0);
        expect(error.column).toBeGreaterThan(0);
      }
      expect(errors.map((error) => error.line).sort()).toEqual([3, 8, 9]);
      expect(errors.find((error) => error.line === 8)!.message).toMatch(/valuez.*did you mean "values"/);
      expectError(await call(t, 'GET', `${WS}/flows/invalid`), 404);
      const versions = await t.server.context.store.db
        .selectFrom('flow_versions')
        .select('version')
        .where('flow_name', '=', 'invalid')
        .execute();
      expect(versions).toEqual([]);

      // A broken update of a good flow leaves it as it was.
      await putFlow(t, 'good', GOOD);
      const before = await call<{ flow: { version: number } }>(t, 'GET', `${WS}/flows/good`);
      const syntax = await call(t, 'PUT', `${WS}/flows/good`, {
        body: 'version: 1\nname: good\nsteps: [\n',
        headers: { 'content-type': 'application/yaml' },
      });
      expectError(syntax, 400, 'FLOW_SYNTAX');
      const syntaxErrors = (syntax.body as { error: { errors: { line: number }[] } }).error.errors;
      expect(syntaxErrors[0]!.line).toBeGreaterThan(0);
      const after = await call<{ flow: { version: number }; versions: unknown[] }>(
        t,
        'GET',
        `${WS}/flows/good`,
      );
      expect(after.body.flow.version).toBe(before.body.flow.version);
      expect(after.body.versions).toHaveLength(before.body.flow.version);
      // A run of it still uses the good version.
      expect((await call(t, 'POST', `${WS}/flows/good/runs`, { body: {} })).status).toBe(202);
    });
  });

  describe('the OpenAPI document', () => {
    it('documents every registered API route with a summary, tags and responses', async () => {
      const t = server();
      const anonymous = await fetch(`${t.url}/api/v1/openapi.json`);
      expect(anonymous.status).toBe(401);
      const response = await t.api('/api/v1/openapi.json', { token: await t.token('viewer') });
      expect(response.status).toBe(200);
      const document = (await response.json()) as {
        openapi: string;
        paths: Record<string, Record<string, { summary?: string; tags?: string[]; responses?: object }>>;
      };
      expect(document.openapi).toMatch(/^3\./);
      // Every documented route of the whole server: the workspace API and the sign-in routes
      // (/api/v1/auth, registered outside the API plugin), recorded by the server itself.
      const listed = serverRoutes(t.server.context).filter(
        (route) => !route.hidden && !route.url.startsWith('/hooks/'),
      );
      expect(listed.length).toBeGreaterThanOrEqual(20);
      expect(listed.length).toBeGreaterThan(routes(t).length);
      for (const route of listed) {
        const path = route.url.replace(/:([A-Za-z]+)/g, '{$1}');
        const operation = document.paths[path]?.[route.method.toLowerCase()];
        expect(operation, `${route.method} ${path} is not in the OpenAPI document`).toBeDefined();
        expect(operation!.summary, `${route.method} ${path} has no summary`).toBeTruthy();
        expect(operation!.tags?.length, `${route.method} ${path} has no tags`).toBeGreaterThan(0);
        // Workspace routes answer 401 and 404 (unknown or foreign workspace); the sign-in
        // routes have no workspace to miss.
        if (route.action) {
          expect(Object.keys(operation!.responses ?? {})).toEqual(expect.arrayContaining(['401', '404']));
        }
      }
      // And documents nothing that is not there.
      const documented = Object.entries(document.paths).flatMap(([path, operations]) =>
        Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
      );
      const registered = new Set(listed.map((r) => `${r.method} ${r.url.replace(/:([A-Za-z]+)/g, '{$1}')}`));
      for (const entry of documented) {
        if (entry.startsWith('POST /hooks/')) continue;
        expect(registered.has(entry), entry).toBe(true);
      }
    });
  });
});
