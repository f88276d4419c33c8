-- wrk script for bench/scale.py: re-sends batches of 50 alerts drawn at random from the N active ones.
--
--   wrk -t1 -c32 -d10s --latency -s bench/scale.lua URL -- N PATH STARTS SEED [FINGERPRINTS_FILE]
--
-- N        active alerts: alert i (0 <= i < N) is what bench/scale.py `alert(i)` builds, label for label
-- PATH     "v2" (a Prometheus POST /api/v2/alerts array) or "webhook" (an Alertmanager webhook, version 4)
-- STARTS   the startsAt every alert carries (RFC 3339), as the fill sent it: a re-send is unchanged
-- SEED     random seed
-- FINGERPRINTS_FILE  webhook only: one fingerprint per line, line i+1 for alert i (Alertmanager sends them)
--
-- Batch b holds alerts 50b .. 50b+49: one service, one instance, 50 alert names (scale.py relies on it).
-- done() prints one "BENCH_RESULT {json}" line, the same fields as alerts.lua.

local threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

local BATCH = 50
local n, path, starts, fps, nbatches, head
local clock, ends_str = -1, ""
local GEN = '"generatorURL":"http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"'

function init(args)
   n = tonumber(args[1])
   path = args[2]
   starts = args[3]
   math.randomseed((tonumber(args[4]) or 1) * 1000 + (id or 1))
   nbatches = math.ceil(n / BATCH)
   if path == "webhook" then
      -- Only the N fingerprints of this level (the file holds the largest level's).
      fps = {}
      for line in io.lines(args[5]) do
         if #fps >= n then break end
         fps[#fps + 1] = line
      end
   end
   requests, alerts, changes, non2xx = 0, 0, 0, 0
   head = "POST " .. wrk.path .. " HTTP/1.1\r\n"
      .. "Host: " .. wrk.host .. ":" .. tostring(wrk.port) .. "\r\n"
      .. "User-Agent: itsmd-bench (wrk)\r\n"
      .. "Content-Type: application/json\r\n"
      .. "Content-Length: "
end

local function tick()
   local t = os.time()
   if t ~= clock then
      clock = t
      ends_str = os.date("!%Y-%m-%dT%H:%M:%S.000Z", t + 240)
   end
end

local function names(i)
   local s = math.floor(i / BATCH) % 200
   return string.format("Scale%02d", i % BATCH), string.format("svc-%03d", s),
      string.format("host-%04d:9100", math.floor(i / 10000)), string.format("team-%02d", s % 20)
end

local function labels(i)
   local alertname, service, instance, team = names(i)
   return '{"alertname":"' .. alertname .. '","cluster":"prod-eu-1","instance":"' .. instance
      .. '","job":"' .. service .. '","namespace":"ns-' .. service .. '","service":"' .. service
      .. '","severity":"warning","team":"' .. team .. '"}',
      '{"summary":"' .. alertname .. ' on ' .. service .. ' (' .. instance .. ')","description":"'
      .. alertname .. ' is firing for ' .. service .. ' on ' .. instance .. ' (team=' .. team .. ')"}'
end

-- A webhook alert's text never changes between re-sends (Alertmanager sends the same bytes), so each is built
-- once: built per request, wrk's own CPU grew from 25 % at 1k to 55 % at 100k active alerts and took that
-- much of the 2 cores from the server being measured.
local built = {}

local function webhook_alert(i)
   local text = built[i]
   if text == nil then
      local l, a = labels(i)
      text = '{"status":"firing","labels":' .. l .. ',"annotations":' .. a .. ',"startsAt":"' .. starts
         .. '","endsAt":"0001-01-01T00:00:00Z",' .. GEN .. ',"fingerprint":"' .. fps[i + 1] .. '"}'
      built[i] = text
   end
   return text
end

function request()
   tick()
   local b = math.random(nbatches) - 1
   local first, last = b * BATCH, math.min(b * BATCH + BATCH, n) - 1
   local buf = {}
   for i = first, last do
      if path == "webhook" then
         buf[#buf + 1] = webhook_alert(i)
      else
         local l, a = labels(i)
         buf[#buf + 1] = '{"annotations":' .. a .. ',"endsAt":"' .. ends_str .. '","startsAt":"' .. starts
            .. '",' .. GEN .. ',"labels":' .. l .. '}'
      end
   end
   local body = "[" .. table.concat(buf, ",") .. "]"
   if path == "webhook" then
      local _, service = names(first)
      body = '{"version":"4","groupKey":"{}:{service=\\"' .. service .. '\\"}","truncatedAlerts":0,'
         .. '"status":"firing","receiver":"itsmd","groupLabels":{"service":"' .. service .. '"},'
         .. '"commonLabels":{"cluster":"prod-eu-1","service":"' .. service .. '"},"commonAnnotations":{},'
         .. '"externalURL":"http://alertmanager.example:9093","alerts":' .. body .. '}'
   end
   requests = requests + 1
   alerts = alerts + (last - first + 1)
   return head .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function done(summary, latency, _)
   local req, al, bad = 0, 0, 0
   for _, t in ipairs(threads) do
      req = req + (t:get("requests") or 0)
      al = al + (t:get("alerts") or 0)
      bad = bad + (t:get("non2xx") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,"non2xx":%d,"sent_requests":%d,"sent_alerts":%d,'
      .. '"changes":0,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      bad, req, al, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
