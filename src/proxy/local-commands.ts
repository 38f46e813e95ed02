/**
 * Commands the proxy answers itself, or by asking every shard: PING, ECHO, QUIT, SELECT 0, AUTH,
 * HELLO 2, INFO (about the proxy), DBSIZE (summed), SCAN (shard after shard), TIME and COMMAND
 * (from one shard), CLIENT SETNAME/GETNAME/ID, READONLY/READWRITE, RESET.
 */
import { REDIS_VERSION } from './command-table.js';
import { arrayElements, encodeCommand, integerReply, isError, reply } from './resp.js';
import type { ClientSession, Pending } from './session.js';

export function runLocal(session: ClientSession, p: Pending, name: string, argv: Buffer[]): void {
  const arg = (i: number) => argv[i]?.toString() ?? '';
  switch (name) {
    case 'PING':
      // A subscribed RESP2 client gets PING's answer in the shape of a message, as from Redis.
      if (session.pubsub?.active && session.proto === 2) return session.answer(p, reply.array([reply.bulk('pong'), reply.bulk(argv[1] ?? '')]));
      return session.answer(p, argv.length > 1 ? reply.bulk(argv[1]!) : reply.pong);
    case 'ECHO':
      return session.answer(p, argv.length === 2 ? reply.bulk(argv[1]!) : wrongArgs(name));
    case 'QUIT':
      return session.quit(p);
    case 'SELECT':
      return session.answer(p, arg(1) === '0' ? reply.ok : reply.error('ERR proxy: only database 0 exists behind the proxy'));
    case 'AUTH':
      return auth(session, p, argv.slice(1));
    case 'HELLO':
      return hello(session, p, argv);
    case 'INFO':
      return session.answer(p, reply.bulk(session.ctx.info()));
    case 'DBSIZE':
      return fanOut(session, p, encodeCommand(['DBSIZE']), (replies) => reply.integer(replies.reduce((n, r) => n + (integerReply(r) ?? 0), 0)));
    case 'SCAN':
      return scan(session, p, argv);
    case 'TIME':
    case 'COMMAND': {
      const first = session.ctx.router().masters()[0];
      if (!first) return session.answer(p, reply.error('ERR proxy: the cluster has no shard'));
      return session.sendTo(first, encodeCommand(argv), (r) => session.answer(p, r));
    }
    case 'CLIENT':
      return client(session, p, argv);
    case 'READONLY':
    case 'READWRITE':
      return session.answer(p, reply.ok);
    case 'RESET':
      session.resetState();
      return session.answer(p, reply.simple('RESET'));
    default:
      return session.answer(p, reply.error(`ERR proxy: ${name} is not handled`));
  }
}

function wrongArgs(name: string): Buffer {
  return reply.error(`ERR wrong number of arguments for '${name.toLowerCase()}' command`);
}

function auth(session: ClientSession, p: Pending, args: Buffer[]): void {
  if (args.length < 1 || args.length > 2) return session.answer(p, wrongArgs('AUTH'));
  if (session.ctx.password === null) {
    return session.answer(p, reply.error('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?'));
  }
  // AUTH password, or AUTH default password (the proxy has one user).
  const user = args.length === 2 ? args[0]!.toString() : 'default';
  const ok = user === 'default' && session.authenticate(args[args.length - 1]!.toString());
  session.answer(p, ok ? reply.ok : reply.error('WRONGPASS invalid username-password pair or user is disabled.'));
}

/**
 * HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 or RESP3 as the client asks; the reply is
 * shaped as Redis's (a map in RESP3, a flat array in RESP2). Nothing changes if an option is bad.
 */
function hello(session: ClientSession, p: Pending, argv: Buffer[]): void {
  const version = argv[1]?.toString();
  if (version !== undefined && version !== '2' && version !== '3') {
    return session.answer(p, reply.error(/^-?\d+$/.test(version) ? 'NOPROTO unsupported protocol version' : 'ERR Protocol version is not an integer or out of range'));
  }
  let name: string | undefined;
  for (let i = 2; i < argv.length; i++) {
    const opt = argv[i]!.toString().toUpperCase();
    if (opt === 'AUTH' && i + 2 < argv.length) {
      if (argv[i + 1]!.toString() !== 'default' || !session.authenticate(argv[i + 2]!.toString())) {
        return session.answer(p, reply.error('WRONGPASS invalid username-password pair or user is disabled.'));
      }
      i += 2;
    } else if (opt === 'SETNAME' && i + 1 < argv.length) {
      name = argv[++i]!.toString();
    } else {
      return session.answer(p, reply.error(`ERR Syntax error in HELLO option '${argv[i]!.toString()}'`));
    }
  }
  if (!session.isAuthenticated()) {
    return session.answer(p, reply.error('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time'));
  }
  if (name !== undefined) session.name = name;
  if (version !== undefined) session.proto = version === '3' ? 3 : 2;
  const fields: [string, Buffer][] = [
    ['server', reply.bulk('redis')],
    ['version', reply.bulk(REDIS_VERSION)],
    ['proto', reply.integer(session.proto)],
    ['id', reply.integer(session.id)],
    ['mode', reply.bulk('standalone')],
    ['role', reply.bulk('master')],
    ['modules', reply.array([])],
  ];
  const flat = fields.flatMap(([k, v]) => [reply.bulk(k), v]);
  session.answer(p, session.proto === 3 ? Buffer.concat([Buffer.from(`%${fields.length}\r\n`), ...flat]) : reply.array(flat));
}

function client(session: ClientSession, p: Pending, argv: Buffer[]): void {
  const sub = argv[1]?.toString().toUpperCase();
  if (sub === 'SETNAME' && argv.length === 3) {
    session.name = argv[2]!.toString();
    return session.answer(p, reply.ok);
  }
  if (sub === 'GETNAME') return session.answer(p, session.name === null ? session.nullReply() : reply.bulk(session.name));
  if (sub === 'ID') return session.answer(p, reply.integer(session.id));
  return session.answer(p, reply.error(`ERR proxy: CLIENT ${sub ?? ''} is not supported through the proxy`));
}

/** Sends a command to every shard's master and combines the replies (any error wins). */
function fanOut(session: ClientSession, p: Pending, command: Buffer, combine: (replies: Buffer[]) => Buffer): void {
  const masters = session.ctx.router().masters();
  if (masters.length === 0) return session.answer(p, combine([]));
  const replies: Buffer[] = new Array(masters.length);
  let left = masters.length;
  masters.forEach((pool, i) =>
    session.sendTo(pool, command, (r) => {
      replies[i] = r;
      if (--left === 0) session.answer(p, replies.find(isError) ?? combine(replies));
    }),
  );
}

/**
 * SCAN across shards: the proxy's cursor is the shard's own cursor followed by a 4-digit shard
 * index. A shard is scanned to its end before the next one starts; "0" means done. (A route
 * change during a scan can skip or repeat keys, as a rehash can in Redis.)
 */
function scan(session: ClientSession, p: Pending, argv: Buffer[]): void {
  const cursor = argv[1]?.toString() ?? '';
  if (!/^\d+$/.test(cursor)) return session.answer(p, reply.error('ERR invalid cursor'));
  const masters = session.ctx.router().masters();
  const index = cursor === '0' ? 0 : Number(cursor.slice(-4));
  const inner = cursor === '0' ? '0' : cursor.slice(0, -4) || '0';
  if (cursor !== '0' && cursor.length < 5) return session.answer(p, reply.error('ERR invalid cursor'));
  const pool = masters[index];
  if (!pool) return session.answer(p, reply.array([reply.bulk('0'), reply.array([])]));
  session.sendTo(pool, encodeCommand([argv[0]!, inner, ...argv.slice(2)]), (r) => {
    if (isError(r)) return session.answer(p, r);
    let parts: Buffer[];
    try {
      parts = arrayElements(r);
    } catch {
      return session.answer(p, reply.error('ERR proxy: unexpected SCAN reply from a shard'));
    }
    const next = parts[0]!.toString().split('\r\n')[1] ?? '0';
    const proxyCursor = next !== '0' ? `${next}${String(index).padStart(4, '0')}` : index + 1 < masters.length ? `0${String(index + 1).padStart(4, '0')}` : '0';
    session.answer(p, reply.array([reply.bulk(proxyCursor), parts[1]!]));
  });
}
