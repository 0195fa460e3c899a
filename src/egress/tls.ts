/**
 * TLS for outbound connections: the four modes users know from libpq, and client certificates
 * for mutual TLS (PEM certificate + key, or a PKCS#12 bundle, each with an optional passphrase).
 *
 * - disable: no TLS (plain http:// only);
 * - require: encrypted, the server's certificate is not checked;
 * - verify-ca: the certificate must chain to a trusted CA (the given one, else the system's),
 *   whatever name it is for;
 * - verify-full: verify-ca, and the certificate must be for the host name (the default).
 */
import { createSecureContext, type ConnectionOptions } from 'node:tls';
import { LetheError } from '../errors/index.js';

export const TLS_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

/** Certificates and keys, already read (from settings or files). */
export interface TlsMaterial {
  /** PEM: the CA certificates to trust instead of the system's. */
  ca?: string;
  /** PEM: the client certificate (chain). */
  cert?: string;
  /** PEM: the client certificate's private key. */
  key?: string;
  /** PKCS#12 bundle of the client certificate and key. */
  pfx?: Buffer;
  /** Passphrase of the key or the PKCS#12 bundle. */
  passphrase?: string;
}

export interface TlsSettings {
  mode: TlsMode;
  material?: TlsMaterial;
}

/** Options for tls.connect (undici's `connect`, node-postgres's `ssl`), without host or servername. */
export function tlsConnectOptions(settings: TlsSettings): ConnectionOptions {
  const { mode, material = {} } = settings;
  if (mode === 'disable') return {};
  const options: ConnectionOptions = { rejectUnauthorized: mode !== 'require' };
  if (material.ca !== undefined && mode !== 'require') options.ca = material.ca;
  if (mode === 'verify-ca') options.checkServerIdentity = () => undefined;
  if (material.pfx !== undefined) options.pfx = material.pfx;
  if (material.cert !== undefined) options.cert = material.cert;
  if (material.key !== undefined) options.key = material.key;
  if (material.passphrase !== undefined) options.passphrase = material.passphrase;
  return options;
}

/**
 * Check a client certificate before any connection: a wrong passphrase or a key that does not
 * belong to the certificate fails here, clearly, instead of as a handshake error later.
 * Messages never contain the key or the passphrase.
 */
export function checkClientCertificate(material: TlsMaterial, label: string): void {
  const hasPem = material.cert !== undefined || material.key !== undefined;
  if (material.pfx !== undefined && hasPem) {
    throw new LetheError('CONNECTION_ERROR', `${label} has both a PKCS#12 bundle and a PEM certificate`, {
      hint: 'give either pkcs12 (with passphrase) or clientCert and clientKey',
    });
  }
  if (hasPem && (material.cert === undefined || material.key === undefined)) {
    throw new LetheError(
      'CONNECTION_ERROR',
      `${label} has a client ${material.cert === undefined ? 'key' : 'certificate'} without its ${material.cert === undefined ? 'certificate' : 'key'}`,
      { hint: 'mutual TLS needs clientCert and clientKey (PEM), or pkcs12' },
    );
  }
  if (material.pfx === undefined && !hasPem) return;
  try {
    createSecureContext(tlsConnectOptions({ mode: 'verify-full', material: { ...material, ca: undefined } }));
  } catch (error) {
    const text = String((error as Error).message);
    const why = /mac verify|bad decrypt|passphrase|decrypt/i.test(text)
      ? 'the passphrase is wrong'
      : /key values mismatch/i.test(text)
        ? 'the key does not belong to the certificate'
        : /not enough data|wrong tag|asn1|header too long|no start line|unsupported/i.test(text)
          ? 'it is not a valid PEM certificate and key or PKCS#12 bundle'
          : 'it cannot be loaded';
    throw new LetheError('CONNECTION_ERROR', `the client certificate of ${label} cannot be used: ${why}`, {
      hint: 'check clientCert, clientKey (or pkcs12) and passphrase',
    });
  }
}
