/**
 * Reading a file an option names (a certificate, a key, a password or token file) with an error
 * that names the option and the file — never the file's contents, which may be a secret.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../model/errors.js';

export function readSettingFile(option: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ValidationError(`cannot read ${option} ${file}${code ? ` (${code})` : ''}`);
  }
}

/** A secret kept in a file: its first line (a trailing newline, as `echo` writes, is not part of it). */
export function readSecretFile(option: string, file: string): string {
  return readSettingFile(option, file).toString('utf8').split(/\r?\n/)[0]!;
}

/** A PEM certificate file (a CA, or a server's or client's certificate), checked. */
export function readCertificate(option: string, file: string): Buffer {
  const pem = readSettingFile(option, file);
  try {
    new X509Certificate(pem);
  } catch {
    throw new ValidationError(`${option} ${file} is not a PEM certificate`);
  }
  return pem;
}

/** A certificate and its private key, checked to belong together. */
export function readCertificateAndKey(certOption: string, certFile: string, keyOption: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const cert = readCertificate(certOption, certFile);
  const key = readSettingFile(keyOption, keyFile);
  let keyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch {
    throw new ValidationError(`${keyOption} ${keyFile} is not a PEM private key (or it is encrypted)`);
  }
  if (!new X509Certificate(cert).checkPrivateKey(keyObject)) throw new ValidationError(`${keyOption} ${keyFile} is not the key of the certificate ${certFile}`);
  return { cert, key };
}
