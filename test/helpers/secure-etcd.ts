/**
 * A real etcd that wants what a production one should: TLS on its client port, client
 * certificates signed by its CA (--client-cert-auth), and authentication on, with the users and
 * the role that docs/security.md describes:
 * - `root` (etcd's administrator),
 * - `cfgserver` with the role `cfgserver`: readwrite on the prefix only,
 * - `intruder`, a user without any role.
 * Its auth tokens expire after 2 s without use, so that token renewal is exercised all along.
 * Certificates are made with openssl in the test's folder; everything is stopped after the file.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll } from 'vitest';
import { ManagedProcess, freePort, startRedis, waitFor, type RedisServer } from '../../src/playground/processes.js';
import { createEtcd } from '../../src/store/etcd.js';
import { loadEtcdSecurity } from '../../src/store/etcd-security.js';
import { makeCa, type CertPair, type TestCa } from './tls.js';

export interface SecureEtcd {
  dir: string;
  /** https://127.0.0.1:PORT */
  endpoint: string;
  /** The prefix the `cfgserver` role may use (without its trailing slash, as --prefix takes it). */
  prefix: string;
  ca: TestCa;
  /** A second CA that etcd does not trust, and that did not sign etcd's certificate. */
  otherCa: TestCa;
  /** Client certificates: CN=cfgserver (the user with the role), CN=intruder. */
  clientCert: CertPair;
  intruderCert: CertPair;
  /** Passwords, each in a file as --etcd-password-file takes it. */
  password: { cfgserver: string; intruder: string };
  passwordFile: { cfgserver: string; intruder: string; wrong: string };
  /** An etcd client as root: to see what was (not) written. */
  root: Etcd3;
  /** Starts a redis-server stopped after the file. */
  redis(): Promise<RedisServer>;
  /** Keeps a process to stop after the file. */
  track(p: ManagedProcess): ManagedProcess;
}

function etcdctl(endpoint: string, ca: TestCa, cert: CertPair, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('etcdctl', [`--endpoints=${endpoint}`, '--cacert', ca.ca, '--cert', cert.cert, '--key', cert.key, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`etcdctl ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout + stderr); // `endpoint health` answers on stderr
    });
  });
}

export function useSecureEtcd(): SecureEtcd {
  const world = {} as SecureEtcd;
  const processes: ManagedProcess[] = [];
  beforeAll(async () => {
    world.dir = mkdtempSync(join(tmpdir(), 'cfgserver-sec-'));
    world.ca = makeCa(world.dir, 'ca');
    world.otherCa = makeCa(world.dir, 'other-ca');
    const server = world.ca.server('etcd');
    const rootCert = world.ca.client('root');
    world.clientCert = world.ca.client('cfgserver');
    world.intruderCert = world.ca.client('intruder');
    world.prefix = `/sec-${randomBytes(4).toString('hex')}`;
    world.password = { cfgserver: `cfg-${randomBytes(12).toString('hex')}`, intruder: `int-${randomBytes(12).toString('hex')}` };
    const rootPassword = `root-${randomBytes(12).toString('hex')}`;
    world.passwordFile = { cfgserver: join(world.dir, 'cfgserver.password'), intruder: join(world.dir, 'intruder.password'), wrong: join(world.dir, 'wrong.password') };
    writeFileSync(world.passwordFile.cfgserver, `${world.password.cfgserver}\n`, { mode: 0o600 });
    writeFileSync(world.passwordFile.intruder, `${world.password.intruder}\n`, { mode: 0o600 });
    writeFileSync(world.passwordFile.wrong, 'not-the-password\n', { mode: 0o600 });

    const port = await freePort();
    const peer = await freePort();
    world.endpoint = `https://127.0.0.1:${port}`;
    const etcd = new ManagedProcess('etcd (tls)', 'etcd', [
      '--name', 'sec',
      '--data-dir', join(world.dir, 'etcd-data'),
      '--listen-client-urls', world.endpoint,
      '--advertise-client-urls', world.endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `sec=http://127.0.0.1:${peer}`,
      '--initial-cluster-state', 'new',
      '--cert-file', server.cert,
      '--key-file', server.key,
      '--client-cert-auth',
      '--trusted-ca-file', world.ca.ca,
      // Tokens expire after 2 s without use (300 s by default): every test here also shows that
      // clients get a new one when theirs has expired.
      '--auth-token-ttl', '2',
      '--logger=zap',
      '--log-outputs', join(world.dir, 'etcd.log'),
    ], join(world.dir, 'etcd.out'));
    processes.push(etcd);
    await waitFor('the TLS etcd to become healthy', async () => {
      if (!etcd.running()) throw new Error(`etcd exited; see ${etcd.logFile}`);
      return (await etcdctl(world.endpoint, world.ca, rootCert, ['endpoint', 'health']).catch(() => '')).includes('is healthy');
    }, 15_000, 100);
    // The commands of docs/security.md, with the test's prefix.
    const admin = (...args: string[]) => etcdctl(world.endpoint, world.ca, rootCert, args);
    await admin('user', 'add', `root:${rootPassword}`);
    await admin('user', 'add', `cfgserver:${world.password.cfgserver}`);
    await admin('user', 'add', `intruder:${world.password.intruder}`);
    await admin('role', 'add', 'cfgserver');
    await admin('role', 'grant-permission', 'cfgserver', 'readwrite', '--prefix=true', `${world.prefix}/`);
    await admin('user', 'grant-role', 'cfgserver', 'cfgserver');
    await admin('auth', 'enable');
    // root's client certificate (CN=root) is root's identity from now on.
    world.root = createEtcd({ endpoints: world.endpoint, security: loadEtcdSecurity({ ca: world.ca.ca, cert: rootCert.cert, key: rootCert.key }) });
    world.redis = async () => {
      const r = await startRedis(world.dir);
      processes.push(r.process);
      return r;
    };
    world.track = (p) => {
      processes.push(p);
      return p;
    };
  }, 60_000);
  afterAll(async () => {
    world.root?.close();
    for (const p of processes.reverse()) await p.kill9();
    if (world.dir && !process.env['KEEP_TEST_DIR']) rmSync(world.dir, { recursive: true, force: true });
  });
  return world;
}
