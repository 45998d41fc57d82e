// The like-for-like JavaScript baseline of the edge benchmark: the Rust worker's work on a
// decision request, written as a competent team would write it in plain JavaScript on the
// same runtime, with the same bindings and the same KV format (ARCHITECTURE.md decision 6):
//   - the end-user JWT: HS256 verified with WebCrypto (the key imported once per isolate), the
//     header's `alg`, `exp` (required), `nbf`, `iat`, the leeway and a UUID `sub` checked;
//   - the query: exactly the four known parameters, the vocabularies, the UUID standard, an
//     integer `min_revision` (a request with one bypasses the cache, as the Rust worker's
//     does when the entry is older);
//   - a KV hit: the entry decoded and judged (expires_at and valid_until against now, the
//     revision against `min_revision`), the decision object rendered with its ttl_ms;
//   - a miss: the origin call with the service token, the answer turned into an entry (expiry
//     from the sending, capped at valid_until) and written to KV after the response.
// No memory tier: it stands beside the Rust worker's KV-only row.
const TYPES = new Set(["generation", "project", "team"]);
const OPERATION_LETTERS = { read: "r", download: "d", write: "w", delete: "x", share: "s", admin: "a" };
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const LEEWAY_SECONDS = 30;
const encoder = new TextEncoder();
let hmacKey = null;

const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const problem = (status, code, message) => json(status, { error: { code, message } });

function base64urlBytes(text) {
  const padded = text.replaceAll("-", "+").replaceAll("_", "/");
  const binary = atob(padded + "=".repeat((4 - (padded.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const validUuid = (text) => UUID.test(text) && !/^[0-]+$/.test(text) && !/^[fF-]+$/.test(text);

/** The token's `sub`, or null when the token is not valid now. */
async function verify(request, env) {
  const authorization = request.headers.get("authorization") ?? "";
  if (!authorization.startsWith("Bearer ")) return null;
  const parts = authorization.slice(7).split(".");
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(new TextDecoder().decode(base64urlBytes(parts[0])));
    if (header.alg !== "HS256") return null;
    hmacKey ??= await crypto.subtle.importKey(
      "raw",
      encoder.encode(env.AUTHZ_JWT_SECRET),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
    const signed = encoder.encode(`${parts[0]}.${parts[1]}`);
    if (!(await crypto.subtle.verify("HMAC", hmacKey, base64urlBytes(parts[2]), signed))) return null;
    const claims = JSON.parse(new TextDecoder().decode(base64urlBytes(parts[1])));
    const now = Math.floor(Date.now() / 1000);
    if (!Number.isInteger(claims.exp) || now >= claims.exp + LEEWAY_SECONDS) return null;
    if (claims.nbf !== undefined && (!Number.isInteger(claims.nbf) || now + LEEWAY_SECONDS < claims.nbf)) return null;
    if (claims.iat !== undefined && !Number.isInteger(claims.iat)) return null;
    if (typeof claims.sub !== "string" || !validUuid(claims.sub)) return null;
    return claims.sub.toLowerCase();
  } catch {
    return null;
  }
}

/** The question of the query, or an error message. */
function question(url) {
  const found = {};
  for (const [name, value] of url.searchParams) {
    if (!["resource_type", "resource_id", "operation", "min_revision"].includes(name)) return `unknown parameter ${name}`;
    if (name in found) return `parameter ${name} given more than once`;
    found[name] = value;
  }
  if (!TYPES.has(found.resource_type)) return "invalid resource_type";
  if (!validUuid(found.resource_id ?? "")) return "invalid resource_id";
  if (!(found.operation in OPERATION_LETTERS)) return "invalid operation";
  if (found.min_revision !== undefined && !/^\d{1,19}$/.test(found.min_revision)) return "invalid min_revision";
  return {
    resource_type: found.resource_type,
    resource_id: found.resource_id.toLowerCase(),
    operation: found.operation,
    min_revision: found.min_revision === undefined ? null : Number(found.min_revision),
  };
}

const word = (value) => (value === "-" ? null : value);
const iso = (micros) => new Date(Math.floor(micros / 1000)).toISOString();

/** A KV entry (`e1;granted;method;role;reason;revision;computed;expires;valid_until;deps`) judged at now. */
function servable(value, minRevision, nowMicros) {
  const fields = value.split(";");
  if (fields.length !== 10 || fields[0] !== "e1") return null;
  const revision = Number(fields[5]);
  const expires = Number(fields[7]);
  const validUntil = fields[8] === "-" ? null : Number(fields[8]);
  if (nowMicros >= expires || (validUntil !== null && nowMicros >= validUntil)) return null;
  if (minRevision !== null && revision < minRevision) return null;
  return {
    granted: fields[1] === "1",
    access_method: word(fields[2]),
    effective_role: word(fields[3]),
    reason: word(fields[4]),
    revision,
    valid_until: validUntil === null ? null : iso(validUntil),
    ttl_ms: Math.floor((expires - nowMicros) / 1000),
    source: "edge",
  };
}

function entry(decision, sentMicros) {
  const validUntil = decision.valid_until === null ? null : Date.parse(decision.valid_until) * 1000;
  let expires = sentMicros + decision.ttl_ms * 1000;
  if (validUntil !== null) expires = Math.min(expires, validUntil);
  return [
    "e1",
    decision.granted ? "1" : "0",
    decision.access_method ?? "-",
    decision.effective_role ?? "-",
    decision.reason ?? "-",
    decision.revision,
    sentMicros,
    expires,
    validUntil ?? "-",
    "",
  ].join(";");
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname !== "/v1/authorize") return problem(404, "not_found", "no such endpoint");
    const user = await verify(request, env);
    if (user === null) return problem(401, "unauthorized", "invalid token");
    const asked = question(url);
    if (typeof asked === "string") return problem(400, "invalid_request", asked);
    const key = `a1/${user.replaceAll("-", "")}/${asked.resource_type[0]}${asked.resource_id.replaceAll("-", "")}/${OPERATION_LETTERS[asked.operation]}`;
    const value = await env.AUTHZ_CACHE.get(key);
    if (value !== null) {
      const decision = servable(value, asked.min_revision, Date.now() * 1000);
      if (decision !== null) return json(200, decision, { "x-authz-cache": "hit" });
    }
    const sent = Date.now() * 1000;
    let answer;
    try {
      answer = await fetch(`${env.ORIGIN_URL}/v1/authorize`, {
        method: "POST",
        headers: { authorization: `Bearer ${env.AUTHZ_SERVICE_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({
          user_id: user,
          resource_type: asked.resource_type,
          resource_id: asked.resource_id,
          operation: asked.operation,
          ...(asked.min_revision === null ? {} : { min_revision: asked.min_revision }),
        }),
      });
    } catch {
      return problem(503, "unavailable", "the service cannot decide now");
    }
    if (answer.status !== 200) return problem(503, "unavailable", "the service cannot decide now");
    const decision = await answer.json();
    const stored = entry(decision, sent);
    ctx.waitUntil(env.AUTHZ_CACHE.put(key, stored, { expirationTtl: 60 }));
    return json(200, decision, { "x-authz-cache": value === null ? "miss" : "bypass" });
  },
};
