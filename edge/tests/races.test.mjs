// The edge under races and slow answers, against the real origin: an answer held in flight
// never puts back an older grant (memory tier and KV), a share expiring during a slow batch is
// never granted after its expiry, and refresh-ahead keeps a hot key from ever expiring while a
// revocation still reaches plain requests within the TTL the origin hands out.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import {
  authorizePath,
  connect,
  currentRevision,
  loadRows,
  ownerDataset,
  sleep,
  startEdge,
  startProxy,
  tokenFor,
} from "./support.mjs";

let client;
const cleanups = [];

before(async () => {
  client = await connect();
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await client?.end();
});

async function setUp(options = {}) {
  const proxy = await startProxy();
  const edge = await startEdge({ originUrl: proxy.url, ...options });
  cleanups.push(() => proxy.close(), () => edge.dispose());
  return { proxy, edge };
}

/** The core's cache key (ARCHITECTURE.md decision 6), to read KV from the test. */
function cacheKey(userId, resourceId, operation) {
  const hex = (id) => id.replaceAll("-", "").toLowerCase();
  const letter = { read: "r", download: "d" }[operation];
  return `a1/${hex(userId)}/g${hex(resourceId)}/${letter}`;
}

/** The revision field of a KV entry (`e1;granted;method;role;reason;revision;...`). */
const entryRevision = (value) => (value ? Number(value.split(";")[5]) : null);

const read = (ids, extra = {}) =>
  authorizePath({ resource_type: "generation", resource_id: ids.generation, operation: "read", ...extra });

async function sharedDataset(expiresAt = null) {
  const ids = await ownerDataset(client);
  await loadRows(client, {
    generation_shares: [
      {
        generation_id: ids.generation,
        shared_with_user_id: ids.stranger,
        permission_level: "read",
        expires_at: expiresAt,
      },
    ],
  });
  return ids;
}

async function revoke(ids) {
  await client.query(
    "UPDATE generation_shares SET is_active = false WHERE generation_id = $1 AND shared_with_user_id = $2",
    [ids.generation, ids.stranger],
  );
  return currentRevision(client);
}

for (const memoryEntries of [undefined, 0]) {
  const label = memoryEntries === 0 ? "KV only" : "memory + KV";
  test(`${label}: a grant held in flight never replaces the deny of a newer revision`, async () => {
    const { proxy, edge } = await setUp({ memoryEntries });
    const ids = await sharedDataset();
    const token = tokenFor(ids.stranger);
    const key = cacheKey(ids.stranger, ids.generation, "read");

    // A plain request: the origin grants now, and its answer is held on the way back.
    proxy.state.hold = true;
    const late = edge.request(read(ids), { token });
    await proxy.waitForHeld(1);
    proxy.state.hold = false;

    // The revocation commits; a caller that knows it is denied, and the deny is stored.
    const revision = await revoke(ids);
    const denied = await edge.request(read(ids, { min_revision: revision }), { token });
    assert.equal(denied.status, 200, denied.text);
    assert.equal(denied.json.granted, false, denied.text);
    for (const deadline = Date.now() + 5000; entryRevision(await edge.kv.get(key)) === null; ) {
      assert.ok(Date.now() < deadline, "the deny was written to KV");
      await sleep(20);
    }
    assert.ok(entryRevision(await edge.kv.get(key)) >= revision);

    // The old answer arrives: its caller gets it (it answers a question asked before the
    // revocation), and the edge does not put it back.
    proxy.release();
    const old = await late;
    assert.equal(old.status, 200, old.text);
    assert.equal(old.json.granted, true, old.text);
    assert.ok(old.json.revision < revision, `${old.json.revision} < ${revision}`);
    await sleep(500); // its KV write, after the response, has run
    assert.ok(entryRevision(await edge.kv.get(key)) >= revision, "KV still holds the newer deny");
    for (let round = 0; round < 5; round += 1) {
      const plain = await edge.request(read(ids), { token });
      assert.equal(plain.status, 200, plain.text);
      assert.equal(plain.json.granted, false, `round ${round}: the revoked grant came back: ${plain.text}`);
      assert.equal(plain.headers.get("x-authz-cache"), "hit");
    }
  });
}

test("a share expiring during a slow batch is not granted after its expiry", async () => {
  const { proxy, edge } = await setUp();
  const expiresAt = Date.now() + 2500;
  const ids = await sharedDataset(new Date(expiresAt).toISOString());
  const token = tokenFor(ids.stranger);
  const check = (operation) => ({ resource_type: "generation", resource_id: ids.generation, operation });
  const batch = (checks) => edge.request("/v1/authorize/batch", { token, method: "POST", body: { checks } });

  const warm = await batch([check("read")]);
  assert.equal(warm.status, 200, warm.text);
  assert.equal(warm.json.results[0].granted, true, warm.text);
  assert.equal(Date.parse(warm.json.results[0].valid_until), expiresAt);
  await edge.waitForKeys(1);
  const hit = await batch([check("read")]);
  assert.equal(hit.headers.get("x-authz-cache"), "hits=1 misses=0 bypasses=0");
  assert.equal(hit.json.results[0].granted, true);

  // 1.2 s before the expiry, a batch with the cached share and a miss the origin takes 2 s on.
  await sleep(Math.max(0, expiresAt - 1200 - Date.now()));
  proxy.state.delayMs = 2000;
  const slow = await batch([check("read"), check("download")]);
  const sentBack = Date.now();
  proxy.state.delayMs = 0;
  assert.equal(slow.status, 200, slow.text);
  assert.ok(sentBack > expiresAt, "the answer left after the share's expiry");
  const [shared, other] = slow.json.results;
  assert.equal(shared.granted, false, `a grant sent back after its share expired: ${slow.text}`);
  assert.equal(shared.reason, "share_expired");
  assert.equal(other.granted, false, "a read share never grants download");
});

test("refresh-ahead: a hot key is never a miss, and a revocation reaches plain requests within the TTL", async () => {
  const { proxy, edge } = await setUp();
  const ids = await sharedDataset();
  const token = tokenFor(ids.stranger);
  const ttl = (await edge.request(read(ids), { token })).json.ttl_ms;
  assert.ok(ttl > 0 && ttl <= 4000, `the origin hands a short TTL: ${ttl}`);
  const calls = proxy.count("/v1/authorize");

  // Asked every 200 ms for three TTLs: every answer a hit, the entry refreshed behind them.
  const outcomes = [];
  for (const end = Date.now() + 3 * ttl; Date.now() < end; ) {
    const answer = await edge.request(read(ids), { token });
    assert.equal(answer.json.granted, true, answer.text);
    outcomes.push(answer.headers.get("x-authz-cache"));
    await sleep(200);
  }
  assert.deepEqual([...new Set(outcomes)], ["hit"], `every answer a hit: ${outcomes.join(" ")}`);
  const refreshes = proxy.count("/v1/authorize") - calls;
  assert.ok(refreshes >= 2 && refreshes <= 8, `refreshed in the background, once per half-life: ${refreshes}`);

  // The revocation, with no min_revision anywhere: plain requests see it within the TTL, and
  // once denied are never granted again.
  const revokedAt = Date.now();
  await revoke(ids);
  let firstDeny = null;
  for (const end = revokedAt + ttl + 2000; Date.now() < end; ) {
    const answer = await edge.request(read(ids), { token });
    if (!answer.json.granted && firstDeny === null) firstDeny = Date.now();
    if (firstDeny !== null) assert.equal(answer.json.granted, false, "a grant after the first deny");
    await sleep(50);
  }
  assert.ok(firstDeny !== null, "the revocation was never seen");
  assert.ok(firstDeny - revokedAt <= ttl + 500, `seen ${firstDeny - revokedAt} ms after the commit, TTL ${ttl}`);
});
