// Faults under load through the edge: 24 async loops of GET /v1/authorize with end-user JWTs
// against the built worker (miniflare/workerd) and a real origin, every answer recorded (sent
// and received instants, key, warmed or not, status, granted, X-Authz-Cache) and judged
// afterwards against the known truth of the dataset:
//
// 1. the origin process is SIGKILLed mid-load and restarted on the same port 1.5 s later:
//    no wrong grant, warmed keys keep being served from the cache, misses are 503
//    `unavailable` (never a guess, never cached: the same keys answer correctly afterwards),
//    the recovery is the time from the restart to the first 200 miss;
// 2. shares are revoked with plain SQL while the load runs, and the edge is asked for each
//    revoked pair with `min_revision` = the database's revision after the commit: no grant may
//    come back (a stale grant); the load's plain requests may see the cached grant until its TTL.
//
// Each test writes target/fault-report/<test>.json before asserting and logs one summary line.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import {
  authorizePath,
  connect,
  currentRevision,
  loadRows,
  ownersDataset,
  pollUntil,
  sleep,
  startEdge,
  startLoad,
  startOrigin,
  tokenFor,
  writeFaultReport,
} from "./support.mjs";

/** Concurrent loops of the load. */
const CLIENTS = 24;
/** How long the killed origin stays down (kill to restart). */
const OUTAGE_MS = 1500;
/** The edge's TTL of a grant (the origin's policy): a plain request may be stale this long. */
const GRANT_TTL_MS = 30_000;
const OPERATIONS = ["read", "download", "write", "delete", "share", "admin"];

let client;
before(async () => {
  client = await connect();
});
after(async () => {
  await client?.end();
});

const tokens = new Map();
const token = (user) => {
  if (!tokens.has(user)) tokens.set(user, tokenFor(user));
  return tokens.get(user);
};

/** A question about `generation` by `user`, with its truth (`expected`: granted or not). */
function pair(user, generation, operation, expected, extra = {}) {
  return { key: `${user}/${generation}/${operation}`, user, generation, operation, expected, ...extra };
}

/** What is sent for `p` (plain unless `min_revision`), with `fields` kept in the record. */
const question = (p, fields = {}, min_revision = undefined) => ({
  ...fields,
  key: p.key,
  path: authorizePath({ resource_type: "generation", resource_id: p.generation, operation: p.operation, min_revision }),
  token: token(p.user),
});

const random = (items) => items[Math.floor(Math.random() * items.length)];

function shuffle(items) {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

const round = (ms) => (ms === null || ms === undefined ? null : Math.round(ms * 10) / 10);
const show = (records) => JSON.stringify(records.slice(0, 5), (k, v) => (typeof v === "number" ? round(v) : v));

/** Counts the worker's log lines (one per 503 at least) and keeps the first few. */
function workerLog() {
  const log = { lines: 0, samples: [] };
  log.onLog = ({ level, message }) => {
    log.lines += 1;
    if (log.samples.length < 3) log.samples.push(`${level}: ${message.trim()}`);
  };
  return log;
}

/** Asks every pair once, plain (8 at a time), and returns the answers. */
async function askAll(edge, pairs) {
  const answers = [];
  for (let i = 0; i < pairs.length; i += 8) {
    answers.push(
      ...(await Promise.all(
        pairs.slice(i, i + 8).map(async (p) => {
          const q = question(p);
          return { pair: p, answer: await edge.request(q.path, { token: q.token }) };
        }),
      )),
    );
  }
  return answers;
}

test("origin SIGKILLed mid-load and restarted: hits served, misses 503 and never cached, no wrong grant", async () => {
  let origin = await startOrigin();
  const log = workerLog();
  const edge = await startEdge({ originUrl: origin.url, onLog: log.onLog });
  try {
    const owners = await ownersDataset(client, 60);
    const asked = new Map(); // key → pair, for every pair asked
    const ownerPairs = shuffle(
      owners.flatMap((o) => OPERATIONS.map((operation) => pair(o.user, o.generation, operation, true))),
    );
    const crossPair = () => {
      const asker = random(owners);
      const other = random(owners.filter((o) => o !== asker));
      return pair(asker.user, other.generation, random(OPERATIONS), false);
    };

    // Warm 24 grants and 24 denies (deny TTL 10 s: the whole load fits in it).
    const warmed = [...ownerPairs.splice(0, 24)];
    while (warmed.length < 48) {
      const p = crossPair();
      if (!warmed.some((w) => w.key === p.key)) warmed.push(p);
    }
    for (const p of warmed) asked.set(p.key, p);
    for (const { pair: p, answer } of await askAll(edge, warmed)) {
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.json.granted, p.expected, `warming ${p.key}: ${answer.text}`);
    }
    await edge.waitForKeys(warmed.length);

    // Never-seen keys: each asked once, about a third of them grants.
    const unseen = () => {
      for (;;) {
        const p = Math.random() < 0.35 && ownerPairs.length > 0 ? ownerPairs.pop() : crossPair();
        if (asked.has(p.key)) continue;
        asked.set(p.key, p);
        return p;
      }
    };
    const load = startLoad(edge, {
      concurrency: CLIENTS,
      pick: () =>
        Math.random() < 0.5 ? question(random(warmed), { warmed: true }) : question(unseen(), { warmed: false }),
    });

    let killAt; // SIGKILL sent
    let deadAt; // its exit seen
    let spawnAt;
    let readyAt;
    try {
      // Steady load first: enough answered misses to know the path works.
      await pollUntil(() => load.records.filter((r) => !r.warmed && r.status === 200).length >= 50, {
        timeoutMs: 10_000,
        what: "50 answered misses before the kill",
      });
      killAt = load.now();
      await origin.kill();
      deadAt = load.now();
      await sleep(OUTAGE_MS); // the outage itself
      spawnAt = load.now();
      origin = await startOrigin({ port: origin.port });
      readyAt = load.now();
      // Keep loading: until a miss sent after the restart is answered, then 1 s more.
      const firstMiss = await pollUntil(
        () => load.records.find((r) => !r.warmed && r.status === 200 && r.sent >= spawnAt),
        { timeoutMs: 10_000, what: "a 200 miss after the restart" },
      );
      await pollUntil(() => load.now() >= firstMiss.received + 1000, { what: "1 s of load after the recovery" });
    } finally {
      await load.stop();
    }
    const records = load.records;

    // Judge every answer.
    const answered = records.filter((r) => r.status === 200);
    const wrongGrants = answered.filter((r) => r.granted === true && asked.get(r.key).expected !== true);
    const wrongDenies = answered.filter((r) => r.granted === false && asked.get(r.key).expected !== false);
    const fiveXx = records.filter((r) => r.status >= 500);
    const not503 = records.filter((r) => r.status !== 200 && !(r.status === 503 && r.code === "unavailable"));
    const warm = records.filter((r) => r.warmed);
    const warmNotHit = warm.filter((r) => r.status !== 200 || r.cache !== "hit");
    const inOutage = (r) => r.sent >= deadAt && r.sent < spawnAt;
    const hitsDuringOutage = records.filter((r) => inOutage(r) && r.status === 200 && r.cache === "hit");
    const outageMisses = records.filter((r) => inOutage(r) && !r.warmed);
    // A miss sent while the origin was dead may only be a 503, or (in flight across the
    // restart) a right answer received after the restart; never a guess.
    const guessed = outageMisses.filter((r) => r.status !== 503 && !(r.status === 200 && r.received >= spawnAt));
    const recovery = records
      .filter((r) => !r.warmed && r.status === 200 && r.sent >= spawnAt)
      .reduce((first, r) => (first === null || r.received < first.received ? r : first), null);
    const recoveryMs = recovery ? recovery.received - spawnAt : null;
    // Once a miss was answered after the restart, the origin listens: nothing sent later fails.
    const failedAfterRecovery = records.filter((r) => recovery && r.sent > recovery.received && r.status !== 200);
    const failedBeforeKill = records.filter((r) => r.status !== 200 && r.received < killAt);

    // Never cached: every key that got a 503 is a miss now, answered right.
    const failedKeys = [...new Set(records.filter((r) => r.status === 503).map((r) => r.key))];
    const reasked = await askAll(
      edge,
      failedKeys.map((key) => asked.get(key)),
    );
    const reaskedWrong = reasked.filter(
      ({ pair: p, answer }) =>
        answer.status !== 200 || answer.headers.get("x-authz-cache") !== "miss" || answer.json.granted !== p.expected,
    );

    const report = {
      test: "edge_origin_killed_mid_load",
      requests: records.length,
      wrong_grants: wrongGrants.length,
      status_5xx: fiveXx.length,
      hits_during_outage: hitsDuringOutage.length,
      recovery_ms: round(recoveryMs),
      stale_with_min_revision: null,
      notes:
        `${CLIENTS} loops through the worker (memory + KV tiers) to a real origin (debug build, L1 + Postgres), ` +
        `half warmed keys (${warmed.length}), half never-seen keys (each asked once); origin SIGKILLed after ` +
        `${round(killAt)} ms of load, restarted on the same port ${OUTAGE_MS} ms later; recovery_ms = restart ` +
        `(spawn) to the first 200 miss received; every key that got a 503 was asked again afterwards.`,
      details: {
        wrong_denies: wrongDenies.length,
        non_unavailable_errors: not503.length,
        warmed_requests: warm.length,
        warmed_not_hit: warmNotHit.length,
        misses_during_outage: outageMisses.length,
        misses_during_outage_503: outageMisses.filter((r) => r.status === 503).length,
        guessed_during_outage: guessed.length,
        failed_after_recovery: failedAfterRecovery.length,
        failed_before_kill: failedBeforeKill.length,
        keys_503: failedKeys.length,
        keys_503_wrong_afterwards: reaskedWrong.length,
        kill_at_ms: round(killAt),
        dead_at_ms: round(deadAt),
        restart_at_ms: round(spawnAt),
        origin_ready_ms: round(readyAt - spawnAt),
        load_ms: round(Math.max(...records.map((r) => r.received))),
        worker_log_lines: log.lines,
        worker_log_samples: log.samples,
        statuses: Object.fromEntries(
          [...new Set(records.map((r) => r.status))].map((s) => [s, records.filter((r) => r.status === s).length]),
        ),
      },
    };
    writeFaultReport(report);

    assert.deepEqual(wrongGrants, [], "no grant for a pair the data denies");
    assert.deepEqual(wrongDenies, [], "no deny for a pair the data grants");
    assert.deepEqual(not503, [], "every error is a 503 unavailable");
    assert.ok(warm.filter(inOutage).length > 0, "warmed keys were asked during the outage");
    assert.equal(warmNotHit.length, 0, `warmed keys are always 200 hits: ${show(warmNotHit)}`);
    assert.ok(outageMisses.length > 0, "misses were sent during the outage");
    assert.ok(
      outageMisses.filter((r) => r.status === 503).length > 0,
      `the dead origin gave 503s: ${show(outageMisses)}`,
    );
    assert.equal(guessed.length, 0, `a miss during the outage is a 503: ${show(guessed)}`);
    assert.equal(failedBeforeKill.length, 0, `no error before the kill: ${show(failedBeforeKill)}`);
    assert.ok(recovery, "a miss was answered after the restart");
    assert.equal(failedAfterRecovery.length, 0, `no error after the recovery: ${show(failedAfterRecovery)}`);
    assert.ok(failedKeys.length > 0);
    assert.deepEqual(
      reaskedWrong.map(({ pair: p, answer }) => [
        p.key,
        answer.status,
        answer.headers.get("x-authz-cache"),
        answer.text,
      ]),
      [],
      "a key that got a 503 was not cached and is answered right afterwards",
    );
  } finally {
    await edge.dispose();
    await origin.stop();
  }
});

test("revocation under load: with min_revision never a stale grant; plain requests within the TTL", async () => {
  const ROUNDS = 20;
  const log = workerLog();
  const edge = await startEdge({ onLog: log.onLog });
  try {
    await revocationUnderLoad(edge, log, ROUNDS);
  } finally {
    await edge.dispose();
  }
});

/** The second test's body: `ROUNDS` revocations while the load runs on `edge`. */
async function revocationUnderLoad(edge, log, ROUNDS) {
  const owners = await ownersDataset(client, 40);
  const sharedGeneration = (i) => owners[i % owners.length].generation;
  // Sharees: 20 shares to revoke (one a round) and 10 that stay, all `read` shares.
  const sharees = Array.from({ length: ROUNDS + 10 }, () => randomUUID());
  await loadRows(client, {
    users: sharees.map((id) => ({ id })),
    generation_shares: sharees.map((id, i) => ({
      generation_id: sharedGeneration(i),
      shared_with_user_id: id,
      permission_level: "read",
    })),
  });
  const revocable = sharees.slice(0, ROUNDS).map((id, i) => pair(id, sharedGeneration(i), "read", true));
  const kept = sharees.slice(ROUNDS).map((id, i) => pair(id, sharedGeneration(ROUNDS + i), "read", true));
  // A read share never grants write.
  const sharedWrite = sharees.map((id, i) => pair(id, sharedGeneration(i), "write", false));
  const ownerPairs = owners.flatMap((o) => OPERATIONS.map((operation) => pair(o.user, o.generation, operation, true)));
  const crossPairs = owners.flatMap((o, i) =>
    OPERATIONS.map((operation) => pair(o.user, owners[(i + 1) % owners.length].generation, operation, false)),
  );
  const others = [...kept, ...sharedWrite, ...ownerPairs, ...crossPairs];
  const truth = new Map([...revocable, ...others].map((p) => [p.key, p.expected]));

  // Every revocable pair cached as a grant before the load.
  for (const { pair: p, answer } of await askAll(edge, revocable)) {
    assert.equal(answer.json?.granted, true, `${p.key} before any revocation: ${answer.text}`);
  }
  await edge.waitForKeys(revocable.length);

  // The load: 40% on the revocable pairs, the rest over the others (many keys, mostly cached
  // after their first miss).
  const load = startLoad(edge, {
    concurrency: CLIENTS,
    pick: () => (Math.random() < 0.4 ? question(random(revocable)) : question(random(others))),
  });
  const revocations = [];
  const checks = [];
  try {
    await pollUntil(() => load.records.length >= 100, { timeoutMs: 10_000, what: "100 answers before the rounds" });
    for (const p of revocable) {
      const startedAt = load.now();
      await client.query(
        "UPDATE generation_shares SET is_active = false WHERE generation_id = $1 AND shared_with_user_id = $2",
        [p.generation, p.user],
      );
      const committedAt = load.now();
      const revision = await currentRevision(client);
      revocations.push({ key: p.key, startedAt, committedAt, revision });
      // The writer's read-your-write: several callers at once, then once more.
      const ask = async () => {
        const q = question(p, {}, revision);
        const sent = load.now();
        const answer = await edge.request(q.path, { token: q.token });
        checks.push({
          key: p.key,
          revision,
          sent,
          received: load.now(),
          status: answer.status,
          granted: answer.json?.granted ?? null,
          answered_revision: answer.json?.revision ?? null,
          reason: answer.json?.reason ?? null,
          cache: answer.headers.get("x-authz-cache"),
        });
      };
      await Promise.all([ask(), ask(), ask()]);
      await ask();
    }
    await pollUntil(() => load.now() >= revocations.at(-1).committedAt + 500, { what: "load after the last round" });
  } finally {
    await load.stop();
  }
  const records = load.records;

  const revokedAt = new Map(revocations.map((r) => [r.key, r]));
  const firstDenyAt = new Map();
  for (const c of checks) {
    if (c.status === 200 && c.granted === false && c.received < (firstDenyAt.get(c.key) ?? Infinity)) {
      firstDenyAt.set(c.key, c.received);
    }
  }
  const staleWithMinRevision = checks.filter((c) => c.granted === true);
  const belowRevision = checks.filter((c) => c.status === 200 && c.answered_revision < c.revision);
  const checkErrors = checks.filter((c) => c.status !== 200);
  const wrongGrants = [];
  const wrongDenies = [];
  const stalePlain = [];
  for (const r of records.filter((r) => r.status === 200)) {
    const revocation = revokedAt.get(r.key);
    if (revocation) {
      if (r.granted && r.sent > revocation.committedAt) {
        stalePlain.push({ ...r, after_commit_ms: r.received - revocation.committedAt });
      }
      if (!r.granted && r.received < revocation.startedAt) wrongDenies.push(r);
    } else if (r.granted && truth.get(r.key) !== true) wrongGrants.push(r);
    else if (!r.granted && truth.get(r.key) !== false) wrongDenies.push(r);
  }
  const staleBeyondTtl = stalePlain.filter((r) => r.after_commit_ms > GRANT_TTL_MS);
  const stalePlainAfterDeny = stalePlain.filter((r) => r.sent > (firstDenyAt.get(r.key) ?? Infinity));
  const fiveXx = [...records, ...checks].filter((r) => r.status >= 500);
  const otherErrors = records.filter((r) => r.status !== 200);

  const report = {
    test: "edge_revocation_under_load",
    requests: records.length + checks.length,
    wrong_grants: wrongGrants.length,
    status_5xx: fiveXx.length,
    hits_during_outage: null,
    recovery_ms: null,
    stale_with_min_revision: staleWithMinRevision.length,
    notes:
      `${CLIENTS} loops of plain requests (no min_revision) through the worker (memory + KV) to the harness origin, ` +
      `40% on the ${ROUNDS} revocable share pairs; ${ROUNDS} rounds: revoke one share with plain SQL, read ` +
      `authz_current_revision(), ask the edge 3 times at once then once more with min_revision = that revision. ` +
      `A plain request sent after the commit may get the cached grant until its ${GRANT_TTL_MS / 1000} s TTL: ` +
      `counted in details.stale_plain, not an error.`,
    details: {
      rounds: revocations.length,
      min_revision_checks: checks.length,
      min_revision_bypass: checks.filter((c) => c.cache === "bypass").length,
      min_revision_hit: checks.filter((c) => c.cache === "hit").length,
      min_revision_miss: checks.filter((c) => c.cache === "miss").length,
      min_revision_below_revision: belowRevision.length,
      min_revision_errors: checkErrors.length,
      load_requests: records.length,
      load_errors: otherErrors.length,
      wrong_denies: wrongDenies.length,
      stale_plain: stalePlain.length,
      stale_plain_max_after_commit_ms: round(Math.max(0, ...stalePlain.map((r) => r.after_commit_ms))),
      stale_plain_after_min_revision_deny: stalePlainAfterDeny.length,
      stale_plain_beyond_ttl: staleBeyondTtl.length,
      revision_first: revocations[0]?.revision ?? null,
      revision_last: revocations.at(-1)?.revision ?? null,
      rounds_ms: round(revocations.at(-1).committedAt - revocations[0].startedAt),
      load_ms: round(Math.max(...records.map((r) => r.received))),
      worker_log_lines: log.lines,
    },
  };
  writeFaultReport(report);

  assert.equal(revocations.length, ROUNDS);
  assert.deepEqual(staleWithMinRevision, [], "with min_revision at the revoking revision, never a grant");
  assert.deepEqual(checkErrors, [], "every min_revision question was answered");
  assert.deepEqual(belowRevision, [], "answers at or past the demanded revision");
  assert.ok(
    checks.every((c) => c.reason === "no_relationship"),
    `a revoked read share is no_relationship: ${show(checks.filter((c) => c.reason !== "no_relationship"))}`,
  );
  assert.deepEqual(wrongGrants, [], "no grant for a pair the data denies");
  assert.deepEqual(wrongDenies, [], "no deny for a pair the data grants");
  assert.deepEqual(otherErrors, [], "the load got no error");
  assert.deepEqual(staleBeyondTtl, [], "a plain request is stale at most for the grant TTL");
  assert.ok(records.filter((r) => revokedAt.has(r.key)).length >= ROUNDS, "the load asked the revocable pairs");
}
