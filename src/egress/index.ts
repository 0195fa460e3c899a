/**
 * egress — every outbound connection Lethe makes goes through here (SPEC 7, "Egress and SSRF").
 *
 * - ./policy.ts decides: names are resolved to every A/AAAA address and each is checked;
 *   loopback, private, link-local, CGNAT, multicast, ULA, metadata… are refused unless an
 *   allow-list opens them (the deployment's, or the workspace's);
 * - ./http.ts sends HTTP (undici) with a connect hook that connects to exactly the checked
 *   address, and follows redirects itself, checking each hop;
 * - database connectors call `check` and connect to the address it returns;
 * - ./tls.ts holds the TLS modes and client certificates.
 *
 * The deployment configures it from the environment (`egressFromEnvironment`):
 * `LETHE_EGRESS_ALLOW`, `LETHE_EGRESS_DENY` (entries as in ./rules.ts),
 * `LETHE_EGRESS_SOURCE_ADDRESS` (fixed source address), `LETHE_EGRESS_PROXY` (HTTP(S) proxy),
 * `LETHE_EGRESS_DNS` (DNS servers instead of the system resolver).
 *
 * Whoever runs a workspace's flow passes the workspace's allow-list in with `runWithEgress`:
 *
 *     runWithEgress(egressFromEnvironment().withWorkspaceAllow(workspace.egressAllow), () => runFlow(…))
 *
 * Connectors take `currentEgress()` when they open a session: the scope's, or the deployment's.
 *
 * May import: errors.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Egress } from './egress.js';
import { resolverUsingServers } from './resolver.js';

export { Egress, type EgressOptions, type UrlTarget } from './egress.js';
export {
  EgressHttpClient,
  HttpConnectionError,
  type HttpClientOptions,
  type HttpRequestOptions,
  type HttpResponse,
} from './http.js';
export {
  ALLOW_VARIABLE,
  DENY_VARIABLE,
  EgressPolicy,
  EgressRefusal,
  describeTarget,
  type Destination,
  type PolicyOptions,
} from './policy.js';
export {
  classifyAddress,
  embeddedIPv4,
  METADATA_ADDRESSES,
  METADATA_NAMES,
  type AddressKind,
} from './ranges.js';
export { checkTcpTarget, type TcpTarget } from './tcp.js';
export { resolverUsingServers, systemResolve, type Resolve, type ResolvedAddress } from './resolver.js';
export { parseRules, type EgressRule } from './rules.js';
export {
  checkClientCertificate,
  TLS_MODES,
  tlsConnectOptions,
  type TlsMaterial,
  type TlsMode,
  type TlsSettings,
} from './tls.js';

export const EGRESS_VARIABLES = [
  'LETHE_EGRESS_ALLOW',
  'LETHE_EGRESS_DENY',
  'LETHE_EGRESS_SOURCE_ADDRESS',
  'LETHE_EGRESS_PROXY',
  'LETHE_EGRESS_DNS',
] as const;

type Environment = Readonly<Record<string, string | undefined>>;

let cached: { key: string; egress: Egress } | undefined;

/**
 * The deployment's egress, from the environment. Parsed again only when one of the variables
 * changes; a wrong entry is an error naming the variable and the entry.
 */
export function egressFromEnvironment(env: Environment = process.env): Egress {
  const values = EGRESS_VARIABLES.map((name) => env[name]?.trim() || undefined);
  const key = JSON.stringify(values);
  if (cached?.key === key) return cached.egress;
  const [allow, deny, sourceAddress, proxy, dns] = values;
  const servers = dns?.split(/[\s,]+/).filter(Boolean);
  const egress = new Egress({
    allow,
    deny,
    sourceAddress,
    proxy,
    ...(servers && servers.length > 0 ? { resolve: resolverUsingServers(servers) } : {}),
  });
  cached = { key, egress };
  return egress;
}

const scope = new AsyncLocalStorage<Egress>();

/** Run `work` (a flow run) with this egress: every connection it opens is checked by it. */
export function runWithEgress<T>(egress: Egress, work: () => T): T {
  return scope.run(egress, work);
}

/** The egress of the current run (see runWithEgress), else the deployment's. */
export function currentEgress(): Egress {
  return scope.getStore() ?? egressFromEnvironment();
}
