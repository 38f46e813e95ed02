/**
 * One setImmediate per event-loop turn for all the sockets that have something to write, instead
 * of one per socket: everything gathered while the poll phase read goes out in the check phase.
 */
const pending: (() => void)[] = [];
let scheduled = false;

function runAll(): void {
  scheduled = false;
  // Flushes may schedule more (a reply completing another session's head): run until empty.
  for (let i = 0; i < pending.length; i++) pending[i]!();
  pending.length = 0;
}

export function flushSoon(flush: () => void): void {
  pending.push(flush);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runAll);
  }
}
