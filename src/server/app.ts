/**
 * The HTTP application: Fastify with every part a plugin of its own (health, webhooks, the
 * API's flows, runs, dead-letter queue, connections, notifications, tokens, the OpenAPI
 * document). Route schemas are TypeBox; requests are checked with TypeBox's interpreter and
 * replies are plain JSON.stringify, so no code is ever generated at run time (no Ajv, no
 * fast-json-stringify). Logs carry request ids, methods, routes and statuses — never bodies,
 * query strings, headers, cookies or client addresses. Security headers, HSTS over TLS, CSP and
 * rate limits come from ./web.ts; the console's sign-in routes (/api/v1/auth) and pages from
 * plugins/account.ts and plugins/console.ts.
 */
import swagger from '@fastify/swagger';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyHttpsOptions,
  type FastifyInstance,
  type FastifyServerOptions,
} from 'fastify';
import type { Server as HttpsServer } from 'node:https';
import type { TSchema } from 'typebox';
import Value from 'typebox/value';
import { schemaProblems } from '../document/schema-problems.js';
import { formatPath } from '../document/source.js';
import { authenticate } from './auth.js';
import type { ServerContext } from './context.js';
import { errorResponse } from './http-errors.js';
import { accountPlugin } from './plugins/account.js';
import { apiPlugin, recordRoutes } from './plugins/api.js';
import { consolePlugin } from './plugins/console.js';
import { healthPlugin } from './plugins/health.js';
import { hooksPlugin } from './plugins/hooks.js';
import { httpsOptions, limitRequests, registerWebSecurity, RetryLater } from './web.js';

export const API_PREFIX = '/api/v1';

export async function buildApp(context: ServerContext): Promise<FastifyInstance> {
  const https = httpsOptions(context.config.web);
  const options: FastifyServerOptions = {
    loggerInstance: context.logger.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: context.config.bodyLimit,
    // X-Forwarded-* is believed only from proxies the deployment declared (--trust-proxy).
    trustProxy: context.config.web.trustProxy,
    // Closing is answered below, with `Connection: close`, so keep-alive clients let go.
    return503OnClosing: false,
    routerOptions: { maxParamLength: 500 },
  };
  // With --tls-cert/--tls-key the server speaks HTTPS (same API, so the type is the plain one).
  const app = (https
    ? Fastify({ ...options, https } as FastifyHttpsOptions<HttpsServer>)
    : Fastify(options)) as unknown as FastifyInstance;
  // Every route, with the action its guard checks, for the route × role matrix test.
  recordRoutes(app, context);

  app.setValidatorCompiler(({ schema, httpPart }) => {
    return (data: unknown) => {
      // Path and query values arrive as text: convert them to the schema's types first.
      const value = httpPart === 'body' ? data : Value.Convert(schema as TSchema, data);
      if (Value.Check(schema as TSchema, value)) return { value };
      // The same messages as for flow files: "unknown field "parms" (did you mean "params"?)".
      const problems = schemaProblems(schema as TSchema, value).map((problem) =>
        problem.path.length > 0
          ? `${httpPart} ${formatPath(problem.path)}: ${problem.message}`
          : `${httpPart}: ${problem.message}`,
      );
      const message = problems.join('; ') || `${httpPart} is invalid`;
      return { error: Object.assign(new Error(message), { statusCode: 400, code: 'INVALID_REQUEST' }) };
    };
  });
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  // Once shutdown begins, every answer closes its connection, and new requests get 503: a
  // keep-alive client would otherwise hold the server open until its idle timeout.
  app.addHook('onRequest', async (_request, reply) => {
    if (context.isAccepting()) return;
    reply.header('connection', 'close');
    if (context.isStarted()) {
      await reply
        .code(503)
        .send({ error: { code: 'SHUTTING_DOWN', message: 'the server is shutting down; retry shortly' } });
    }
  });

  // A response that goes out after shutdown began (its request came just before) closes its
  // connection too, so no keep-alive connection stays open once the answers are out.
  app.addHook('onSend', async (_request, reply, payload) => {
    if (!context.isAccepting() && context.isStarted()) reply.header('connection', 'close');
    return payload;
  });

  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });

  app.setErrorHandler(async (error, request, reply) => {
    if (error instanceof RetryLater)
      reply.header('retry-after', String(Math.ceil(error.retryAfterMs / 1000)));
    const { status, body } = errorResponse(error);
    if (status >= 500 && status !== 503) request.log.error({ code: body.error.code }, 'request failed');
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler(async (request, reply) =>
    reply.code(404).send({
      error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` },
    }),
  );

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Lethe API',
        version: '1',
        description: 'Flows, runs, the dead-letter queue, connections and webhooks of a Lethe server.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'lethe token create' },
          session: {
            type: 'apiKey',
            in: 'cookie',
            name: '__Host-lethe_session',
            description:
              'The console session (POST /api/v1/auth/login); requests that change something also send x-csrf-token',
          },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
  });

  await registerWebSecurity(app);
  await app.register(healthPlugin, context);
  await app.register(hooksPlugin, context);
  await app.register(
    async (api) => {
      const limit = limitRequests(api, context.config.web.rateLimit.api);
      if (limit) api.addHook('onRequest', limit);
      await api.register(apiPlugin, context);
    },
    { prefix: API_PREFIX },
  );
  // Signing in and out, outside the workspace API (its routes are not workspace-guarded).
  await app.register(
    async (auth) => {
      await auth.register(accountPlugin, context);
    },
    { prefix: `${API_PREFIX}/auth` },
  );
  await app.register(async (pages) => {
    const limit = limitRequests(pages, context.config.web.rateLimit.api);
    if (limit) pages.addHook('onRequest', limit);
    await pages.register(consolePlugin, context);
  });

  app.get(
    `${API_PREFIX}/openapi.json`,
    { schema: { hide: true }, onRequest: async (request) => void (await authenticate(context, request)) },
    async () => app.swagger(),
  );
  return app;
}
