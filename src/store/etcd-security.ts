/**
 * How a cfgserver process proves itself to etcd: TLS (a CA to trust etcd's certificate, a client
 * certificate) and/or a user name and password. The settings name files; they are read and checked
 * here, once, at start-up, so that a bad file is a clear error before anything talks to etcd.
 *
 * The password never comes from a flag value (visible in `ps` and shell history): from a file, or
 * from $CFGSERVER_ETCD_PASSWORD.
 */
import { ValidationError, errorMessage } from '../model/errors.js';
import { readCertificate, readCertificateAndKey, readSecretFile } from '../util/setting-file.js';

export const ETCD_PASSWORD_ENV = 'CFGSERVER_ETCD_PASSWORD';

/** What the operator gives (flags, YAML): file names and a user name. */
export interface EtcdSecuritySettings {
  /** PEM file of the CA that signed etcd's server certificate (default: the system's roots). */
  ca?: string;
  /** PEM file of this process's client certificate (with `key`). */
  cert?: string;
  key?: string;
  /** etcd user name; its password comes from `passwordFile` or $CFGSERVER_ETCD_PASSWORD. */
  user?: string;
  passwordFile?: string;
}

/** The loaded form `createEtcd` takes. */
export interface EtcdSecurity {
  /** TLS with these files' contents (all optional: TLS with the system's roots and no client certificate). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { user: string; password: string };
}

/** Which option names the operator used, for error messages (flags or YAML keys). */
export interface SettingNames {
  ca: string;
  cert: string;
  key: string;
  user: string;
  passwordFile: string;
}

export const FLAG_NAMES: SettingNames = { ca: '--etcd-ca', cert: '--etcd-cert', key: '--etcd-key', user: '--etcd-user', passwordFile: '--etcd-password-file' };

/**
 * Reads and checks the files the settings name. Returns undefined when nothing is set (plain
 * etcd, as before). Never puts a file's contents or the password in an error message.
 */
export function loadEtcdSecurity(settings: EtcdSecuritySettings, env: NodeJS.ProcessEnv = process.env, names: SettingNames = FLAG_NAMES): EtcdSecurity | undefined {
  const security: EtcdSecurity = {};
  if (settings.ca !== undefined || settings.cert !== undefined || settings.key !== undefined) {
    if ((settings.cert === undefined) !== (settings.key === undefined)) throw new ValidationError(`${names.cert} and ${names.key} go together: a client certificate needs its key`);
    const tls: NonNullable<EtcdSecurity['tls']> = {};
    if (settings.ca !== undefined) tls.ca = readCertificate(names.ca, settings.ca);
    if (settings.cert !== undefined && settings.key !== undefined) Object.assign(tls, readCertificateAndKey(names.cert, settings.cert, names.key, settings.key));
    security.tls = tls;
  }
  const password = settings.passwordFile !== undefined ? readSecretFile(names.passwordFile, settings.passwordFile) : env[ETCD_PASSWORD_ENV];
  if (settings.user !== undefined) {
    if (!settings.user) throw new ValidationError(`${names.user} is empty`);
    if (password === undefined) throw new ValidationError(`etcd user ${settings.user} needs a password: ${names.passwordFile} FILE or $${ETCD_PASSWORD_ENV}`);
    if (password === '') throw new ValidationError(`the password of etcd user ${settings.user} is empty`);
    security.auth = { user: settings.user, password };
  } else if (settings.passwordFile !== undefined) {
    throw new ValidationError(`${names.passwordFile} needs ${names.user}: whose password is it?`);
  }
  return security.tls || security.auth ? security : undefined;
}

/**
 * A grpc-js error as one readable line: the reason after "Last error:" without OpenSSL's source
 * locations, or the etcd server's own words without the gRPC status prefix.
 */
export function grpcReason(err: unknown): string {
  const message = errorMessage(err);
  const last = /Last error: (.*?)(?: \(\d{4}-\d\d-\d\dT[^)]*\))?\.?\s*Resolution note/s.exec(message)?.[1]?.trim();
  if (last !== undefined) {
    // OpenSSL: "80EC…:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/…"
    const ssl = /SSL routines:[^:]*:([^:]+):/.exec(last)?.[1];
    if (ssl) return ssl;
    // "null": the connection opened, then closed with no reason given (a TLS peer that hung up).
    return last === 'null' ? 'no connection established' : last.replace(/^Error: /, '');
  }
  return message.replace(/^\d+ [A-Z_]+: /, '').replace(/^Error: /, '');
}

/** Whether a gRPC "unavailable" reason is really a TLS failure (that no retry will fix). */
export function isTlsFailure(reason: string): boolean {
  return /certificate|self[- ]signed|SSL|TLS|alert|wrong version number/i.test(reason);
}

/** A TLS failure said as what to fix: which side refused which certificate. */
export function explainTlsFailure(reason: string): string {
  if (/alert/i.test(reason)) return `etcd refused our client certificate (${reason}): is it signed by a CA etcd trusts (its --trusted-ca-file)? check --etcd-cert and --etcd-key`;
  if (/verify|self[- ]signed|issuer|unknown ca/i.test(reason)) return `etcd's certificate is not signed by the CA we trust (${reason}): check --etcd-ca`;
  if (/altname|hostname|does not match/i.test(reason)) return `etcd's certificate is not for this address (${reason}): use the name or IP address its certificate names`;
  return `${reason}: check --etcd-ca, --etcd-cert and --etcd-key`;
}
