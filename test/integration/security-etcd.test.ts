/**
 * Security of cfgserver's own links (issue 10): etcd over TLS with client certificates and
 * authentication on, the role of docs/security.md, the HTTP API's bearer token over https, the
 * proxy's route guard with reads protected, and no secret in any log or output.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, spawnController, spawnProxy, waitFor, type ManagedProcess } from '../../src/playground/processes.js';
import { createEtcd } from '../../src/store/etcd.js';
import { loadEtcdSecurity } from '../../src/store/etcd-security.js';
import { Keys } from '../../src/store/keys.js';
import { RouteGuard } from '../../src/proxy/route-guard.js';
import { createLogger } from '../../src/log.js';
import type { Route } from '../../src/model/schemas.js';
import { Registry } from 'prom-client';
import { createApp } from '../../src/api/server.js';
import { AdminService } from '../../src/service/admin-service.js';
import { listenOn } from '../../src/util/listen.js';
import { useRedisClients } from '../helpers/redis.js';
import { useProxies } from '../helpers/proxy.js';
import { useRelays } from '../helpers/relay.js';
import { useSecureEtcd } from '../helpers/secure-etcd.js';
import { TEST_LEASE_TTL, cfgctl, type CliResult } from '../helpers/servers.js';

const sec = useSecureEtcd();
const redis = useRedisClients();
const proxies = useProxies();
const relay = useRelays();

/** Every output of every process here, for the last test's search for secrets. */
const outputs: string[] = [];
const logFiles: string[] = [];

async function ctl(args: string[], env: NodeJS.ProcessEnv = {}, etcd = sec.endpoint): Promise<CliResult> {
  const r = await cfgctl(etcd, sec.prefix, args, env);
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** The flags of a process that is the etcd user `cfgserver` over TLS with a client certificate. */
const asCfgserver = () => ['--etcd-ca', sec.ca.ca, '--etcd-cert', sec.clientCert.cert, '--etcd-key', sec.clientCert.key, '--etcd-user', 'cfgserver', '--etcd-password-file', sec.passwordFile.cfgserver];

/** One clear line: no stack, no gRPC status prefix, no OpenSSL source location. */
function expectOneClearLine(stderr: string): void {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at |UNAVAILABLE|INVALID_ARGUMENT|PERMISSION_DENIED|Resolution note|deps\/openssl|DeprecationWarning/);
}

async function keysUnder(prefix: string): Promise<string[]> {
  return sec.root.getAll().prefix(`${prefix}/`).keys();
}

/** An admin in this process, as the etcd user `cfgserver` over TLS. */
let adminClient: { etcd: Etcd3; admin: AdminService } | null = null;
function admin(): AdminService {
  if (!adminClient) {
    const etcd = createEtcd({ endpoints: sec.endpoint, security: loadEtcdSecurity({ ca: sec.ca.ca, cert: sec.clientCert.cert, key: sec.clientCert.key, user: 'cfgserver', passwordFile: sec.passwordFile.cfgserver }) });
    adminClient = { etcd, admin: new AdminService(etcd, new Keys(sec.prefix)) };
  }
  return adminClient.admin;
}
afterAll(() => adminClient?.etcd.close());

let apiToken = '';
let tokenFile = '';
let controllerUrl = '';
let controller: ManagedProcess;

describe('etcd with TLS, client certificates and authentication', () => {
  it('cfgctl, a controller and a proxy work as the user with the documented role', { timeout: 120_000 }, async () => {
    const master = await sec.redis();
    expect((await ctl([...asCfgserver(), 'cluster', 'create', 'sec', '--slots', '16'])).code).toBe(0);
    expect((await ctl([...asCfgserver(), 'shard', 'add', 'sec', '--master', master.address, '--id', 's0'])).code).toBe(0);
    expect((await ctl([...asCfgserver(), 'slots', 'assign', 'sec', '--even'])).code).toBe(0);

    apiToken = randomBytes(24).toString('hex');
    tokenFile = join(sec.dir, 'api.token');
    writeFileSync(tokenFile, `${apiToken}\n`, { mode: 0o600 });
    const api = sec.ca.server('api');
    const port = await freePort();
    // The controller takes its security settings from its YAML file, as a deployment would.
    const configFile = join(sec.dir, 'controller.yaml');
    writeFileSync(configFile, [
      `etcdCa: ${sec.ca.ca}`,
      `etcdCert: ${sec.clientCert.cert}`,
      `etcdKey: ${sec.clientCert.key}`,
      'etcdUser: cfgserver',
      `etcdPasswordFile: ${sec.passwordFile.cfgserver}`,
      `apiTokenFile: ${tokenFile}`,
      'apiAuthReads: true',
      `apiTlsCert: ${api.cert}`,
      `apiTlsKey: ${api.key}`,
      '',
    ].join('\n'));
    controller = sec.track(spawnController({
      id: 'sec-1',
      etcd: sec.endpoint,
      prefix: sec.prefix,
      listen: `127.0.0.1:${port}`,
      leaseTtlSeconds: TEST_LEASE_TTL,
      logFile: join(sec.dir, 'controller-sec-1.log'),
      extraArgs: ['--log-level', 'debug', '--config', configFile],
    }));
    logFiles.push(controller.logFile);
    controllerUrl = `https://127.0.0.1:${port}`;
    // Polled in this process (as the same etcd user): a cfgctl process per look is slow over TLS.
    await waitFor('the controller to lead', async () => (await admin().listControllers()).controllers.some((c) => c.id === 'sec-1' && c.leader), 20_000, 200);
    const listed = await ctl([...asCfgserver(), 'controllers', '--json']);
    expect(JSON.parse(listed.stdout)).toMatchObject([{ id: 'sec-1', leader: true, tls: true, address: `127.0.0.1:${port}` }]);
    expect((await ctl([...asCfgserver(), 'controllers'])).stdout).toContain(`https://127.0.0.1:${port}`);

    const proxyPort = await freePort();
    const proxy = sec.track(spawnProxy({
      id: 'sec-proxy',
      cluster: 'sec',
      listen: `127.0.0.1:${proxyPort}`,
      etcd: sec.endpoint,
      prefix: sec.prefix,
      logFile: join(sec.dir, 'proxy-sec.log'),
      extraArgs: ['--log-level', 'debug', ...asCfgserver(), '--api-token-file', tokenFile, '--api-ca', sec.ca.ca],
    }));
    logFiles.push(proxy.logFile);
    await waitFor('the proxy registered', async () => (await admin().listProxies('sec')).proxies.length === 1, 20_000, 200);
    const client = redis.at(`127.0.0.1:${proxyPort}`);
    expect(await client.set('k', 'through the proxy')).toBe('OK');
    expect(await redis.at(master.address).get('k')).toBe('through the proxy');

    // Everything was written under the role's prefix, as the user cfgserver.
    expect(await keysUnder(sec.prefix)).toContain(`${sec.prefix}/clusters/sec/route`);

    // Idle longer than etcd keeps a token (2 s here): a route change still reaches the proxy.
    await new Promise((r) => setTimeout(r, 3000));
    const other = await sec.redis();
    expect((await ctl([...asCfgserver(), 'shard', 'add', 'sec', '--master', other.address, '--id', 's1'])).code).toBe(0);
    const epoch = ((JSON.parse((await ctl([...asCfgserver(), 'route', 'sec', '--json'])).stdout)) as Route).epoch;
    await waitFor('the proxy on the new route', async () => (await admin().listProxies('sec')).proxies[0]?.epoch === epoch, 15_000, 200);
    expect(await client.get('k')).toBe('through the proxy');
  });

  it('a client certificate alone is enough: etcd takes its common name as the user', async () => {
    const r = await ctl(['--etcd-ca', sec.ca.ca, '--etcd-cert', sec.clientCert.cert, '--etcd-key', sec.clientCert.key, 'cluster', 'list', '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { name: string }[]).map((c) => c.name)).toEqual(['sec']);
  });

  it('the password may come from $CFGSERVER_ETCD_PASSWORD instead of a file', async () => {
    const args = ['--etcd-ca', sec.ca.ca, '--etcd-cert', sec.intruderCert.cert, '--etcd-key', sec.intruderCert.key, '--etcd-user', 'cfgserver', 'route', 'sec', '--json'];
    const r = await ctl(args, { CFGSERVER_ETCD_PASSWORD: sec.password.cfgserver });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as Route).cluster).toBe('sec');
  });

  it('refused credentials: one clear line, an exit code, nothing written', { timeout: 120_000 }, async () => {
    const tls = ['--etcd-ca', sec.ca.ca, '--etcd-cert', sec.clientCert.cert, '--etcd-key', sec.clientCert.key];
    const cases: { name: string; args: string[]; etcd?: string; code: number; says: RegExp }[] = [
      { name: 'a wrong password', args: [...tls, '--etcd-user', 'cfgserver', '--etcd-password-file', sec.passwordFile.wrong], code: 11, says: /etcd refused the user name or password/ },
      { name: 'a user without the role', args: [...tls, '--etcd-user', 'intruder', '--etcd-password-file', sec.passwordFile.intruder], code: 11, says: /etcd permission denied/ },
      { name: 'a certificate whose user has no role', args: ['--etcd-ca', sec.ca.ca, '--etcd-cert', sec.intruderCert.cert, '--etcd-key', sec.intruderCert.key], code: 11, says: /etcd permission denied/ },
      { name: 'no client certificate', args: ['--etcd-ca', sec.ca.ca, '--etcd-user', 'cfgserver', '--etcd-password-file', sec.passwordFile.cfgserver], code: 11, says: /TLS with etcd failed/ },
      { name: 'a CA that did not sign etcd\'s certificate', args: ['--etcd-ca', sec.otherCa.ca, '--etcd-cert', sec.clientCert.cert, '--etcd-key', sec.clientCert.key], code: 11, says: /TLS with etcd failed \(access check\): etcd's certificate is not signed by the CA we trust \(unable to verify the first certificate\): check --etcd-ca/ },
      { name: 'a client certificate of another CA', args: ['--etcd-ca', sec.ca.ca, '--etcd-cert', sec.otherCa.client('cfgserver').cert, '--etcd-key', join(sec.dir, 'other-ca', 'client-cfgserver-key.pem')], code: 11, says: /TLS with etcd failed \(access check\): etcd refused our client certificate \(sslv3 alert bad certificate\)/ },
      { name: 'an unreadable certificate file', args: ['--etcd-ca', join(sec.dir, 'missing.pem')], code: 2, says: /cannot read --etcd-ca .*missing\.pem \(ENOENT\)/ },
      { name: 'a key that is not the certificate\'s', args: ['--etcd-ca', sec.ca.ca, '--etcd-cert', sec.clientCert.cert, '--etcd-key', sec.intruderCert.key], code: 2, says: /is not the key of the certificate/ },
      { name: 'a user without a password', args: [...tls, '--etcd-user', 'cfgserver'], code: 2, says: /needs a password: --etcd-password-file FILE or \$CFGSERVER_ETCD_PASSWORD/ },
      // Not a credentials problem: said as etcd being unreachable (exit 6), not as a TLS refusal.
      { name: 'nothing listening', args: [...tls, '--etcd-user', 'cfgserver', '--etcd-password-file', sec.passwordFile.cfgserver], etcd: `https://127.0.0.1:${await freePort()}`, code: 6, says: /^cfgctl: cannot reach etcd at https:\/\/127\.0\.0\.1:\d+: no etcd member could be reached/m },
      { name: 'TLS settings with an http:// endpoint', args: tls, etcd: sec.endpoint.replace('https:', 'http:'), code: 2, says: /use https:\/\/ endpoints/ },
    ];
    for (const c of cases) {
      const r = await ctl([...c.args, 'cluster', 'create', 'intruded'], {}, c.etcd);
      expect({ case: c.name, code: r.code, stdout: r.stdout }).toEqual({ case: c.name, code: c.code, stdout: '' });
      expect(r.stderr, c.name).toMatch(c.says);
      expectOneClearLine(r.stderr);
    }
    // (The running controller may write keys of its own meanwhile: look for what these would have written.)
    const keys = await keysUnder(sec.prefix);
    expect(keys.filter((k) => k.includes('intruded'))).toEqual([]);
    // The start-up check itself never writes.
    expect(keys).not.toContain(new Keys(sec.prefix).accessCheck());
  });

  it('a controller and a proxy with refused credentials stop at once with one line and exit code 11', async () => {
    const tls = ['--etcd-ca', sec.ca.ca, '--etcd-cert', sec.clientCert.cert, '--etcd-key', sec.clientCert.key];
    const badController = sec.track(spawnController({
      id: 'sec-bad',
      etcd: sec.endpoint,
      prefix: sec.prefix,
      leaseTtlSeconds: TEST_LEASE_TTL,
      logFile: join(sec.dir, 'controller-sec-bad.log'),
      extraArgs: [...tls, '--etcd-user', 'cfgserver', '--etcd-password-file', sec.passwordFile.wrong],
    }));
    const badProxy = sec.track(spawnProxy({
      id: 'sec-bad-proxy',
      cluster: 'sec',
      listen: `127.0.0.1:${await freePort()}`,
      etcd: sec.endpoint,
      prefix: sec.prefix,
      logFile: join(sec.dir, 'proxy-sec-bad.log'),
      extraArgs: [...tls, '--etcd-user', 'intruder', '--etcd-password-file', sec.passwordFile.intruder],
    }));
    logFiles.push(badController.logFile, badProxy.logFile);
    expect(await badController.waitExit()).toBe(11);
    expect(await badProxy.waitExit()).toBe(11);
    const controllerOut = readFileSync(badController.logFile, 'utf8');
    const proxyOut = readFileSync(badProxy.logFile, 'utf8');
    expect(controllerOut).toMatch(/^cfgserver: etcd refused the user name or password \(access check\)/m);
    expect(proxyOut).toMatch(/^cfgserver: etcd permission denied \(access check\)/m);
    expect(controllerOut + proxyOut).not.toMatch(/\n\s+at |PERMISSION_DENIED|INVALID_ARGUMENT/);
    expect((await keysUnder(sec.prefix)).filter((k) => k.includes('sec-bad'))).toEqual([]);
  });

  it('with authentication on, every etcd call carries both the token and hasleader', async () => {
    const etcd = createEtcd({ endpoints: sec.endpoint, security: loadEtcdSecurity({ ca: sec.ca.ca, cert: sec.clientCert.cert, key: sec.clientCert.key, user: 'cfgserver', passwordFile: sec.passwordFile.cfgserver }) });
    try {
      // The metadata the connection pool hands to every call (unary and stream), as etcd3 builds it.
      const pool = (etcd as unknown as { pool: { withConnection<T>(service: string, fn: (c: { metadata: { get(k: string): unknown[] } }) => T): Promise<T> } }).pool;
      const metadata = await pool.withConnection('KV', ({ metadata }) => ({ token: metadata.get('token'), hasleader: metadata.get('hasleader') }));
      expect(metadata.hasleader).toEqual(['true']);
      expect(metadata.token).toHaveLength(1);
      expect(String(metadata.token[0]).length).toBeGreaterThan(8);
      // And the calls work with both: a read of the route, as the user with the role.
      expect((await etcd.get(new Keys(sec.prefix).route('sec')).json()) as Route).toMatchObject({ cluster: 'sec' });
    } finally {
      etcd.close();
    }
  });
});

/** One request to the controller's https API, trusting the test CA. */
function call(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const req = httpsRequest(`${controllerUrl}${path}`, { method, ca: readFileSync(sec.ca.ca), headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('the HTTP API with a token and TLS', () => {
  const get = async (path: string, token?: string) => {
    const r = await call('GET', path, token);
    return { status: r.status, body: JSON.parse(r.text) as unknown };
  };
  const post = (path: string, body: unknown, token?: string) => call('POST', path, token, body);

  it('refuses reads and changes without the right token, with a 401 in the API\'s error shape', async () => {
    expect(await get('/v1/clusters')).toEqual({ status: 401, body: { error: { code: 'UNAUTHORIZED', message: 'GET /v1/clusters needs the API token: Authorization: Bearer <token>' } } });
    expect(await get('/v1/clusters', 'x'.repeat(48))).toEqual({ status: 401, body: { error: { code: 'UNAUTHORIZED', message: 'the API token is wrong' } } });
    expect((await call('GET', '/metrics')).status).toBe(401);
    const refused = await post('/v1/clusters', { name: 'by-http' });
    expect(refused.status).toBe(401);
    expect(await keysUnder(sec.prefix)).not.toContain(`${sec.prefix}/cluster-names/by-http`);

    // /healthz stays open (load balancers probe it); with the token everything answers.
    expect((await get('/healthz')).status).toBe(200);
    const clusters = await get('/v1/clusters', apiToken);
    expect(clusters.status).toBe(200);
    expect(JSON.stringify(clusters.body)).toContain('"sec"');
    expect((await post('/v1/clusters', { name: 'by-http' }, apiToken)).status).toBe(201);
    expect(await keysUnder(sec.prefix)).toContain(`${sec.prefix}/cluster-names/by-http`);
  });

  it('the proxy\'s route guard reads the route from a controller with the token over https', async () => {
    const log = createLogger('error');
    const seen: Route[] = [];
    const guard = (api: ConstructorParameters<typeof RouteGuard>[0]['api']) =>
      new RouteGuard({
        cluster: 'sec',
        proxyId: 'guard-test',
        drainedEpoch: () => null,
        ttlMs: 60_000,
        checkMs: 500,
        // Cut off from etcd: the guard must ask the controllers.
        leaseRemainingMs: () => 0,
        // An older epoch than the controller's, so that its answer is applied.
        epoch: () => 0,
        controllers: () => [controllerUrl],
        api,
        onRoute: (route) => seen.push(route),
        log,
      });
    await guard({ ca: readFileSync(sec.ca.ca) }).check();
    expect(seen).toEqual([]);
    await guard({ token: apiToken }).check();
    expect(seen).toEqual([]);
    await guard({ token: apiToken, ca: readFileSync(sec.ca.ca) }).check();
    expect(seen.map((r) => r.cluster)).toEqual(['sec']);
  });
});

describe('a proxy cut off from etcd, with the controllers\' reads protected', () => {
  it('confirms its route through the controller with the token over https; without the token it stops forwarding', async () => {
    const link = await relay(sec.endpoint.replace('https://', ''));
    const etcdSecurity = loadEtcdSecurity({ ca: sec.ca.ca, cert: sec.clientCert.cert, key: sec.clientCert.key, user: 'cfgserver', passwordFile: sec.passwordFile.cfgserver });
    const ca = readFileSync(sec.ca.ca);
    const withToken = await proxies.start(`https://${link.address}`, sec.prefix, 'sec', { etcdSecurity, controllerApi: { token: apiToken, ca } });
    const withoutToken = await proxies.start(`https://${link.address}`, sec.prefix, 'sec', { etcdSecurity, controllerApi: { ca } });
    await waitFor('both proxies know the controller, by its https URL', async () => withToken.knownControllers().includes(controllerUrl) && withoutToken.knownControllers().includes(controllerUrl), 15_000);
    const client = redis.at(withToken.listenAddress);
    expect(await client.set('cut', 'before')).toBe('OK');

    link.hang();
    try {
      // Past its lease TTL the proxy that cannot read the route from the controller refuses...
      await waitFor('the proxy without the token to stop forwarding', async () => withoutToken.guard.blocked, 15_000, 100);
      // ...while the one with the token had it confirmed all along, and still forwards.
      expect(withToken.guard.blocked).toBe(false);
      expect(await client.set('cut', 'after')).toBe('OK');
      expect(await client.get('cut')).toBe('after');
    } finally {
      link.heal();
    }
  });
});

describe('the HTTP API without a token, with a token for changes only, and with a read-only token', () => {
  /** An API of the controller's own making (createApp) on plain http, in this process. */
  async function serveApi(security?: { token: string | null; authReads: boolean; readToken?: string | null }): Promise<{ url: string; close(): void }> {
    const etcd = createEtcd({ endpoints: sec.endpoint, security: loadEtcdSecurity({ ca: sec.ca.ca, cert: sec.clientCert.cert, key: sec.clientCert.key }) });
    const app = createApp({ admin: new AdminService(etcd, new Keys(sec.prefix)), registry: new Registry(), controllerId: 'in-test', isLeader: () => false, security: security && { readToken: null, ...security } });
    const server = createServer(app);
    const address = await listenOn(server, '127.0.0.1:0', () => undefined);
    return { url: `http://${address}`, close: () => (server.close(), server.closeAllConnections(), etcd.close()) };
  }
  const postJson = (url: string, body: unknown, token?: string) =>
    fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });

  it('no token configured: everything answers as before, and the route guard reads the route over http', async () => {
    const api = await serveApi();
    try {
      expect((await fetch(`${api.url}/v1/clusters/sec/route`)).status).toBe(200);
      expect((await postJson(`${api.url}/v1/clusters`, { name: 'open-api' })).status).toBe(201);
      const seen: Route[] = [];
      const guard = new RouteGuard({ cluster: 'sec', proxyId: 'guard-test', drainedEpoch: () => null, ttlMs: 60_000, checkMs: 500, leaseRemainingMs: () => 0, epoch: () => 0, controllers: () => [api.url], onRoute: (r) => seen.push(r), log: createLogger('error') });
      await guard.check();
      expect(seen.map((r) => r.cluster)).toEqual(['sec']);
    } finally {
      api.close();
    }
  });

  it('a token for changes only: reads are open, a change without the token is refused', async () => {
    const api = await serveApi({ token: apiToken, authReads: false });
    try {
      expect((await fetch(`${api.url}/v1/clusters`)).status).toBe(200);
      const refused = await postJson(`${api.url}/v1/clusters`, { name: 'no-token' });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="cfgserver"');
      expect(await refused.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: 'POST /v1/clusters needs the API token: Authorization: Bearer <token>' } });
      expect((await fetch(`${api.url}/v1/clusters/no-token`, { method: 'DELETE' })).status).toBe(401);
      expect(await keysUnder(sec.prefix)).not.toContain(`${sec.prefix}/cluster-names/no-token`);
      expect((await postJson(`${api.url}/v1/clusters`, { name: 'with-token' }, apiToken)).status).toBe(201);
    } finally {
      api.close();
    }
  });

  it('a read-only token: reads accept it, changes refuse it (403, nothing written); the route guard reads the route with it', async () => {
    const readToken = 'r'.repeat(24);
    const api = await serveApi({ token: apiToken, authReads: true, readToken });
    try {
      const read = (token?: string) => fetch(`${api.url}/v1/clusters/sec/route`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      expect((await read()).status).toBe(401);
      expect((await read(readToken)).status).toBe(200);
      expect((await read(apiToken)).status).toBe(200);
      expect((await read('w'.repeat(24))).status).toBe(401);
      const refused = await postJson(`${api.url}/v1/clusters`, { name: 'read-only' }, readToken);
      expect(refused.status).toBe(403);
      expect(await refused.json()).toEqual({ error: { code: 'FORBIDDEN', message: 'POST /v1/clusters changes something: the read-only API token cannot, the API token can' } });
      expect((await fetch(`${api.url}/v1/clusters/sec`, { method: 'DELETE', headers: { authorization: `Bearer ${readToken}` } })).status).toBe(403);
      expect(await keysUnder(sec.prefix)).not.toContain(`${sec.prefix}/cluster-names/read-only`);
      expect(await keysUnder(sec.prefix)).toContain(`${sec.prefix}/cluster-names/sec`);
      expect((await postJson(`${api.url}/v1/clusters`, { name: 'with-admin-token' }, apiToken)).status).toBe(201);
      // A proxy needs only to read the route: the read-only token is all it is given.
      const seen: Route[] = [];
      const guard = new RouteGuard({ cluster: 'sec', proxyId: 'guard-read', drainedEpoch: () => null, ttlMs: 60_000, checkMs: 500, leaseRemainingMs: () => 0, epoch: () => 0, controllers: () => [api.url], api: { token: readToken }, onRoute: (r) => seen.push(r), log: createLogger('error') });
      await guard.check();
      expect(seen.map((r) => r.cluster)).toEqual(['sec']);
    } finally {
      api.close();
    }
  });
});

describe('secrets', () => {
  it('no etcd password and no API token in any log, output or API answer', async () => {
    // A few more outputs that could carry them: the controller's view of itself, metrics, errors.
    await ctl([...asCfgserver(), 'controllers', '--json']);
    await ctl([...asCfgserver(), 'cluster', 'show', 'sec', '--json']);
    await ctl(['--etcd-ca', sec.ca.ca, '--etcd-cert', sec.clientCert.cert, '--etcd-key', sec.clientCert.key, '--etcd-user', 'cfgserver', 'route', 'sec'], { CFGSERVER_ETCD_PASSWORD: `${sec.password.cfgserver}-wrong` });
    const metrics = await call('GET', '/metrics', apiToken);
    expect(metrics.status).toBe(200);
    const described = await call('GET', '/v1/clusters/sec?live=false', apiToken);
    const everything = [...outputs, ...logFiles.map((f) => readFileSync(f, 'utf8')), metrics.text, described.text].join('\n');
    expect(everything.length).toBeGreaterThan(1000);
    expect(everything).toContain('HTTP API listening');
    for (const secret of [sec.password.cfgserver, sec.password.intruder, apiToken]) expect(everything).not.toContain(secret);
    expect(controller.running()).toBe(true);
  });
});
