/**
 * The egress policy: may this process open a connection to that host and port? Names are
 * resolved to every address they have, and every address must pass; the caller then connects
 * to exactly those addresses (never resolving again), so a name cannot change its answer
 * between the check and the connection (DNS rebinding).
 *
 * Precedence, first match wins:
 * 1. the deployment allow-list (`LETHE_EGRESS_ALLOW`) opens anything it names;
 * 2. the deployment deny-list (`LETHE_EGRESS_DENY`) closes anything it names;
 * 3. cloud metadata addresses and names, and Unix sockets, stay closed (only step 1 opens them);
 * 4. the workspace's allow-list opens what it names;
 * 5. special-purpose addresses (loopback, private, link-local, CGNAT, multicast, unspecified,
 *    broadcast, ULA, documentation, benchmarking, reserved, and IPv6 forms carrying one of them)
 *    stay closed;
 * 6. everything else (public addresses) is open.
 *
 * With `LETHE_EGRESS_DENY=0.0.0.0/0,::/0` only allow-listed destinations are reachable.
 */
import { isIP } from 'node:net';
import { LetheError } from '../errors/index.js';
import { classifyAddress, METADATA_NAMES } from './ranges.js';
import { systemResolve, type Resolve, type ResolvedAddress } from './resolver.js';
import {
  normalizeHostName,
  parseRules,
  ruleMatchesAddress,
  ruleMatchesHost,
  ruleMatchesSocket,
  type EgressRule,
} from './rules.js';

export const ALLOW_VARIABLE = 'LETHE_EGRESS_ALLOW';
export const DENY_VARIABLE = 'LETHE_EGRESS_DENY';
export const WORKSPACE_ALLOW_NAME = "the workspace's egress allow-list";

/** A checked destination: connect to `addresses`, in order, and to nothing else. */
export interface Destination {
  /** The host as given (a normalised name, or an IP address without brackets). */
  host: string;
  port: number;
  /** Every address the host has; each passed the policy. */
  addresses: ResolvedAddress[];
  /** The name for TLS (SNI and certificate checks); undefined when the host is an IP address. */
  servername: string | undefined;
}

export interface PolicyOptions {
  /** Deployment allow-list entries (see ./rules.ts). */
  allow?: readonly string[] | string;
  /** Deployment deny-list entries. */
  deny?: readonly string[] | string;
  /** The workspace's allow-list entries, passed in by whoever runs the workspace's flows. */
  workspaceAllow?: readonly string[] | string;
  /** How names are resolved (the system resolver by default). */
  resolve?: Resolve;
}

/** A refusal by the egress policy: a CONNECTION_ERROR naming the host and the reason. */
export class EgressRefusal extends LetheError {
  constructor(
    message: string,
    /** The host that was refused. */
    readonly host: string,
  ) {
    super('CONNECTION_ERROR', message);
  }
}

/** `"api.example":8080`, `127.0.0.1:80`, `[::1]:443` */
export function describeTarget(host: string, port: number): string {
  if (isIP(host) === 6) return `[${host}]:${port}`;
  if (isIP(host) === 4) return `${host}:${port}`;
  return `"${host}" (port ${port})`;
}

/** The allow-list entry that would open exactly this address and port. */
function suggestedEntry(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function isLocalhostName(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost');
}

export class EgressPolicy {
  private readonly allowRules: EgressRule[];
  private readonly denyRules: EgressRule[];
  private readonly workspaceRules: EgressRule[];
  private readonly resolve: Resolve;

  constructor(options: PolicyOptions = {}) {
    this.allowRules = parseRules(options.allow ?? [], ALLOW_VARIABLE);
    this.denyRules = parseRules(options.deny ?? [], DENY_VARIABLE);
    this.workspaceRules = parseRules(options.workspaceAllow ?? [], WORKSPACE_ALLOW_NAME);
    for (const rule of this.workspaceRules) {
      if (rule.kind === 'socket') {
        throw new LetheError(
          'CONNECTION_ERROR',
          `${WORKSPACE_ALLOW_NAME} may not open Unix sockets ("${rule.text}")`,
          { hint: `only the deployment can, with ${ALLOW_VARIABLE}` },
        );
      }
    }
    this.resolve = options.resolve ?? systemResolve;
  }

  /** The same deployment policy with a workspace's allow-list. */
  withWorkspaceAllow(entries: readonly string[] | string, resolve: Resolve = this.resolve): EgressPolicy {
    const copy = Object.create(EgressPolicy.prototype) as EgressPolicy;
    Object.assign(copy, this, {
      workspaceRules: parseRules(entries, WORKSPACE_ALLOW_NAME),
      resolve,
    });
    return copy;
  }

  private remedy(address: string, port: number): string {
    return `allow-list it with ${ALLOW_VARIABLE}=${suggestedEntry(address, port)} (or in ${WORKSPACE_ALLOW_NAME}) if intended`;
  }

  private refuse(host: string, port: number, reason: string, label: string | undefined): EgressRefusal {
    const prefix = label === undefined ? '' : `${label}: `;
    return new EgressRefusal(`${prefix}refused to connect to ${describeTarget(host, port)}: ${reason}`, host);
  }

  /** Whether a name is opened by name, closed by name, or left to its addresses. */
  private checkName(name: string, port: number, label: string | undefined): 'allowed' | 'addresses' {
    if (this.allowRules.some((rule) => ruleMatchesHost(rule, name, port))) return 'allowed';
    const denied = this.denyRules.find((rule) => ruleMatchesHost(rule, name, port));
    if (denied) {
      throw this.refuse(
        name,
        port,
        `it is on the deployment's deny-list (${DENY_VARIABLE} entry "${denied.text}")`,
        label,
      );
    }
    if (METADATA_NAMES.includes(name)) {
      throw this.refuse(
        name,
        port,
        `it is a cloud metadata service name; only the deployment allow-list (${ALLOW_VARIABLE}) can open it`,
        label,
      );
    }
    if (this.workspaceRules.some((rule) => ruleMatchesHost(rule, name, port))) return 'allowed';
    if (isLocalhostName(name)) {
      throw this.refuse(
        name,
        port,
        `it is a loopback name; allow-list it with ${ALLOW_VARIABLE}=${name}:${port} (or in ${WORKSPACE_ALLOW_NAME}) if intended`,
        label,
      );
    }
    return 'addresses';
  }

  /** Undefined when the address may be used, else why not. */
  private addressProblem(address: string, port: number): string | undefined {
    if (this.allowRules.some((rule) => ruleMatchesAddress(rule, address, port))) return undefined;
    const denied = this.denyRules.find((rule) => ruleMatchesAddress(rule, address, port));
    if (denied) return `is on the deployment's deny-list (${DENY_VARIABLE} entry "${denied.text}")`;
    const special = classifyAddress(address);
    if (special?.kind === 'metadata') {
      return `is ${special.description}; only the deployment allow-list (${ALLOW_VARIABLE}) can open it`;
    }
    if (this.workspaceRules.some((rule) => ruleMatchesAddress(rule, address, port))) return undefined;
    if (special) return `is ${special.description}; ${this.remedy(address, port)}`;
    return undefined;
  }

  /**
   * Resolve `host` (a name or an IP address, IPv6 with or without brackets) and check every
   * address it has for `port`. `label` names the connection in messages.
   */
  async check(host: string, port: number, label?: string): Promise<Destination> {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    // `127.1` or `0x7f000001` are addresses to the URL parser (and to inet_aton): normalise them.
    const name = isIP(bare.split('%')[0]!) !== 0 ? bare : normalizeHostName(bare);
    if (name === undefined || name === '') {
      throw new LetheError(
        'CONNECTION_ERROR',
        `${label ? `${label}: ` : ''}"${host}" is not a valid host name`,
      );
    }
    const literal = isIP(name.split('%')[0]!) !== 0;
    let addresses: ResolvedAddress[];
    let byName = false;
    if (literal) {
      addresses = [{ address: name, family: isIP(name.split('%')[0]!) === 6 ? 6 : 4 }];
    } else {
      byName = this.checkName(name, port, label) === 'allowed';
      addresses = await this.lookup(name, label);
    }
    if (!byName) {
      for (const { address } of addresses) {
        const problem = this.addressProblem(address, port);
        if (problem === undefined) continue;
        const reason = literal
          ? `it ${problem}`
          : addresses.length === 1
            ? `it resolves to ${address}, which ${problem}`
            : `it resolves to ${addresses.map((a) => a.address).join(', ')}, and ${address} ${problem}`;
        throw this.refuse(name, port, reason, label);
      }
    }
    return { host: name, port, addresses, servername: literal ? undefined : name };
  }

  /** A Unix socket (or the folder PostgreSQL looks for its socket in): only the deployment opens one. */
  checkSocket(path: string, label?: string): void {
    if (this.allowRules.some((rule) => ruleMatchesSocket(rule, path))) return;
    const prefix = label === undefined ? '' : `${label}: `;
    throw new EgressRefusal(
      `${prefix}refused to connect to the Unix socket ${path}: local sockets reach services on this machine; allow-list it with ${ALLOW_VARIABLE}=${path} if intended`,
      path,
    );
  }

  private async lookup(name: string, label: string | undefined): Promise<ResolvedAddress[]> {
    let found: ResolvedAddress[];
    try {
      found = await this.resolve(name);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new LetheError(
        'CONNECTION_ERROR',
        `${label ? `${label}: ` : ''}cannot resolve "${name}"${typeof code === 'string' ? ` (${code})` : ''}`,
        { cause: error, hint: 'check the host name, and that this machine can reach its DNS servers' },
      );
    }
    if (found.length === 0) {
      throw new LetheError('CONNECTION_ERROR', `${label ? `${label}: ` : ''}"${name}" has no addresses`);
    }
    return found;
  }
}
