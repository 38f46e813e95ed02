/**
 * Moving a key on access (docs/migration.md, "What the proxies do"): before a command runs on a
 * key of a moving slot, the proxy sends `MIGRATE … KEYS` to the slot's source master, on the
 * client's own connection to it (so the client's commands keep their order), and runs the command
 * at the target once the key is there. `MIGRATE` is atomic on the source: a key is on one side or
 * the other, never half moved. `NOKEY` means it was already moved (or never existed): fine.
 * `BUSYKEY` means the target already holds it — the leader's mover copied it there and has not
 * dropped the source's copy yet, or a failover of the source brought back a copy it had dropped:
 * the destination's copy wins, the source's is unlinked.
 */
import { splitAddress } from '../model/address.js';
import { migrateAuthArgs, type Credentials } from '../model/auth.js';
import type { BackendConnection, BackendPool } from './backend.js';
import { encodeCommand, reply } from './resp.js';
import { SLOT_MOVING, type Router } from './router.js';

export interface KeyMoveSettings {
  /** The backends' credentials now (MIGRATE's AUTH or AUTH2), null without. */
  credentials(): Credentials | null;
  /** MIGRATE's own timeout for talking to the target. */
  timeoutMs: number;
  /** Keys the proxy moved (for its metrics). */
  onMoved(keys: number): void;
}

export interface KeyOfSlot {
  slot: number;
  key: Buffer;
}

interface Group {
  source: BackendPool;
  target: BackendPool;
  keys: Buffer[];
}

const BUSYKEY = 'BUSYKEY';

/**
 * Moves the keys of moving slots (others are skipped) to the master `router` serves them on, then
 * calls `done(null)`; `done(error reply)` when some could not be moved (the command must not run).
 */
export function moveKeys(
  router: Router,
  keys: readonly KeyOfSlot[],
  connectionOf: (pool: BackendPool) => BackendConnection,
  settings: KeyMoveSettings,
  done: (error: Buffer | null) => void,
  /**
   * Skip keys known gone from their source. Only when none of this client's moves is in flight:
   * a command whose keys need no MIGRATE would otherwise run at the target before an earlier
   * command of the same slot still waiting for its MIGRATE.
   */
  trustGone = true,
): void {
  const groups = new Map<string, Group>();
  const gone = router.goneFromSource;
  for (const { slot, key } of keys) {
    if (router.phaseOf(slot) !== SLOT_MOVING || (trustGone && gone.has(key))) continue;
    const source = router.moveSource(slot)!;
    const target = router.poolForSlot(slot)!;
    const id = `${source.address}>${target.address}`;
    let group = groups.get(id);
    if (!group) groups.set(id, (group = { source, target, keys: [] }));
    group.keys.push(key);
  }
  let left = groups.size;
  if (left === 0) return done(null);
  let failure: string | null = null;
  for (const group of groups.values()) {
    const connection = connectionOf(group.source);
    connection.send(migrateCommand(group, settings), (r) => {
      if (r[0] === 45 || r[0] === 33) {
        const text = r.toString('latin1', 1).trim();
        // The target's copy wins; dropping the source's can go along with the command itself.
        if (text.includes(BUSYKEY)) {
          connection.send(encodeCommand([Buffer.from('UNLINK'), ...group.keys]), () => undefined);
          for (const key of group.keys) gone.add(key);
        } else failure ??= `${group.source.address} -> ${group.target.address}: ${text}`;
      } else {
        // OK (moved) or NOKEY (moved before, or never there): either way not on the source now.
        if (r.toString('latin1', 1, 3) === 'OK') settings.onMoved(group.keys.length);
        for (const key of group.keys) gone.add(key);
      }
      if (--left === 0) done(failure === null ? null : reply.error(`TRYAGAIN proxy: the keys of a migrating slot could not be moved (${failure}); the command did not run, retry it`));
    });
  }
}

function migrateCommand(group: Group, settings: KeyMoveSettings): Buffer {
  const { host, port } = splitAddress(group.target.address);
  const auth = migrateAuthArgs(settings.credentials());
  return encodeCommand(['MIGRATE', host, String(port), '', '0', String(settings.timeoutMs), ...auth, 'KEYS', ...group.keys]);
}
