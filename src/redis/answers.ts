/**
 * Whether something at an address answers like Redis, before an admin puts it in a route: one
 * PING on a plain connection. Any reply counts — `-NOAUTH` too: the instance is there, and the
 * cluster's credentials are the controllers' business. No pool: an address that is only being
 * considered must not get a long-lived, reconnecting client.
 */
import { connect } from 'node:net';
import { splitAddress } from '../model/address.js';
import { errorMessage } from '../model/errors.js';

/** Null when `address` answered within `timeoutMs`; otherwise why not, in a few words. */
export function whyNoAnswer(address: string, timeoutMs: number): Promise<string | null> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (why: string | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', () => done(null));
    socket.once('error', (err) => done(errorMessage(err)));
    socket.once('close', () => done('closed the connection without answering'));
  });
}
