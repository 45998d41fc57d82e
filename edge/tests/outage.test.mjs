// The origin down, slow or answering nonsense: cached decisions keep being served, misses are
// a 503 `unavailable` (never a guess, never cached), and /health says so.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import {
  authorizePath,
  connect,
  ownerDataset,
  startEdge,
  startOrigin,
  startProxy,
  tokenFor,
} from "./support.mjs";

let client;
before(async () => {
  client = await connect();
});
after(async () => {
  await client?.end();
});

const read = (ids) => authorizePath({ resource_type: "generation", resource_id: ids.generation, operation: "read" });

test("origin stopped: hits are still served, misses are 503 unavailable", async () => {
  const origin = await startOrigin();
  const edge = await startEdge({ originUrl: origin.url });
  try {
    const ids = await ownerDataset(client);
    const token = tokenFor(ids.owner);
    const warm = await edge.request(read(ids), { token });
    assert.equal(warm.status, 200, warm.text);
    await edge.waitForKeys(1);
    const healthy = await edge.request("/health");
    assert.equal(healthy.status, 200);
    assert.equal(healthy.json.origin.reachable, true);
    assert.equal(healthy.json.status, "ok", healthy.text);

    await origin.stop();

    const hit = await edge.request(read(ids), { token });
    assert.equal(hit.status, 200, hit.text);
    assert.equal(hit.headers.get("x-authz-cache"), "hit");
    assert.equal(hit.json.granted, true);

    const miss = await edge.request(read(ids), { token: tokenFor(ids.stranger) });
    assert.equal(miss.status, 503, miss.text);
    assert.equal(miss.json.error.code, "unavailable");
    assert.doesNotMatch(miss.text, /127\.0\.0\.1|refused/i, "a 503 says nothing internal");

    const batchHit = await edge.request("/v1/authorize/batch", {
      token,
      method: "POST",
      body: { checks: [{ resource_type: "generation", resource_id: ids.generation, operation: "read" }] },
    });
    assert.equal(batchHit.status, 200, batchHit.text);
    const batchMiss = await edge.request("/v1/authorize/batch", {
      token,
      method: "POST",
      body: {
        checks: [
          { resource_type: "generation", resource_id: ids.generation, operation: "read" },
          { resource_type: "generation", resource_id: ids.generation, operation: "write" },
        ],
      },
    });
    assert.equal(batchMiss.status, 503);
    assert.equal(batchMiss.json.error.code, "unavailable");

    const degraded = await edge.request("/health");
    assert.equal(degraded.status, 200);
    assert.equal(degraded.json.status, "degraded");
    assert.equal(degraded.json.origin.reachable, false);
    assert.equal(degraded.json.origin.error, undefined, "the origin's error is logged, not shown");
    assert.doesNotMatch(degraded.text, /127\.0\.0\.1|refused|connect/i, "an anonymous /health says nothing internal");
    assert.equal((await edge.kv.list()).keys.length, 1, "no error was cached");
  } finally {
    await edge.dispose();
    await origin.stop();
  }
});

test("origin slow: 503 after the timeout, never a grant", async () => {
  const proxy = await startProxy();
  const edge = await startEdge({ originUrl: proxy.url });
  try {
    const ids = await ownerDataset(client);
    proxy.state.delayMs = 8000;
    const started = Date.now();
    const response = await edge.request(read(ids), { token: tokenFor(ids.owner) });
    const elapsed = Date.now() - started;
    assert.equal(response.status, 503, response.text);
    assert.equal(response.json.error.code, "unavailable");
    assert.ok(elapsed >= 2500 && elapsed < 6000, `answered after ${elapsed} ms`);
    assert.equal((await edge.kv.list()).keys.length, 0);
  } finally {
    await edge.dispose();
    await proxy.close();
  }
});

test("origin answering 5xx, 4xx or nonsense: 503, nothing cached", async () => {
  const proxy = await startProxy();
  const edge = await startEdge({ originUrl: proxy.url });
  try {
    const ids = await ownerDataset(client);
    const token = tokenFor(ids.owner);
    for (const [status, body] of [
      [500, '{"error":{"code":"internal","message":"boom"}}'],
      [503, '{"error":{"code":"unavailable","message":"x"}}'],
      [401, '{"error":{"code":"unauthenticated","message":"invalid bearer token"}}'],
      [200, '{"granted":true}'],
      [200, "not json"],
      [200, '{"granted":true,"access_method":"direct_owner","effective_role":"owner","reason":null,"revision":1,"valid_until":null,"ttl_ms":30000,"source":"maybe"}'],
    ]) {
      Object.assign(proxy.state, { status, body });
      const response = await edge.request(read(ids), { token });
      assert.equal(response.status, 503, `${status} ${body}: ${response.text}`);
      assert.equal(response.json.error.code, "unavailable");
      const batch = await edge.request("/v1/authorize/batch", {
        token,
        method: "POST",
        body: { checks: [{ resource_type: "generation", resource_id: ids.generation, operation: "read" }] },
      });
      assert.equal(batch.status, 503, `${status} ${body}: ${batch.text}`);
    }
    // A batch answered with the wrong number of results is unexpected too.
    Object.assign(proxy.state, { status: 200, body: '{"results":[]}' });
    const short = await edge.request("/v1/authorize/batch", {
      token,
      method: "POST",
      body: { checks: [{ resource_type: "generation", resource_id: ids.generation, operation: "read" }] },
    });
    assert.equal(short.status, 503);
    assert.equal((await edge.kv.list()).keys.length, 0, "no error was cached");
    Object.assign(proxy.state, { status: 0, body: "" });
    const fine = await edge.request(read(ids), { token });
    assert.equal(fine.status, 200, fine.text);
  } finally {
    await edge.dispose();
    await proxy.close();
  }
});

test("a wrong service token at the edge is a 503, not a 401 to the client", async () => {
  const edge = await startEdge();
  const mf = edge.mf;
  await mf.setOptions({
    ...(await import("./support.mjs")).workerModules(),
    compatibilityDate: "2026-04-01",
    kvNamespaces: ["AUTHZ_CACHE"],
    bindings: {
      ORIGIN_URL: process.env.EDGE_TEST_ORIGIN_URL,
      AUTHZ_SERVICE_TOKEN: "not-the-service-token-at-all",
      AUTHZ_JWT_SECRET: process.env.AUTHZ_JWT_SECRET,
    },
  });
  try {
    const response = await edge.request(
      authorizePath({ resource_type: "team", resource_id: randomUUID(), operation: "read" }),
      { token: tokenFor(randomUUID()) },
    );
    assert.equal(response.status, 503, response.text);
    assert.equal(response.json.error.code, "unavailable");
  } finally {
    await edge.dispose();
  }
});
