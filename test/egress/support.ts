/**
 * Local servers for the egress and HTTP connector tests: a tiny DNS server (UDP on 127.0.0.1,
 * A and AAAA answers for a test zone, written by hand — test-only code) and HTTP servers that
 * record what reached them.
 */
import { createSocket } from 'node:dgram';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ZoneRecord {
  A?: string[];
  AAAA?: string[];
}

/** A zone whose answers may change per query (for rebinding tests): a record or a function of the query count. */
export type Zone = Record<string, ZoneRecord | ((queryNumber: number) => ZoneRecord)>;

export interface DnsServer {
  /** `127.0.0.1:<port>`, for resolverUsingServers. */
  address: string;
  /** Queries received, as `name TYPE`. */
  queries: string[];
  close(): Promise<void>;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function ipv6Bytes(address: string): Buffer {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const bytes = ipv4Bytes(dotted[1]!);
    text = `${text.slice(0, -dotted[1]!.length)}${bytes.readUInt16BE(0).toString(16)}:${bytes.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const part = (s: string) => (s === '' ? [] : s.split(':'));
  const left = part(head);
  const right = tail === undefined ? [] : part(tail);
  const groups = [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const buffer = Buffer.alloc(16);
  groups.forEach((group, i) => buffer.writeUInt16BE(parseInt(group, 16), i * 2));
  return buffer;
}

/** Answer A (1) and AAAA (28) questions for the zone; NXDOMAIN for other names. */
export async function startDnsServer(zone: Zone): Promise<DnsServer> {
  const socket = createSocket('udp4');
  const queries: string[] = [];
  const counts = new Map<string, number>();
  socket.on('message', (message, remote) => {
    const labels: string[] = [];
    let offset = 12;
    while (message[offset]! !== 0) {
      const length = message[offset]!;
      labels.push(message.subarray(offset + 1, offset + 1 + length).toString('ascii'));
      offset += length + 1;
    }
    offset += 1;
    const type = message.readUInt16BE(offset);
    const question = message.subarray(12, offset + 4);
    const name = labels.join('.').toLowerCase();
    queries.push(`${name} ${type === 1 ? 'A' : type === 28 ? 'AAAA' : type}`);
    const entry = zone[name];
    const count = (counts.get(`${name}/${type}`) ?? 0) + 1;
    counts.set(`${name}/${type}`, count);
    const record = typeof entry === 'function' ? entry(count) : entry;
    const addresses =
      record === undefined ? [] : type === 1 ? (record.A ?? []) : type === 28 ? (record.AAAA ?? []) : [];
    const answers = addresses.map((address) => {
      const data = type === 1 ? ipv4Bytes(address) : ipv6Bytes(address);
      const head = Buffer.alloc(12);
      head.writeUInt16BE(0xc00c, 0); // a pointer to the name in the question
      head.writeUInt16BE(type, 2);
      head.writeUInt16BE(1, 4); // IN
      head.writeUInt32BE(0, 6); // TTL 0: never cached
      head.writeUInt16BE(data.length, 10);
      return Buffer.concat([head, data]);
    });
    const header = Buffer.alloc(12);
    message.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(record === undefined ? 0x8183 : 0x8180, 2); // response, RD, RA; NXDOMAIN or no error
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    socket.send(Buffer.concat([header, question, ...answers]), remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    queries,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  remoteAddress: string | undefined;
}

export interface TestHttpServer {
  server: Server;
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export type Handler = (request: RecordedRequest, response: ServerResponse) => unknown;

/** An HTTP server on `host` (default 127.0.0.1) that records every request, then calls `handler`. */
export async function startHttpServer(handler: Handler, host = '127.0.0.1'): Promise<TestHttpServer> {
  const requests: RecordedRequest[] = [];
  const server = createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const request: RecordedRequest = {
        method: incoming.method ?? '',
        url: incoming.url ?? '',
        headers: incoming.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        remoteAddress: incoming.socket.remoteAddress,
      };
      requests.push(request);
      Promise.resolve(handler(request, response)).catch((error: unknown) => {
        response.statusCode = 500;
        response.end(String(error));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    url: `http://${host}:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a failure, but it succeeded');
}
