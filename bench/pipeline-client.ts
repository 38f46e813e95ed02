/**
 * bench/pipeline-client — a closed-loop RESP load client that times each pipeline twice: to the
 * first byte of its replies (what redis-benchmark reports: it stamps a pipeline's latency at its
 * first read event and gives every reply of it that value) and to its last reply (when the
 * client has everything it asked for). Run by bench/pipeline-latency.ts, one process per run.
 *
 *   node --import tsx bench/pipeline-client.ts --port P [--clients 50] [--pipeline 16] [--requests 200000] [--test set|get]
 *
 * Prints one JSON line: ops/s, and p50/p99 of both latencies in ms.
 */
import { connect } from 'node:net';
import { replyEnd } from '../src/proxy/resp.js';
import { argNumber, argText, percentile } from './common.js';

const PORT = argNumber('port', 0);
const CLIENTS = argNumber('clients', 50);
const PIPELINE = argNumber('pipeline', 16);
const REQUESTS = argNumber('requests', 200_000);
const TEST = argText('test', 'get');

function pipelineBytes(): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < PIPELINE; i++) {
    const key = `key:${String(Math.floor(Math.random() * 100_000)).padStart(12, '0')}`;
    parts.push(TEST === 'set' ? `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$3\r\nxxx\r\n` : `*2\r\n$3\r\nGET\r\n$${key.length}\r\n${key}\r\n`);
  }
  return Buffer.from(parts.join(''), 'latin1');
}

const pipelines = Math.ceil(REQUESTS / PIPELINE);
let started = 0;
const firstByte: number[] = [];
const complete: number[] = [];
const begin = performance.now();

await new Promise<void>((done) => {
  let open = CLIENTS;
  for (let c = 0; c < CLIENTS; c++) {
    const socket = connect(PORT, '127.0.0.1');
    socket.setNoDelay(true);
    let pending = Buffer.alloc(0);
    let awaiting = 0;
    let sentAt = 0;
    let firstAt = -1;
    const next = () => {
      if (started >= pipelines) {
        socket.end();
        if (--open === 0) done();
        return;
      }
      started++;
      awaiting = PIPELINE;
      firstAt = -1;
      sentAt = performance.now();
      socket.write(pipelineBytes());
    };
    socket.on('connect', next);
    socket.on('error', (err) => {
      console.error(`pipeline-client: ${err.message}`);
      process.exit(1);
    });
    socket.on('data', (chunk) => {
      if (firstAt < 0) firstAt = performance.now();
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let at = 0;
      for (let end; (end = replyEnd(pending, at)) !== -1; at = end) {
        if (pending[at] === 45) {
          console.error(`pipeline-client: error reply ${pending.toString('latin1', at, end).trim()}`);
          process.exit(1);
        }
        awaiting--;
      }
      pending = pending.subarray(at);
      if (awaiting === 0) {
        firstByte.push(firstAt - sentAt);
        complete.push(performance.now() - sentAt);
        next();
      }
    });
  }
});

const seconds = (performance.now() - begin) / 1000;
console.log(JSON.stringify({ rps: (pipelines * PIPELINE) / seconds, firstP50: percentile(firstByte, 50), firstP99: percentile(firstByte, 99), completeP50: percentile(complete, 50), completeP99: percentile(complete, 99) }));
