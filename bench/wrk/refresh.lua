-- POST /auth/jwt/refresh: each thread has one connection and one session of its own
-- (BENCH_REFRESH_TOKENS, one per thread, comma-separated) and rotates its refresh token.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local tokens = {}
for token in string.gmatch(os.getenv("BENCH_REFRESH_TOKENS"), "[^,]+") do
  table.insert(tokens, token)
end
local current
local count = response

function request()
  if current == nil then current = tokens[id + 1] end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"},
    '{"refresh_token": "' .. current .. '"}')
end

function response(status, headers, body)
  count(status, headers, body)
  local next_token = string.match(body, '"refresh_token":"([^"]+)"')
  if next_token then current = next_token end
end
