/**
 * SIGHUP makes a controller read its API token files and certificate again (docs/security.md): a
 * rotated token counts from the next request and a rotated certificate from the next handshake,
 * without a restart; a bad file keeps what is in use and says so. Real controller process, https.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, waitFor, type ManagedProcess } from '../../src/playground/processes.js';
import { makeCa } from '../helpers/tls.js';
import { randomPrefix, useWorld } from '../helpers/servers.js';

const world = useWorld();
let controller: ManagedProcess | undefined;
afterAll(async () => controller?.kill9());

/** The status of one https request to the API, trusting `ca`. */
function status(url: string, ca: string, method: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, ca: readFileSync(ca), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

/** The fingerprint of the certificate a new TLS handshake with `port` presents. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

function fingerprintOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}

describe('SIGHUP on a controller', () => {
  it('reads the API tokens and certificate again: new ones count at once, old ones no more; a bad file changes nothing', async () => {
    const ca = makeCa(world.dir, 'reload-ca');
    const first = ca.server('api-first');
    const second = ca.server('api-second');
    const certFile = join(world.dir, 'api.pem');
    const keyFile = join(world.dir, 'api-key.pem');
    writeFileSync(certFile, readFileSync(first.cert));
    writeFileSync(keyFile, readFileSync(first.key));
    const tokenFile = join(world.dir, 'api.token');
    const readTokenFile = join(world.dir, 'api-read.token');
    const [tokenA, tokenB, readA, readB] = ['a', 'b', 'c', 'd'].map((c) => c.repeat(24)) as [string, string, string, string];
    writeFileSync(tokenFile, `${tokenA}\n`);
    writeFileSync(readTokenFile, `${readA}\n`);
    const port = await freePort();
    controller = world.controller('reload', randomPrefix(), [
      '--listen', `127.0.0.1:${port}`, '--api-token-file', tokenFile, '--api-read-token-file', readTokenFile, '--api-auth-reads',
      '--api-tls-cert', certFile, '--api-tls-key', keyFile,
    ]);
    const url = `https://127.0.0.1:${port}/v1/clusters`;
    await waitFor('the API to answer', async () => (await status(url, ca.ca, 'GET', tokenA).catch(() => 0)) === 200, 15_000);
    expect(await status(url, ca.ca, 'GET', readA)).toBe(200);
    expect(await presented(port)).toBe(fingerprintOf(first.cert));

    // Rotated: new files, then SIGHUP.
    writeFileSync(tokenFile, `${tokenB}\n`);
    writeFileSync(readTokenFile, `${readB}\n`);
    writeFileSync(certFile, readFileSync(second.cert));
    writeFileSync(keyFile, readFileSync(second.key));
    controller.signal('SIGHUP');
    await waitFor('the new token to count', async () => (await status(url, ca.ca, 'GET', tokenB)) === 200, 10_000);
    expect(await status(url, ca.ca, 'GET', tokenA)).toBe(401);
    expect(await status(url, ca.ca, 'GET', readB)).toBe(200);
    expect(await status(url, ca.ca, 'GET', readA)).toBe(401);
    expect(await status(url, ca.ca, 'POST', readB)).toBe(403);
    expect(await presented(port)).toBe(fingerprintOf(second.cert));

    // A bad file: what is in use stays, and the log says why.
    writeFileSync(tokenFile, 'short\n');
    controller.signal('SIGHUP');
    const log = join(world.dir, 'controller-reload.log');
    await waitFor('the refusal in the log', async () => /SIGHUP: the API token and certificate files could not be read again: those in use are kept/.test(readFileSync(log, 'utf8')), 10_000);
    expect(await status(url, ca.ca, 'GET', tokenB)).toBe(200);
    expect(readFileSync(log, 'utf8')).not.toContain(tokenB);
    expect(controller.running()).toBe(true);
  });
});
