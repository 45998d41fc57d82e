// The edge benchmark under miniflare (workerd), driven from Node, against the real origin:
//   - KV-hit latency (p50/p99, one request at a time) and throughput (N in flight) of the Rust
//     worker with its in-memory tier on (the default) and off (KV only), and of a minimal
//     JavaScript worker doing the same KV get (edge/bench/js-worker.mjs): the runtime's ceiling;
//   - workerd CPU time per request (from /proc, the whole workerd process: worker + local KV);
//   - miss latency (edge → origin → Postgres) beside the origin asked directly.
// Run it with scripts/bench-edge.sh, which starts the database and the origin.
import fs from "node:fs";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import { Miniflare } from "miniflare";

import {
  authorizePath,
  connect,
  JWT_SECRET,
  SERVICE_TOKEN,
  ORIGIN_URL,
  startEdge,
  tokenFor,
  workerModules,
} from "../tests/support.mjs";
import { cpuTicks, workerdChildren } from "./procstat.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const KEYS = Number(process.env.BENCH_KEYS ?? 200);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const MISSES = Number(process.env.BENCH_MISSES ?? 400);
const OUT = process.env.BENCH_OUT;
const TICKS_PER_SECOND = 100; // Linux USER_HZ

// --- workerd processes, for CPU time ---------------------------------------------------------



async function withWorkerd(start) {
  const before = workerdChildren();
  const target = await start();
  const after = [...workerdChildren()].filter((pid) => !before.has(pid));
  return { ...target, pid: after[0] };
}

// --- measuring -----------------------------------------------------------------------------

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const round = (value, digits = 3) => Number(value.toFixed(digits));

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50_ms: round(percentile(sorted, 50)),
    p90_ms: round(percentile(sorted, 90)),
    p99_ms: round(percentile(sorted, 99)),
    mean_ms: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
  };
}

/** One request at a time; latency of each, and workerd CPU per request. */
async function sequential(target, requests, check) {
  const samples = [];
  const ticks = target.pid ? cpuTicks(target.pid) : 0;
  for (const request of requests) {
    const started = performance.now();
    const response = await target.send(request);
    const body = await response.text();
    samples.push(performance.now() - started);
    check?.(response, body, request);
  }
  const cpu = target.pid ? ((cpuTicks(target.pid) - ticks) * 1000) / TICKS_PER_SECOND / requests.length : null;
  return { ...summary(samples), workerd_cpu_ms_per_request: cpu === null ? null : round(cpu) };
}

/** `CONCURRENCY` requests in flight; requests per second. */
async function throughput(target, requests, check) {
  let next = 0;
  const ticks = target.pid ? cpuTicks(target.pid) : 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < requests.length) {
        const request = requests[next++];
        const response = await target.send(request);
        const body = await response.text();
        check?.(response, body, request);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = target.pid ? ((cpuTicks(target.pid) - ticks) * 1000) / TICKS_PER_SECOND / requests.length : null;
  return {
    requests: requests.length,
    concurrency: CONCURRENCY,
    requests_per_second: Math.round(requests.length / seconds),
    workerd_cpu_ms_per_request: cpu === null ? null : round(cpu),
  };
}

// --- the run -------------------------------------------------------------------------------

const client = await connect();
const users = Array.from({ length: KEYS }, () => randomUUID());
const projects = users.map(() => randomUUID());
const generations = users.map(() => randomUUID());
await client.query("INSERT INTO users (id, email) SELECT id, id::text || '@bench.test' FROM unnest($1::uuid[]) AS id", [users]);
await client.query(
  "INSERT INTO projects (id, user_id, name) SELECT p, u, 'bench' FROM unnest($1::uuid[], $2::uuid[]) AS t(p, u)",
  [projects, users],
);
await client.query(
  "INSERT INTO generations (id, user_id, project_id, status) SELECT g, u, p, 'completed' FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS t(g, u, p)",
  [generations, users, projects],
);
await client.end();
const tokens = users.map((user) => tokenFor(user));

function jsFullOptions() {
  return {
    modules: true,
    scriptPath: path.join(here, "js-full-worker.mjs"),
    compatibilityDate: "2026-04-01",
    kvNamespaces: ["AUTHZ_CACHE"],
    bindings: { ORIGIN_URL: ORIGIN_URL(), AUTHZ_SERVICE_TOKEN: SERVICE_TOKEN(), AUTHZ_JWT_SECRET: JWT_SECRET() },
    cf: false,
  };
}

const edgeTarget = async (memoryEntries) => {
  const edge = await startEdge({ originUrl: ORIGIN_URL(), memoryEntries });
  const sendWith =
    (target) =>
    ({ path: url, token }) =>
      target.mf.dispatchFetch(`http://edge.test${url}`, { headers: { authorization: `Bearer ${token}` } });
  return { edge, kv: edge.kv, send: sendWith(edge), sendWith, dispose: () => edge.dispose() };
};
const rustMemory = await withWorkerd(() => edgeTarget(undefined));
const rustKv = await withWorkerd(() => edgeTarget(0));
// The like-for-like baseline: the Rust worker's work in plain JavaScript (js-full-worker.mjs).
/** A fresh workerd running the like-for-like baseline. */
async function startJsFull() {
  const mf = new Miniflare(jsFullOptions());
  await mf.ready;
  return {
    kv: await mf.getKVNamespace("AUTHZ_CACHE"),
    send: ({ path: url, token }) =>
      mf.dispatchFetch(`http://edge.test${url}`, { headers: { authorization: `Bearer ${token}` } }),
    dispose: () => mf.dispose(),
  };
}
const jsFull = await withWorkerd(startJsFull);
const js = await withWorkerd(async () => {
  const mf = new Miniflare({
    modules: true,
    scriptPath: path.join(here, "js-worker.mjs"),
    compatibilityDate: "2026-04-01",
    kvNamespaces: ["AUTHZ_CACHE"],
    bindings: { ORIGIN_URL: ORIGIN_URL(), AUTHZ_SERVICE_TOKEN: SERVICE_TOKEN() },
    cf: false,
  });
  await mf.ready;
  return {
    kv: await mf.getKVNamespace("AUTHZ_CACHE"),
    send: ({ path: url, user }) => mf.dispatchFetch(`http://edge.test${url}`, { headers: { "x-bench-user": user } }),
    dispose: () => mf.dispose(),
  };
});

const hitQuestions = users.map((user, i) => ({
  path: authorizePath({ resource_type: "generation", resource_id: generations[i], operation: "read" }),
  token: tokens[i],
  user,
}));

// Warm: the KV-only worker asks every question once (misses that go to the origin), then its KV
// entries are copied to the other two workers' namespaces.
const warm = await sequential(rustKv, hitQuestions, (response) => {
  if (response.status !== 200 || response.headers.get("x-authz-cache") !== "miss") {
    throw new Error(`warming: ${response.status} ${response.headers.get("x-authz-cache")}`);
  }
});
await rustKv.edge.waitForKeys(KEYS, 20000);
const { keys } = await rustKv.kv.list();
for (const { name, expiration } of keys) {
  const value = await rustKv.kv.get(name);
  for (const target of [rustMemory, jsFull, js]) await target.kv.put(name, value, { expiration });
}

const schedule = Array.from({ length: REQUESTS }, (_, i) => hitQuestions[i % KEYS]);
const expectHit = (response, body) => {
  if (response.status !== 200 || response.headers.get("x-authz-cache") !== "hit") {
    throw new Error(`expected a hit: ${response.status} ${response.headers.get("x-authz-cache")} ${body}`);
  }
};

const targets = {
  "rust (memory + KV)": rustMemory,
  "rust (KV only)": rustKv,
  "js like-for-like (KV)": jsFull,
  "js ceiling (KV get)": js,
};
const hits = {};
// Two rounds, interleaved; the first warms each runtime and is discarded.
for (let round = 0; round < 2; round += 1) {
  for (const [name, target] of Object.entries(targets)) {
    const latency = await sequential(target, schedule, expectHit);
    const rate = await throughput(target, schedule, expectHit);
    if (round === 1) hits[name] = { latency, throughput: rate };
  }
}

// Misses: fresh questions that the origin answers from Postgres (a stranger's view of another
// user's generation, every operation), through the edge and, beside it, asked of the origin
// directly with the service token.
const operations = ["download", "write", "delete", "share", "admin"];
const missQuestions = [];
const jsMissQuestions = [];
const jsFullMissQuestions = [];
const originQuestions = [];
for (let i = 0; missQuestions.length < MISSES; i += 1) {
  const user = i % KEYS;
  const operation = operations[Math.floor(i / KEYS) % operations.length];
  missQuestions.push({
    path: authorizePath({ resource_type: "generation", resource_id: generations[(user + 1) % KEYS], operation }),
    token: tokens[user],
  });
  jsFullMissQuestions.push({
    path: authorizePath({ resource_type: "generation", resource_id: generations[(user + 4) % KEYS], operation }),
    token: tokens[user],
  });
  jsMissQuestions.push({
    path: authorizePath({ resource_type: "generation", resource_id: generations[(user + 3) % KEYS], operation }),
    user: users[user],
  });
  originQuestions.push({
    user_id: users[user],
    resource_type: "generation",
    resource_id: generations[(user + 2) % KEYS],
    operation,
  });
}
const origin = {
  send: (body) =>
    fetch(`${ORIGIN_URL()}/v1/authorize`, {
      method: "POST",
      headers: { authorization: `Bearer ${SERVICE_TOKEN()}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
};
const expectMiss = (response, body) => {
  if (response.status !== 200 || response.headers.get("x-authz-cache") !== "miss") {
    throw new Error(`expected a miss: ${response.status} ${response.headers.get("x-authz-cache")} ${body}`);
  }
};
// Interleaved one by one (Rust edge, JS ceiling, origin directly) so that drift in the origin,
// Postgres or the machine falls on all three alike.
const missSamples = { rust: [], jsFull: [], js: [], origin: [] };
const missTicks = { rust: 0, jsFull: 0, js: 0 };
const timed = async (target, request, check) => {
  const ticks = target.pid ? cpuTicks(target.pid) : 0;
  const started = performance.now();
  const response = await target.send(request);
  const body = await response.text();
  const elapsed = performance.now() - started;
  check(response, body);
  return { elapsed, ticks: target.pid ? cpuTicks(target.pid) - ticks : 0 };
};
for (let i = 0; i < MISSES; i += 1) {
  const rust = await timed(rustMemory, missQuestions[i], expectMiss);
  const fullMiss = await timed(jsFull, jsFullMissQuestions[i], expectMiss);
  const ceilingMiss = await timed(js, jsMissQuestions[i], expectMiss);
  const direct = await timed(origin, originQuestions[i], (response) => {
    if (response.status !== 200) throw new Error(`origin: ${response.status}`);
  });
  missSamples.rust.push(rust.elapsed);
  missSamples.jsFull.push(fullMiss.elapsed);
  missTicks.jsFull += fullMiss.ticks;
  missSamples.js.push(ceilingMiss.elapsed);
  missSamples.origin.push(direct.elapsed);
  missTicks.rust += rust.ticks;
  missTicks.js += ceilingMiss.ticks;
}
const cpuPerMiss = (ticks) => round((ticks * 1000) / TICKS_PER_SECOND / MISSES);
const misses = { ...summary(missSamples.rust), workerd_cpu_ms_per_request: cpuPerMiss(missTicks.rust) };
const jsMisses = { ...summary(missSamples.js), workerd_cpu_ms_per_request: cpuPerMiss(missTicks.js) };
const jsFullMisses = { ...summary(missSamples.jsFull), workerd_cpu_ms_per_request: cpuPerMiss(missTicks.jsFull) };
const originDirect = summary(missSamples.origin);

// Cold start: a fresh workerd and isolate per round (a new Miniflare), the Rust worker (KV
// only) and the like-for-like JavaScript worker alternately. Reported: the time to `ready`
// (workerd started, the script compiled and its modules evaluated, wasm instantiation
// included) and the isolate's first request (a KV hit: its entry is put before), beside its
// second.
const COLD_ROUNDS = Number(process.env.BENCH_COLD_ROUNDS ?? 8);
const coldQuestion = hitQuestions[0];
const coldKey = `a1/${coldQuestion.user.replaceAll("-", "")}/g${generations[0].replaceAll("-", "")}/r`;
const coldValue = await rustKv.kv.get(coldKey);
if (coldValue === null) throw new Error(`no warmed entry ${coldKey}`);
const coldTargets = {
  rust: async () => {
    const edge = await startEdge({ originUrl: ORIGIN_URL(), memoryEntries: 0 });
    return { kv: edge.kv, send: rustKv.sendWith(edge), dispose: () => edge.dispose() };
  },
  jsFull: startJsFull,
};
const coldSamples = { rust: { ready: [], first: [], second: [] }, jsFull: { ready: [], first: [], second: [] } };
for (let round = 0; round < COLD_ROUNDS; round += 1) {
  for (const [name, make] of Object.entries(coldTargets)) {
    const started = performance.now();
    const target = await make();
    coldSamples[name].ready.push(performance.now() - started);
    await target.kv.put(coldKey, coldValue, { expirationTtl: 600 });
    for (const which of ["first", "second"]) {
      const sent = performance.now();
      const response = await target.send(coldQuestion);
      const body = await response.text();
      coldSamples[name][which].push(performance.now() - sent);
      expectHit(response, body);
    }
    await target.dispose();
  }
}
const coldStart = Object.fromEntries(
  Object.entries(coldSamples).map(([name, samples]) => [
    name,
    Object.fromEntries(Object.entries(samples).map(([which, values]) => [which, summary(values)])),
  ]),
);

for (const target of Object.values(targets)) await target.dispose();

const ceiling = hits["js ceiling (KV get)"];
const like = hits["js like-for-like (KV)"];
/** Every worker's hit figures over `base`'s: p50, p99, throughput and, with `cpu`, CPU per request. */
const ratiosTo = (base, { cpu = false } = {}) =>
  Object.fromEntries(
    Object.entries(hits).map(([name, { latency, throughput: rate }]) => [
      name,
      {
        p50: round(latency.p50_ms / base.latency.p50_ms, 2),
        p99: round(latency.p99_ms / base.latency.p99_ms, 2),
        throughput: round(rate.requests_per_second / base.throughput.requests_per_second, 2),
        ...(cpu
          ? { cpu: round(latency.workerd_cpu_ms_per_request / base.latency.workerd_cpu_ms_per_request, 2) }
          : {}),
      },
    ]),
  );
const results = {
  settings: { keys: KEYS, requests: REQUESTS, concurrency: CONCURRENCY, misses: MISSES, node: process.version },
  bundle: {
    line: process.env.EDGE_BUNDLE_LINE ?? null,
    wasm_bytes: Number(process.env.EDGE_WASM_BYTES ?? 0) || null,
    wasm_gzip_bytes: Number(process.env.EDGE_WASM_GZIP_BYTES ?? 0) || null,
  },
  hits,
  ratios_to_js_ceiling: ratiosTo(ceiling),
  ratios_to_js_like_for_like: ratiosTo(like, { cpu: true }),
  warm_misses_edge_kv_only: warm,
  misses_through_edge: misses,
  misses_through_js_like_for_like: jsFullMisses,
  misses_through_js_ceiling: jsMisses,
  origin_direct: originDirect,
  cold_start: coldStart,
};

console.log(JSON.stringify(results, null, 2));
console.log(
  "\n| worker | hit p50 ms | hit p99 ms | req/s (x%d) | workerd CPU ms/req | p50 vs JS like | req/s vs JS like | p50 vs ceiling | req/s vs ceiling |",
  CONCURRENCY,
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const [name, { latency, throughput: rate }] of Object.entries(hits)) {
  const like = results.ratios_to_js_like_for_like[name];
  const top = results.ratios_to_js_ceiling[name];
  console.log(
    `| ${name} | ${latency.p50_ms} | ${latency.p99_ms} | ${rate.requests_per_second} | ${latency.workerd_cpu_ms_per_request} / ${rate.workerd_cpu_ms_per_request} | ${like.p50}x | ${like.throughput}x | ${top.p50}x | ${top.throughput}x |`,
  );
}
console.log(`\n| miss path (one at a time) | p50 ms | p99 ms | workerd CPU ms/req |\n|---|---|---|---|`);
console.log(`| rust edge → origin → Postgres | ${misses.p50_ms} | ${misses.p99_ms} | ${misses.workerd_cpu_ms_per_request} |`);
console.log(`| js like-for-like → origin → Postgres | ${jsFullMisses.p50_ms} | ${jsFullMisses.p99_ms} | ${jsFullMisses.workerd_cpu_ms_per_request} |`);
console.log(`| js ceiling → origin → Postgres | ${jsMisses.p50_ms} | ${jsMisses.p99_ms} | ${jsMisses.workerd_cpu_ms_per_request} |`);
console.log(`| origin directly (service token, from Node) | ${originDirect.p50_ms} | ${originDirect.p99_ms} | - |`);
console.log(`\n| cold start (${COLD_ROUNDS} fresh isolates each) | ready p50 ms | first request p50 ms | second request p50 ms |\n|---|---|---|---|`);
for (const [name, { ready, first, second }] of Object.entries(coldStart)) {
  console.log(`| ${name} | ${ready.p50_ms} | ${first.p50_ms} | ${second.p50_ms} |`);
}
if (OUT) fs.writeFileSync(OUT, JSON.stringify(results, null, 2));
