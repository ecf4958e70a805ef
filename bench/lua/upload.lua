-- POST a 1 MiB body (wrk adds Content-Length); static, so no per-request Lua runs.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("a", 1048576)
