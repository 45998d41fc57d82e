// Identity-provider tokens at the edge (`AUTHZ_JWKS`): RS256, ES256 and EdDSA tokens minted by
// an independent implementation (the `jose` package, with the RFC 7515/8037 example keys and a
// second key of each type from testdata/jose) are verified by the worker through WebCrypto under
// workerd. Every refusal is a 401 `unauthenticated` before KV or the origin (the counting proxy
// sees nothing); a key set the core refuses is a 503.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { SignJWT, importJWK } from "jose";

import { authorizePath, connect, mintJwt, nowSeconds, ownerDataset, startEdge, startProxy } from "./support.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const keyFile = (name) => JSON.parse(readFileSync(path.resolve(here, "../../testdata/jose", name), "utf8"));
const rfc = keyFile("rfc-keys.json");
const second = keyFile("second-keys.json");

const ISSUER = "https://idp.example.test/";
const AUDIENCE = "authz-edge-tests";
const MAX_LIFETIME = 3600;
const policy = {
  AUTHZ_JWT_ISSUER: ISSUER,
  AUTHZ_JWT_AUDIENCE: AUDIENCE,
  AUTHZ_JWT_MAX_LIFETIME_SECONDS: String(MAX_LIFETIME),
};

/** Every private key, by kid, with its algorithm. */
const keys = {
  "rsa-1": { alg: "RS256", jwk: rfc.rs256 },
  "ec-1": { alg: "ES256", jwk: rfc.es256 },
  "ed-1": { alg: "EdDSA", jwk: rfc.eddsa },
  "rsa-2": { alg: "RS256", jwk: second.rs256 },
  "ec-2": { alg: "ES256", jwk: second.es256 },
  "ed-2": { alg: "EdDSA", jwk: second.eddsa },
};
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi"];
const publicJwk = (kid) => {
  const jwk = { ...keys[kid].jwk, kid, use: "sig" };
  for (const member of PRIVATE_MEMBERS) delete jwk[member];
  return jwk;
};
/** The JWKS document of `kids`, as a var or secret holds it. */
const jwks = (kids) => JSON.stringify({ keys: kids.map(publicJwk) });
const ALL = Object.keys(keys);

/** A token signed by `signer`'s key (jose), with `header` overriding the protected header. */
async function sign(signer, sub, { header = {}, claims = {}, lifetime = 600 } = {}) {
  const { alg, jwk } = keys[signer];
  const key = await importJWK(jwk, alg);
  const now = nowSeconds();
  return new SignJWT({ iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + lifetime, ...claims })
    .setProtectedHeader({ alg, kid: signer, typ: "JWT", ...header })
    .setSubject(sub)
    .sign(key);
}

let proxy;
let client;
let edge;
const edges = [];
const start = async (vars) => {
  const started = await startEdge({ originUrl: proxy.url, vars });
  edges.push(started);
  return started;
};

before(async () => {
  proxy = await startProxy();
  client = await connect();
  edge = await start({ ...policy, AUTHZ_JWKS: jwks(ALL) });
});

after(async () => {
  for (const started of edges) await started.dispose();
  await client?.end();
  await proxy?.close();
});

/** A UUID in the cache key's simple form. */
const simple = (uuid) => uuid.replaceAll("-", "");
const read = (ids) => authorizePath({ resource_type: "generation", resource_id: ids.generation, operation: "read" });

/** Asserts that `token` is the owner's on `edge`: granted by the origin, under the owner's key. */
async function assertOwnerGranted(on, token, ids, label) {
  const calls = proxy.count("/v1/authorize");
  const response = await on.request(read(ids), { token });
  assert.equal(response.status, 200, `${label}: ${response.text}`);
  assert.equal(response.json.granted, true, label);
  assert.equal(response.json.access_method, "direct_owner", label);
  assert.equal(response.headers.get("x-authz-cache"), "miss", label);
  assert.equal(proxy.count("/v1/authorize"), calls + 1, `${label}: the origin was asked`);
  const stored = await on.waitForKeys(1);
  assert.ok(
    stored.some(({ name }) => name.startsWith(`a1/${simple(ids.owner)}/`)),
    `${label}: the decision is the token's principal's (${stored.map(({ name }) => name)})`,
  );
}

test("a valid RS256, ES256 and EdDSA token each → 200 for the token's principal", async () => {
  for (const kid of ["rsa-1", "ec-1", "ed-1"]) {
    const ids = await ownerDataset(client);
    await edge.clearKv();
    await assertOwnerGranted(edge, await sign(kid, ids.owner), ids, `${keys[kid].alg} (${kid})`);
  }
  // A stranger's token is verified as the stranger's: denied, not the owner's grant.
  const ids = await ownerDataset(client);
  const response = await edge.request(read(ids), { token: await sign("ed-1", ids.stranger) });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.json.granted, false);
});

test("health: jwt configured with the key count", async () => {
  const response = await edge.request("/health");
  assert.equal(response.status, 200, response.text);
  assert.deepEqual(response.json.jwt, { configured: true, keys: ALL.length });
  const jwksOnly = await start({ ...policy, AUTHZ_JWT_SECRET: "", AUTHZ_JWKS: jwks(["ed-1"]) });
  const only = await jwksOnly.request("/health");
  assert.deepEqual(only.json.jwt, { configured: true, keys: 1 });
});

test("rotation: either key of a type verifies; a set without a key refuses its tokens", async () => {
  for (const [current, next] of [
    ["rsa-1", "rsa-2"],
    ["ec-1", "ec-2"],
    ["ed-1", "ed-2"],
  ]) {
    for (const kid of [current, next]) {
      const ids = await ownerDataset(client);
      await edge.clearKv();
      await assertOwnerGranted(edge, await sign(kid, ids.owner), ids, `both keys in the set, ${kid}`);
    }
    const rotated = await start({ ...policy, AUTHZ_JWKS: jwks(ALL.filter((kid) => kid !== current)) });
    const ids = await ownerDataset(client);
    const calls = proxy.total();
    const refused = await rotated.request(read(ids), { token: await sign(current, ids.owner) });
    assert.equal(refused.status, 401, `${current} after its removal: ${refused.text}`);
    assert.equal(refused.json.error.code, "unauthenticated");
    assert.equal(proxy.total(), calls, "the origin is never called");
    await assertOwnerGranted(rotated, await sign(next, ids.owner), ids, `${next} after the rotation`);
    await rotated.dispose();
    edges.splice(edges.indexOf(rotated), 1);
  }
});

test("refusals → 401 unauthenticated, origin never called", async () => {
  const ids = await ownerDataset(client);
  const user = ids.owner;
  const now = nowSeconds();
  // The core's messages (one table for both services): which check refused the token.
  const BAD = "invalid token signature";
  const KID = "token kid is not a known signing key";
  const MIS = "token alg does not match its key";
  const ALG = "unsupported token algorithm";
  const ISS = "token issuer mismatch";
  const AUD = "token audience mismatch";
  const LIFE = "token lifetime over the maximum";
  const EXP = "token expired";
  // The RSA public key's bytes as an HMAC secret: the classic RS256 → HS256 confusion.
  const rsaPublicBytes = JSON.stringify(publicJwk("rsa-1"));
  const refusals = {
    "wrong kid (signed by ec-2, naming ec-1)": [BAD, await sign("ec-2", user, { header: { kid: "ec-1" } })],
    "wrong kid (signed by rsa-2, naming rsa-1)": [BAD, await sign("rsa-2", user, { header: { kid: "rsa-1" } })],
    "wrong kid (signed by ed-2, naming ed-1)": [BAD, await sign("ed-2", user, { header: { kid: "ed-1" } })],
    "unknown kid": [KID, await sign("ed-1", user, { header: { kid: "nobody" } })],
    "no kid with several keys": [KID, await sign("ed-1", user, { header: { kid: undefined } })],
    "ES256 header naming the RSA key": [MIS, await sign("ec-1", user, { header: { kid: "rsa-1" } })],
    "EdDSA header naming the P-256 key": [MIS, await sign("ed-1", user, { header: { kid: "ec-1" } })],
    "HS256 keyed with the RSA public JWK": [BAD, mintJwt(
      { sub: user, iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600 },
      { header: { alg: "HS256", typ: "JWT", kid: "rsa-1" }, secret: rsaPublicBytes },
    )],
    "HS256 keyed with the RSA modulus": [BAD, mintJwt(
      { sub: user, iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600 },
      { header: { alg: "HS256", typ: "JWT", kid: "rsa-1" }, secret: Buffer.from(keys["rsa-1"].jwk.n, "base64url") },
    )],
    "alg none": [ALG, mintJwt(
      { sub: user, iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600 },
      { header: { alg: "none", kid: "ed-1" }, alg: "none" },
    )],
    "alg none with a valid EdDSA signature": [ALG, await (async () => {
      const [, payload, signature] = (await sign("ed-1", user)).split(".");
      const header = Buffer.from(JSON.stringify({ alg: "none", kid: "ed-1" })).toString("base64url");
      return `${header}.${payload}.${signature}`;
    })()],
    "a signature over another payload": [BAD, await (async () => {
      const [header, , signature] = (await sign("ec-1", user)).split(".");
      const [, payload] = (await sign("ec-1", ids.stranger)).split(".");
      return `${header}.${payload}.${signature}`;
    })()],
    "wrong issuer": [ISS, await sign("rsa-1", user, { claims: { iss: "https://other.example.test/" } })],
    "wrong audience": [AUD, await sign("ec-1", user, { claims: { aud: "another-service" } })],
    "lifetime over AUTHZ_JWT_MAX_LIFETIME_SECONDS": [LIFE, await sign("ed-1", user, { lifetime: MAX_LIFETIME + 60 })],
    expired: [EXP, await sign("ed-1", user, { claims: { iat: now - 1200, exp: now - 600 } })],
  };
  const calls = proxy.total();
  for (const [label, [message, token]] of Object.entries(refusals)) {
    const response = await edge.request(read(ids), { token });
    assert.equal(response.status, 401, `${label}: ${response.text}`);
    assert.equal(response.json.error.code, "unauthenticated", label);
    assert.equal(response.json.error.message, message, label);
    assert.equal(response.headers.get("www-authenticate"), "Bearer", label);
  }
  // The batch route refuses the same way.
  const batch = await edge.request("/v1/authorize/batch", {
    method: "POST",
    token: refusals["wrong kid (signed by ec-2, naming ec-1)"][1],
    body: { checks: [{ resource_type: "generation", resource_id: ids.generation, operation: "read" }] },
  });
  assert.equal(batch.status, 401, batch.text);
  // Without AUTHZ_JWT_SECRET no HS256 token is looked at, whatever its key.
  const jwksOnly = await start({ ...policy, AUTHZ_JWT_SECRET: "", AUTHZ_JWKS: jwks(ALL) });
  for (const label of ["HS256 keyed with the RSA public JWK", "HS256 keyed with the RSA modulus"]) {
    const response = await jwksOnly.request(read(ids), { token: refusals[label][1] });
    assert.equal(response.status, 401, `${label}, no secret: ${response.text}`);
    assert.equal(response.json.error.message, ALG, `${label}, no secret`);
  }
  assert.equal(proxy.total(), calls, "the origin is never called");
  const { keys: stored } = await edge.kv.list();
  assert.ok(!stored.some(({ name }) => name.includes(simple(user))), "nothing is cached for a refused token");
});

test("an RS256 token with only AUTHZ_JWT_SECRET configured → 401", async () => {
  const secretOnly = await start(policy);
  const ids = await ownerDataset(client);
  const calls = proxy.total();
  for (const kid of ["rsa-1", "ec-1", "ed-1"]) {
    const response = await secretOnly.request(read(ids), { token: await sign(kid, ids.owner) });
    assert.equal(response.status, 401, `${kid}: ${response.text}`);
    assert.equal(response.json.error.code, "unauthenticated");
  }
  assert.equal(proxy.total(), calls, "the origin is never called");
});

test("a malformed AUTHZ_JWKS → 503, logged naming the binding", async () => {
  const ids = await ownerDataset(client);
  for (const document of [
    "not json",
    JSON.stringify({ keys: [] }),
    JSON.stringify({ keys: [keys["ed-1"].jwk] }), // a private key
    JSON.stringify({ keys: [publicJwk("ed-1"), publicJwk("ed-1")] }), // a repeated kid
  ]) {
    const logs = [];
    const broken = await startEdge({
      originUrl: proxy.url,
      vars: { ...policy, AUTHZ_JWKS: document },
      onLog: (entry) => {
        logs.push(entry.message);
      },
    });
    try {
      const calls = proxy.total();
      for (const token of [await sign("ed-1", ids.owner), undefined]) {
        const response = await broken.request(read(ids), { token });
        assert.equal(response.status, 503, `${document}: ${response.text}`);
        assert.equal(response.json.error.code, "unavailable");
      }
      assert.equal(proxy.total(), calls, "the origin is never called");
      assert.ok(
        logs.some((line) => String(line).includes("503 misconfigured: AUTHZ_JWKS")),
        `${document}: ${JSON.stringify(logs)}`,
      );
      const health = await broken.request("/health");
      assert.equal(health.json.status, "degraded");
    } finally {
      await broken.dispose();
    }
  }
  // Blank is unset: HS256 still works, public-key tokens are refused.
  const blank = await start({ ...policy, AUTHZ_JWKS: "  " });
  const response = await blank.request(read(ids), { token: await sign("ed-1", ids.owner) });
  assert.equal(response.status, 401, response.text);
});
