/**
 * A process's first question to etcd: may I read and write under my prefix? Asked at start-up by
 * controllers, proxies and cfgctl, so that wrong credentials end the process with one clear line
 * instead of a loop of retries — and before anything is written.
 */
import { connect } from 'node:net';
import type { Etcd3 } from 'etcd3';
import { EtcdAccessError, EtcdUnavailableError } from '../model/errors.js';
import { endpointsOf, etcdCall, securityOf } from './etcd.js';
import { grpcReason } from './etcd-security.js';
import type { Keys } from './keys.js';

/**
 * One transaction that writes nothing: its condition always holds (a key's version is never
 * negative), so only its read runs — but etcd checks the permission of every operation in both
 * branches, so a role without write access on the prefix is refused here too.
 *
 * Resolves 'ok', or 'unreachable' when etcd does not answer (the caller goes on and retries as it
 * always has); throws EtcdAccessError when etcd refuses us.
 */
export async function checkEtcdAccess(etcd: Etcd3, keys: Keys): Promise<'ok' | 'unreachable'> {
  const key = keys.accessCheck();
  try {
    await etcdCall('access check', () => etcd.if(key, 'Version', '>', -1).then(etcd.get(key)).else(etcd.put(key).value('')).commit());
    return 'ok';
  } catch (err) {
    if (!(err instanceof EtcdUnavailableError)) throw err;
    // grpc-js gives no reason at all both when nothing listens (on its token exchange) and when a
    // TLS peer hangs up during the handshake (etcd wants a client certificate we did not give). A
    // plain TCP connection tells them apart: if etcd accepts one, it is TLS that failed.
    if (securityOf(etcd)?.tls && grpcReason(err.cause) === 'no connection established' && (await anyAcceptsTcp(endpointsOf(etcd) ?? []))) {
      throw new EtcdAccessError('TLS with etcd failed (access check): etcd closed the connection during the handshake; does it want a client certificate (--etcd-cert, --etcd-key) signed by a CA it trusts?', { cause: err });
    }
    return 'unreachable';
  }
}

/** Whether any endpoint accepts a TCP connection within a second. */
async function anyAcceptsTcp(endpoints: string[]): Promise<boolean> {
  const accepts = (endpoint: string) =>
    new Promise<boolean>((resolve) => {
      const url = new URL(endpoint);
      const socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 2379) });
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1000, () => done(false));
      socket.once('connect', () => done(true));
      socket.once('error', () => done(false));
    });
  return (await Promise.all(endpoints.map(accepts))).some(Boolean);
}
