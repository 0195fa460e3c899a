/**
 * Plain TCP destinations (database drivers): check the host, then hand the driver the checked
 * address to connect to, the original name for TLS, and — when the deployment fixes a source
 * address — sockets bound to it.
 */
import { Socket, type SocketConnectOpts } from 'node:net';
import type { Egress } from './egress.js';

export interface TcpTarget {
  /** Connect here: the first checked address (or the Unix socket path, as given). */
  host: string;
  port: number;
  /** The original host name, for TLS (SNI and the certificate's name); undefined for addresses and sockets. */
  servername: string | undefined;
  /** Every checked address, in order. */
  addresses: readonly string[];
  /** A socket factory for drivers that take one (node-postgres `stream`), when a source address is set. */
  socket: (() => Socket) | undefined;
}

/** A socket that binds to `localAddress` whatever way the driver calls connect(). */
class BoundSocket extends Socket {
  constructor(private readonly sourceAddress: string) {
    super();
  }

  override connect(...args: unknown[]): this {
    const [first, ...rest] = args;
    if (typeof first === 'object' && first !== null && !('path' in first)) {
      return super.connect(
        { ...(first as SocketConnectOpts), localAddress: this.sourceAddress } as SocketConnectOpts,
        ...(rest as [() => void]),
      );
    }
    if (typeof first === 'number' || (typeof first === 'string' && /^[0-9]+$/.test(first))) {
      const [host, callback] = rest as [string | undefined, (() => void) | undefined];
      const options = { port: Number(first), host: host ?? 'localhost', localAddress: this.sourceAddress };
      return callback ? super.connect(options, callback) : super.connect(options);
    }
    return (super.connect as (...a: unknown[]) => this)(...args);
  }
}

/**
 * Check a database host (a name, an address, or an absolute Unix socket path) before a driver
 * connects to it. `label` names the connection in messages.
 */
export async function checkTcpTarget(
  egress: Egress,
  host: string,
  port: number,
  label: string,
): Promise<TcpTarget> {
  if (host.startsWith('/')) {
    egress.checkSocket(host, label);
    return { host, port, servername: undefined, addresses: [], socket: undefined };
  }
  const destination = await egress.check(host, port, label);
  const source = egress.sourceAddress;
  return {
    host: destination.addresses[0]!.address,
    port,
    servername: destination.servername,
    addresses: destination.addresses.map(({ address }) => address),
    socket: source === undefined ? undefined : () => new BoundSocket(source),
  };
}
