-- wrk script: POST an Anthropic Messages request (MESSAGES_STREAM=1: streamed). Used by bench/messages.sh.
local stream = os.getenv("MESSAGES_STREAM") == "1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-bench")
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.body = string.format(
  '{"model":"mock-model","max_tokens":32,%s"messages":[{"role":"user","content":"Say hello. mock:delay=0 mock:chunks=16 mock:gap=0"}]}',
  stream and '"stream":true,' or '')

function done(summary, latency, requests)
  io.write(string.format("WRK %d %d %d %d\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    latency:percentile(99)))
end
