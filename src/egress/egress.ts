/**
 * Egress: the one object through which Lethe opens outbound connections. It holds the policy
 * (./policy.ts) and how connections leave the machine: from a fixed source address, or through
 * an HTTP(S) proxy. Connectors ask it to check a host before they connect (databases) or send
 * their HTTP requests through its client (./http.ts), which checks every connection and every
 * redirect itself.
 */
import { isIP } from 'node:net';
import { LetheError } from '../errors/index.js';
import { EgressHttpClient, type HttpClientOptions } from './http.js';
import { EgressPolicy, EgressRefusal, type Destination, type PolicyOptions } from './policy.js';
import type { Resolve } from './resolver.js';

export interface EgressOptions extends PolicyOptions {
  /** Bind outbound TCP connections to this local address (a "persistent IP"). */
  sourceAddress?: string;
  /** Send HTTP(S) through this proxy (http:// or https://, credentials in the URL if needed). */
  proxy?: string;
}

/** The name the HTTP requests of a URL go to, and its port. */
export interface UrlTarget {
  host: string;
  port: number;
}

export class Egress {
  readonly policy: EgressPolicy;
  readonly sourceAddress: string | undefined;
  readonly proxy: URL | undefined;

  constructor(options: EgressOptions = {}, policy?: EgressPolicy) {
    this.policy = policy ?? new EgressPolicy(options);
    if (options.sourceAddress !== undefined && isIP(options.sourceAddress) === 0) {
      throw new LetheError(
        'CONNECTION_ERROR',
        `the egress source address "${options.sourceAddress}" is not an IP address`,
        { hint: 'LETHE_EGRESS_SOURCE_ADDRESS must be an address of this machine, e.g. 203.0.113.7' },
      );
    }
    this.sourceAddress = options.sourceAddress;
    this.proxy = options.proxy === undefined ? undefined : parseProxy(options.proxy);
  }

  /** The same deployment settings with a workspace's allow-list (and, for tests, a resolver). */
  withWorkspaceAllow(entries: readonly string[] | string, resolve?: Resolve): Egress {
    return new Egress(
      { sourceAddress: this.sourceAddress, proxy: this.proxy?.href },
      this.policy.withWorkspaceAllow(entries, resolve),
    );
  }

  /** Resolve and check a TCP destination; connect to the addresses it returns, and only those. */
  check(host: string, port: number, label?: string): Promise<Destination> {
    return this.policy.check(host, port, label);
  }

  /** Check a Unix socket path (only the deployment allow-list opens one). */
  checkSocket(path: string, label?: string): void {
    this.policy.checkSocket(path, label);
  }

  /** Check what can be checked of a URL without resolving it: scheme and user info. */
  checkUrl(url: URL, label?: string): UrlTarget {
    const prefix = label === undefined ? '' : `${label}: `;
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new EgressRefusal(
        `${prefix}refused the scheme "${url.protocol}"${host ? ` (a URL to "${host}")` : ''}: only http and https are allowed`,
        host,
      );
    }
    if (url.username !== '' || url.password !== '') {
      throw new EgressRefusal(
        `${prefix}refused a URL to "${host}" with user info ("…@" before the host): it can disguise the real host; give credentials in the connection's auth settings`,
        host,
      );
    }
    if (host === '') throw new EgressRefusal(`${prefix}refused a URL without a host`, host);
    return { host, port: Number(url.port) || (url.protocol === 'https:' ? 443 : 80) };
  }

  /** An HTTP client whose every connection goes through this egress. Close it when done. */
  httpClient(options: HttpClientOptions): EgressHttpClient {
    return new EgressHttpClient(this, options);
  }
}

function parseProxy(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new LetheError('CONNECTION_ERROR', 'the egress proxy (LETHE_EGRESS_PROXY) is not a valid URL', {
      hint: 'write it as http://proxy.internal:3128 (or https://, with user:password@ if it needs them)',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new LetheError(
      'CONNECTION_ERROR',
      `the egress proxy must be an http:// or https:// URL, not ${url.protocol}`,
    );
  }
  return url;
}
