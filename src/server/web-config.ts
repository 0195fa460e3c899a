/**
 * The web settings of `lethe serve`: its public address, TLS, which proxies to believe, and
 * rate limits (flags win over LETHE_* variables). Used by ./web.ts.
 */
import { LetheError } from '../errors/index.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface WebConfig {
  /** The console's public address (LETHE_PUBLIC_URL); its origin is what Origin headers must be. */
  publicUrl: string | undefined;
  /** PEM files: with both, the server speaks HTTPS (and sends HSTS). */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** Proxies whose X-Forwarded-* headers are believed: true (any), or addresses/networks. */
  trustProxy: boolean | string;
  /** Requests per minute per client address: the API and console, and sign-in-like routes. */
  rateLimit: { api: number; auth: number };
}

export interface WebFlags {
  tlsCert?: string;
  tlsKey?: string;
  trustProxy?: boolean | string;
}

function perMinute(env: Env, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0 || number > 1_000_000) {
    throw new LetheError('USAGE', `${name} must be a whole number of requests per minute (0: no limit)`);
  }
  return number;
}

export function webConfigFromEnv(flags: WebFlags = {}, env: Env = process.env): WebConfig {
  const publicUrl = env.LETHE_PUBLIC_URL || undefined;
  if (publicUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(publicUrl);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new LetheError('USAGE', `LETHE_PUBLIC_URL must be an http(s) URL, not "${publicUrl}"`);
    }
  }
  const tlsCert = flags.tlsCert ?? (env.LETHE_TLS_CERT || undefined);
  const tlsKey = flags.tlsKey ?? (env.LETHE_TLS_KEY || undefined);
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new LetheError('USAGE', 'TLS needs both a certificate and a key: --tls-cert and --tls-key');
  }
  let trustProxy: boolean | string = flags.trustProxy ?? false;
  if (flags.trustProxy === undefined && env.LETHE_TRUST_PROXY) {
    const value = env.LETHE_TRUST_PROXY.trim();
    trustProxy = /^(1|true|yes)$/i.test(value) ? true : /^(0|false|no)$/i.test(value) ? false : value;
  }
  return {
    publicUrl,
    tlsCert,
    tlsKey,
    trustProxy,
    rateLimit: {
      api: perMinute(env, 'LETHE_RATE_LIMIT', 6000),
      auth: perMinute(env, 'LETHE_RATE_LIMIT_AUTH', 30),
    },
  };
}
