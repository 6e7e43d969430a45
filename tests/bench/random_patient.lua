-- wrk script for tests/bench/read_bench.sh: reads random bench patients
-- (GET /fhir/Patient/bench-0..9999) and counts responses outside 2xx.

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   non2xx = 0
   math.randomseed(os.time() * 1000 + id * 7919)
end

local headers = { ["Accept"] = "application/fhir+json" }

function request()
   return wrk.format("GET", "/fhir/Patient/bench-" .. math.random(0, 9999), headers)
end

function response(status, hdrs, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function done(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads) do
      total = total + (thread:get("non2xx") or 0)
   end
   io.write(string.format("non-2xx responses: %d\n", total))
end
