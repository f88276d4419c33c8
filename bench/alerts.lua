-- wrk script: POSTs Alertmanager v2 API bodies built from a pool file written by bench/workloads.py.
--
--   wrk -t1 -c32 -d10s --latency -s bench/alerts.lua http://127.0.0.1:PORT/api/v2/alerts -- \
--       POOL_FILE CHANGE_FRACTION TAG SEED
--
-- POOL_FILE        Lua chunk returning {mode = "pool"|"new", groups = {{alert, ...}, ...}}
--                  where alert = {pre=, starts=, post= [, post2=]} (JSON fragments).
-- CHANGE_FRACTION  share of requests (pool mode) that change one alert of their group first:
--                  a firing alert is resolved (endsAt = now), a resolved one fires again (startsAt = now).
-- TAG              makes the unique labels of mode "new" differ between runs (warm-up vs measured).
-- SEED             random seed (each thread adds its id).
--
-- Firing alerts carry endsAt = now + 4 min, like Prometheus (4 x resend-delay). Each thread counts the
-- requests and alerts it built and the answers that were not 2xx; done() prints one line
-- "BENCH_RESULT {json}" with those totals, wrk's summary and latency percentiles (microseconds).

local threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

local MID = '","startsAt":"'
local mode, groups, change, tag, seq, cursor, head
local clock, now_str, ends_str = -1, "", ""

local function tick()
   local t = os.time()
   if t ~= clock then
      clock = t
      now_str = os.date("!%Y-%m-%dT%H:%M:%S.000Z", t)
      ends_str = os.date("!%Y-%m-%dT%H:%M:%S.000Z", t + 240)
   end
end

function init(args)
   local pool = dofile(args[1])
   mode, groups = pool.mode, pool.groups
   change = tonumber(args[2]) or 0
   tag = (args[3] or "run") .. "-" .. tostring(id or 1) .. "-"
   math.randomseed((tonumber(args[4]) or 1) * 1000 + (id or 1))
   cursor = math.random(#groups)
   seq = 0
   requests, alerts, changes, non2xx = 0, 0, 0, 0
   head = "POST " .. wrk.path .. " HTTP/1.1\r\n"
      .. "Host: " .. wrk.host .. ":" .. tostring(wrk.port) .. "\r\n"
      .. "User-Agent: itsmd-bench (wrk)\r\n"
      .. "Content-Type: application/json\r\n"
      .. "Content-Length: "
end

local function mutate(group)
   local a = group[math.random(#group)]
   if a.resolved then
      a.resolved = nil
      a.starts = now_str -- a new firing episode
   else
      a.resolved = now_str
   end
   changes = changes + 1
end

function request()
   tick()
   local group = groups[cursor]
   cursor = cursor % #groups + 1
   if change > 0 and math.random() < change then
      mutate(group)
   end
   local buf, n = {"["}, 1
   for i = 1, #group do
      local a = group[i]
      if i > 1 then n = n + 1; buf[n] = "," end
      buf[n + 1] = a.pre
      buf[n + 2] = a.resolved or ends_str
      buf[n + 3] = MID
      buf[n + 4] = a.starts
      buf[n + 5] = a.post
      n = n + 5
      if a.post2 then
         seq = seq + 1
         buf[n + 1] = tag .. seq
         buf[n + 2] = a.post2
         n = n + 2
      end
   end
   buf[n + 1] = "]"
   local body = table.concat(buf)
   requests = requests + 1
   alerts = alerts + #group
   return head .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function done(summary, latency, _)
   local req, al, ch, bad = 0, 0, 0, 0
   for _, t in ipairs(threads) do
      req = req + (t:get("requests") or 0)
      al = al + (t:get("alerts") or 0)
      ch = ch + (t:get("changes") or 0)
      bad = bad + (t:get("non2xx") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,"non2xx":%d,"sent_requests":%d,"sent_alerts":%d,'
      .. '"changes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      bad, req, al, ch, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
