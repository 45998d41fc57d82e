// Test support for the edge worker: the built worker under miniflare (workerd), a counting
// HTTP proxy in front of the real origin, HS256 JWTs minted with node:crypto, and row loading
// into the real Postgres database (the SQL of origin/tests/integration/support.rs `load()`).
//
// scripts/test-edge.sh provides the environment: EDGE_TEST_ORIGIN_URL (a running origin),
// EDGE_TEST_DATABASE_URL (its fresh, migrated database), EDGE_TEST_ORIGIN_BIN and
// EDGE_TEST_ORIGIN_ENV (to start a second origin that a test may stop or kill), AUTHZ_SERVICE_TOKEN
// and AUTHZ_JWT_SECRET.
import { createHmac, randomUUID } from "node:crypto";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import { Miniflare } from "miniflare";
import pg from "pg";

const here = path.dirname(fileURLToPath(import.meta.url));
// worker-build 0.8 writes build/index.js + build/index_bg.wasm; build/worker/shim.mjs (wrangler.toml's
// `main`) re-exports index.js.
export const WORKER_DIR = path.resolve(here, "../build");
/** The repository root. */
const ROOT = path.resolve(here, "../..");

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the edge tests with scripts/test-edge.sh`);
  return value;
}

export const ORIGIN_URL = () => required("EDGE_TEST_ORIGIN_URL");
export const DATABASE_URL = () => required("EDGE_TEST_DATABASE_URL");
export const SERVICE_TOKEN = () => required("AUTHZ_SERVICE_TOKEN");
export const JWT_SECRET = () => required("AUTHZ_JWT_SECRET");

// --- the worker under miniflare ----------------------------------------------------------

/** The built worker's modules, as workerd loads them in production. */
export function workerModules() {
  return {
    modules: true,
    scriptPath: path.join(WORKER_DIR, "worker", "shim.mjs"),
    modulesRoot: WORKER_DIR,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
  };
}

/**
 * Starts the built worker with its bindings. `originUrl` is what the worker calls (usually a
 * counting proxy); `memoryEntries` sets AUTHZ_EDGE_MEMORY_CACHE_ENTRIES (default: the
 * wrangler.toml default); `onLog({ level, message, timestamp })`, when given, receives the
 * worker's log lines instead of this process's stdout (a load test's thousands of 503s);
 * `ratelimits` declares rate limiter bindings (off unless given).
 */
export async function startEdge({ originUrl, memoryEntries, jwtSecret, onLog, vars, ratelimits } = {}) {
  const bindings = {
    ORIGIN_URL: originUrl ?? ORIGIN_URL(),
    AUTHZ_SERVICE_TOKEN: SERVICE_TOKEN(),
    AUTHZ_JWT_SECRET: jwtSecret ?? JWT_SECRET(),
    ...(vars ?? {}),
  };
  if (memoryEntries !== undefined) bindings.AUTHZ_EDGE_MEMORY_CACHE_ENTRIES = String(memoryEntries);
  const mf = new Miniflare({
    ...workerModules(),
    compatibilityDate: "2026-04-01",
    kvNamespaces: ["AUTHZ_CACHE"],
    // `{ NAME: { simple: { limit, period } } }`, as wrangler.toml's [[ratelimits]]; none by default.
    ...(ratelimits ? { ratelimits } : {}),
    bindings,
    // No request.cf data: it would be fetched from the internet.
    cf: false,
    ...(onLog ? { handleStructuredLogs: onLog } : {}),
  });
  await mf.ready;
  const kv = await mf.getKVNamespace("AUTHZ_CACHE");
  return {
    mf,
    kv,
    /** A request to the worker: `{ token, method, body, headers }`; returns status, headers, json. */
    async request(pathAndQuery, { token, method = "GET", body, headers = {} } = {}) {
      const all = { ...headers };
      if (token !== undefined) all.authorization = `Bearer ${token}`;
      if (body !== undefined) all["content-type"] = "application/json";
      const response = await mf.dispatchFetch(`http://edge.test${pathAndQuery}`, {
        method,
        headers: all,
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await response.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      return { status: response.status, headers: response.headers, json, text };
    },
    /** Waits until KV holds `count` keys (the worker writes after responding). */
    async waitForKeys(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { keys } = await kv.list();
        if (keys.length >= count) return keys;
        if (Date.now() > deadline) throw new Error(`KV holds ${keys.length} keys, expected ${count}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async clearKv() {
      for (;;) {
        const { keys } = await kv.list();
        if (keys.length === 0) return;
        await Promise.all(keys.map((key) => kv.delete(key.name)));
      }
    },
    dispose: () => mf.dispose(),
  };
}

/** The query string of a decision question. */
export function authorizePath({ resource_type, resource_id, operation, min_revision }) {
  const query = new URLSearchParams({ resource_type, resource_id, operation });
  if (min_revision !== undefined && min_revision !== null) query.set("min_revision", String(min_revision));
  return `/v1/authorize?${query}`;
}

// --- a counting proxy in front of the origin ----------------------------------------------

/**
 * An HTTP proxy to `target` that counts requests per path. `down = true` makes it refuse
 * connections as a stopped origin would; `delayMs` makes it slow; `status` (with `body`) makes it
 * answer that instead of forwarding; `hold = true` forwards each request at once but keeps the
 * origin's answer in flight until `release()` (an answer computed now, arriving late).
 */
export async function startProxy(target = ORIGIN_URL()) {
  const counts = new Map();
  const state = { down: false, delayMs: 0, status: 0, body: "", hold: false };
  let held = [];
  const heldWaiters = [];
  const sockets = new Set();
  const timers = new Set();
  const server = http.createServer((request, response) => {
    const pathname = new URL(request.url, "http://proxy").pathname;
    counts.set(pathname, (counts.get(pathname) ?? 0) + 1);
    const forward = () => {
      if (state.status) {
        response.writeHead(state.status, { "content-type": "application/json" });
        response.end(state.body);
        return;
      }
      const upstream = http.request(
        new URL(request.url, target),
        // No keep-alive pool: a pooled socket to the origin would keep the test process alive.
        { method: request.method, headers: request.headers, agent: false },
        (answer) => {
          if (!state.hold) {
            response.writeHead(answer.statusCode, answer.headers);
            answer.pipe(response);
            return;
          }
          const chunks = [];
          answer.on("data", (chunk) => chunks.push(chunk));
          answer.on("end", () => {
            held.push(() => {
              response.writeHead(answer.statusCode, answer.headers);
              response.end(Buffer.concat(chunks));
            });
            for (const wake of heldWaiters.splice(0)) wake();
          });
        },
      );
      upstream.on("error", () => {
        response.writeHead(502);
        response.end();
      });
      request.pipe(upstream);
    };
    if (state.delayMs > 0) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        forward();
      }, state.delayMs);
      timers.add(timer);
    } else forward();
  });
  server.on("connection", (socket) => {
    if (state.down) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    count: (pathname) => counts.get(pathname) ?? 0,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    reset: () => counts.clear(),
    state,
    /** Waits until `count` answers are held (each already computed by the origin). */
    async waitForHeld(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (held.length < count) {
        if (Date.now() > deadline) throw new Error(`${held.length} answers held, expected ${count}`);
        await new Promise((resolve) => {
          heldWaiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
    /** Sends every held answer on, and stops holding. */
    release() {
      state.hold = false;
      const out = held;
      held = [];
      for (const send of out) send();
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// --- a second origin process that a test may stop ------------------------------------------

export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts the origin binary with the test environment on `port` (default: a free one; pass the
 * port of a killed origin to restart it in place); resolves when healthy. `stop()` ends it with
 * SIGTERM, `kill()` with SIGKILL (no graceful shutdown: a crash); both wait for the exit.
 */
export async function startOrigin({ port } = {}) {
  port ??= await freePort();
  const env = { ...process.env, ...JSON.parse(required("EDGE_TEST_ORIGIN_ENV")), AUTHZ_LISTEN: `127.0.0.1:${port}` };
  const child = spawn(required("EDGE_TEST_ORIGIN_BIN"), ["serve"], { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  // A process killed by a signal has `exitCode` null: watch the event instead.
  let exited = false;
  const exit = new Promise((resolve) => child.once("exit", resolve)).then(() => {
    exited = true;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exited) throw new Error(`origin exited: ${stderr}`);
    try {
      // Healthy: `ok`, not only listening (its listener and Redis tiers connect just after).
      const response = await fetch(`${url}/api/v1/health`);
      if (response.ok && (await response.json()).status === "ok") break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`origin did not become healthy: ${stderr}`);
    }
    await sleep(25);
  }
  return {
    url,
    port,
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exit;
      clearTimeout(timer);
    },
    async kill() {
      if (exited) return;
      child.kill("SIGKILL");
      await exit;
    },
  };
}

// --- JWTs -----------------------------------------------------------------------------------

const b64url = (data) => Buffer.from(data).toString("base64url");

/**
 * A compact JWS. `alg` picks the HMAC (`HS256`, `HS512`) or `none` (no signature); `header`
 * overrides the header object; `secret` the key.
 */
export function mintJwt(claims, { alg = "HS256", secret = JWT_SECRET(), header } = {}) {
  const head = b64url(JSON.stringify(header ?? { alg, typ: "JWT" }));
  const body = b64url(typeof claims === "string" ? claims : JSON.stringify(claims));
  const input = `${head}.${body}`;
  if (alg === "none") return `${input}.`;
  const hash = { HS256: "sha256", HS512: "sha512" }[alg];
  return `${input}.${createHmac(hash, secret).update(input).digest("base64url")}`;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A valid token for `userId`, expiring in an hour. */
export function tokenFor(userId) {
  return mintJwt({ sub: userId, exp: nowSeconds() + 3600, iat: nowSeconds() });
}

// --- Postgres -------------------------------------------------------------------------------

export async function connect() {
  const client = new pg.Client({ connectionString: DATABASE_URL() });
  await client.connect();
  return client;
}

export async function currentRevision(client) {
  const { rows } = await client.query("SELECT authz_current_revision()::bigint AS revision");
  return Number(rows[0].revision);
}

export async function truncate(client) {
  await client.query(
    "TRUNCATE users, teams, team_members, projects, project_teams, generations, generation_shares CASCADE",
  );
}

/**
 * Inserts a corpus dataset with plain SQL, shifting every share expiry by `shiftMicros`. Team
 * memberships are upserts over the owner's implicit row (created by the trigger).
 */
export async function loadRows(client, data, shiftMicros = 0) {
  for (const user of data.users ?? []) {
    await client.query("INSERT INTO users (id, email, is_active) VALUES ($1, $2, $3)", [
      user.id,
      `${user.id}@example.test`,
      user.is_active ?? true,
    ]);
  }
  for (const team of data.teams ?? []) {
    await client.query("INSERT INTO teams (id, name, owner_id, is_active) VALUES ($1, 'team', $2, $3)", [
      team.id,
      team.owner_id,
      team.is_active ?? true,
    ]);
  }
  for (const member of data.team_members ?? []) {
    await client.query(
      "INSERT INTO team_members (team_id, user_id, role, is_active) VALUES ($1, $2, $3, $4) " +
        "ON CONFLICT (team_id, user_id) DO UPDATE SET role = EXCLUDED.role, is_active = EXCLUDED.is_active",
      [member.team_id, member.user_id, member.role, member.is_active ?? true],
    );
  }
  for (const project of data.projects ?? []) {
    await client.query("INSERT INTO projects (id, user_id, name, visibility) VALUES ($1, $2, 'project', $3)", [
      project.id,
      project.user_id,
      project.visibility ?? "private",
    ]);
  }
  for (const link of data.project_teams ?? []) {
    await client.query("INSERT INTO project_teams (project_id, team_id, access_level) VALUES ($1, $2, $3)", [
      link.project_id,
      link.team_id,
      link.access_level ?? "read",
    ]);
  }
  for (const generation of data.generations ?? []) {
    await client.query("INSERT INTO generations (id, user_id, project_id, status) VALUES ($1, $2, $3, $4)", [
      generation.id,
      generation.user_id,
      generation.project_id ?? null,
      generation.status,
    ]);
  }
  for (const share of data.generation_shares ?? []) {
    const expires =
      share.expires_at === undefined || share.expires_at === null
        ? null
        : String(parseMicros(share.expires_at) + shiftMicros);
    // An exact µs instant: epoch plus a bigint of microseconds (no float rounding).
    await client.query(
      "INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level, expires_at, is_active) " +
        "VALUES ($1, $2, $3, CASE WHEN $4::bigint IS NULL THEN NULL ELSE 'epoch'::timestamptz + $4::bigint * interval '1 microsecond' END, $5)",
      [share.generation_id, share.shared_with_user_id, share.permission_level, expires, share.is_active ?? true],
    );
  }
}

/** A small dataset of fresh ids: an owner with a generation in a private project, a stranger. */
export async function ownerDataset(client) {
  const ids = {
    owner: randomUUID(),
    stranger: randomUUID(),
    project: randomUUID(),
    generation: randomUUID(),
  };
  await loadRows(client, {
    users: [{ id: ids.owner }, { id: ids.stranger }],
    projects: [{ id: ids.project, user_id: ids.owner, visibility: "private" }],
    generations: [{ id: ids.generation, user_id: ids.owner, project_id: ids.project, status: "completed" }],
  });
  return ids;
}

/**
 * `count` owners, each with one generation in a private project of theirs (so an owner is
 * granted every operation on their own generation and denied, `no_relationship`, on the others').
 */
export async function ownersDataset(client, count) {
  const owners = Array.from({ length: count }, () => ({
    user: randomUUID(),
    project: randomUUID(),
    generation: randomUUID(),
  }));
  await loadRows(client, {
    users: owners.map(({ user }) => ({ id: user })),
    projects: owners.map(({ user, project }) => ({ id: project, user_id: user, visibility: "private" })),
    generations: owners.map(({ user, project, generation }) => ({
      id: generation,
      user_id: user,
      project_id: project,
      status: "completed",
    })),
  });
  return owners;
}

// --- time -----------------------------------------------------------------------------------

/** RFC 3339 to microseconds since the epoch, exactly (JavaScript dates stop at ms). */
export function parseMicros(text) {
  const match = /^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/.exec(text);
  if (!match) throw new Error(`not an RFC 3339 timestamp: ${text}`);
  const [, whole, fraction = "", zone] = match;
  const millis = Date.parse(`${whole.replace(/[t ]/, "T")}${zone === "z" ? "Z" : zone}`);
  if (Number.isNaN(millis)) throw new Error(`not an RFC 3339 timestamp: ${text}`);
  return millis * 1000 + Number((fraction + "000000").slice(0, 6));
}

export const nowMicros = () => Date.now() * 1000;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `check` (sync or async) every `intervalMs` until it returns something truthy, which it
 * returns; throws `what` after `timeoutMs`.
 */
export async function pollUntil(check, { timeoutMs = 5000, intervalMs = 20, what = "the condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// --- load and fault reports -----------------------------------------------------------------

/**
 * A steady load on `edge`: `concurrency` async loops, each sending `pick()`'s next question
 * (`{ path, token, ... }`; its other fields are kept in the record) back to back until `stop()`.
 * Every answer is recorded in `records` with `sent` and `received` (ms on the load's clock,
 * `now()`), `status`, `granted`, `cache` (X-Authz-Cache), `revision` and the error `code`.
 * `stop()` waits for the requests in flight and returns the records.
 */
export function startLoad(edge, { concurrency, pick }) {
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const records = [];
  let running = true;
  const loop = async () => {
    while (running) {
      const question = pick();
      const { path: pathAndQuery, token, ...rest } = question;
      const sent = now();
      let answer;
      try {
        answer = await edge.request(pathAndQuery, { token });
      } catch (error) {
        // The worker could not be reached at all: status 0, for the test to judge.
        answer = { status: 0, json: { error: { code: `dispatch failed: ${error.message}` } }, headers: new Headers() };
      }
      records.push({
        ...rest,
        sent,
        received: now(),
        status: answer.status,
        granted: answer.json?.granted ?? null,
        revision: answer.json?.revision ?? null,
        cache: answer.headers.get("x-authz-cache"),
        code: answer.json?.error?.code ?? null,
      });
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    records,
    now,
    async stop() {
      running = false;
      await Promise.all(loops);
      return records;
    },
  };
}


/**
 * Writes `report` (its `test` name first) to `target/fault-report/<test>.json` (under
 * `CARGO_TARGET_DIR` when set, as the origin's fault tests do) and logs one summary line of its
 * top-level numbers.
 */
export function writeFaultReport(report) {
  const dir = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || "target", "fault-report");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${report.test}.json`);
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  const numbers = Object.entries(report)
    .filter(([, value]) => typeof value === "number" || value === null)
    .map(([name, value]) => `${name}=${value}`);
  console.log(`fault report ${report.test}: ${numbers.join(" ")} (${path.relative(ROOT, file)})`);
  return file;
}
