/**
 * HTTP through the egress layer (undici). Every connection the client opens goes through one
 * `connect` hook that resolves the host, checks every address against the policy, and connects
 * to exactly the address that passed — by IP, with the original name kept for SNI, certificate
 * checks and the Host header — so the answer the check saw is the address used (no DNS
 * rebinding). Through a proxy, the hook asks the proxy for a CONNECT tunnel to the checked
 * address, so the proxy never resolves the name itself.
 *
 * Redirects are followed here, never by undici: each hop's URL is checked (http/https, no user
 * info, no https → http downgrade) and its connection goes through the hook again. Credentials
 * (Authorization, Cookie and the caller's credential headers) are dropped when a redirect
 * leaves the origin. Answers are read into memory up to a size limit.
 *
 * Messages name the connection, the host and the reason; never a request body, a query string
 * (it may hold an API key) or a secret.
 */
import { request as httpRequest, STATUS_CODES } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { Agent, buildConnector, request as undiciRequest, type Dispatcher } from 'undici';
import { LetheError } from '../errors/index.js';
import type { Egress } from './egress.js';
import { EgressRefusal } from './policy.js';
import { tlsConnectOptions, type TlsSettings } from './tls.js';

export interface HttpClientOptions {
  /** Names the connection in messages: `HTTP connection "crm"`. */
  label: string;
  /** TLS for https:// URLs (default verify-full with the system's CAs). */
  tls?: TlsSettings;
  /** How long to wait for a TCP/TLS connection (default 10 s). */
  connectTimeoutMs?: number;
}

export interface HttpRequestOptions {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
  /** For the headers and for each pause in the body (default 30 s). */
  timeoutMs?: number;
  /** Redirects followed before giving up (default 5; 0 follows none). */
  maxRedirects?: number;
  /** Largest answer body read, in bytes (default 64 MiB). */
  maxResponseBytes?: number;
  /** Header names dropped when a redirect leaves the origin (besides Authorization and Cookie). */
  credentialHeaders?: readonly string[];
}

export interface HttpResponse {
  status: number;
  /** `Not Found` */
  statusText: string;
  headers: Record<string, string | string[] | undefined>;
  /** The URL that answered (after redirects). */
  url: URL;
  body: Buffer;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const ALWAYS_CREDENTIALS = ['authorization', 'cookie', 'proxy-authorization'];
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_REDIRECTS = 5;
const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Failures of the network (not of the policy): worth a retry when `retriable`. */
export class HttpConnectionError extends LetheError {
  constructor(
    message: string,
    readonly systemCode: string | undefined,
    readonly retriable: boolean,
    details: { cause?: unknown; hint?: string } = {},
  ) {
    super('CONNECTION_ERROR', message, details);
  }
}

const RETRIABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);
/** Connection failures after which the next address of the host is tried. */
const NEXT_ADDRESS_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The egress refusal or Lethe error inside whatever undici wrapped it in. */
function findLetheError(error: unknown): LetheError | undefined {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (current instanceof LetheError) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** `https://api.example:8443` — the origin only: paths and queries may hold secrets. */
function origin(url: URL): string {
  return url.origin;
}

export class EgressHttpClient {
  private readonly dispatcher: Dispatcher;
  private readonly label: string;

  constructor(
    private readonly egress: Egress,
    options: HttpClientOptions,
  ) {
    this.label = options.label;
    const tls = tlsConnectOptions(options.tls ?? { mode: 'verify-full' });
    const base = buildConnector({ ...tls, timeout: options.connectTimeoutMs ?? 10_000 });
    this.dispatcher = new Agent({
      connect: (connectOptions, callback) => {
        this.connect(base, connectOptions, callback);
      },
    });
  }

  /** The guarded connect hook: check, then connect to a checked address (directly or by tunnel). */
  private connect(
    base: buildConnector.connector,
    options: buildConnector.Options,
    callback: buildConnector.Callback,
  ): void {
    const https = options.protocol === 'https:';
    const port = Number(options.port) || (https ? 443 : 80);
    const localAddress = this.egress.sourceAddress ?? options.localAddress ?? null;
    this.egress.check(options.hostname, port, this.label).then(
      (destination) => {
        const attempt = (index: number): void => {
          const { address } = destination.addresses[index]!;
          const done: buildConnector.Callback = (...args) => {
            const [error] = args;
            if (
              error &&
              index + 1 < destination.addresses.length &&
              NEXT_ADDRESS_CODES.has(errorCode(error) ?? '')
            ) {
              attempt(index + 1);
            } else {
              callback(...args);
            }
          };
          const direct = { ...options, hostname: address, localAddress };
          if (destination.servername !== undefined) direct.servername = destination.servername;
          if (!this.egress.proxy) {
            base(direct, done);
            return;
          }
          this.tunnel(address, port, options.host ?? options.hostname).then(
            (socket) => (https ? base({ ...direct, httpSocket: socket }, done) : done(null, socket)),
            (error: Error) => done(error, null),
          );
        };
        attempt(0);
      },
      (error: Error) => callback(error, null),
    );
  }

  /** A CONNECT tunnel through the proxy to a checked address. */
  private tunnel(address: string, port: number, host: string): Promise<Socket> {
    const proxy = this.egress.proxy!;
    const target = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    const headers: Record<string, string> = { host };
    if (proxy.username !== '') {
      const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
      headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
    }
    const make = proxy.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const request = make({
        host: proxy.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: Number(proxy.port) || (proxy.protocol === 'https:' ? 443 : 80),
        method: 'CONNECT',
        path: target,
        headers,
        agent: false,
        ...(this.egress.sourceAddress ? { localAddress: this.egress.sourceAddress } : {}),
        timeout: 10_000,
      });
      request.once('connect', (response, socket) => {
        if (response.statusCode === 200) {
          resolve(socket);
        } else {
          socket.destroy();
          reject(
            new HttpConnectionError(
              `${this.label}: the egress proxy refused a tunnel to ${host} (${response.statusCode})`,
              undefined,
              response.statusCode === 502 || response.statusCode === 503,
              { hint: 'the proxy must allow CONNECT to this port' },
            ),
          );
        }
      });
      request.once('timeout', () =>
        request.destroy(Object.assign(new Error('proxy timeout'), { code: 'ETIMEDOUT' })),
      );
      request.once('error', reject);
      request.end();
    });
  }

  /** Send a request, following redirects (each checked); the answer whatever its status. */
  async send(request: HttpRequestOptions): Promise<HttpResponse> {
    const maxRedirects = request.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
    const credentials = new Set([
      ...ALWAYS_CREDENTIALS,
      ...(request.credentialHeaders ?? []).map((h) => h.toLowerCase()),
    ]);
    let url = request.url;
    let method = request.method.toUpperCase();
    let body = request.body;
    let headers: Record<string, string> = { ...request.headers };
    let previous: URL | undefined;
    for (let hop = 0; ; hop++) {
      let response: HttpResponse;
      try {
        this.egress.checkUrl(url, this.label);
        response = await this.once(method, url, headers, body, request);
      } catch (error) {
        // Say where a refused hop came from: the first URL may be fine, the redirect not.
        if (hop > 0 && error instanceof EgressRefusal) {
          throw new EgressRefusal(`${error.message} (redirected to by ${origin(previous!)})`, error.host);
        }
        throw error;
      }
      const location = response.headers.location;
      if (!REDIRECTS.has(response.status) || typeof location !== 'string') return response;
      if (hop >= maxRedirects) {
        throw new LetheError(
          'CONNECTION_ERROR',
          maxRedirects === 0
            ? `${this.label}: ${origin(url)} answered with a redirect (${response.status}), and this connection follows none`
            : `${this.label}: more than ${maxRedirects} redirects, starting at ${origin(request.url)}`,
          { hint: 'point the connection at the final address, or raise maxRedirects' },
        );
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new LetheError(
          'CONNECTION_ERROR',
          `${this.label}: ${origin(url)} redirected to an invalid URL`,
        );
      }
      if (url.protocol === 'https:' && next.protocol === 'http:') {
        throw new EgressRefusal(
          `${this.label}: refused a redirect from https to http (${origin(url)} → ${origin(next)}): it would send the request unencrypted`,
          next.hostname,
        );
      }
      if (next.origin !== url.origin) {
        headers = Object.fromEntries(
          Object.entries(headers).filter(([name]) => !credentials.has(name.toLowerCase())),
        );
      }
      if (
        (response.status === 303 && method !== 'HEAD') ||
        ((response.status === 301 || response.status === 302) && method === 'POST')
      ) {
        method = 'GET';
        body = undefined;
        headers = Object.fromEntries(
          Object.entries(headers).filter(([name]) => !/^content-(type|length|encoding)$/i.test(name)),
        );
      }
      previous = url;
      url = next;
    }
  }

  private async once(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: string | Buffer | undefined,
    options: HttpRequestOptions,
  ): Promise<HttpResponse> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const limit = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    if (options.signal?.aborted) throw new LetheError('CANCELLED', 'the run was cancelled');
    try {
      const response = await undiciRequest(url, {
        dispatcher: this.dispatcher,
        method: method as Dispatcher.HttpMethod,
        headers,
        body,
        signal: options.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of response.body) {
        size += (chunk as Buffer).length;
        if (size > limit) {
          response.body.destroy();
          throw new LetheError(
            'SOURCE_ERROR',
            `${this.label}: the answer of ${origin(url)} is larger than ${limit} bytes`,
            { hint: 'raise maxResponseBytes, or ask for smaller pages' },
          );
        }
        chunks.push(chunk as Buffer);
      }
      return {
        status: response.statusCode,
        statusText: STATUS_CODES[response.statusCode] ?? '',
        headers: response.headers,
        url,
        body: Buffer.concat(chunks),
      };
    } catch (error) {
      if (options.signal?.aborted) throw new LetheError('CANCELLED', 'the run was cancelled');
      const lethe = findLetheError(error);
      if (lethe) throw lethe;
      const code = errorCode(error) ?? errorCode((error as { cause?: unknown }).cause);
      const timeout = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
      const certificate = /CERT|SSL|TLS|ALTNAME|SELF_SIGNED|UNABLE_TO_VERIFY/i.test(code ?? '');
      throw new HttpConnectionError(
        timeout
          ? `${this.label}: no answer from ${origin(url)} within ${timeoutMs} ms`
          : `${this.label}: cannot reach ${origin(url)}: ${(error as Error).message}${code && !(error as Error).message.includes(code) ? ` (${code})` : ''}`,
        code,
        RETRIABLE_CODES.has(code ?? ''),
        {
          cause: error,
          hint: certificate
            ? "the server's certificate could not be verified: give its CA (caCert), use tls: verify-ca if only the name differs, or tls: require to encrypt without verifying"
            : timeout
              ? 'raise timeoutMs if the server is slow'
              : 'is the server running and reachable from here?',
        },
      );
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
