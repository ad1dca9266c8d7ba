-- GET with the bearer token from BENCH_TOKEN.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
