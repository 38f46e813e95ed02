import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadControllerConfig } from '../../src/controller/config.js';
import { ValidationError } from '../../src/model/errors.js';

let dir: string;
let counter = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cfgserver-config-test-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function file(text: string): string {
  const path = join(dir, `config-${++counter}.yaml`);
  writeFileSync(path, text);
  return path;
}

function validationError(fn: () => unknown): ValidationError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ValidationError);
  return caught as ValidationError;
}

const DEFAULTS = {
  etcd: 'http://127.0.0.1:2379',
  prefix: '/cfgserver',
  leaseTtlSeconds: 3,
  refreshMs: 1000,
  probeConcurrency: 64,
  repairBackoffMs: 5000,
  configCheckMs: 5000,
  logLevel: 'info',
  apiAuthReads: false,
};

describe('loadControllerConfig', () => {
  it('has defaults without file or flags', () => {
    const config = loadControllerConfig(undefined, {});
    expect(config).toEqual(DEFAULTS);
    expect(config.id).toBeUndefined();
    expect(config.listen).toBeUndefined();
  });

  it('ignores flags that were not given (undefined)', () => {
    expect(loadControllerConfig(undefined, { id: undefined, etcd: undefined, leaseTtlSeconds: undefined })).toEqual(DEFAULTS);
  });

  it('takes values from a YAML file, with defaults for the rest', () => {
    const path = file(
      ['id: ctl-a', 'etcd: http://etcd-1:2379,http://etcd-2:2379', 'prefix: /prod', 'listen: 0.0.0.0:8080', 'leaseTtlSeconds: 10', 'probeConcurrency: 8', 'logLevel: debug', ''].join('\n'),
    );
    expect(loadControllerConfig(path, {})).toEqual({
      ...DEFAULTS,
      id: 'ctl-a',
      etcd: 'http://etcd-1:2379,http://etcd-2:2379',
      prefix: '/prod',
      listen: '0.0.0.0:8080',
      leaseTtlSeconds: 10,
      probeConcurrency: 8,
      logLevel: 'debug',
    });
  });

  it('accepts an empty file and a comments-only file as all defaults', () => {
    expect(loadControllerConfig(file(''), {})).toEqual(DEFAULTS);
    expect(loadControllerConfig(file('# nothing here\n'), {})).toEqual(DEFAULTS);
  });

  it('lets flags override the file', () => {
    const path = file('id: from-file\nleaseTtlSeconds: 10\nlogLevel: warn\nprefix: /file\n');
    const config = loadControllerConfig(path, { id: 'from-flag', leaseTtlSeconds: 5, logLevel: undefined });
    expect(config.id).toBe('from-flag');
    expect(config.leaseTtlSeconds).toBe(5);
    // Not given as a flag: the file's value stays.
    expect(config.logLevel).toBe('warn');
    expect(config.prefix).toBe('/file');
  });

  it('rejects an unknown key in the file, naming it and the file', () => {
    const path = file('id: a\nleaseTTL: 5\n');
    const err = validationError(() => loadControllerConfig(path, {}));
    expect(err.message).toContain('leaseTTL');
    expect(err.message).toContain(path);
  });

  it('rejects healthRefreshMs, removed, saying why', () => {
    const path = file('healthRefreshMs: 5000\n');
    const err = validationError(() => loadControllerConfig(path, {}));
    expect(err.message).toContain('healthRefreshMs');
    expect(err.message).toContain('only when');
    expect(err.message).toContain(path);
  });

  it('rejects an unknown override', () => {
    expect(() => loadControllerConfig(undefined, { colour: 'blue' })).toThrow(ValidationError);
  });

  it('rejects out-of-range and mistyped values, naming the field', () => {
    expect(validationError(() => loadControllerConfig(file('leaseTtlSeconds: 1\n'), {})).message).toContain('leaseTtlSeconds');
    expect(validationError(() => loadControllerConfig(file('refreshMs: "1000"\n'), {})).message).toContain('refreshMs');
    expect(validationError(() => loadControllerConfig(undefined, { logLevel: 'verbose' })).message).toContain('logLevel');
    expect(validationError(() => loadControllerConfig(undefined, { prefix: 'no-slash' })).message).toContain('prefix');
    expect(validationError(() => loadControllerConfig(undefined, { listen: '8080' })).message).toContain('listen');
    expect(validationError(() => loadControllerConfig(undefined, { id: '-bad' })).message).toContain('id');
    expect(validationError(() => loadControllerConfig(undefined, { leaseTtlSeconds: Number.NaN })).message).toContain('leaseTtlSeconds');
  });

  it('rejects a bad flag even when the file is fine', () => {
    const path = file('leaseTtlSeconds: 10\n');
    expect(validationError(() => loadControllerConfig(path, { leaseTtlSeconds: 100 })).message).toContain('leaseTtlSeconds');
  });

  it('turns invalid YAML into a ValidationError', () => {
    const path = file('id: [unclosed\nprefix: /x\n');
    const err = validationError(() => loadControllerConfig(path, {}));
    expect(err.message).toMatch(/not valid YAML/);
    expect(err.message).toContain(path);
  });

  it('rejects duplicate keys in the YAML', () => {
    expect(() => loadControllerConfig(file('id: a\nid: b\n'), {})).toThrow(ValidationError);
  });

  it('rejects YAML that is not a mapping', () => {
    expect(validationError(() => loadControllerConfig(file('- a\n- b\n'), {})).message).toMatch(/must be a YAML mapping/);
    expect(validationError(() => loadControllerConfig(file('just a string\n'), {})).message).toMatch(/must be a YAML mapping/);
    expect(validationError(() => loadControllerConfig(file('42\n'), {})).message).toMatch(/must be a YAML mapping/);
  });

  it('turns a missing file into a ValidationError naming it', () => {
    const path = join(dir, 'does-not-exist.yaml');
    const err = validationError(() => loadControllerConfig(path, {}));
    expect(err.message).toMatch(/cannot read config file/);
    expect(err.message).toContain(path);
    expect(err.code).toBe('VALIDATION');
  });

  it('turns a directory given as the file into a ValidationError', () => {
    expect(validationError(() => loadControllerConfig(dir, {})).message).toMatch(/cannot read config file/);
  });
});
