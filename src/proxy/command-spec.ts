/**
 * A command as Redis's COMMAND reply describes it: arity, flags, ACL categories and key specs
 * (where its keys are). Read from a master at start (command-parse.ts) or from the built-in
 * table generated from Redis 7.0 (command-table.ts).
 */
export interface KeySpec {
  begin: { index: number } | { keyword: string; startfrom: number } | { unknown: true };
  find: { lastkey: number; step: number; limit: number } | { keynumidx: number; firstkey: number; step: number } | { unknown: true };
}

export interface CommandSpec {
  arity: number;
  flags: string[];
  acl: string[];
  keys: KeySpec[];
  container?: true;
  /** A container's subcommands by upper-cased name (OBJECT → ENCODING, ...), when known. */
  subcommands?: Record<string, CommandSpec>;
}
