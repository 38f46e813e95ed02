/**
 * A RESP client that returns replies as the exact bytes the server sent: to compare the proxy's
 * answers with a direct Redis's, byte for byte, in either protocol.
 */
import { connect, type Socket } from 'node:net';
import { afterAll } from 'vitest';
import { encodeCommand, replyEnd } from '../../src/proxy/resp.js';

export class RawClient {
  private buffer = Buffer.alloc(0);
  private readonly waiters: ((reply: Buffer) => void)[] = [];
  /** Replies that came with nobody waiting (pushes, pub/sub messages). */
  readonly unsolicited: Buffer[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (;;) {
        const end = replyEnd(this.buffer, 0);
        if (end === -1) break;
        const reply = this.buffer.subarray(0, end);
        this.buffer = this.buffer.subarray(end);
        const waiter = this.waiters.shift();
        if (waiter) waiter(Buffer.from(reply));
        else this.unsolicited.push(Buffer.from(reply));
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  static open(address: string): Promise<RawClient> {
    const i = address.lastIndexOf(':');
    return new Promise((resolve, reject) => {
      const socket = connect(Number(address.slice(i + 1)), address.slice(0, i), () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a command; resolves with its reply's bytes (as text, for readable assertions). */
  call(...args: (string | Buffer)[]): Promise<string> {
    return this.callRaw(...args).then((b) => b.toString('latin1'));
  }

  callRaw(...args: (string | Buffer)[]): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${args.join(' ')} within 10 s`)), 10_000);
      this.waiters.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.socket.write(encodeCommand(args));
    });
  }

  /** Resolves with the next reply nobody asked for, waiting up to `ms`. */
  async nextUnsolicited(ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (this.unsolicited.length === 0) {
      if (Date.now() > deadline) throw new Error(`no push within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.unsolicited.shift()!.toString('latin1');
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Raw clients closed after the file. */
export function useRawClients() {
  const clients: RawClient[] = [];
  afterAll(() => clients.forEach((c) => c.close()));
  return async (address: string): Promise<RawClient> => {
    const c = await RawClient.open(address);
    clients.push(c);
    return c;
  };
}
