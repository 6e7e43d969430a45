-- wrk script for tests/bench/search_bench.sh: GET requests built from a
-- template and a file of generated values, e.g.
--   wrk ... -s search.lua http://host:port -- '/fhir/Patient?identifier=x%7C{1}' params/identifier.tsv
-- {1}, {2}, ... are the tab-separated (already URL-encoded) fields of a line.
-- Every request is formatted once per thread, so the load generator spends as
-- little as possible per request; wrk itself counts non-2xx/3xx responses
-- ("Non-2xx or 3xx responses: N").

local requests = {}

function init(args)
   local template, file = args[1], args[2]
   if template == nil or file == nil then
      error("usage: search.lua TEMPLATE VALUES_FILE")
   end
   -- a different sequence per thread: seed from time and the table's address
   local addr = tonumber(tostring(requests):match("0x(%x+)"), 16) or 0
   math.randomseed(os.time() + addr % 1000003)
   local headers = { ["Accept"] = "application/fhir+json" }
   for line in io.lines(file) do
      if line ~= "" then
         local fields = {}
         for field in (line .. "\t"):gmatch("([^\t]*)\t") do
            fields[#fields + 1] = field
         end
         local path = template:gsub("{(%d+)}", function(n) return fields[tonumber(n)] or "" end)
         requests[#requests + 1] = wrk.format("GET", path, headers)
      end
   end
   if #requests == 0 then
      error("no values in " .. file)
   end
end

function request()
   return requests[math.random(1, #requests)]
end
