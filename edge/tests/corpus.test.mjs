// The core's decision corpus through the edge: every case without `exact_time` is loaded into
// the real database (share expiries shifted so that the case's `now` is the real now), asked
// through the built worker under workerd with a JWT for the case's user (no header for
// anonymous) and `min_revision` = the database's revision after loading, answered by the real
// origin on a miss, and compared field by field (instants as instants).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import {
  authorizePath,
  connect,
  currentRevision,
  loadRows,
  nowMicros,
  parseMicros,
  startEdge,
  startProxy,
  tokenFor,
  truncate,
} from "./support.mjs";

const corpusDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../shared/tests/corpus");
const cases = fs
  .readdirSync(corpusDir)
  .filter((name) => name.endsWith(".json"))
  .sort()
  .flatMap((name) => JSON.parse(fs.readFileSync(path.join(corpusDir, name), "utf8")).cases);

let edge;
let proxy;
let client;

before(async () => {
  proxy = await startProxy();
  // The in-memory tier is off here: KV is cleared between cases, so every case is a true miss.
  edge = await startEdge({ originUrl: proxy.url, memoryEntries: 0 });
  client = await connect();
});

after(async () => {
  await client?.end();
  await edge?.dispose();
  await proxy?.close();
});

const runnable = cases.filter((c) => !c.exact_time);

test("the corpus has enough cases that do not depend on the exact time", () => {
  assert.ok(runnable.length >= 60, `only ${runnable.length} runnable cases`);
});

for (const testCase of runnable) {
  test(`corpus: ${testCase.name}`, async () => {
    // The origin's clock is real: move every expiry so that `now` is the case's instant.
    const shift = nowMicros() - parseMicros(testCase.now);
    await truncate(client);
    await loadRows(client, testCase.data, shift);
    const revision = await currentRevision(client);
    await edge.clearKv();
    const question = testCase.question;
    const before = proxy.count("/v1/authorize");
    const response = await edge.request(authorizePath({ ...question, min_revision: revision }), {
      token: question.user_id ? tokenFor(question.user_id) : undefined,
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.headers.get("x-authz-cache"), "miss");
    assert.equal(proxy.count("/v1/authorize"), before + 1, "one origin call");
    const body = response.json;
    assert.ok(body.revision >= revision, `revision ${body.revision} < ${revision}`);
    const expected = testCase.expected;
    assert.deepEqual(
      {
        granted: body.granted,
        access_method: body.access_method,
        effective_role: body.effective_role,
        reason: body.reason,
        valid_until: body.valid_until === null ? null : parseMicros(body.valid_until),
      },
      {
        granted: expected.granted,
        access_method: expected.access_method ?? null,
        effective_role: expected.effective_role ?? null,
        reason: expected.reason ?? null,
        valid_until: expected.valid_until ? parseMicros(expected.valid_until) + shift : null,
      },
    );
  });
}
