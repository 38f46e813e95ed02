/**
 * Certificates for tests, made with the `openssl` command into a folder: a CA, server
 * certificates for 127.0.0.1 and client certificates whose common name is an etcd user name.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestCa {
  /** The CA certificate file. */
  ca: string;
  /** A server certificate valid for 127.0.0.1 and localhost. */
  server(name: string): CertPair;
  /** A client certificate with this common name (etcd takes it as the user name). */
  client(commonName: string): CertPair;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new CA in `dir/<name>` (EC keys: quick to make). */
export function makeCa(dir: string, name = 'ca'): TestCa {
  const home = join(dir, name);
  mkdirSync(home, { recursive: true });
  const ca = join(home, 'ca.pem');
  const caKey = join(home, 'ca-key.pem');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', `/CN=cfgserver test ${name}`], home);
  const issue = (file: string, commonName: string, extensions: string): CertPair => {
    const key = join(home, `${file}-key.pem`);
    const csr = join(home, `${file}.csr`);
    const cert = join(home, `${file}.pem`);
    const ext = join(home, `${file}.ext`);
    writeFileSync(ext, extensions);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${commonName}`], home);
    openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext], home);
    return { cert, key };
  };
  return {
    ca,
    server: (serverName) => issue(`server-${serverName}`, serverName, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n'),
    client: (commonName) => issue(`client-${commonName}`, commonName, 'extendedKeyUsage=clientAuth\n'),
  };
}
