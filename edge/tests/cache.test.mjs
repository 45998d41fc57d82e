// The edge's cache against the real origin: miss, hit (no origin call), bypass on
// `min_revision`, revocation seen at once by callers that send the new revision, garbage and
// old-format KV values treated as misses, and batches with one origin call for all misses.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import {
  authorizePath,
  connect,
  currentRevision,
  loadRows,
  ownerDataset,
  startEdge,
  startProxy,
  tokenFor,
} from "./support.mjs";

let proxy;
let client;
const edges = [];

before(async () => {
  proxy = await startProxy();
  client = await connect();
});

after(async () => {
  await Promise.all(edges.map((edge) => edge.dispose()));
  await client?.end();
  await proxy?.close();
});

async function edgeWith(options = {}) {
  const edge = await startEdge({ originUrl: proxy.url, ...options });
  edges.push(edge);
  return edge;
}

/** The core's cache key (ARCHITECTURE.md decision 6), to seed KV from the test. */
function cacheKey(userId, resourceType, resourceId, operation) {
  const hex = (id) => id.replaceAll("-", "").toLowerCase();
  const letter = { read: "r", download: "d", write: "w", delete: "x", share: "s", admin: "a" }[operation];
  return `a1/${userId ? hex(userId) : "-"}/${resourceType[0]}${hex(resourceId)}/${letter}`;
}

const read = (ids, extra = {}) =>
  authorizePath({ resource_type: "generation", resource_id: ids.generation, operation: "read", ...extra });

for (const memoryEntries of [undefined, 0]) {
  const label = memoryEntries === 0 ? "KV only" : "memory + KV";
  test(`${label}: a miss goes to the origin once, the same question again is a hit`, async () => {
    const edge = await edgeWith({ memoryEntries });
    const ids = await ownerDataset(client);
    const token = tokenFor(ids.owner);
    const calls = proxy.count("/v1/authorize");

    const first = await edge.request(read(ids), { token });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers.get("x-authz-cache"), "miss");
    assert.equal(first.json.granted, true);
    assert.equal(first.json.access_method, "direct_owner");
    assert.notEqual(first.json.source, "edge");
    assert.equal(proxy.count("/v1/authorize"), calls + 1);

    const [stored] = await edge.waitForKeys(1);
    assert.equal(stored.name, cacheKey(ids.owner, "generation", ids.generation, "read"));
    // KV's minimum expirationTtl is 60 s; the entry's own expiry is the decision's TTL.
    assert.ok(stored.expiration * 1000 >= Date.now() + 55_000, JSON.stringify(stored));
    assert.match(await edge.kv.get(stored.name), /^e1;1;direct_owner;owner;-;\d+;/);

    const second = await edge.request(read(ids), { token });
    assert.equal(second.status, 200);
    assert.equal(second.headers.get("x-authz-cache"), "hit");
    assert.equal(second.json.source, "edge");
    assert.equal(second.json.granted, true);
    assert.equal(second.json.revision, first.json.revision);
    assert.ok(second.json.ttl_ms <= first.json.ttl_ms && second.json.ttl_ms > 0);
    assert.equal(proxy.count("/v1/authorize"), calls + 1, "a hit does not reach the origin");

    // min_revision at or below the entry's revision is still a hit.
    const atRevision = await edge.request(read(ids, { min_revision: first.json.revision }), { token });
    assert.equal(atRevision.headers.get("x-authz-cache"), "hit");
    assert.equal(proxy.count("/v1/authorize"), calls + 1);
  });
}

test("another worker instance sharing the KV namespace is served from KV", async () => {
  const edge = await edgeWith({ memoryEntries: 0 });
  const ids = await ownerDataset(client);
  const token = tokenFor(ids.stranger);
  const first = await edge.request(read(ids), { token });
  assert.equal(first.json.reason, "no_relationship", "a deny is cached like a grant");
  await edge.waitForKeys(1);
  const calls = proxy.count("/v1/authorize");
  const again = await edge.request(read(ids), { token });
  assert.equal(again.headers.get("x-authz-cache"), "hit");
  assert.equal(again.json.granted, false);
  assert.equal(again.json.reason, "no_relationship");
  assert.equal(proxy.count("/v1/authorize"), calls);
});

test("a garbage or old-format value under a key is a miss, then overwritten", async () => {
  // KV only, so that each junk value is what the worker reads.
  const edge = await edgeWith({ memoryEntries: 0 });
  const ids = await ownerDataset(client);
  const token = tokenFor(ids.owner);
  const key = cacheKey(ids.owner, "generation", ids.generation, "read");
  for (const junk of [
    "garbage",
    "",
    "e0;1;direct_owner;owner;-;1;1;99999999999999999;-;",
    "e1;1;direct_owner;owner;-;1;1;99999999999999999;-",
    "e1;1;direct_owner;-;-;1;1;99999999999999999;-;",
    JSON.stringify({ granted: true }),
  ]) {
    await edge.kv.put(key, junk);
    const calls = proxy.count("/v1/authorize");
    const owner = await edge.request(read(ids), { token });
    assert.equal(owner.status, 200, `${JSON.stringify(junk)}: ${owner.text}`);
    assert.equal(owner.headers.get("x-authz-cache"), "miss", JSON.stringify(junk));
    assert.equal(owner.json.granted, true);
    assert.equal(proxy.count("/v1/authorize"), calls + 1);
    // The write after the response replaces the junk with a real entry.
    const deadline = Date.now() + 5000;
    while (!(await edge.kv.get(key))?.startsWith("e1;1;direct_owner;owner;")) {
      assert.ok(Date.now() < deadline, "the entry was rewritten");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
});

test("min_revision above the cached entry's revision bypasses the cache", async () => {
  const edge = await edgeWith();
  const ids = await ownerDataset(client);
  const token = tokenFor(ids.owner);
  const first = await edge.request(read(ids), { token });
  assert.equal(first.headers.get("x-authz-cache"), "miss");
  await edge.waitForKeys(1);
  // An unrelated write advances the revision.
  await loadRows(client, { users: [{ id: randomUUID() }] });
  const revision = await currentRevision(client);
  assert.ok(revision > first.json.revision);
  const calls = proxy.count("/v1/authorize");
  const bypass = await edge.request(read(ids, { min_revision: revision }), { token });
  assert.equal(bypass.status, 200);
  assert.equal(bypass.headers.get("x-authz-cache"), "bypass");
  assert.ok(bypass.json.revision >= revision);
  assert.equal(proxy.count("/v1/authorize"), calls + 1);
  // The answer at the new revision replaced the entry: the same demand is now a hit.
  const deadline = Date.now() + 5000;
  for (;;) {
    const again = await edge.request(read(ids, { min_revision: revision }), { token });
    if (again.headers.get("x-authz-cache") === "hit") break;
    assert.ok(Date.now() < deadline, "the new entry was written");
  }
});

test("revocation: a cached grant is denied at once for a caller sending the new revision", async () => {
  const edge = await edgeWith();
  const ids = await ownerDataset(client);
  await loadRows(client, {
    generation_shares: [
      { generation_id: ids.generation, shared_with_user_id: ids.stranger, permission_level: "read" },
    ],
  });
  const token = tokenFor(ids.stranger);
  const granted = await edge.request(read(ids), { token });
  assert.equal(granted.json.granted, true, granted.text);
  assert.equal(granted.json.access_method, "explicit_share");
  await edge.waitForKeys(1);
  const hit = await edge.request(read(ids), { token });
  assert.equal(hit.headers.get("x-authz-cache"), "hit");
  assert.equal(hit.json.granted, true);

  await client.query(
    "UPDATE generation_shares SET is_active = false WHERE generation_id = $1 AND shared_with_user_id = $2",
    [ids.generation, ids.stranger],
  );
  const revision = await currentRevision(client);
  const denied = await edge.request(read(ids, { min_revision: revision }), { token });
  assert.equal(denied.status, 200);
  assert.equal(denied.headers.get("x-authz-cache"), "bypass");
  assert.equal(denied.json.granted, false);
  assert.equal(denied.json.reason, "no_relationship");
  assert.ok(denied.json.revision >= revision);
  // The deny replaced the cached grant for everyone, with or without min_revision.
  const deadline = Date.now() + 5000;
  for (;;) {
    const after = await edge.request(read(ids), { token });
    assert.equal(after.json.granted, false, "never the revoked grant again");
    if (after.headers.get("x-authz-cache") === "hit") break;
    assert.ok(Date.now() < deadline);
  }
});

test("anonymous callers get public reads through the edge, and nothing else", async () => {
  const edge = await edgeWith();
  const ids = { owner: randomUUID(), project: randomUUID(), generation: randomUUID() };
  await loadRows(client, {
    users: [{ id: ids.owner }],
    projects: [{ id: ids.project, user_id: ids.owner, visibility: "public" }],
    generations: [{ id: ids.generation, user_id: ids.owner, project_id: ids.project, status: "completed" }],
  });
  const readIt = await edge.request(read(ids));
  assert.equal(readIt.json.granted, true, readIt.text);
  assert.equal(readIt.json.access_method, "public_access");
  const write = await edge.request(
    authorizePath({ resource_type: "generation", resource_id: ids.generation, operation: "write" }),
  );
  assert.equal(write.json.granted, false);
  assert.equal(write.json.reason, "anonymous_not_allowed");
  await edge.waitForKeys(2);
  assert.ok((await edge.kv.list()).keys.every((key) => key.name.startsWith("a1/-/")));
});

test("batch: hits from the cache, ONE origin call for all misses, results in order", async () => {
  const edge = await edgeWith();
  const ids = await ownerDataset(client);
  const token = tokenFor(ids.owner);
  const operations = ["read", "download", "write", "delete", "share", "admin"];
  const check = (operation, resource_type = "generation", resource_id = ids.generation) => ({
    resource_type,
    resource_id,
    operation,
  });
  // Warm three of them.
  for (const operation of operations.slice(0, 3)) {
    await edge.request(authorizePath(check(operation)), { token });
  }
  await edge.waitForKeys(3);
  // Junk under a fourth key: a miss.
  await edge.kv.put(cacheKey(ids.owner, "generation", ids.generation, "delete"), "junk");
  const checks = [
    ...operations.map((operation) => check(operation)),
    check("read", "project", ids.project),
    check("admin", "project", randomUUID()),
  ];
  const batchCalls = proxy.count("/v1/authorize/batch");
  const singleCalls = proxy.count("/v1/authorize");
  const response = await edge.request("/v1/authorize/batch", { token, method: "POST", body: { checks } });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.headers.get("x-authz-cache"), "hits=3 misses=5 bypasses=0");
  assert.equal(proxy.count("/v1/authorize/batch"), batchCalls + 1, "one origin batch call");
  assert.equal(proxy.count("/v1/authorize"), singleCalls, "no single calls");
  const results = response.json.results;
  assert.equal(results.length, checks.length);
  assert.deepEqual(
    results.map((r) => r.source === "edge"),
    [true, true, true, false, false, false, false, false],
  );
  for (const result of results.slice(0, 7)) {
    assert.equal(result.granted, true);
    assert.equal(result.effective_role, "owner");
  }
  assert.equal(results[6].access_method, "direct_owner");
  assert.equal(results[7].granted, false);
  assert.equal(results[7].reason, "resource_not_found");

  // Every answer was stored: the same batch again is all hits and never reaches the origin.
  await edge.waitForKeys(checks.length);
  const again = await edge.request("/v1/authorize/batch", { token, method: "POST", body: { checks } });
  assert.equal(again.headers.get("x-authz-cache"), "hits=8 misses=0 bypasses=0");
  assert.equal(proxy.count("/v1/authorize/batch"), batchCalls + 1);
  assert.deepEqual(
    again.json.results.map(({ granted, access_method, reason }) => ({ granted, access_method, reason })),
    results.map(({ granted, access_method, reason }) => ({ granted, access_method, reason })),
  );

  // min_revision per check: only that one bypasses.
  await loadRows(client, { users: [{ id: randomUUID() }] });
  const revision = await currentRevision(client);
  const mixed = await edge.request("/v1/authorize/batch", {
    token,
    method: "POST",
    body: { checks: [checks[0], { ...checks[1], min_revision: revision }] },
  });
  assert.equal(mixed.status, 200, mixed.text);
  assert.equal(mixed.headers.get("x-authz-cache"), "hits=1 misses=0 bypasses=1");
  assert.ok(mixed.json.results[1].revision >= revision);
  assert.equal(proxy.count("/v1/authorize/batch"), batchCalls + 2);
});

test("batch limits and validation", async () => {
  const edge = await edgeWith();
  const token = tokenFor(randomUUID());
  const one = { resource_type: "team", resource_id: randomUUID(), operation: "read" };
  const calls = proxy.total();
  const post = (body, headers) => edge.request("/v1/authorize/batch", { token, method: "POST", body, headers });

  const tooMany = await post({ checks: Array(101).fill(one) });
  assert.equal(tooMany.status, 413);
  assert.equal(tooMany.json.error.code, "payload_too_large");
  const tooBig = await post({ checks: [one], pad: "x".repeat(64 * 1024) });
  assert.equal(tooBig.status, 413);
  assert.equal(tooBig.json.error.code, "payload_too_large");
  const named = await post({ checks: [{ ...one, user_id: randomUUID() }] });
  assert.equal(named.status, 400);
  assert.deepEqual([named.json.error.code, named.json.error.field], ["invalid_request", "checks[0].user_id"]);
  const badId = await post({ checks: [one, { ...one, resource_id: "nope" }] });
  assert.deepEqual([badId.status, badId.json.error.code, badId.json.error.field], [400, "invalid_uuid", "checks[1].resource_id"]);
  const notJson = await post("{nope");
  assert.deepEqual([notJson.status, notJson.json.error.code], [400, "invalid_request"]);
  const get = await edge.request("/v1/authorize/batch", { token });
  assert.equal(get.status, 405);
  assert.equal(proxy.total(), calls, "the origin was never called");

  const empty = await post({ checks: [] });
  assert.equal(empty.status, 200);
  assert.deepEqual(empty.json, { results: [] });
  const hundred = await post({ checks: Array(100).fill(one) });
  assert.equal(hundred.status, 200, hundred.text);
  assert.equal(hundred.json.results.length, 100);
  assert.equal(hundred.json.results[99].reason, "user_not_found");
});
