-- POST /auth/register with a new address each time (BENCH_PREFIX, thread id, counter).
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local prefix = os.getenv("BENCH_PREFIX")
local password = os.getenv("BENCH_PASSWORD")
local counter = 0

function request()
  counter = counter + 1
  local body = string.format('{"email": "%s-%d-%d@example.com", "password": "%s"}',
    prefix, id, counter, password)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
