/**
 * The Redis credentials of each cluster, one key (`clusters/<c>/auth`). Writes compare the
 * revision read ('0': absent), so two admins racing never overwrite each other. A malformed value
 * is a MalformedValueError whose message never holds the value (it holds passwords).
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { ConflictError, MalformedValueError, errorMessage } from '../model/errors.js';
import { redisAuthSchema, type RedisAuth } from '../model/auth.js';
import { describeIssues } from '../model/schemas.js';
import { encode, etcdCall } from './etcd.js';
import type { Keys } from './keys.js';
import { etcdSource, type KvSource } from './kv-source.js';

export interface StoredAuth {
  /** Null when the cluster has no stored credentials. */
  auth: RedisAuth | null;
  /** Mod revision of the key, '0' when absent. */
  revision: string;
}

export class AuthStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keys,
    /** Where reads come from: etcd itself unless a controller gives its mirror (kv-source.ts). */
    private readonly source: KvSource = etcdSource(etcd),
  ) {}

  async read(cluster: string): Promise<StoredAuth> {
    const kv = await this.source.get(this.keys.auth(cluster), `read credentials of ${cluster}`);
    return kv ? { auth: decodeAuth(kv), revision: kv.mod_revision } : { auth: null, revision: '0' };
  }

  /** Writes the credentials if they are still at `expectRevision`; returns the new revision. */
  async write(cluster: string, auth: RedisAuth, expectRevision: string): Promise<string> {
    const key = this.keys.auth(cluster);
    const res = await etcdCall(`write credentials of ${cluster}`, () => this.etcd.if(key, 'Mod', '==', expectRevision).then(this.etcd.put(key).value(encode(auth))).commit());
    if (!res.succeeded) throw new ConflictError(`the credentials of ${cluster} changed since they were read; run the command again`);
    return res.header.revision;
  }

  /**
   * Follows one cluster's credentials: `onChange` with each value read or written (null: none
   * stored), `onProblem` for a malformed value or a watch that ended; it re-reads and watches again
   * on its own. Resolves once the first read is done (it keeps retrying until etcd answers).
   */
  async follow(cluster: string, on: { change(auth: RedisAuth | null): void; problem(err: Error): void }, retryMs = 500): Promise<{ stop(): Promise<void> }> {
    const key = this.keys.auth(cluster);
    let stopped = false;
    let watcher: Watcher | null = null;
    let timer: NodeJS.Timeout | undefined;
    const apply = (kv: IKeyValue | null) => {
      try {
        on.change(kv ? decodeAuth(kv) : null);
      } catch (err) {
        on.problem(err as Error);
      }
    };
    const connect = async (): Promise<void> => {
      while (!stopped) {
        try {
          const res = await etcdCall(`read credentials of ${cluster}`, () => this.etcd.get(key).exec());
          apply(res.kvs[0] ?? null);
          const w = await this.etcd.watch().key(key).startRevision(String(BigInt(res.header.revision) + 1n)).create();
          if (stopped) return void (await w.cancel());
          watcher = w;
          w.on('put', (kv) => apply(kv));
          w.on('delete', () => apply(null));
          w.on('error', (err) => {
            on.problem(err instanceof Error ? err : new Error(errorMessage(err)));
            void w.cancel().catch(() => undefined);
            if (watcher === w) watcher = null;
            if (!stopped) timer = setTimeout(() => void connect(), retryMs);
          });
          return;
        } catch (err) {
          on.problem(err instanceof Error ? err : new Error(errorMessage(err)));
          await new Promise((r) => setTimeout(r, retryMs));
        }
      }
    };
    await connect();
    return {
      stop: async () => {
        stopped = true;
        clearTimeout(timer);
        await (watcher as Watcher | null)?.cancel().catch(() => undefined);
      },
    };
  }
}

/** Decodes a credentials value; the error says what is wrong, never what the value holds. */
function decodeAuth(kv: IKeyValue): RedisAuth {
  const key = kv.key.toString();
  let raw: unknown;
  try {
    raw = JSON.parse(kv.value.toString());
  } catch {
    throw new MalformedValueError(key, 'not JSON');
  }
  const result = redisAuthSchema.safeParse(raw);
  if (!result.success) throw new MalformedValueError(key, describeIssues(result.error));
  return result.data;
}
