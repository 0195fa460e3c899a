/**
 * An HTTP session (loaded only when a flow uses an http connection). It owns one egress HTTP
 * client — every connection and redirect checked by the egress layer — and sends each request
 * with the connection's auth and headers, retrying on 429, 502, 503, 504 and network errors
 * with exponential back-off that honours `Retry-After`, within bounds.
 *
 * Network errors are retried for every method only when nothing can have reached the server
 * (the connection was refused or never made); otherwise only for idempotent methods, so a POST
 * is never sent twice by a retry. Messages name the connection, the method and the path —
 * never a body, a secret or the API key of a query.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  currentEgress,
  HttpConnectionError,
  type EgressHttpClient,
  type HttpResponse,
} from '../../egress/index.js';
import { LetheError } from '../../errors/index.js';
import type { Table } from '../../table/index.js';
import type { ConnectionConfig, IoContext, ReadRequest, WriteRequest, WriteResult } from '../connector.js';
import { cancelled, connectionLabel } from '../sql/errors.js';
import { checkSettings } from '../sql/settings.js';
import { redactValues } from '../sql/values.js';
import { readHttp } from './read.js';
import type { HttpReadRequest, HttpSessionApi, HttpWriteRequest, QueryValue } from './request.js';
import { authHeaderOf, httpSettingsSchema, resolveHttpEndpoint, type HttpEndpoint } from './settings.js';
import { writeHttp } from './write.js';

const RETRY_STATUSES = new Set([429, 502, 503, 504]);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);
/** Network failures that happen before any byte of the request is sent. */
const NOTHING_SENT = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export interface CallOptions {
  method: string;
  /** A path relative to the base URL, or a URL on the base URL's origin (next-page links). */
  target: string | URL;
  query?: Record<string, QueryValue>;
  headers?: Record<string, string>;
  /** JSON text. */
  body?: string;
}

export interface CallResult {
  response: HttpResponse;
  /** `GET /v2/users?page=2`, for messages (the API key of a query redacted). */
  described: string;
  /** How many retries it took. */
  retries: number;
}

/** Seconds, or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^[0-9]+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

class HttpSession implements HttpSessionApi {
  readonly kind = 'http';
  private closed = false;

  constructor(
    readonly endpoint: HttpEndpoint,
    private readonly client: EgressHttpClient,
    readonly label: string,
  ) {}

  read(request: ReadRequest): Promise<Table> {
    const used = request.kind === 'query' ? 'sql' : 'table';
    return Promise.reject(
      new LetheError(
        'SOURCE_ERROR',
        `${this.label} is an HTTP connection: it reads with "request", not "${used}"`,
        {
          hint: 'input: { connection, request: { path: /items } }',
        },
      ),
    );
  }

  write(_request: WriteRequest): Promise<WriteResult> {
    return Promise.reject(
      new LetheError(
        'SINK_ERROR',
        `${this.label} is an HTTP connection: it writes with "request", not "table"`,
        {
          hint: 'output: { from, connection, request: { method: POST, path: /items } }',
        },
      ),
    );
  }

  fetchTable(request: HttpReadRequest, context: IoContext): Promise<Table> {
    this.assertOpen();
    return readHttp(this, request, context);
  }

  send(request: HttpWriteRequest, table: Table, context: IoContext): Promise<WriteResult> {
    this.assertOpen();
    return writeHttp(this, request, table, context);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new LetheError('CONNECTION_ERROR', `${this.label} is closed`);
  }

  /** The URL of a path (joined to the base path) or of a same-origin URL, with the query and API key. */
  url(target: string | URL, query: Record<string, QueryValue> = {}): URL {
    const base = this.endpoint.baseUrl;
    let url: URL;
    if (target instanceof URL) {
      url = new URL(target.href);
    } else {
      const basePath = base.pathname.replace(/\/+$/, '');
      const path = target.replace(/^\/+/, '');
      url = new URL(base.href);
      url.pathname = path === '' ? basePath || '/' : `${basePath}/${path}`;
    }
    if (url.origin !== base.origin) {
      throw new LetheError(
        'SOURCE_ERROR',
        `${this.label}: refused to follow a link to ${url.origin}, outside the connection's ${base.origin}`,
        {
          hint: "the connection's credentials are only sent to its own origin",
        },
      );
    }
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, String(value));
    const auth = this.endpoint.auth;
    if (auth.type === 'apiKey' && auth.in === 'query') url.searchParams.set(auth.name, auth.value);
    return url;
  }

  /** `GET /v2/users?page=2` with the API key's value (and any secret) redacted. */
  describe(method: string, url: URL): string {
    const shown = new URL(url.href);
    const auth = this.endpoint.auth;
    if (auth.type === 'apiKey' && auth.in === 'query' && shown.searchParams.has(auth.name)) {
      shown.searchParams.set(auth.name, 'redacted');
    }
    return redactValues(`${method} ${shown.pathname}${shown.search}`, this.endpoint.secrets);
  }

  private headers(extra: Record<string, string> = {}, hasBody: boolean): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json', ...this.endpoint.headers };
    const auth = this.endpoint.auth;
    const authHeader = authHeaderOf(auth);
    for (const [name, value] of Object.entries(extra)) {
      if (name.toLowerCase() === authHeader) {
        throw new LetheError(
          'SOURCE_ERROR',
          `${this.label}: the request sets the header "${name}", which the connection's auth sets`,
          {
            hint: 'remove it from the request headers',
          },
        );
      }
      headers[name] = value;
    }
    if (hasBody && !Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json';
    }
    if (auth.type === 'basic' || auth.type === 'bearer') headers.authorization = auth.header;
    else if (auth.type === 'apiKey' && auth.in === 'header') headers[auth.name] = auth.value;
    return headers;
  }

  private credentialHeaders(): string[] {
    const auth = this.endpoint.auth;
    return auth.type === 'apiKey' && auth.in === 'header' ? [auth.name] : [];
  }

  /** Send one request, with retries; the answer whatever its status (after the last retry). */
  async call(options: CallOptions, context: IoContext): Promise<CallResult> {
    const method = options.method.toUpperCase();
    const url = this.url(options.target, options.query);
    const described = this.describe(method, url);
    const headers = this.headers(options.headers, options.body !== undefined);
    const { retries, retryDelayMs, retryMaxDelayMs } = this.endpoint;
    for (let attempt = 0; ; attempt++) {
      if (context.signal.aborted) throw cancelled();
      let response: HttpResponse | undefined;
      try {
        response = await this.client.send({
          method,
          url,
          headers,
          ...(options.body !== undefined ? { body: options.body } : {}),
          signal: context.signal,
          timeoutMs: this.endpoint.timeoutMs,
          maxRedirects: this.endpoint.maxRedirects,
          maxResponseBytes: this.endpoint.maxResponseBytes,
          credentialHeaders: this.credentialHeaders(),
        });
      } catch (error) {
        if (context.signal.aborted) throw cancelled();
        const safe =
          error instanceof HttpConnectionError &&
          error.retriable &&
          (IDEMPOTENT.has(method) || NOTHING_SENT.has(error.systemCode ?? ''));
        if (!safe || attempt >= retries) {
          // The client's messages name the origin only; the redaction is a second line of defence.
          if (
            !(error instanceof LetheError) ||
            (attempt === 0 && error.message === redactValues(error.message, this.endpoint.secrets))
          ) {
            throw error;
          }
          const after = attempt > 0 ? ` (after ${attempt} ${attempt === 1 ? 'retry' : 'retries'})` : '';
          throw new LetheError(error.code, `${redactValues(error.message, this.endpoint.secrets)}${after}`, {
            hint: error.details.hint,
            cause: error,
          });
        }
        // A network failure worth another attempt: back off below.
      }
      if (response !== undefined && (!RETRY_STATUSES.has(response.status) || attempt >= retries)) {
        return { response, described, retries: attempt };
      }
      const backoff = Math.min(retryDelayMs * 2 ** attempt, retryMaxDelayMs);
      let delay = backoff;
      if (response !== undefined) {
        const asked = retryAfterMs(response.headers['retry-after']);
        if (asked !== undefined && asked > retryMaxDelayMs) {
          throw new LetheError(
            'CONNECTION_ERROR',
            `${this.label} answered ${response.status} to ${described} and asked to retry after ${Math.ceil(asked / 1000)} s, longer than retryMaxDelayMs (${retryMaxDelayMs} ms)`,
            { hint: 'raise retryMaxDelayMs to wait that long, or run the flow later' },
          );
        }
        if (asked !== undefined) delay = asked;
      }
      try {
        await sleep(delay, undefined, { signal: context.signal });
      } catch {
        throw cancelled();
      }
    }
  }
}

export type { HttpSession };

export async function openHttpSession(connection: ConnectionConfig): Promise<HttpSession> {
  const settings = checkSettings(httpSettingsSchema, connection);
  const label = connectionLabel('HTTP', connection.name);
  const endpoint = await resolveHttpEndpoint(settings, connection, label);
  // The egress of the run opening the session (its workspace's allow-list), or the deployment's.
  const client = currentEgress().httpClient({ label, tls: endpoint.tls });
  return new HttpSession(endpoint, client, label);
}
