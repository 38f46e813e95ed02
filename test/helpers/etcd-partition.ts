/**
 * An etcd member cut off from its peers for real: every packet of its peer links is dropped by
 * iptables on loopback, while the member keeps running and keeps answering clients on its client
 * port — the minority side of a network partition, which a stopped process is not (it has no
 * leader, and says so to calls that require one).
 *
 * The links a member dialed itself are told apart from its peers' by their owner: each member runs
 * as its own user (`useWorld({ etcdMembers: 3, etcdAsUsers: true })`, or `etcdUsers` for
 * startEtcdCluster: uid ETCD_UID_BASE + index).
 * Its packets to a peer's port mark their connection (CONNMARK), and every packet of a marked
 * connection is dropped, both ways; so is every packet to or from its own peer port. The rules live
 * in a chain of the process (the test file's or the chaos runner's), removed at its end whatever
 * happened (and a chain left by a process that died is removed by the next one). Needs root. No
 * vitest here: the chaos runner uses it too.
 */
import { execFileSync } from 'node:child_process';
import type { EtcdClusterOptions, EtcdMember } from '../../src/playground/processes.js';

export const ETCD_UID_BASE = 64_100;

/** startEtcdCluster's options that run each member as its own user (the caller must be root). */
export const etcdUsers: EtcdClusterOptions = { uidOf: (i) => ETCD_UID_BASE + i };
const CHAIN_PREFIX = 'CFGTEST-';

function iptables(...args: string[]): string {
  return execFileSync('iptables', ['-w', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function removeChain(chain: string): void {
  iptables('-D', 'OUTPUT', '-o', 'lo', '-j', chain);
  iptables('-F', chain);
  iptables('-X', chain);
}

/** Chains of test processes that are gone (killed before their afterAll). */
function removeOrphanChains(): void {
  for (const line of iptables('-S').split('\n')) {
    const chain = /^-N (CFGTEST-(\d+))$/.exec(line);
    if (!chain) continue;
    let alive = true;
    try {
      process.kill(Number(chain[2]), 0);
    } catch {
      alive = false;
    }
    if (!alive) removeChain(chain[1]!);
  }
}

const portOf = (url: string) => new URL(url).port;

/** The cuts of one process: a chain of its own, made at the first cut. */
export class EtcdPartitions {
  private readonly chain = `${CHAIN_PREFIX}${process.pid}`;
  private made = false;

  /** Cuts `members[index]` off from the others: its client port still answers. */
  cut(members: EtcdMember[], index: number): void {
    if (!this.made) {
      removeOrphanChains();
      iptables('-N', this.chain);
      iptables('-I', 'OUTPUT', '-o', 'lo', '-j', this.chain);
      this.made = true;
    }
    const member = members[index]!;
    const mark = `0x${(0xc100 + index).toString(16)}`;
    for (const other of members.filter((m) => m !== member)) {
      iptables('-A', this.chain, '-p', 'tcp', '-m', 'owner', '--uid-owner', String(ETCD_UID_BASE + index), '--dport', portOf(other.peerUrl), '-j', 'CONNMARK', '--set-mark', mark);
    }
    iptables('-A', this.chain, '-p', 'tcp', '-m', 'connmark', '--mark', mark, '-j', 'DROP');
    iptables('-A', this.chain, '-p', 'tcp', '--dport', portOf(member.peerUrl), '-j', 'DROP');
    iptables('-A', this.chain, '-p', 'tcp', '--sport', portOf(member.peerUrl), '-j', 'DROP');
  }

  /** Every cut healed: packets pass again (TCP retransmits what was dropped). */
  heal(): void {
    if (this.made) iptables('-F', this.chain);
  }

  /** The chain gone (after the last test, or the chaos run). */
  remove(): void {
    if (this.made) removeChain(this.chain);
    this.made = false;
  }
}
