// Rate limits at the edge, under workerd's emulation of the Workers Rate Limiting binding:
// per token `sub` and per client address (`CF-Connecting-IP`), requests that reach the origin
// limited tighter than hits, 429 `rate_limited` with `Retry-After`, and a loop of random
// resource ids refused before it reaches the origin or fills KV.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { authorizePath, connect, ownerDataset, sleep, startEdge, startProxy, tokenFor } from "./support.mjs";

// Small limits, so that a test reaches them; a 60 s window, so that a test runs inside one.
const LIMITS = { user: 8, address: 12, userMisses: 3, addressMisses: 5 };
const window = (limit) => ({ simple: { limit, period: 60 } });
const RATELIMITS = {
  AUTHZ_USER_RATE_LIMIT: window(LIMITS.user),
  AUTHZ_IP_RATE_LIMIT: window(LIMITS.address),
  AUTHZ_USER_MISS_RATE_LIMIT: window(LIMITS.userMisses),
  AUTHZ_IP_MISS_RATE_LIMIT: window(LIMITS.addressMisses),
};

let proxy;
let client;
let edge;
let addresses = 0;

before(async () => {
  proxy = await startProxy();
  client = await connect();
  edge = await startEdge({ originUrl: proxy.url, ratelimits: RATELIMITS });
});

after(async () => {
  await edge?.dispose();
  await client?.end();
  await proxy?.close();
});

/** A client address of its own for each test (TEST-NET-3), and a fresh 60 s window. */
async function freshAddress() {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 15_000) await sleep(left + 50);
  addresses += 1;
  return `203.0.113.${addresses}`;
}

const readOf = (resourceId) => authorizePath({ resource_type: "generation", resource_id: resourceId, operation: "read" });
const ask = (path, token, address, extra = {}) =>
  edge.request(path, { token, headers: { "cf-connecting-ip": address }, ...extra });

function assertLimited(response) {
  assert.equal(response.status, 429, response.text);
  assert.equal(response.json.error.code, "rate_limited");
  assert.equal(response.headers.get("retry-after"), "10");
}

test("per token sub: origin calls are limited tighter than hits", async () => {
  const address = await freshAddress();
  const ids = await ownerDataset(client);
  const token = tokenFor(ids.owner);
  const calls = proxy.count("/v1/authorize");
  const first = await ask(readOf(ids.generation), token, address);
  assert.equal(first.status, 200, first.text);
  for (let n = 1; n < LIMITS.userMisses; n += 1) {
    const miss = await ask(readOf(randomUUID()), token, address);
    assert.equal(miss.status, 200, miss.text);
  }
  const refused = await ask(readOf(randomUUID()), token, address);
  assertLimited(refused);
  assert.equal(proxy.count("/v1/authorize") - calls, LIMITS.userMisses, "the refused miss never reached the origin");

  // Hits still pass, up to the sub's limit on all requests (the refused one counted).
  let answered = LIMITS.userMisses + 1;
  while (answered < LIMITS.user) {
    const hit = await ask(readOf(ids.generation), token, address);
    assert.equal(hit.status, 200, hit.text);
    assert.equal(hit.headers.get("x-authz-cache"), "hit");
    answered += 1;
  }
  assertLimited(await ask(readOf(ids.generation), token, address));
  // Another user from the same address is not this user.
  const other = await ask(readOf(ids.generation), tokenFor(ids.stranger), address);
  assert.equal(other.status, 200, other.text);
});

test("per client address: every token and anonymous callers share the address's limits", async () => {
  const address = await freshAddress();
  const tokens = [randomUUID(), randomUUID(), randomUUID()].map(tokenFor);
  const statuses = [];
  for (let n = 0; n < LIMITS.addressMisses + 2; n += 1) {
    const token = n % 4 === 3 ? undefined : tokens[n % 3];
    statuses.push((await ask(readOf(randomUUID()), token, address)).status);
  }
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429], "the address's origin calls, across tokens");
  const batch = await ask("/v1/authorize/batch", tokens[0], address, {
    method: "POST",
    body: { checks: [{ resource_type: "generation", resource_id: randomUUID(), operation: "read" }] },
  });
  assertLimited(batch);
  const elsewhere = await ask(readOf(randomUUID()), tokenFor(randomUUID()), `${address}0`);
  assert.equal(elsewhere.status, 200, `another address is not limited: ${elsewhere.text}`);
});

test("the address's limit comes before the token is verified", async () => {
  const address = await freshAddress();
  const statuses = [];
  for (let n = 0; n < LIMITS.address + 1; n += 1) {
    statuses.push((await ask(readOf(randomUUID()), "not-a-token", address)).status);
  }
  assert.deepEqual(statuses, [...Array(LIMITS.address).fill(401), 429]);
});

test("a loop of random resource ids is refused before the origin and KV", async () => {
  const address = await freshAddress();
  await edge.clearKv();
  const token = tokenFor(randomUUID());
  const calls = proxy.total();
  let refused = 0;
  for (let n = 0; n < 40; n += 1) {
    const response = await ask(readOf(randomUUID()), token, address);
    if (response.status === 429) refused += 1;
    else assert.equal(response.status, 200, response.text);
  }
  assert.equal(refused, 40 - LIMITS.userMisses);
  assert.equal(proxy.total() - calls, LIMITS.userMisses, "origin calls");
  await sleep(300);
  assert.equal((await edge.kv.list()).keys.length, LIMITS.userMisses, "KV writes");
});
