/**
 * bench/request-parse — the proxy's request parser and slot hash, and its reply scanner, alone, in
 * process: nanoseconds per command for batches of 16 pipelined GETs and SETs as redis-benchmark
 * sends them (16-byte keys), and per reply for 16 `+OK` or 3-byte bulk replies in one read,
 * for this build and, with --compare, for another build's dist/ in the same run (interleaved
 * rounds). The whole proxy's CPU per command (bench/proxy.ts) moves by more than this part weighs
 * from run to run on this machine; here it is measured alone.
 *
 *   npm run build && node --import tsx bench/request-parse.ts [--compare /path/to/other/dist] [--rounds 5] [--batches 200000]
 */
import { resolve } from 'node:path';
import { packageRoot } from '../src/playground/processes.js';
import { argNumber, argText, median } from './common.js';

const ROUNDS = argNumber('rounds', 5);
const BATCHES = argNumber('batches', 200_000);
const compare = argText('compare', '');

interface ParserModule {
  RequestParser: new () => { setAuthenticated?(on: boolean): void; feed(chunk: Buffer, onCommand: (cmd: { buf: Buffer; offsets: Int32Array | number[] }) => void): void };
  ReplyReader: new () => { feed(chunk: Buffer, volatile: boolean, onReply: (buf: Buffer, start: number, end: number) => boolean): void };
}
interface SlotModule {
  bytesSlot(buf: Uint8Array, start: number, end: number, slotCount: number): number;
}

const requests = {
  GET: Buffer.from('*2\r\n$3\r\nGET\r\n$16\r\nkey:000000012345\r\n'),
  SET: Buffer.from('*3\r\n$3\r\nSET\r\n$16\r\nkey:000000012345\r\n$3\r\nxxx\r\n'),
};

async function load(dist: string): Promise<{ parser: ParserModule; slot: SlotModule }> {
  return { parser: (await import(resolve(dist, 'proxy/resp.js'))) as ParserModule, slot: (await import(resolve(dist, 'model/slot.js'))) as SlotModule };
}

function nsPerCommand(m: { parser: ParserModule; slot: SlotModule }, one: Buffer): number {
  const batch = Buffer.concat(Array<Buffer>(16).fill(one));
  const parser = new m.parser.RequestParser();
  parser.setAuthenticated?.(true);
  let commands = 0;
  let sum = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < BATCHES; i++) {
    parser.feed(batch, (cmd) => {
      commands++;
      sum += m.slot.bytesSlot(cmd.buf, cmd.offsets[2]!, cmd.offsets[3]!, 16384);
    });
  }
  const ns = Number(process.hrtime.bigint() - started) / commands;
  if (sum < 0) throw new Error('unreachable: keeps the slot computation alive');
  return ns;
}

const replies = { '+OK': Buffer.from('+OK\r\n'), '$3 bulk': Buffer.from('$3\r\nxxx\r\n') };

function nsPerReply(m: { parser: ParserModule }, one: Buffer): number {
  const batch = Buffer.concat(Array<Buffer>(16).fill(one));
  const reader = new m.parser.ReplyReader();
  let count = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < BATCHES; i++) {
    reader.feed(batch, false, () => {
      count++;
      return true;
    });
  }
  return Number(process.hrtime.bigint() - started) / count;
}

async function main(): Promise<void> {
  const builds: [string, Awaited<ReturnType<typeof load>>][] = [['this build', await load(resolve(packageRoot(), 'dist'))]];
  if (compare) builds.push([`--compare ${compare}`, await load(compare)]);
  const lines = [`bench/request-parse: 16 pipelined commands per read, ${BATCHES} reads, median of ${ROUNDS} interleaved rounds`];
  for (const [test, one] of Object.entries(requests)) {
    const times = new Map(builds.map(([name]) => [name, [] as number[]]));
    for (let round = 0; round < ROUNDS; round++) for (const [name, m] of builds) times.get(name)!.push(nsPerCommand(m, one));
    for (const [name, ns] of times) lines.push(`${test}  ${name.padEnd(40)} ${median(ns).toFixed(1)} ns per command (parse + slot)`);
  }
  for (const [test, one] of Object.entries(replies)) {
    const times = new Map(builds.map(([name]) => [name, [] as number[]]));
    for (let round = 0; round < ROUNDS; round++) for (const [name, m] of builds) times.get(name)!.push(nsPerReply(m, one));
    for (const [name, ns] of times) lines.push(`${test.padEnd(7)} reply  ${name.padEnd(40)} ${median(ns).toFixed(1)} ns per reply (scan)`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
