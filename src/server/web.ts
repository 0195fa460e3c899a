/**
 * Web hardening (SPEC §7): security headers on every response (@fastify/helmet), a strict
 * Content-Security-Policy — `default-src 'none'` for everything, and for the console's pages a
 * per-response nonce with `'strict-dynamic'` — HSTS whenever the request arrived over TLS
 * (this server's own, or a proxy declared trusted that says `X-Forwarded-Proto: https`), rate
 * limits per client address (@fastify/rate-limit), and the cross-site checks for requests that
 * carry ambient credentials (a session cookie): Fetch Metadata and Origin.
 */
import { readFileSync } from 'node:fs';
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify';
import { LetheError } from '../errors/index.js';
import type { ServerContext } from './context.js';
import { HttpError } from './http-errors.js';
import type { WebConfig } from './web-config.js';

/** The HTTPS options for Fastify when TLS is configured (the files are read at start). */
export function httpsOptions(config: WebConfig): { cert: Buffer; key: Buffer } | undefined {
  if (!config.tlsCert || !config.tlsKey) return undefined;
  try {
    return { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) };
  } catch (error) {
    throw new LetheError('USAGE', `cannot read the TLS certificate or key: ${(error as Error).message}`);
  }
}

/** HSTS: a year, subdomains included (SPEC §7). */
export const HSTS = 'max-age=31536000; includeSubDomains';

/** What every response gets unless a route says otherwise: nothing may load, frame or post. */
const DEFAULT_CSP = {
  'default-src': ["'none'"],
  'base-uri': ["'none'"],
  'frame-ancestors': ["'none'"],
  'form-action': ["'none'"],
};

/**
 * The policy of the console's pages; helmet adds this response's nonces to script-src and
 * style-src. `'strict-dynamic'` lets only nonce'd scripts run (and what they load).
 */
export const PAGE_HELMET: Omit<FastifyHelmetOptions, 'global'> = {
  enableCSPNonces: true,
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      'default-src': ["'none'"],
      'script-src': ["'strict-dynamic'"],
      'style-src': [],
      'connect-src': ["'self'"],
      'img-src': ["'self'"],
      'form-action': ["'self'"],
      'object-src': ["'none'"],
      'base-uri': ["'none'"],
      'frame-ancestors': ["'none'"],
    },
  },
};

/** A 429 (or 423) that says when to come back (Retry-After, in whole seconds). */
export class RetryLater extends HttpError {
  constructor(
    readonly retryAfterMs: number,
    code: string,
    message: string,
  ) {
    const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    super(429, code, message, `try again in ${seconds} second${seconds === 1 ? '' : 's'}`);
  }
}

/** Helmet, HSTS and the rate limiter (its limits are applied per scope: see `limitRequests`). */
export async function registerWebSecurity(app: FastifyInstance): Promise<void> {
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: { useDefaults: false, directives: DEFAULT_CSP },
    // Sent only over TLS, below.
    strictTransportSecurity: false,
    xFrameOptions: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    crossOriginOpenerPolicy: { policy: 'same-origin' },
  });
  app.addHook('onRequest', async (request, reply) => {
    if (request.protocol === 'https') reply.header('strict-transport-security', HSTS);
  });
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new RetryLater(context.ttl, 'RATE_LIMITED', 'too many requests from this address'),
  });
}

/** A hook limiting a scope to `max` requests per minute per client address (none when 0). */
export function limitRequests(app: FastifyInstance, max: number): onRequestHookHandler | undefined {
  if (max <= 0) return undefined;
  return app.rateLimit({ max, timeWindow: 60_000 });
}

/** This server's origin: LETHE_PUBLIC_URL's, or the one the request was addressed to. */
export function ownOrigin(context: ServerContext, request: FastifyRequest): string {
  const configured = context.config.web.publicUrl;
  if (configured) return new URL(configured).origin;
  return `${request.protocol}://${request.host}`;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method);
}

/**
 * Refuse a request a browser made on another site's behalf: `Sec-Fetch-Site` other than
 * same-origin or none (typed by the person), or an Origin that is not this server's.
 */
export function refuseCrossSite(context: ServerContext, request: FastifyRequest): void {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new HttpError(
      403,
      'CROSS_SITE_REQUEST',
      `a ${String(site)} request may not use the console session`,
      'call the API with Authorization: Bearer <token> from other sites and scripts',
    );
  }
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== ownOrigin(context, request)) {
    throw new HttpError(
      403,
      'CROSS_SITE_REQUEST',
      'the request comes from another origin',
      'LETHE_PUBLIC_URL must be the address the console is opened at',
    );
  }
}
