// The runtime's ceiling for the edge benchmark: a minimal JavaScript worker doing what the Rust
// worker's hot paths do at the I/O level, and nothing else.
//   hit:  the same KV get (same key format, ARCHITECTURE.md decision 6), returns the value;
//   miss: the same origin call (POST /v1/authorize with the service token), returns its body
//         and writes it to KV after the response (ctx.waitUntil), as the Rust worker does.
// No JWT check (the principal comes in a header), no entry decoding, no validation: whatever the
// Rust worker spends above this is its own cost.
const OPERATION_LETTERS = { read: "r", download: "d", write: "w", delete: "x", share: "s", admin: "a" };

export default {
  async fetch(request, env, ctx) {
    const params = new URL(request.url).searchParams;
    const user = request.headers.get("x-bench-user");
    const principal = user ? user.replaceAll("-", "") : "-";
    const key = `a1/${principal}/${params.get("resource_type")[0]}${params
      .get("resource_id")
      .replaceAll("-", "")}/${OPERATION_LETTERS[params.get("operation")]}`;
    const value = await env.AUTHZ_CACHE.get(key);
    if (value !== null) {
      return new Response(value, { headers: { "content-type": "text/plain", "x-authz-cache": "hit" } });
    }
    const answer = await fetch(`${env.ORIGIN_URL}/v1/authorize`, {
      method: "POST",
      headers: { authorization: `Bearer ${env.AUTHZ_SERVICE_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({
        user_id: user,
        resource_type: params.get("resource_type"),
        resource_id: params.get("resource_id"),
        operation: params.get("operation"),
      }),
    });
    const body = await answer.text();
    if (answer.status !== 200) return new Response(body, { status: 503 });
    ctx.waitUntil(env.AUTHZ_CACHE.put(key, body, { expirationTtl: 60 }));
    return new Response(body, { headers: { "content-type": "application/json", "x-authz-cache": "miss" } });
  },
};
