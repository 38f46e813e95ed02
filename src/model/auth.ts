/**
 * Redis credentials of a cluster (`clusters/<c>/auth`): the user every controller and proxy
 * authenticates as on every instance of the cluster, and its passwords, newest first. Two
 * passwords only while a rotation is under way (docs/redis-auth.md): users try the first and fall
 * back to the second. Nothing here ever puts a password in a message.
 */
import { z } from 'zod';

/** The longest password accepted (Redis has no limit; this one keeps values and commands sane). */
export const MAX_PASSWORD_LENGTH = 512;

/**
 * A password: printable, no whitespace or control characters (it travels in config files and in
 * `ACL SETUSER >pass`, where a space or a newline would split it). Messages never echo the value.
 */
export const redisPassword = z
  .string({ error: 'a password must be a string' })
  .min(1, { error: 'the password is empty' })
  .max(MAX_PASSWORD_LENGTH, { error: `a password is at most ${MAX_PASSWORD_LENGTH} characters` })
  .refine((p) => /^[\x21-\x7e\u00a0-\uffff]+$/.test(p), { error: 'a password may not contain spaces or control characters' });

/** An ACL user name as Redis accepts it in `ACL SETUSER` (no spaces, no ACL rule characters first). */
export const redisUser = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.@:-]+$/, { error: 'a user name is letters, digits and _ . @ : - only' });

export const redisAuthSchema = z.strictObject({
  /** The ACL user; absent: the default user (`requirepass`). */
  user: redisUser.optional(),
  /** Newest first; the second only while a rotation is under way. */
  passwords: z.array(redisPassword).min(1).max(2),
  /** Grows with every change: users report the version they use, a rotation waits on it. */
  version: z.number().int().min(1),
  updatedAt: z.string(),
});
export type RedisAuth = z.infer<typeof redisAuthSchema>;

/** What a connection needs: the user (null: default) and the passwords to try, in order. */
export interface Credentials {
  user: string | null;
  passwords: readonly string[];
}

export function credentialsOf(auth: RedisAuth): Credentials {
  return { user: auth.user ?? null, passwords: auth.passwords };
}

/** The user ACL commands name: the ACL user, or `default` (whose password `requirepass` is). */
export function aclUser(credentials: Credentials): string {
  return credentials.user ?? 'default';
}

/** AUTH's arguments for one password: `AUTH pass`, or `AUTH user pass` for an ACL user. */
export function authArgs(credentials: Credentials, password: string): string[] {
  return credentials.user === null ? [password] : [credentials.user, password];
}

/** MIGRATE's authentication for the target: `AUTH pass`, or `AUTH2 user pass`. */
export function migrateAuthArgs(credentials: Credentials | null): string[] {
  const password = credentials?.passwords[0];
  if (password === undefined) return [];
  return credentials!.user === null ? ['AUTH', password] : ['AUTH2', credentials!.user, password];
}

/** What may be shown of the credentials: never a password. */
export interface AuthSummary {
  set: boolean;
  user: string | null;
  passwords: number;
  version: number | null;
  rotating: boolean;
  updatedAt: string | null;
}

export function summarizeAuth(auth: RedisAuth | null): AuthSummary {
  if (!auth) return { set: false, user: null, passwords: 0, version: null, rotating: false, updatedAt: null };
  return { set: true, user: auth.user ?? null, passwords: auth.passwords.length, version: auth.version, rotating: auth.passwords.length > 1, updatedAt: auth.updatedAt };
}

/** "set, 1 password, user app" / "set, 2 passwords (rotation under way), default user (requirepass)" / "not set". */
export function describeAuth(summary: AuthSummary): string {
  if (!summary.set) return 'not set (the environment fallback $CFGSERVER_BACKEND_PASSWORD applies, if any)';
  const count = summary.passwords === 1 ? '1 password' : `${summary.passwords} passwords (rotation under way)`;
  const user = summary.user === null ? 'default user (requirepass)' : `user ${summary.user}`;
  return `set, ${count}, ${user}, version ${summary.version}`;
}

/** Is this Redis reply or error an authentication failure (wrong password, or none given)? */
export function isAuthFailure(message: string): boolean {
  return /WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(message);
}

/** Replaces every secret in `text` by `***`: for Redis errors that echo what they were sent. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('***');
  return out;
}
