-- POST /auth/jwt/login as BENCH_EMAIL with BENCH_PASSWORD.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "username=" .. os.getenv("BENCH_EMAIL") .. "&password=" .. os.getenv("BENCH_PASSWORD")
