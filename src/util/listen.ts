/**
 * The one way a cfgserver server (proxy, HTTP API, metrics) starts listening on "HOST:PORT".
 */
import type { Server } from 'node:net';
import { splitAddress } from '../model/address.js';

/**
 * Listens on `hostPort` (port 0 picks a free one) and resolves with the address it really listens
 * on. An error before that (the port is taken) rejects; later errors (a failed accept, say) go to
 * `onError`: without a handler they would end the process.
 */
export function listenOn(server: Server, hostPort: string, onError: (err: NodeJS.ErrnoException) => void): Promise<string> {
  const { host, port } = splitAddress(hostPort);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', onError);
      const bound = server.address();
      resolve(`${host}:${typeof bound === 'object' && bound ? bound.port : port}`);
    });
  });
}
