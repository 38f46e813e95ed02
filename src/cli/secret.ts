/**
 * Reading a secret the way that keeps it out of `ps` and shell history: from a file (its first
 * line) or from stdin. Errors say which file and why, never what it holds.
 */
import { readFileSync } from 'node:fs';
import { ValidationError } from '../model/errors.js';

export interface SecretArgs {
  file?: string;
  stdin?: boolean;
}

/** The first line of `text`, without its line ending: `echo pass > file` works as expected. */
function firstLine(text: string): string {
  return text.split(/\r?\n/)[0] ?? '';
}

export function readSecretFile(file: string, what = 'password'): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationError(`cannot read the ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  return nonEmpty(firstLine(text), file, what);
}

export async function readSecretStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return nonEmpty(firstLine(Buffer.concat(chunks).toString('utf8')), 'stdin', 'password');
}

/** Exactly one of --password-file F / --password-stdin. */
function nonEmpty(secret: string, where: string, what: string): string {
  if (secret.length === 0) throw new ValidationError(`the ${what} from ${where} is empty`);
  return secret;
}

export async function readSecret(args: SecretArgs, what = 'password'): Promise<string> {
  if (args.file !== undefined && args.stdin) throw new ValidationError(`give the ${what} with --${what}-file or --${what}-stdin, not both`);
  if (args.file !== undefined) return readSecretFile(args.file, what);
  if (args.stdin) return readSecretStdin();
  throw new ValidationError(`give the ${what} with --${what}-file FILE or --${what}-stdin (never on the command line, where ps shows it)`);
}
