/**
 * The chaos runner: a whole cfgserver deployment on loopback (3-member etcd, 3 controllers, 2
 * shards, 2 proxies), writers through both proxies, and faults one at a time — then checks that no
 * acknowledged write was lost and that etcd's history is what a fenced leader would have written.
 *
 *   npm run chaos                              # short profile (CI): every fault kind once
 *   npm run chaos -- --profile long            # by hand: several rounds, longer settles
 *   npm run chaos -- --seed 1234               # replays a run's fault order and targets
 *   npm run chaos -- --keep                    # keeps the data folder (logs) afterwards
 *
 * Progress goes to stderr; the checks (PASS/FAIL) and the results table to stdout. The exit code
 * is 1 when a check fails, 2 when the runner itself could not run. Run `npm run build` first.
 */
import { CLUSTER, ChaosSetup } from './setup.js';
import { agree, decoded, epochsGrow, finishedTasks, lostWrites, readBack, writesFenced, type CheckResult } from './checks.js';
import { injectFault, type FaultRun } from './faults.js';
import { DirectClients, waitWhole } from './health.js';
import { RevisionClock, readHistory } from './history.js';
import { startLoad, stopLoad, type Load } from './load.js';
import { FAULT_KINDS, profileFromArgs, seededRandom, shuffled, type FaultKind } from './profile.js';
import { gapsPerWriter, markdownTable, resultRows, windowKind } from './report.js';

const say = (line: string) => process.stderr.write(`[chaos +${((Date.now() - began) / 1000).toFixed(1)}s] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const began = Date.now();
/** Slaves per shard: one shard with one slave, one with two. */
const SHARD_SLAVES = [1, 2];
const WHOLE_TIMEOUT_MS = 30_000;

async function main(): Promise<number> {
  const profile = profileFromArgs();
  say(`profile ${profile.name}, seed ${profile.seed} (replay: npm run chaos -- --profile ${profile.name} --seed ${profile.seed})`);
  const setup = await ChaosSetup.start(SHARD_SLAVES, say, (created) => {
    const interrupted = () => {
      say('interrupted: killing everything');
      created.killNow(profile.keep);
      process.exit(130);
    };
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
  });
  const clock = new RevisionClock(setup.client, setup.keys);
  const direct = new DirectClients();
  let load: Load | null = null;
  let failed = true;
  try {
    clock.start();
    const initially = await waitWhole(setup, direct, 60_000);
    if (initially.wrong) throw new Error(`the cluster never became whole: ${initially.wrong}`);
    const deadline = Date.now() + profile.maxRunMs;
    load = startLoad(setup.proxies.map((p) => p.port), { ...profile, deadline: deadline + 60_000 });
    say(`load: ${load.seq.length} sequence writers, ${load.unique.length} unique-key writers, ${profile.depth} in flight each, ≤ ${profile.ratePerWriter}/s each`);
    await sleep(2000);

    const random = seededRandom(profile.seed);
    const plan: FaultKind[] = Array.from({ length: profile.rounds }, () => shuffled(random, FAULT_KINDS)).flat();
    const faults: FaultRun[] = [];
    for (const [i, kind] of plan.entries()) {
      if (Date.now() > deadline) {
        say(`time is up: ${plan.length - i} faults not run`);
        break;
      }
      let run: FaultRun;
      try {
        run = await injectFault(kind, setup, clock, random);
      } catch (err) {
        run = { kind, target: '?', startedAt: Date.now(), endedAt: Date.now(), note: `the runner could not inject it: ${String(err)}` };
      }
      const after = await waitWhole(setup, direct, WHOLE_TIMEOUT_MS);
      if (after.discarded.length) run.note = [run.note, `the controller refused to make the old master a slave; the runner discarded ${after.discarded.join(', ')}`].filter(Boolean).join('; ');
      if (after.wrong) run.note = [run.note, `not whole ${WHOLE_TIMEOUT_MS / 1000} s after: ${after.wrong}`].filter(Boolean).join('; ');
      faults.push(run);
      say(`${i + 1}/${plan.length} ${kind} ${run.target}: ${run.endedAt - run.startedAt} ms, whole after ${Date.now() - run.endedAt} ms${run.note ? ` — ${run.note}` : ''}`);
      await sleep(profile.settleMs);
    }
    await stopLoad(load);
    const lastWrongs = (await waitWhole(setup, direct, WHOLE_TIMEOUT_MS)).wrong;
    say(`load stopped: ${load.all.reduce((n, w) => n + w.acks, 0)} acknowledged, ${load.all.reduce((n, w) => n + w.errors, 0)} errors${lastWrongs ? `; still not whole: ${lastWrongs}` : ''}`);

    const route = await setup.admin.route(CLUSTER);
    const values = await readBack(load, route, setup.proxies[0]!.port, direct);
    const history = await readHistory(setup.client, setup.keys, CLUSTER, setup.startRevision);
    const viaProxy = lostWrites(load, values.viaProxy);
    const onMasters = lostWrites(load, values.direct);
    const acked = load.all.reduce((n, w) => n + w.acks, 0);
    const lostSummary = (l: typeof viaProxy) =>
      `${acked} acknowledged, ${l.lost.length} lost${l.lost.length ? ` (e.g. ${l.lost.slice(0, 5).map((x) => `${x.key} ${x.what}, acknowledged during ${windowKind(faults, x.ackedAt)}`).join('; ')})` : ''}; ${l.lateLandings} keys hold an unacknowledged older write that landed late`;
    const checks: CheckResult[] = [
      { name: 'no acknowledged write missing or older (read through a proxy)', pass: viaProxy.lost.length === 0, detail: lostSummary(viaProxy) },
      { name: 'no acknowledged write missing or older (read from the masters)', pass: onMasters.lost.length === 0, detail: lostSummary(onMasters) },
      agree(values),
      epochsGrow(history),
      writesFenced(history),
      decoded(history),
      { name: 'the cluster is whole at the end', pass: lastWrongs === null, detail: lastWrongs ?? `route epoch ${route.epoch}` },
    ];
    const done = finishedTasks(history);
    const events = {
      leaderChanges: history.terms.slice(1).map((t) => clock.timeOf(t.from)),
      failovers: done.filter((t) => t.kind === 'failover').map((t) => clock.timeOf(t.revision)),
      switchovers: done.filter((t) => t.kind === 'switchover').map((t) => clock.timeOf(t.revision)),
    };
    const lost = [...new Map([...viaProxy.lost, ...onMasters.lost].map((l) => [l.key, l])).values()];

    process.stdout.write(`\nchaos ${profile.name}, seed ${profile.seed}, ${new Date(began).toISOString()}, ${((Date.now() - began) / 1000).toFixed(0)} s\n\n`);
    for (const c of checks) process.stdout.write(`${c.pass ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}\n`);
    process.stdout.write(`\nleader changes ${events.leaderChanges.length}, failovers done ${events.failovers.length}, switchovers done ${events.switchovers.length}\n`);
    process.stdout.write(`longest write gap per writer: ${gapsPerWriter(load)}\n\n`);
    process.stdout.write(`${markdownTable(resultRows(faults, load, lost, events))}\n\n`);
    for (const f of faults) if (f.note) process.stdout.write(`note: ${f.kind} ${f.target}: ${f.note}\n`);
    failed = checks.some((c) => !c.pass);
    return failed ? 1 : 0;
  } finally {
    clock.stop();
    if (load) await stopLoad(load).catch(() => undefined);
    direct.close();
    await setup.stop(profile.keep);
    if (profile.keep) say(`data and logs kept in ${setup.dir}`);
    else if (failed) say('data and logs removed: run again with the same --seed and --keep to look at them');
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos runner error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  },
);
