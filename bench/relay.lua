-- wrk script for bench/run: one call action per request, against sipbridge or Kamailio.
--
-- BENCH_TARGET   sipbridge: POST /v1/calls/bench-<i>@bench/hold?force=true (Bearer
--                           BENCH_API_KEY; force: a call is held again and again, past the
--                           state guard, which checks the call already located)
--                kamailio:  POST /RPC  {"method": "tm.t_uac_wait", ... "id": <i>} carrying the
--                           same NOTIFY headers and body as sipbridge sends
-- BENCH_CALLS    calls preloaded as bench-0@bench .. bench-<CALLS-1>@bench (sipbridge)
-- BENCH_PHONES   phones p0 .. p<PHONES-1>; call i is on phone p<i % PHONES>
-- BENCH_THREADS  wrk's -t (each thread takes every THREADS-th call index)
-- BENCH_SIP_PORT the sipp phone's port; BENCH_RATE  requests/s over all threads (0: flat out)
-- BENCH_FIRST    the call index to start from (a point measured in slices goes on where the
--                last slice stopped, so no slice replays calls an earlier one warmed up)
--
-- Crossed or lost replies: the sipp phone answers 200 with the command's Ref (the Call-ID) as
-- its reason phrase. A reply is "crossed" when the reason it carries is not the Call-ID of the
-- request it answers (sipbridge: the call_id of the result; Kamailio: the JSON-RPC id), and
-- "unexpected" when it answers no request outstanding on this thread.

local target = os.getenv("BENCH_TARGET") or "sipbridge"
local calls = tonumber(os.getenv("BENCH_CALLS") or "1000")
local phones = tonumber(os.getenv("BENCH_PHONES") or "1000")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local sip_port = os.getenv("BENCH_SIP_PORT") or "5060"
local api_key = os.getenv("BENCH_API_KEY") or ""
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local first = tonumber(os.getenv("BENCH_FIRST") or "0")

local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

local ffi = require("ffi")
ffi.cdef [[
   typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
   int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local function now_us()
   ffi.C.clock_gettime(1, ts)
   return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

function init(args)
   counter = first + tid
   outstanding = {}
   sent_at = {}     -- call_id -> when its request was built (wrk writes it at once)
   latency_us = {}  -- microseconds -> requests answered in that time
   sent, ok, crossed, unexpected, failed = 0, 0, 0, 0, 0
   if rate > 0 then
      interval = 1000 * nthreads / rate
      next_slot = now_ms()
   end
end

local function json_string(s)
   return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"'):gsub('\r', '\\r'):gsub('\n', '\\n') .. '"'
end

local function rpc_body(i, call_id)
   local phone = "p" .. (i % phones)
   local uri = "sip:" .. phone .. "@127.0.0.1:" .. sip_port
   local notify = '{"command-URI":"/api/v1/callctrl/holdCall","data":{"Ref":"' .. call_id .. '"}}'
   local headers = "From: <sip:sipbridge@127.0.0.1>\r\nTo: <" .. uri .. ">\r\n"
      .. "Event: ACTION-URI\r\nContact: <sip:sipbridge@127.0.0.1>\r\n"
      .. "Content-Type: application/json\r\n"
   return '{"jsonrpc":"2.0","method":"tm.t_uac_wait","params":["NOTIFY",'
      .. json_string(uri) .. ',".",".",' .. json_string(headers) .. ','
      .. json_string(notify) .. '],"id":' .. i .. '}'
end

function request()
   local i = counter % calls
   counter = counter + nthreads
   local call_id = "bench-" .. i .. "@bench"
   outstanding[call_id] = (outstanding[call_id] or 0) + 1
   sent = sent + 1
   local built
   if target == "kamailio" then
      built = wrk.format("POST", "/RPC", { ["Content-Type"] = "application/json" },
         rpc_body(i, call_id))
   else
      built = wrk.format("POST", "/v1/calls/" .. call_id .. "/hold?force=true",
         { ["Authorization"] = "Bearer " .. api_key })
   end
   -- Timed from here, as wrk times from the write: building a JSON-RPC body costs more than a
   -- URL, and that is the load generator's time, not the system's.
   sent_at[call_id] = sent_at[call_id] or now_us()
   return built
end

function delay()
   if rate <= 0 then
      return 0
   end
   local now = now_ms()
   next_slot = math.max(next_slot + interval, now - 1000) -- no burst after a stall
   return math.max(0, math.floor(next_slot - now))
end

function response(status, headers, body)
   local answered_at = now_us() -- before parsing the body, which costs more for Kamailio's
   local call_id, reason
   if target == "kamailio" then
      local id = body:match('"id":%s*(%d+)')
      call_id = id and ("bench-" .. id .. "@bench")
      local code
      code, reason = body:match('"result":%s*%[%s*(%d+),%s*"([^"]*)"')
      if code ~= "200" then
         status = 599
      end
   else
      call_id = body:match('"call_id":%s*"([^"]*)"')
      reason = body:match('"sip_reason":%s*"([^"]*)"')
   end
   if status ~= 200 then
      failed = failed + 1
      if failed <= 3 then
         io.stderr:write("bench: HTTP " .. status .. ": " .. body:sub(1, 300) .. "\n")
      end
   end
   if call_id == nil or (outstanding[call_id] or 0) == 0 then
      if status == 200 then
         unexpected = unexpected + 1
      end
      return
   end
   outstanding[call_id] = outstanding[call_id] - 1
   local us = answered_at - sent_at[call_id]
   latency_us[us] = (latency_us[us] or 0) + 1
   if outstanding[call_id] == 0 then
      sent_at[call_id] = nil
   end
   if status ~= 200 then
      return
   end
   if reason == call_id then
      ok = ok + 1
   else
      crossed = crossed + 1
   end
end

function done(summary, latency, requests)
   local totals = { sent = 0, ok = 0, crossed = 0, unexpected = 0, failed = 0 }
   for _, thread in ipairs(threads) do
      for name, _ in pairs(totals) do
         totals[name] = totals[name] + thread:get(name)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests":%d,"duration_us":%d,"sent":%d,"ok":%d,"crossed":%d,'
      .. '"unexpected":%d,"failed":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
      .. '"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, totals.sent, totals.ok, totals.crossed,
      totals.unexpected, totals.failed, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
   -- Every request's latency as "microseconds:requests" pairs, so that bench/run can merge the
   -- slices of one point into exact percentiles (wrk 4.1 gives Lua only its percentiles).
   local merged = {}
   for _, thread in ipairs(threads) do
      for us, n in pairs(thread:get("latency_us")) do
         merged[us] = (merged[us] or 0) + n
      end
   end
   local pairs_out = {}
   for us, n in pairs(merged) do
      pairs_out[#pairs_out + 1] = string.format("%d:%d", us, n)
   end
   io.write("BENCH_LATENCY " .. table.concat(pairs_out, " ") .. "\n")
end
