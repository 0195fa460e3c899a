/**
 * Name resolution for the egress layer: every A and AAAA record of a name, so that each can be
 * checked. The system resolver (getaddrinfo: /etc/hosts, then DNS) is the default; a deployment
 * may name DNS servers instead (`LETHE_EGRESS_DNS`), and tests point one at a local server.
 */
import { promises as dns } from 'node:dns';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** All addresses of a host name (never an IP literal: those are not resolved). */
export type Resolve = (host: string) => Promise<ResolvedAddress[]>;

/** getaddrinfo, as every other program on the machine resolves names, in the order it gives. */
export const systemResolve: Resolve = async (host) => {
  const found = await dns.lookup(host, { all: true, verbatim: true });
  return found.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
};

const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND', 'NOTFOUND', 'ENONAME']);

/**
 * A resolver that asks these DNS servers (`"10.0.0.53"`, `"127.0.0.1:5353"`, `"[::1]:53"`)
 * for A and AAAA records, ignoring /etc/hosts.
 */
export function resolverUsingServers(servers: readonly string[], timeoutMs = 5000): Resolve {
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries: 2 });
  resolver.setServers([...servers]);
  const ask = async (family: 4 | 6, host: string): Promise<ResolvedAddress[] | Error> => {
    try {
      const addresses = family === 4 ? await resolver.resolve4(host) : await resolver.resolve6(host);
      return addresses.map((address) => ({ address, family }));
    } catch (error) {
      if (NO_RECORDS.has((error as { code?: string }).code ?? '')) return [];
      return error as Error;
    }
  };
  return async (host) => {
    const [v4, v6] = await Promise.all([ask(4, host), ask(6, host)]);
    if (v4 instanceof Error && v6 instanceof Error) throw v4;
    const found = [...(v4 instanceof Error ? [] : v4), ...(v6 instanceof Error ? [] : v6)];
    if (found.length === 0 && (v4 instanceof Error || v6 instanceof Error)) {
      throw v4 instanceof Error ? v4 : v6;
    }
    if (found.length === 0) {
      throw Object.assign(new Error(`queryA ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
    }
    return found;
  };
}
