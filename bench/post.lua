-- wrk script: POSTs a random question from the file named by $BENCH_QUESTIONS (one JSON body a
-- line) with the bearer token $BENCH_TOKEN. Used by scripts/bench-origin.sh.
local bodies = {}
local path = os.getenv("BENCH_QUESTIONS")
for line in io.lines(path) do
  bodies[#bodies + 1] = line
end
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or ""),
}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  math.randomseed(id * 7919)
end
function request()
  return wrk.format("POST", "/v1/authorize", headers, bodies[math.random(#bodies)])
end
