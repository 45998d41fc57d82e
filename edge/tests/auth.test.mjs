// Credentials and input are checked at the edge, before KV or the origin: every refused JWT is
// a 401 `unauthenticated`, every bad query a 400 with API.md's code and field, and neither
// reaches the origin (the counting proxy sees nothing).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { authorizePath, mintJwt, nowSeconds, startEdge, startProxy, tokenFor } from "./support.mjs";

let proxy;
let edge;
const user = randomUUID();
const question = { resource_type: "generation", resource_id: randomUUID(), operation: "read" };

before(async () => {
  proxy = await startProxy();
  edge = await startEdge({ originUrl: proxy.url });
});

after(async () => {
  await edge?.dispose();
  await proxy?.close();
});

const exp = () => nowSeconds() + 3600;
const valid = () => tokenFor(user);
const swapPayload = (token, claims) => {
  const [header, , signature] = token.split(".");
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`;
};

const refused = {
  "alg none": () => mintJwt({ sub: user, exp: exp() }, { alg: "none" }),
  "alg none with a valid signature": () => {
    const good = valid();
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    return `${header}.${good.split(".")[1]}.${good.split(".")[2]}`;
  },
  HS512: () => mintJwt({ sub: user, exp: exp() }, { alg: "HS512" }),
  "missing alg": () => mintJwt({ sub: user, exp: exp() }, { header: { typ: "JWT" } }),
  "wrong key": () => mintJwt({ sub: user, exp: exp() }, { secret: "another-secret-0123456789abcdef-0123456789" }),
  "tampered payload": () => swapPayload(valid(), { sub: randomUUID(), exp: exp() }),
  expired: () => mintJwt({ sub: user, exp: nowSeconds() - 3600 }),
  "future nbf": () => mintJwt({ sub: user, exp: exp(), nbf: nowSeconds() + 3600 }),
  "no exp": () => mintJwt({ sub: user }),
  "exp as a string": () => mintJwt({ sub: user, exp: String(exp()) }),
  "sub not a uuid": () => mintJwt({ sub: "user-42", exp: exp() }),
  "sub nil uuid": () => mintJwt({ sub: "00000000-0000-0000-0000-000000000000", exp: exp() }),
  "sub missing": () => mintJwt({ exp: exp() }),
  "two segments": () => valid().split(".").slice(0, 2).join("."),
  "four segments": () => `${valid()}.x`,
  "bad base64": () => {
    const [header, payload, signature] = valid().split(".");
    return `${header}.${payload}!.${signature}`;
  },
  "padded base64": () => {
    const [header, payload, signature] = valid().split(".");
    return `${header}.${payload}==.${signature}`;
  },
  "oversized (16 KiB)": () => mintJwt({ sub: user, exp: exp(), pad: "x".repeat(16 * 1024) }),
  "claims not an object": () => mintJwt([user]),
};

for (const [name, make] of Object.entries(refused)) {
  test(`JWT refused: ${name} → 401, origin never called`, async () => {
    const calls = proxy.total();
    const response = await edge.request(authorizePath(question), { token: make() });
    assert.equal(response.status, 401, response.text);
    assert.equal(response.json.error.code, "unauthenticated");
    assert.equal(response.headers.get("www-authenticate"), "Bearer");
    const batch = await edge.request("/v1/authorize/batch", {
      token: make(),
      method: "POST",
      body: { checks: [question] },
    });
    assert.equal(batch.status, 401, batch.text);
    assert.equal(proxy.total(), calls, "the origin was never called");
    assert.equal((await edge.kv.list()).keys.length, 0, "nothing cached");
  });
}

test("the origin's JWT policy holds at the edge: audience, issuer, lifetime → 401, origin never called", async () => {
  const strict = await startEdge({
    originUrl: proxy.url,
    vars: {
      AUTHZ_JWT_AUDIENCE: "authz-test",
      AUTHZ_JWT_ISSUER: "https://issuer.test",
      AUTHZ_JWT_MAX_LIFETIME_SECONDS: "600",
    },
  });
  try {
    const now = nowSeconds();
    const good = { sub: user, aud: "authz-test", iss: "https://issuer.test", iat: now, exp: now + 300 };
    const { aud: _aud, ...noAudience } = good;
    const { iss: _iss, ...noIssuer } = good;
    const { iat: _iat, ...noStart } = good;
    const cases = {
      "wrong audience": { ...good, aud: "another-service" },
      "no audience": noAudience,
      "wrong issuer": { ...good, iss: "https://elsewhere.test" },
      "no issuer": noIssuer,
      "lifetime over the maximum": { ...good, exp: now + 3600 },
      "no iat or nbf under a maximum lifetime": noStart,
    };
    for (const [name, claims] of Object.entries(cases)) {
      const calls = proxy.total();
      const response = await strict.request(authorizePath(question), { token: mintJwt(claims) });
      assert.equal(response.status, 401, `${name}: ${response.text}`);
      assert.equal(response.json.error.code, "unauthenticated", name);
      assert.equal(proxy.total(), calls, `${name}: the origin was never called`);
    }
    const calls = proxy.count("/v1/authorize");
    const response = await strict.request(authorizePath(question), { token: mintJwt(good) });
    assert.equal(response.status, 200, response.text);
    assert.equal(proxy.count("/v1/authorize"), calls + 1);
  } finally {
    await strict.dispose();
  }
  // A policy variable that does not parse is refused, never ignored.
  const broken = await startEdge({ originUrl: proxy.url, vars: { AUTHZ_JWT_LEEWAY_SECONDS: "soon" } });
  try {
    const response = await broken.request(authorizePath(question), { token: valid() });
    assert.equal(response.status, 503, response.text);
  } finally {
    await broken.dispose();
  }
});

test("other Authorization headers → 401, origin never called", async () => {
  const calls = proxy.total();
  for (const header of [`Basic ${Buffer.from("a:b").toString("base64")}`, "Bearer", "Bearer   ", valid()]) {
    const response = await edge.request(authorizePath(question), { headers: { authorization: header } });
    assert.equal(response.status, 401, `${header}: ${response.text}`);
    assert.equal(response.json.error.code, "unauthenticated");
  }
  assert.equal(proxy.total(), calls);
});

test("the JWT is checked before the query (401 wins over 400)", async () => {
  const response = await edge.request("/v1/authorize?resource_type=file", { token: mintJwt({ sub: user }) });
  assert.equal(response.status, 401);
});

test("a valid token reaches the origin (control)", async () => {
  const calls = proxy.count("/v1/authorize");
  const response = await edge.request(authorizePath(question), { token: valid() });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.json.reason, "user_not_found");
  assert.equal(proxy.count("/v1/authorize"), calls + 1);
});

const id = randomUUID();
const badQueries = [
  ["resource_id not a uuid", `resource_type=generation&resource_id=nope&operation=read`, "invalid_uuid", "resource_id"],
  ["resource_id nil", `resource_type=project&resource_id=00000000-0000-0000-0000-000000000000&operation=read`, "invalid_uuid", "resource_id"],
  ["resource_id max", `resource_type=team&resource_id=ffffffff-ffff-ffff-ffff-ffffffffffff&operation=read`, "invalid_uuid", "resource_id"],
  ["resource_id in braces", `resource_type=team&resource_id=%7B${id}%7D&operation=read`, "invalid_uuid", "resource_id"],
  ["resource_id simple form", `resource_type=team&resource_id=${id.replaceAll("-", "")}&operation=read`, "invalid_uuid", "resource_id"],
  ["unknown resource_type", `resource_type=file&resource_id=${id}&operation=read`, "invalid_resource_type", "resource_type"],
  ["resource_type in capitals", `resource_type=Team&resource_id=${id}&operation=read`, "invalid_resource_type", "resource_type"],
  ["unknown operation", `resource_type=team&resource_id=${id}&operation=fly`, "invalid_operation", "operation"],
  ["empty operation", `resource_type=team&resource_id=${id}&operation=`, "invalid_operation", "operation"],
  ["missing resource_type", `resource_id=${id}&operation=read`, "invalid_request", "resource_type"],
  ["missing resource_id", `resource_type=team&operation=read`, "invalid_request", "resource_id"],
  ["missing operation", `resource_type=team&resource_id=${id}`, "invalid_request", "operation"],
  ["min_revision negative", `resource_type=team&resource_id=${id}&operation=read&min_revision=-1`, "invalid_request", "min_revision"],
  ["min_revision not a number", `resource_type=team&resource_id=${id}&operation=read&min_revision=soon`, "invalid_request", "min_revision"],
  ["min_revision fractional", `resource_type=team&resource_id=${id}&operation=read&min_revision=1.5`, "invalid_request", "min_revision"],
  ["min_revision over u64", `resource_type=team&resource_id=${id}&operation=read&min_revision=18446744073709551616`, "invalid_request", "min_revision"],
  ["unknown parameter", `resource_type=team&resource_id=${id}&operation=read&verbose=1`, "invalid_request", "verbose"],
  ["user_id parameter", `resource_type=team&resource_id=${id}&operation=read&user_id=${randomUUID()}`, "invalid_request", "user_id"],
  ["repeated parameter", `resource_type=team&resource_id=${id}&operation=read&operation=write`, "invalid_request", "operation"],
];

for (const [name, query, code, field] of badQueries) {
  test(`bad query: ${name} → 400 ${code} (${field})`, async () => {
    const calls = proxy.total();
    for (const token of [undefined, valid()]) {
      const response = await edge.request(`/v1/authorize?${query}`, { token });
      assert.equal(response.status, 400, response.text);
      assert.equal(response.json.error.code, code);
      assert.equal(response.json.error.field, field);
      assert.equal(typeof response.json.error.message, "string");
    }
    assert.equal(proxy.total(), calls, "the origin was never called");
  });
}

test("unknown routes and methods answer JSON errors", async () => {
  const missing = await edge.request("/v2/authorize");
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, "not_found");
  const post = await edge.request(authorizePath(question), { method: "POST", body: {} });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET");
});
