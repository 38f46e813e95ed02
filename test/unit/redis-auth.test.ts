import { describe, expect, it } from 'vitest';
import { describeAuth, isAuthFailure, migrateAuthArgs, redact, redisAuthSchema, summarizeAuth, authArgs } from '../../src/model/auth.js';
import { describeIssues } from '../../src/model/schemas.js';
import { CredentialBook } from '../../src/redis/credentials.js';

const auth = (passwords: string[], user?: string) => ({ ...(user ? { user } : {}), passwords, version: 4, updatedAt: '2026-12-02T00:00:00Z' });

describe('Redis credentials (model)', () => {
  it('validates a stored value, and its errors never quote a password', () => {
    expect(redisAuthSchema.safeParse(auth(['s3cret-A'], 'app')).success).toBe(true);
    for (const bad of [auth([]), auth(['a', 'b', 'c']), auth(['with space-S3CRET']), auth(['ctl\u0001-S3CRET']), { ...auth(['ok-S3CRET']), version: 0 }, { ...auth(['ok-S3CRET']), extra: 1 }, auth(['ok-S3CRET'], 'bad user')]) {
      const result = redisAuthSchema.safeParse(bad);
      expect(result.success, JSON.stringify(bad)).toBe(false);
      expect(describeIssues(result.error!)).not.toMatch(/S3CRET/);
    }
  });

  it('shows what is stored without a password', () => {
    const summary = summarizeAuth(redisAuthSchema.parse(auth(['new-S3CRET', 'old-S3CRET'], 'app')));
    expect(summary).toEqual({ set: true, user: 'app', passwords: 2, version: 4, rotating: true, updatedAt: '2026-12-02T00:00:00Z' });
    expect(describeAuth(summary)).toBe('set, 2 passwords (rotation under way), user app, version 4');
    expect(describeAuth(summarizeAuth(redisAuthSchema.parse(auth(['x'])))) ).toBe('set, 1 password, default user (requirepass), version 4');
    expect(describeAuth(summarizeAuth(null))).toMatch(/^not set/);
  });

  it('builds AUTH and MIGRATE arguments for requirepass and ACL users', () => {
    expect(authArgs({ user: null, passwords: ['p'] }, 'p')).toEqual(['p']);
    expect(authArgs({ user: 'app', passwords: ['p'] }, 'p')).toEqual(['app', 'p']);
    expect(migrateAuthArgs(null)).toEqual([]);
    expect(migrateAuthArgs({ user: null, passwords: ['n', 'o'] })).toEqual(['AUTH', 'n']);
    expect(migrateAuthArgs({ user: 'app', passwords: ['n', 'o'] })).toEqual(['AUTH2', 'app', 'n']);
  });

  it('recognizes authentication failures and redacts secrets from messages', () => {
    expect(isAuthFailure('WRONGPASS invalid username-password pair or user is disabled.')).toBe(true);
    expect(isAuthFailure('NOAUTH Authentication required.')).toBe(true);
    expect(isAuthFailure('connect ECONNREFUSED 127.0.0.1:1')).toBe(false);
    expect(redact("ERR Error in ACL SETUSER modifier '<old-S3CRET': no such password", ['old-S3CRET', ''])).toBe("ERR Error in ACL SETUSER modifier '<***': no such password");
  });

  it('the book gives each instance its cluster\'s credentials, else the fallback', () => {
    const book = new CredentialBook({ user: null, passwords: ['env'] });
    expect(book.update('c', redisAuthSchema.parse(auth(['a'], 'app')), ['h:1', 'h:2'])).toBe(true);
    expect(book.update('c', redisAuthSchema.parse(auth(['a'], 'app')), ['h:1'])).toBe(false);
    expect(book.forAddress('h:2')).toEqual({ user: 'app', passwords: ['a'] });
    expect(book.forAddress('other:1')).toEqual({ user: null, passwords: ['env'] });
    // An unreadable value keeps the last good credentials.
    expect(book.update('c', undefined, ['h:1'])).toBe(false);
    expect(book.forAddress('h:1')?.passwords).toEqual(['a']);
    expect(book.versions()).toEqual({ c: 4 });
    book.retain(new Set());
    expect(book.forAddress('h:1')).toEqual({ user: null, passwords: ['env'] });
  });
});
