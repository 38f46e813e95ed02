/**
 * The pure parts of issue 10's security: loading the etcd and API settings (files checked, secrets
 * never in messages), endpoint schemes, gRPC reasons made readable, the bearer-token rules.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadApiSecurity, loadApiToken } from '../../src/api/api-security.js';
import { bearerToken, needsToken, tokenMatches } from '../../src/api/auth.js';
import { loadControllerConfig } from '../../src/controller/config.js';
import { ValidationError } from '../../src/model/errors.js';
import { etcdErrorOf, parseEndpoints } from '../../src/store/etcd.js';
import { explainTlsFailure, grpcReason, isTlsFailure, loadEtcdSecurity } from '../../src/store/etcd-security.js';
import { makeCa, type TestCa } from '../helpers/tls.js';
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, GRPCUnavailableError } from 'etcd3';

let dir: string;
let ca: TestCa;
let otherCa: TestCa;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cfgserver-security-unit-'));
  ca = makeCa(dir, 'ca');
  otherCa = makeCa(dir, 'other');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function validationMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as Error).message;
  }
  throw new Error('expected a ValidationError');
}

describe('loadEtcdSecurity', () => {
  it('nothing set: plain etcd, as before', () => {
    expect(loadEtcdSecurity({}, {})).toBeUndefined();
    // A password in the environment without a user is not an identity.
    expect(loadEtcdSecurity({}, { CFGSERVER_ETCD_PASSWORD: 'x' })).toBeUndefined();
  });

  it('reads the CA, the client certificate and its key, and the password from a file or the environment', () => {
    const client = ca.client('cfgserver');
    const file = write('password', 'secret-1\n');
    const s = loadEtcdSecurity({ ca: ca.ca, cert: client.cert, key: client.key, user: 'cfgserver', passwordFile: file }, {});
    expect(s?.tls?.ca?.toString()).toContain('BEGIN CERTIFICATE');
    expect(s?.tls?.key?.toString()).toContain('PRIVATE KEY');
    expect(s?.auth).toEqual({ user: 'cfgserver', password: 'secret-1' });
    expect(loadEtcdSecurity({ user: 'cfgserver' }, { CFGSERVER_ETCD_PASSWORD: 'secret-2' })?.auth).toEqual({ user: 'cfgserver', password: 'secret-2' });
    // The file wins over the environment.
    expect(loadEtcdSecurity({ user: 'u', passwordFile: file }, { CFGSERVER_ETCD_PASSWORD: 'other' })?.auth?.password).toBe('secret-1');
  });

  it('refuses bad settings with the option and the file named, never a secret', () => {
    const client = ca.client('c2');
    const password = write('pw', 'do-not-print-me\n');
    expect(validationMessage(() => loadEtcdSecurity({ ca: join(dir, 'nope.pem') }, {}))).toBe(`cannot read --etcd-ca ${join(dir, 'nope.pem')} (ENOENT)`);
    expect(validationMessage(() => loadEtcdSecurity({ ca: password }, {}))).toBe(`--etcd-ca ${password} is not a PEM certificate`);
    expect(validationMessage(() => loadEtcdSecurity({ cert: client.cert }, {}))).toMatch(/--etcd-cert and --etcd-key go together/);
    expect(validationMessage(() => loadEtcdSecurity({ cert: client.cert, key: password }, {}))).toMatch(/is not a PEM private key/);
    expect(validationMessage(() => loadEtcdSecurity({ cert: client.cert, key: otherCa.client('c3').key }, {}))).toMatch(/is not the key of the certificate/);
    expect(validationMessage(() => loadEtcdSecurity({ user: 'u' }, {}))).toBe('etcd user u needs a password: --etcd-password-file FILE or $CFGSERVER_ETCD_PASSWORD');
    expect(validationMessage(() => loadEtcdSecurity({ user: 'u', passwordFile: write('empty', '\n') }, {}))).toBe('the password of etcd user u is empty');
    expect(validationMessage(() => loadEtcdSecurity({ passwordFile: password }, {}))).toMatch(/needs --etcd-user/);
    for (const settings of [{ user: 'u', passwordFile: password }, { cert: client.cert, key: password }]) {
      try {
        loadEtcdSecurity(settings, {});
      } catch (err) {
        expect((err as Error).message).not.toContain('do-not-print-me');
      }
    }
  });
});

describe('endpoints and schemes', () => {
  it('adds https:// when TLS settings are given, and refuses http:// with them or a mix', () => {
    expect(parseEndpoints('127.0.0.1:2379,127.0.0.1:2380')).toEqual(['http://127.0.0.1:2379', 'http://127.0.0.1:2380']);
    expect(parseEndpoints('127.0.0.1:2379', true)).toEqual(['https://127.0.0.1:2379']);
    expect(parseEndpoints('https://a:1,https://b:2')).toEqual(['https://a:1', 'https://b:2']);
    expect(() => parseEndpoints('http://a:1', true)).toThrow(/use https:\/\/ endpoints/);
    expect(() => parseEndpoints('http://a:1,https://b:2')).toThrow(/mix http:\/\/ and https:\/\//);
  });
});

describe('etcd errors in one clear line', () => {
  const unavailable = (last: string) => new GRPCUnavailableError(`14 UNAVAILABLE: No connection established. Last error: ${last}. Resolution note: `);

  it('takes the reason out of grpc-js and OpenSSL wording', () => {
    expect(grpcReason(unavailable('Error: unable to verify the first certificate'))).toBe('unable to verify the first certificate');
    expect(grpcReason(unavailable('80EC2AB6EC7F0000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n (2026-12-02T23:28:17.727Z)'))).toBe('sslv3 alert bad certificate');
    expect(grpcReason(unavailable('Error: connect ECONNREFUSED 127.0.0.1:1'))).toBe('connect ECONNREFUSED 127.0.0.1:1');
    expect(grpcReason(unavailable('null'))).toBe('no connection established');
    expect(grpcReason(new Error('3 INVALID_ARGUMENT: etcdserver: authentication failed'))).toBe('etcdserver: authentication failed');
  });

  it('tells TLS failures from an etcd that is down, and says what to fix', () => {
    expect(isTlsFailure('unable to verify the first certificate')).toBe(true);
    expect(isTlsFailure('sslv3 alert bad certificate')).toBe(true);
    expect(isTlsFailure('connect ECONNREFUSED 127.0.0.1:1')).toBe(false);
    expect(isTlsFailure('no connection established')).toBe(false);
    expect(explainTlsFailure('sslv3 alert bad certificate')).toMatch(/^etcd refused our client certificate/);
    expect(explainTlsFailure('self-signed certificate in certificate chain')).toMatch(/^etcd's certificate is not signed by the CA we trust .*--etcd-ca/);
  });

  it('maps refusals to ETCD_ACCESS and the rest to ETCD_UNAVAILABLE', () => {
    expect(etcdErrorOf('read route', new EtcdAuthenticationFailedError('3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password'))).toMatchObject({ code: 'ETCD_ACCESS', message: expect.stringMatching(/^etcd refused the user name or password \(read route\)/) });
    expect(etcdErrorOf('read route', new EtcdPermissionDeniedError('7 PERMISSION_DENIED: etcdserver: permission denied'))).toMatchObject({ code: 'ETCD_ACCESS', message: expect.stringMatching(/^etcd permission denied \(read route\)/) });
    expect(etcdErrorOf('read route', unavailable('Error: unable to verify the first certificate'))).toMatchObject({ code: 'ETCD_ACCESS', message: expect.stringMatching(/^TLS with etcd failed \(read route\): etcd's certificate is not signed/) });
    expect(etcdErrorOf('read route', new Error('3 INVALID_ARGUMENT: etcdserver: user name is empty'))).toMatchObject({ code: 'ETCD_ACCESS', message: 'etcd requires authentication (read route): etcdserver: user name is empty; give --etcd-user with a password, or a client certificate' });
    expect(etcdErrorOf('read route', unavailable('Error: connect ECONNREFUSED 127.0.0.1:1'))).toMatchObject({ code: 'ETCD_UNAVAILABLE' });
  });
});

describe('the HTTP API token', () => {
  it('compares tokens of any length without failing', () => {
    expect(tokenMatches('a'.repeat(32), 'a'.repeat(32))).toBe(true);
    expect(tokenMatches('a'.repeat(32), 'a'.repeat(31) + 'b')).toBe(false);
    expect(tokenMatches('short', 'a'.repeat(32))).toBe(false);
    expect(tokenMatches('', 'a'.repeat(32))).toBe(false);
  });

  it('reads the bearer token of an Authorization header', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer  abc ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeNull();
    expect(bearerToken('Bearer a b')).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });

  it('needs the token on changes; on reads only with authReads; never on /healthz; nothing without a token', () => {
    const changes = { token: 't'.repeat(16), authReads: false };
    const all = { token: 't'.repeat(16), authReads: true };
    expect(['POST', 'PUT', 'DELETE', 'PATCH'].map((m) => needsToken(changes, m, '/v1/clusters'))).toEqual([true, true, true, true]);
    expect(needsToken(changes, 'GET', '/v1/clusters')).toBe(false);
    expect(needsToken(all, 'GET', '/v1/clusters')).toBe(true);
    expect(needsToken(all, 'GET', '/metrics')).toBe(true);
    expect(needsToken(all, 'GET', '/healthz')).toBe(false);
    expect(needsToken({ token: null, authReads: false }, 'POST', '/v1/clusters')).toBe(false);
    // The dashboard's page and files carry no data: a browser loads them before any token is pasted.
    expect(['/', '/ui', '/ui/', '/ui/app.js'].map((p) => needsToken(all, 'GET', p))).toEqual([false, false, false, false]);
    expect(needsToken(all, 'POST', '/ui/x')).toBe(true);
    expect(needsToken(all, 'GET', '/v1/clusters/x/overview')).toBe(true);
  });

  it('loads the token from a file or $CFGSERVER_API_TOKEN, and refuses a weak one without printing it', () => {
    expect(loadApiToken(undefined, {})).toBeNull();
    expect(loadApiToken(undefined, { CFGSERVER_API_TOKEN: 'x'.repeat(20) })).toBe('x'.repeat(20));
    expect(loadApiToken(write('token', `${'y'.repeat(20)}\n`), {})).toBe('y'.repeat(20));
    const weak = validationMessage(() => loadApiToken(undefined, { CFGSERVER_API_TOKEN: 'hunter2' }));
    expect(weak).toBe('the API token ($CFGSERVER_API_TOKEN) must be at least 16 characters');
    expect(validationMessage(() => loadApiSecurity({ authReads: true }, {}))).toMatch(/--api-auth-reads needs a token/);
    expect(validationMessage(() => loadApiSecurity({ tlsCert: ca.server('api').cert }, {}))).toMatch(/go together/);
    // The read-only token: from a file or $CFGSERVER_API_READ_TOKEN, only with authReads, not the API token itself.
    const both = { CFGSERVER_API_TOKEN: 'a'.repeat(20), CFGSERVER_API_READ_TOKEN: 'b'.repeat(20) };
    expect(loadApiSecurity({ authReads: true }, both)).toMatchObject({ token: 'a'.repeat(20), readToken: 'b'.repeat(20) });
    expect(loadApiSecurity({ authReads: true, readTokenFile: write('read-token', `${'c'.repeat(20)}\n`) }, both).readToken).toBe('c'.repeat(20));
    expect(loadApiSecurity({ authReads: true }, { CFGSERVER_API_TOKEN: 'a'.repeat(20) }).readToken).toBeNull();
    expect(validationMessage(() => loadApiSecurity({}, both))).toBe('a read-only API token (--api-read-token-file or $CFGSERVER_API_READ_TOKEN) needs --api-auth-reads: without it reads need no token');
    expect(validationMessage(() => loadApiSecurity({ authReads: true }, { ...both, CFGSERVER_API_READ_TOKEN: 'a'.repeat(20) }))).toBe('the read-only API token must differ from the API token');
    expect(validationMessage(() => loadApiSecurity({ authReads: true }, { ...both, CFGSERVER_API_READ_TOKEN: 'short' }))).toBe('the API token ($CFGSERVER_API_READ_TOKEN) must be at least 16 characters');
    const server = ca.server('api2');
    expect(loadApiSecurity({ tlsCert: server.cert, tlsKey: server.key }, {}).tls?.cert.toString()).toContain('BEGIN CERTIFICATE');
  });
});

describe('the controller config', () => {
  it('takes the security settings from YAML, with flags on top', () => {
    const file = write('controller.yaml', 'etcdCa: /etc/ca.pem\netcdUser: cfgserver\netcdPasswordFile: /etc/pw\napiTokenFile: /etc/token\napiAuthReads: true\napiReadTokenFile: /etc/read-token\n');
    const config = loadControllerConfig(file, { etcdUser: 'other' });
    expect(config).toMatchObject({ etcdCa: '/etc/ca.pem', etcdUser: 'other', etcdPasswordFile: '/etc/pw', apiTokenFile: '/etc/token', apiAuthReads: true, apiReadTokenFile: '/etc/read-token' });
    expect(loadControllerConfig(undefined, {}).apiAuthReads).toBe(false);
    // No password in the file: a typo'd or secret-bearing key is refused.
    expect(validationMessage(() => loadControllerConfig(write('bad.yaml', 'etcdPassword: x\n'), {}))).toMatch(/etcdPassword/);
  });
});
