/**
 * The command table from the backends themselves: the proxy asks one master for COMMAND and uses
 * its answer instead of the built-in 7.0 table, so that commands (and key positions) of the
 * Redis version actually deployed route right. The built-in table stays in use when COMMAND
 * fails or answers something that does not look like Redis 7's command table.
 */
import type { Logger } from 'winston';
import { errorMessage } from '../model/errors.js';
import type { BackendPool } from './backend.js';
import { decodeReply, parseCommandReply } from './command-parse.js';
import { useCommandTable, type CommandSpec } from './commands.js';
import { encodeCommand } from './resp.js';

const COMMAND = encodeCommand(['COMMAND']);

/**
 * Why a parsed table cannot be trusted, or null. A few commands whose key positions the proxy
 * depends on are checked: a table that got them wrong would misroute, which is worse than the
 * built-in table's not knowing a newer command.
 */
export function tableProblem(table: Record<string, CommandSpec>): string | null {
  const count = Object.keys(table).length;
  if (count < 100) return `only ${count} commands`;
  const firstKey = (name: string, step = 1) => {
    const k = table[name]?.keys[0];
    return !!k && 'index' in k.begin && k.begin.index === 1 && 'lastkey' in k.find && k.find.step === step;
  };
  if (!firstKey('GET') || table['GET']!.arity !== 2) return 'GET does not have its key first';
  if (!firstKey('SET')) return 'SET does not have its key first';
  if (!firstKey('MSET', 2)) return 'MSET does not have keys at every other argument';
  const evalKeys = table['EVAL']?.keys[0];
  if (!evalKeys || !('keynumidx' in evalKeys.find)) return 'EVAL has no key count';
  return null;
}

export class CommandSource {
  private loaded = false;
  private inFlight = false;
  /** A route was seen: with no master to ask, there is nothing to wait for. */
  private seenRoute = false;
  private readonly tried = new Set<string>();
  private waiters: (() => void)[] = [];

  constructor(private readonly log: Logger) {}

  /**
   * Asks a master it has not asked yet, unless a table was already read: at start, and again
   * only when a route names a master not seen before (the ones tried may have been down).
   */
  onMasters(addresses: readonly string[], poolFor: (address: string) => BackendPool): void {
    this.seenRoute = true;
    if (this.loaded || this.inFlight) return;
    const address = addresses.find((a) => !this.tried.has(a));
    if (address === undefined) return this.settle();
    this.tried.add(address);
    this.inFlight = true;
    poolFor(address)
      .connectionFor(0)
      .send(COMMAND, (r) => {
        this.inFlight = false;
        this.apply(address, r);
        this.settle();
      });
  }

  /** Resolves once the first attempt is over (whatever its outcome), or after `ms`. */
  ready(ms: number): Promise<void> {
    if (this.loaded || (this.seenRoute && !this.inFlight)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private settle(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private apply(address: string, reply: Buffer): void {
    let table: Record<string, CommandSpec>;
    try {
      table = parseCommandReply(decodeReply(reply));
    } catch (err) {
      const text = reply[0] === 45 ? reply.toString().trim() : errorMessage(err);
      this.log.warn('COMMAND from a master could not be used: keeping the built-in command table', { master: address, error: text });
      return;
    }
    const problem = tableProblem(table);
    if (problem) {
      this.log.warn('COMMAND from a master looks wrong: keeping the built-in command table', { master: address, problem });
      return;
    }
    useCommandTable(table);
    this.loaded = true;
    this.log.info('command table read from a master', { master: address, commands: Object.keys(table).length });
  }
}
