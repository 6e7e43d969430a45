-- wrk script for tests/bench/read_bench.sh: GET /fhir/Patient/bench-<random 0..9999>.
-- The 10,000 requests are formatted once per thread, so the load generator
-- spends as little as possible per request; wrk itself counts non-2xx/3xx
-- responses ("Non-2xx or 3xx responses: N").

local requests = {}
local count = 10000

function init(args)
   -- a different sequence per thread: seed from time and the table's address
   local addr = tonumber(tostring(requests):match("0x(%x+)"), 16) or 0
   math.randomseed(os.time() + addr % 1000003)
   local headers = { ["Accept"] = "application/fhir+json" }
   for i = 0, count - 1 do
      requests[i + 1] = wrk.format("GET", "/fhir/Patient/bench-" .. i, headers)
   end
end

function request()
   return requests[math.random(1, count)]
end
