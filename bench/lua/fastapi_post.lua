-- POST the pydantic body of bench/apps/fastapi_body.py (keep in sync with SAMPLE_BODY).
-- Only static fields are set, so wrk stays on its C fast path (no per-request Lua).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name": "widget", "price": 9.99, "quantity": 3, '
  .. '"tags": ["blue", "small"], "description": "a small blue widget"}'
