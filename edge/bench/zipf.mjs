// Plain requests at the edge under a Zipf stream (numbers for BENCHMARKS.md): the hit rate of
// the memory tier and KV together, and how long a revoked grant is still served to requests
// without `min_revision`, at the defaults (the origin caps every ttl_ms at AUTHZ_EDGE_TTL_MS,
// 4 s; a hit in the second half of its entry's life refreshes it in the background).
//
// Per stream (a number of distinct questions): a fresh worker under miniflare/workerd (memory
// tier at its default size, KV), `BENCH_CONCURRENCY` loops sending back to back, each question
// drawn from a Zipf distribution of exponent `BENCH_SKEW` over the questions. After
// `BENCH_WARM_SECONDS`, a window of `BENCH_SECONDS`: every request in it counts (hits by tier,
// misses, failures). Probes: questions at the odd ranks 1, 3, 5, … are a share's grant; during
// the window one probe's share is revoked every `BENCH_PROBE_EVERY_MS` (committed from here),
// and its staleness is the time from the commit to the last grant received for it (0 when
// none came after the commit). Every other question is an owner's grant: any other answer, and
// any probe grant received later than the published bound after its commit, is a wrong answer.
// Run it with scripts/bench-edge-zipf.sh (which starts the database and the release origin).
// Knobs: BENCH_STREAMS (500,10000,100000), BENCH_SKEW (1.0), BENCH_CONCURRENCY (16),
// BENCH_WARM_SECONDS (40), BENCH_SECONDS (90), BENCH_PROBE_EVERY_MS (1500), BENCH_OUT.
import fs from "node:fs";
import { randomUUID } from "node:crypto";

import { authorizePath, connect, currentRevision, sleep, startEdge, startLoad, tokenFor } from "../tests/support.mjs";

const STREAMS = (process.env.BENCH_STREAMS ?? "500,10000,100000").split(",").map(Number);
const SKEW = Number(process.env.BENCH_SKEW ?? 1.0);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const WARM_SECONDS = Number(process.env.BENCH_WARM_SECONDS ?? 40);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 90);
const PROBE_EVERY_MS = Number(process.env.BENCH_PROBE_EVERY_MS ?? 1500);
const OUT = process.env.BENCH_OUT;
// The published plain-request bound (edge/README.md): AUTHZ_EDGE_TTL_MS plus the origin's
// revocation lag, of which 1 s is a generous allowance (its measured p99 is a few ms).
const EDGE_TTL_MS = 4000;
const BOUND_MS = EDGE_TTL_MS + 1000;
// Each probe is watched for the bound after its commit, inside the window.
const PROBES = Math.max(1, Math.floor((SECONDS * 1000 - BOUND_MS - 1000) / PROBE_EVERY_MS));
const OPERATIONS = ["read", "download", "write", "delete", "share", "admin"];
const USERS = 1000;

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const round = (value, digits = 1) => Number(value.toFixed(digits));

/** `count` questions: owners' grants (six operations per generation), probes at odd ranks. */
async function dataset(client, count) {
  const users = Array.from({ length: USERS }, () => randomUUID());
  const generationCount = Math.ceil(count / OPERATIONS.length);
  const generations = Array.from({ length: generationCount }, () => randomUUID());
  const owners = generations.map((_, i) => users[i % USERS]);
  const projects = users.map(() => randomUUID());
  const sharees = Array.from({ length: PROBES }, () => randomUUID());
  const shared = Array.from({ length: PROBES }, () => randomUUID());
  await client.query("INSERT INTO users (id, email) SELECT id, id::text || '@zipf.test' FROM unnest($1::uuid[]) AS id", [
    [...users, ...sharees],
  ]);
  await client.query(
    "INSERT INTO projects (id, user_id, name) SELECT p, u, 'zipf' FROM unnest($1::uuid[], $2::uuid[]) AS t(p, u)",
    [projects, users],
  );
  const projectOf = new Map(users.map((user, i) => [user, projects[i]]));
  const allGenerations = [...generations, ...shared];
  const allOwners = [...owners, ...shared.map((_, i) => users[i % USERS])];
  await client.query(
    "INSERT INTO generations (id, user_id, project_id, status) SELECT g, u, p, 'completed' FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS t(g, u, p)",
    [allGenerations, allOwners, allOwners.map((owner) => projectOf.get(owner))],
  );
  await client.query(
    "INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level) SELECT g, u, 'read' FROM unnest($1::uuid[], $2::uuid[]) AS t(g, u)",
    [shared, sharees],
  );
  const tokens = new Map([...users, ...sharees].map((user) => [user, tokenFor(user)]));
  const question = (user, generation, operation, probe) => ({
    path: authorizePath({ resource_type: "generation", resource_id: generation, operation }),
    token: tokens.get(user),
    probe,
  });
  const owned = [];
  for (let i = 0; owned.length < count - PROBES; i += 1) {
    const g = Math.floor(i / OPERATIONS.length) % generationCount;
    owned.push(question(owners[g], generations[g], OPERATIONS[i % OPERATIONS.length], null));
  }
  // By rank: probe k at rank 2k + 1, owners' grants elsewhere.
  const ranked = [];
  let next = 0;
  for (let rank = 0; rank < count; rank += 1) {
    const k = (rank - 1) / 2;
    if (rank % 2 === 1 && k < PROBES) ranked.push(question(sharees[k], shared[k], "read", k));
    else ranked.push({ ...owned[next++] });
  }
  ranked.forEach((q, rank) => {
    q.rank = rank;
  });
  const probes = sharees.map((sharee, k) => ({ k, sharee, generation: shared[k] }));
  return { ranked, probes };
}

function zipfPicker(ranked) {
  const cumulative = [];
  let total = 0;
  for (let rank = 0; rank < ranked.length; rank += 1) {
    total += 1 / (rank + 1) ** SKEW;
    cumulative.push(total);
  }
  return () => {
    const x = Math.random() * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return ranked[lo];
  };
}

async function stream(client, count) {
  const { ranked, probes } = await dataset(client, count);
  const edge = await startEdge();
  const load = startLoad(edge, { concurrency: CONCURRENCY, pick: zipfPicker(ranked) });
  await sleep(WARM_SECONDS * 1000);
  const start = load.now();
  const commits = [];
  for (const probe of probes) {
    await sleep(Math.max(0, start + (probe.k + 1) * PROBE_EVERY_MS - load.now()));
    await client.query("UPDATE generation_shares SET is_active = false WHERE generation_id = $1 AND shared_with_user_id = $2", [
      probe.generation,
      probe.sharee,
    ]);
    commits.push({ k: probe.k, committed: load.now(), revision: await currentRevision(client) });
  }
  await sleep(Math.max(0, start + SECONDS * 1000 - load.now()));
  const end = load.now();
  const records = await load.stop();
  await edge.dispose();

  const window = records.filter((r) => r.sent >= start && r.sent < end);
  const by = (key) => window.reduce((counts, r) => ({ ...counts, [r[key]]: (counts[r[key]] ?? 0) + 1 }), {});
  const answered = window.filter((r) => r.status === 200);
  const hits = answered.filter((r) => r.cache === "hit").length;
  const committedAt = new Map(commits.map((c) => [c.k, c.committed]));
  let wrong = 0;
  let lateGrants = 0;
  const lastGrant = new Map();
  for (const r of records) {
    if (r.status !== 200) continue;
    if (r.probe === null) {
      if (r.granted !== true) wrong += 1;
      continue;
    }
    const committed = committedAt.get(r.probe);
    if (r.granted === true && committed !== undefined && r.received > committed) {
      lastGrant.set(r.probe, Math.max(lastGrant.get(r.probe) ?? 0, r.received - committed));
      if (r.sent > committed + BOUND_MS) lateGrants += 1;
    }
    if (r.granted !== true && (committed === undefined || r.sent < committed - 1000)) wrong += 1;
  }
  const staleness = commits.map((c) => lastGrant.get(c.k) ?? 0).sort((a, b) => a - b);
  const probeRequests = commits.map((c) => records.filter((r) => r.probe === c.k && r.sent > c.committed).length);
  return {
    questions: count,
    skew: SKEW,
    concurrency: CONCURRENCY,
    window_seconds: round((end - start) / 1000, 2),
    requests: window.length,
    requests_per_second: Math.round(window.length / ((end - start) / 1000)),
    statuses: by("status"),
    cache: by("cache"),
    failures: window.length - answered.length,
    hit_rate: round((100 * hits) / Math.max(1, answered.length), 2),
    latency_ms: (() => {
      const sorted = answered.map((r) => r.received - r.sent).sort((a, b) => a - b);
      return { p50: round(percentile(sorted, 50), 2), p99: round(percentile(sorted, 99), 2) };
    })(),
    probes: commits.length,
    probe_requests_after_commit_min: Math.min(...probeRequests),
    staleness_ms: {
      p50: round(percentile(staleness, 50)),
      p99: round(percentile(staleness, 99)),
      max: round(staleness[staleness.length - 1]),
    },
    bound_ms: BOUND_MS,
    grants_sent_past_the_bound: lateGrants,
    wrong_answers: wrong,
  };
}

const client = await connect();
const results = [];
for (const count of STREAMS) {
  const result = await stream(client, count);
  console.log(JSON.stringify(result));
  results.push(result);
}
await client.end();

console.log(
  "\n| questions (Zipf %s) | req/s (%d in flight) | requests | failures | hit rate (memory + KV) | p50 / p99 ms | probes | staleness p50 / p99 / max ms | grants past the bound | wrong |",
  SKEW,
  CONCURRENCY,
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  console.log(
    `| ${r.questions} | ${r.requests_per_second} | ${r.requests} | ${r.failures} | ${r.hit_rate} % | ${r.latency_ms.p50} / ${r.latency_ms.p99} | ${r.probes} | ${r.staleness_ms.p50} / ${r.staleness_ms.p99} / ${r.staleness_ms.max} | ${r.grants_sent_past_the_bound} | ${r.wrong_answers} |`,
  );
}
if (OUT) fs.writeFileSync(OUT, JSON.stringify({ settings: { STREAMS, SKEW, CONCURRENCY, WARM_SECONDS, SECONDS, PROBE_EVERY_MS }, results }, null, 2));
