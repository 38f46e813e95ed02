/**
 * A process's first question to etcd: may I read and write under my prefix? Asked at start-up by
 * controllers, proxies and cfgctl, so that wrong credentials end the process with one clear line
 * instead of a loop of retries — and before anything is written.
 */
import type { Etcd3 } from 'etcd3';
import { EtcdAccessError, EtcdUnavailableError } from '../model/errors.js';
import { etcdCall, securityOf } from './etcd.js';
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
    // A TLS peer that hangs up without a reason: etcd wants a client certificate we did not give
    // (or did not sign). Only said when we speak TLS: a plain connection never ends that way.
    if (securityOf(etcd)?.tls && grpcReason(err.cause) === 'no connection established') {
      throw new EtcdAccessError('TLS with etcd failed (access check): etcd closed the connection during the handshake; does it want a client certificate (--etcd-cert, --etcd-key) signed by a CA it trusts?', { cause: err });
    }
    return 'unreachable';
  }
}
