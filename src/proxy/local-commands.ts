/**
 * Commands the proxy answers itself: PING, ECHO, QUIT, SELECT 0, AUTH, HELLO 2, INFO (about the
 * proxy), TIME and COMMAND (from one shard), CLIENT SETNAME/GETNAME/ID, READONLY/READWRITE,
 * RESET; and the dispatch of those answered by asking every shard (fan-out.ts, scan.ts).
 */
import { REDIS_VERSION } from './command-table.js';
import { dbsize, flush, functionCommand, keys, pubsub, randomKey, script } from './fan-out.js';
import { encodeCommand, encodeFor, reply } from './resp.js';
import { scan } from './scan.js';
import type { LocalClient, Pending } from './client.js';

export function runLocal(session: LocalClient, p: Pending, name: string, argv: Buffer[]): void {
  const arg = (i: number) => argv[i]?.toString() ?? '';
  switch (name) {
    case 'PING':
      // A subscribed RESP2 client gets PING's answer in the shape of a message, as from Redis.
      if (session.subscribed && session.proto === 2) return session.answer(p, reply.array([reply.bulk('pong'), reply.bulk(argv[1] ?? '')]));
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
      return dbsize(session, p);
    case 'SCAN':
      return scan(session, p, argv);
    case 'KEYS':
      return keys(session, p, argv);
    case 'RANDOMKEY':
      return randomKey(session, p);
    case 'FLUSHALL':
    case 'FLUSHDB':
      return flush(session, p, name, argv);
    case 'SCRIPT':
      return script(session, p, argv);
    case 'PUBSUB':
      return pubsub(session, p, argv);
    case 'FUNCTION':
      return functionCommand(session, p, argv);
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

function auth(session: LocalClient, p: Pending, args: Buffer[]): void {
  if (args.length < 1 || args.length > 2) return session.answer(p, wrongArgs('AUTH'));
  if (session.ctx.password === null) {
    return session.answer(p, reply.error('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?'));
  }
  // AUTH password, or AUTH user password (the proxy has one user, `default` unless --user says).
  const user = args.length === 2 ? args[0]!.toString() : null;
  const ok = session.authenticate(user, args[args.length - 1]!.toString());
  session.answer(p, ok ? reply.ok : reply.error('WRONGPASS invalid username-password pair or user is disabled.'));
}

/**
 * HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 or RESP3 as the client asks; the reply is
 * shaped as Redis's (a map in RESP3, a flat array in RESP2). Nothing changes if an option is bad.
 */
function hello(session: LocalClient, p: Pending, argv: Buffer[]): void {
  const version = argv[1]?.toString();
  if (version !== undefined && version !== '2' && version !== '3') {
    return session.answer(p, reply.error(/^-?\d+$/.test(version) ? 'NOPROTO unsupported protocol version' : 'ERR Protocol version is not an integer or out of range'));
  }
  let name: string | undefined;
  for (let i = 2; i < argv.length; i++) {
    const opt = argv[i]!.toString().toUpperCase();
    if (opt === 'AUTH' && i + 2 < argv.length) {
      if (!session.authenticate(argv[i + 1]!.toString(), argv[i + 2]!.toString())) {
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
  session.answer(p, encodeFor(session.proto).map(fields.map(([k, v]) => [reply.bulk(k), v])));
}

function client(session: LocalClient, p: Pending, argv: Buffer[]): void {
  const sub = argv[1]?.toString().toUpperCase();
  if (sub === 'SETNAME' && argv.length === 3) {
    session.name = argv[2]!.toString();
    return session.answer(p, reply.ok);
  }
  if (sub === 'GETNAME') return session.answer(p, session.name === null ? session.nullReply() : reply.bulk(session.name));
  if (sub === 'ID') return session.answer(p, reply.integer(session.id));
  if (sub === 'TRACKING' || sub === 'CACHING' || sub === 'GETREDIR' || sub === 'TRACKINGINFO') {
    return session.answer(p, reply.error(`ERR proxy: CLIENT ${sub} is not supported through the proxy: client-side caching needs invalidation messages from every master your keys live on, routed to your connection; read through the proxy without a local cache`));
  }
  return session.answer(p, reply.error(`ERR proxy: CLIENT ${sub ?? ''} is not supported through the proxy`));
}
