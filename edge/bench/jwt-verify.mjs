// What one end-user token verification costs at the edge, by algorithm: HS256 (the core's HMAC
// in wasm) beside RS256, ES256 and EdDSA (the core's checks plus WebCrypto's verify).
//
// workerd's clock does not advance while a request runs, so this measures from outside: the
// built worker under miniflare with its memory tier on, one user and one resource, so that
// after the warm-up every request is a JWT check plus the same in-isolate cache hit and nothing
// else differs between the token types. Requests go one at a time; the types take turns in
// rounds (the order rotates each round) so that drift in the machine hits every type alike.
// Reported per type: median and p99 latency per request, the median's difference from HS256,
// workerd CPU per request (utime + stime of the workerd process, 10 ms ticks summed over all of
// a type's requests), and failures (anything but a 200 memory hit).
// Run it with scripts/bench-edge-jwt.sh, which builds the worker and starts the origin.
// Knobs: BENCH_ROUNDS (10), BENCH_PER_ROUND (200), BENCH_OUT (a JSON file for the results).
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import { SignJWT, importJWK } from "jose";

import { authorizePath, connect, nowSeconds, ownerDataset, startEdge, tokenFor } from "../tests/support.mjs";
import { cpuTicks, workerdChildren } from "./procstat.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const PER_ROUND = Number(process.env.BENCH_PER_ROUND ?? 200);
const OUT = process.env.BENCH_OUT;
const TICKS_PER_SECOND = 100; // Linux USER_HZ

const rfc = JSON.parse(fs.readFileSync(path.resolve(here, "../../testdata/jose/rfc-keys.json"), "utf8"));
const signers = { RS256: ["rsa-1", rfc.rs256], ES256: ["ec-1", rfc.es256], EdDSA: ["ed-1", rfc.eddsa] };
const publicJwk = (kid, jwk) => {
  const copy = { ...jwk, kid };
  for (const member of ["d", "p", "q", "dp", "dq", "qi"]) delete copy[member];
  return copy;
};
const JWKS = JSON.stringify({ keys: Object.values(signers).map(([kid, jwk]) => publicJwk(kid, jwk)) });


const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const round = (value, digits = 3) => Number(value.toFixed(digits));

const client = await connect();
const ids = await ownerDataset(client);
await client.end();

const now = nowSeconds();
const tokens = { HS256: tokenFor(ids.owner) };
for (const [alg, [kid, jwk]] of Object.entries(signers)) {
  tokens[alg] = await new SignJWT({ iat: now, exp: now + 3600 })
    .setProtectedHeader({ alg, kid, typ: "JWT" })
    .setSubject(ids.owner)
    .sign(await importJWK(jwk, alg));
}
const types = Object.keys(tokens);

const before = workerdChildren();
const edge = await startEdge({ vars: { AUTHZ_JWKS: JWKS } });
const [pid] = [...workerdChildren()].filter((child) => !before.has(child));
const path_ = authorizePath({ resource_type: "generation", resource_id: ids.generation, operation: "read" });

const samples = Object.fromEntries(types.map((type) => [type, []]));
const ticks = Object.fromEntries(types.map((type) => [type, 0]));
const failures = Object.fromEntries(types.map((type) => [type, 0]));

async function once(type, record) {
  const started = performance.now();
  const response = await edge.mf.dispatchFetch(`http://edge.test${path_}`, {
    headers: { authorization: `Bearer ${tokens[type]}` },
  });
  await response.text();
  const elapsed = performance.now() - started;
  const ok = response.status === 200 && response.headers.get("x-authz-cache") === "hit";
  if (record) {
    samples[type].push(elapsed);
    if (!ok) failures[type] += 1;
  }
  return ok;
}

// Warm-up: the origin answers the first request, each public key is imported on its type's
// first verification, and the JIT settles.
for (const type of types) {
  for (let i = 0; i < 50; i += 1) await once(type, false);
  if (!(await once(type, false))) throw new Error(`${type} is not a memory hit after the warm-up`);
}

for (let r = 0; r < ROUNDS; r += 1) {
  const order = types.map((_, i) => types[(i + r) % types.length]);
  for (const type of order) {
    const start = pid ? cpuTicks(pid) : 0;
    for (let i = 0; i < PER_ROUND; i += 1) await once(type, true);
    if (pid) ticks[type] += cpuTicks(pid) - start;
  }
}
await edge.dispose();

const median = (type) => percentile([...samples[type]].sort((a, b) => a - b), 50);
const results = {
  rounds: ROUNDS,
  per_round: PER_ROUND,
  workerd_pid_found: Boolean(pid),
  types: Object.fromEntries(
    types.map((type) => {
      const sorted = [...samples[type]].sort((a, b) => a - b);
      return [
        type,
        {
          n: sorted.length,
          failures: failures[type],
          p50_ms: round(percentile(sorted, 50)),
          p99_ms: round(percentile(sorted, 99)),
          p50_minus_hs256_ms: round(median(type) - median("HS256")),
          workerd_cpu_ms_per_request: round(((ticks[type] / TICKS_PER_SECOND) * 1000) / sorted.length),
        },
      ];
    }),
  ),
};
console.log(JSON.stringify(results, null, 2));
if (OUT) fs.writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);
