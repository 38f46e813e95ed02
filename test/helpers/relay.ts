/**
 * A TCP relay the test controls, in front of a server: `hang()` keeps every connection open but
 * passes nothing (a hung member, a link that drops packets), `heal()` passes again. Stopped after
 * the file.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll } from 'vitest';

export class Relay {
  private hung = false;
  /** Connections accepted so far (a client that reconnects shows up here). */
  accepted = 0;
  private readonly pairs = new Set<[Socket, Socket]>();

  private constructor(
    private readonly server: Server,
    readonly address: string,
  ) {}

  static async start(target: string): Promise<Relay> {
    const i = target.lastIndexOf(':');
    let relay!: Relay;
    const server = createServer((client) => {
      relay.accepted++;
      const upstream = connect(Number(target.slice(i + 1)), target.slice(0, i));
      const pair: [Socket, Socket] = [client, upstream];
      relay.pairs.add(pair);
      const pass = (from: Socket, to: Socket) => from.on('data', (d) => relay.hung || to.write(d));
      pass(client, upstream);
      pass(upstream, client);
      const end = () => {
        relay.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    relay = new Relay(server, `127.0.0.1:${(server.address() as { port: number }).port}`);
    return relay;
  }

  /** Passes nothing from now on (bytes are dropped), connections stay open. */
  hang(): void {
    this.hung = true;
  }

  heal(): void {
    this.hung = false;
  }

  stop(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.server.close();
  }
}

export function useRelays() {
  const relays: Relay[] = [];
  afterAll(() => relays.forEach((r) => r.stop()));
  return async (target: string) => {
    const r = await Relay.start(target);
    relays.push(r);
    return r;
  };
}
