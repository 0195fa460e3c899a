/**
 * Special-purpose addresses: what an address is, when it is not an ordinary public one.
 *
 * The ranges follow the IANA special-purpose registries (RFC 6890 and successors) and the cloud
 * providers' metadata endpoints. Addresses are checked with Node's `net.BlockList` (which also
 * matches IPv4-mapped IPv6 addresses against IPv4 rules); IPv6 forms that carry an IPv4 address
 * (mapped, compatible, NAT64, 6to4) are classified by the IPv4 address they carry, so
 * `::ffff:127.0.0.1`, `64:ff9b::7f00:1` and `2002:7f00:1::` are all loopback.
 */
import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';

/** Why an address is special; the text reads "…, a loopback address". */
export type AddressKind =
  | 'metadata'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'CGNAT'
  | 'multicast'
  | 'unspecified'
  | 'broadcast'
  | 'unique-local'
  | 'site-local'
  | 'documentation'
  | 'benchmarking'
  | 'reserved'
  | 'tunnel';

const DESCRIPTIONS: Record<AddressKind, string> = {
  metadata: 'a cloud metadata address',
  loopback: 'a loopback address',
  private: 'a private address',
  'link-local': 'a link-local address',
  CGNAT: 'a carrier-grade NAT (shared, 100.64.0.0/10) address',
  multicast: 'a multicast address',
  unspecified: 'an unspecified ("this host") address',
  broadcast: 'the broadcast address',
  'unique-local': 'a unique local (fc00::/7) address',
  'site-local': 'a site-local (deprecated fec0::/10) address',
  documentation: 'a documentation address',
  benchmarking: 'a benchmarking address',
  reserved: 'a reserved address',
  tunnel: 'a tunnel (Teredo or local NAT64) address',
};

export function describeKind(kind: AddressKind): string {
  return DESCRIPTIONS[kind];
}

/**
 * Cloud metadata endpoints: AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle (169.254.169.254),
 * AWS ECS and EKS (169.254.170.2, 169.254.170.23), Alibaba (100.100.100.200), Azure WireServer
 * (168.63.129.16, a public-looking address), Oracle's legacy 192.0.0.192, AWS IPv6
 * (fd00:ec2::254, fd00:ec2::23), GCP IPv6 (fd20:ce::254).
 */
export const METADATA_ADDRESSES: readonly string[] = [
  '169.254.169.254',
  '169.254.170.2',
  '169.254.170.23',
  '100.100.100.200',
  '168.63.129.16',
  '192.0.0.192',
  'fd00:ec2::254',
  'fd00:ec2::23',
  'fd20:ce::254',
];

/** Host names of metadata services, refused before any lookup. */
export const METADATA_NAMES: readonly string[] = [
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'metadata.azure.internal',
  'instance-data',
  'instance-data.ec2.internal',
];

const IPV4_RANGES: readonly [string, number, AddressKind][] = [
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'CGNAT'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['255.255.255.255', 32, 'broadcast'],
  ['240.0.0.0', 4, 'reserved'],
];

const IPV6_RANGES: readonly [string, number, AddressKind][] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['64:ff9b:1::', 48, 'tunnel'],
  ['100::', 64, 'reserved'],
  ['2001::', 32, 'tunnel'],
  ['2001::', 23, 'reserved'],
  ['2001:db8::', 32, 'documentation'],
  ['3fff::', 20, 'documentation'],
  ['fc00::', 7, 'unique-local'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local'],
  ['ff00::', 8, 'multicast'],
];

/** IPv6 prefixes whose last 32 bits (or bits 16–47 for 6to4) are an IPv4 address. */
const EMBEDDING: readonly [string, number, string][] = [
  ['::ffff:0:0', 96, 'IPv4-mapped'],
  ['64:ff9b::', 96, 'NAT64'],
  ['2002::', 16, '6to4'],
  ['::', 96, 'IPv4-compatible'],
];

function blockList(entries: readonly [string, number][], family: 'ipv4' | 'ipv6'): BlockList {
  const list = new BlockList();
  for (const [network, prefix] of entries) list.addSubnet(network, prefix, family);
  return list;
}

const metadata = new BlockList();
for (const address of METADATA_ADDRESSES) metadata.addAddress(address, isIPv4(address) ? 'ipv4' : 'ipv6');

const ipv4Kinds = IPV4_RANGES.map(([network, prefix, kind]) => ({
  kind,
  list: blockList([[network, prefix]], 'ipv4'),
}));
const ipv6Kinds = IPV6_RANGES.map(([network, prefix, kind]) => ({
  kind,
  list: blockList([[network, prefix]], 'ipv6'),
}));
const embeddings = EMBEDDING.map(([network, prefix, form]) => ({
  form,
  prefix,
  list: blockList([[network, prefix]], 'ipv6'),
}));

/** The eight 16-bit groups of an IPv6 address, from its canonical text (WHATWG URL). */
function ipv6Groups(address: string): number[] {
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const part = (text: string) => (text === '' ? [] : text.split(':').map((group) => parseInt(group, 16)));
  const left = part(head);
  const right = tail === undefined ? [] : part(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function ipv4From(high: number, low: number): string {
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** The IPv4 address an IPv6 address carries, with the name of the form, if it carries one. */
export function embeddedIPv4(address: string): { ipv4: string; form: string } | undefined {
  if (!isIPv6(address)) return undefined;
  const bare = address.split('%')[0]!;
  for (const { form, list, prefix } of embeddings) {
    if (!list.check(bare, 'ipv6')) continue;
    const groups = ipv6Groups(bare);
    // ::/96 also holds :: and ::1, which are themselves, not IPv4 addresses.
    if (form === 'IPv4-compatible' && groups[6] === 0) return undefined;
    return prefix === 16
      ? { ipv4: ipv4From(groups[1]!, groups[2]!), form }
      : { ipv4: ipv4From(groups[6]!, groups[7]!), form };
  }
  return undefined;
}

export interface SpecialAddress {
  kind: AddressKind;
  /** "a loopback address", or "the IPv4-mapped form of 127.0.0.1, a loopback address". */
  description: string;
}

function classifyIPv4(address: string): AddressKind | undefined {
  if (metadata.check(address, 'ipv4')) return 'metadata';
  return ipv4Kinds.find(({ list }) => list.check(address, 'ipv4'))?.kind;
}

/**
 * What kind of special address `address` (an IP literal) is, or undefined for an ordinary
 * public address. Anything that is not an IP address at all is reported as reserved.
 */
export function classifyAddress(address: string): SpecialAddress | undefined {
  const family = isIP(address);
  if (family === 4) {
    const kind = classifyIPv4(address);
    return kind && { kind, description: describeKind(kind) };
  }
  if (family !== 6) return { kind: 'reserved', description: 'not an IP address' };
  const bare = address.split('%')[0]!;
  const embedded = embeddedIPv4(bare);
  if (embedded) {
    const inner = classifyIPv4(embedded.ipv4);
    // The deprecated IPv4-compatible form is never a real destination.
    const kind = inner ?? (embedded.form === 'IPv4-compatible' ? 'reserved' : undefined);
    if (kind === undefined) return undefined;
    return {
      kind,
      description: `the ${embedded.form} form of ${embedded.ipv4}, ${describeKind(kind)}`,
    };
  }
  if (metadata.check(bare, 'ipv6')) return { kind: 'metadata', description: describeKind('metadata') };
  const kind = ipv6Kinds.find(({ list }) => list.check(bare, 'ipv6'))?.kind;
  return kind && { kind, description: describeKind(kind) };
}
