/**
 * Allow- and deny-list entries: what `LETHE_EGRESS_ALLOW`, `LETHE_EGRESS_DENY` and a
 * workspace's egress allow-list say, parsed once into rules.
 *
 * An entry is one of
 * - an address or network: `10.1.2.3`, `10.0.0.0/8`, `fd00::/8`, `[::1]`;
 * - a host name: `api.internal`, or `*.corp.example` for every name below corp.example;
 * - either with a port, so only that port is opened: `127.0.0.1:8080`, `10.0.0.0/8:443`,
 *   `[fd00::/8]:443`, `db.internal:5432`;
 * - an absolute path: a folder of Unix sockets (PostgreSQL's `host: /var/run/postgresql`).
 *
 * Entries are separated by commas or white space. Addresses are parsed by Node (`net.isIP`,
 * `net.BlockList`), host names by the WHATWG URL parser (so `Example.COM.` is `example.com`).
 */
import { BlockList, isIP } from 'node:net';
import { normalize } from 'node:path';
import { LetheError } from '../errors/index.js';

export type EgressRule =
  | { kind: 'network'; text: string; list: BlockList; port: number | undefined }
  | { kind: 'host'; text: string; name: string; wildcard: boolean; port: number | undefined }
  | { kind: 'socket'; text: string; path: string };

function invalid(source: string, entry: string, why: string): LetheError {
  return new LetheError('CONNECTION_ERROR', `${source} has an invalid entry "${entry}": ${why}`, {
    hint: 'entries look like 10.0.0.0/8, 127.0.0.1:8080, [fd00::/8]:443, api.internal, *.corp.example:443 or /var/run/postgresql',
  });
}

function parsePort(text: string, source: string, entry: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw invalid(source, entry, `"${text}" is not a port (1–65535)`);
  }
  return Number(text);
}

/** A host name as the URL parser writes it (lower case, IDN in punycode), without a final dot. */
export function normalizeHostName(name: string): string | undefined {
  let host: string;
  try {
    host = new URL(`http://${name}/`).hostname;
  } catch {
    return undefined;
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (isIP(host) !== 0) return host;
  // Letters, digits, "-" and "_" in dot-separated labels: what DNS names are made of.
  return /^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/.test(host) ? host : undefined;
}

function networkRule(
  text: string,
  address: string,
  prefix: string | undefined,
  port: number | undefined,
  source: string,
): EgressRule {
  const family = isIP(address);
  if (family === 0) throw invalid(source, text, `"${address}" is not an IP address`);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  if (prefix === undefined) {
    list.addAddress(address, type);
  } else {
    const bits = /^[0-9]{1,3}$/.test(prefix) ? Number(prefix) : NaN;
    if (!(bits >= 0 && bits <= (family === 4 ? 32 : 128))) {
      throw invalid(source, text, `"/${prefix}" is not a prefix length for IPv${family}`);
    }
    list.addSubnet(address, bits, type);
  }
  return { kind: 'network', text, list, port };
}

function parseEntry(entry: string, source: string): EgressRule {
  if (entry.startsWith('/'))
    return { kind: 'socket', text: entry, path: normalize(entry).replace(/\/$/, '') };
  // [v6], [v6/len], with an optional :port
  const bracketed = /^\[([^\]/]+)(?:\/([^\]]+))?\](?::(.*))?$/.exec(entry);
  if (bracketed) {
    const port = bracketed[3] === undefined ? undefined : parsePort(bracketed[3], source, entry);
    return networkRule(entry, bracketed[1]!, bracketed[2], port, source);
  }
  // A bare IPv6 address or network: no port possible.
  if ((entry.match(/:/g) ?? []).length >= 2) {
    const [address = '', prefix] = entry.split('/');
    return networkRule(entry, address, prefix, undefined, source);
  }
  const colon = entry.lastIndexOf(':');
  const head = colon === -1 ? entry : entry.slice(0, colon);
  const port = colon === -1 ? undefined : parsePort(entry.slice(colon + 1), source, entry);
  if (head.includes('/')) {
    const [address = '', prefix] = head.split('/');
    return networkRule(entry, address, prefix, port, source);
  }
  if (isIP(head)) return networkRule(entry, head, undefined, port, source);
  const wildcard = head.startsWith('*.');
  const name = normalizeHostName(wildcard ? head.slice(2) : head);
  if (name === undefined || name === '' || name.includes('*')) {
    throw invalid(source, entry, 'not an address, a network or a host name');
  }
  // `127.1` or `0x7f.1` are addresses in URLs: treat them as the address the URL parser makes.
  if (isIP(name) && !wildcard) return networkRule(entry, name, undefined, port, source);
  return { kind: 'host', text: entry, name, wildcard, port };
}

/** Parse entries (a list, or text with commas or white space between them). */
export function parseRules(entries: readonly string[] | string, source: string): EgressRule[] {
  const list = typeof entries === 'string' ? entries.split(/[\s,]+/) : entries;
  return list
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => parseEntry(entry, source));
}

function portMatches(rule: { port: number | undefined }, port: number): boolean {
  return rule.port === undefined || rule.port === port;
}

/** Whether a rule opens this resolved address on this port. */
export function ruleMatchesAddress(rule: EgressRule, address: string, port: number): boolean {
  if (rule.kind !== 'network' || !portMatches(rule, port)) return false;
  const family = isIP(address);
  if (family === 0) return false;
  return rule.list.check(address.split('%')[0]!, family === 4 ? 'ipv4' : 'ipv6');
}

/** Whether a rule opens this host name (already normalised) on this port. */
export function ruleMatchesHost(rule: EgressRule, host: string, port: number): boolean {
  if (rule.kind !== 'host' || !portMatches(rule, port)) return false;
  return rule.wildcard ? host.endsWith(`.${rule.name}`) : host === rule.name;
}

/** Whether a rule opens this Unix socket (a socket file, or the folder PostgreSQL names). */
export function ruleMatchesSocket(rule: EgressRule, path: string): boolean {
  if (rule.kind !== 'socket') return false;
  const wanted = normalize(path).replace(/\/$/, '');
  return wanted === rule.path || wanted.startsWith(`${rule.path}/`);
}
