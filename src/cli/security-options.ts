/**
 * The etcd security flags every process takes (cfgctl, controller, proxy), in one place. Each
 * falls back to an environment variable, as --etcd does to $CFGSERVER_ETCD. There is no password
 * flag: a flag's value shows in `ps`; the password comes from a file or $CFGSERVER_ETCD_PASSWORD.
 */
import { ETCD_PASSWORD_ENV, type EtcdSecuritySettings } from '../store/etcd-security.js';

export const etcdSecurityOptions = {
  'etcd-ca': { type: 'string', describe: 'PEM file of the CA that signed etcd\'s certificate (https:// endpoints; default $CFGSERVER_ETCD_CA, else the system\'s roots)' },
  'etcd-cert': { type: 'string', describe: 'PEM file of the client certificate for etcd (default $CFGSERVER_ETCD_CERT)' },
  'etcd-key': { type: 'string', describe: 'PEM file of the client certificate\'s key (default $CFGSERVER_ETCD_KEY)' },
  'etcd-user': { type: 'string', describe: 'etcd user name (default $CFGSERVER_ETCD_USER)' },
  'etcd-password-file': { type: 'string', describe: `file holding the etcd user's password (or $${ETCD_PASSWORD_ENV}; never a flag)` },
} as const;

export interface EtcdSecurityArgs {
  'etcd-ca'?: string;
  'etcd-cert'?: string;
  'etcd-key'?: string;
  'etcd-user'?: string;
  'etcd-password-file'?: string;
}

/** The settings from flags, then the environment; undefined where neither says anything. */
export function etcdSecurityFromArgs(args: EtcdSecurityArgs, env: NodeJS.ProcessEnv = process.env): EtcdSecuritySettings {
  // An empty variable counts as unset (a shell's `X= cfgctl ...`).
  const fromEnv = (name: string) => env[name] || undefined;
  return {
    ca: args['etcd-ca'] ?? fromEnv('CFGSERVER_ETCD_CA'),
    cert: args['etcd-cert'] ?? fromEnv('CFGSERVER_ETCD_CERT'),
    key: args['etcd-key'] ?? fromEnv('CFGSERVER_ETCD_KEY'),
    user: args['etcd-user'] ?? fromEnv('CFGSERVER_ETCD_USER'),
    passwordFile: args['etcd-password-file'],
  };
}
