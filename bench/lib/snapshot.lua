-- wrk script: upload a consented snapshot with every request.
--
--   wrk -s bench/lib/snapshot.lua URL -- CONSENTS IMAGE TYPE THREADS
--                                        [path=PATH] [count]
--
-- CONSENTS a file of "APPOINTMENT REQUEST DOCTOR_TOKEN" lines
--          (bench/lib/consent.pl): request k of thread n goes under
--          consent n + k * THREADS, each used once
-- IMAGE    the image file, the body of every request
-- TYPE     its Content-Type
-- THREADS  wrk's -t
-- path=P   PUT each body to P .. APPOINTMENT .. "-" .. REQUEST instead:
--          nginx's own dav_methods PUT for the reference run, a new file
--          for each body as the API makes
-- count    tally the answers by status
--
-- Past the last consent the uploads start over and get 403: record.sh
-- then says the run needs more consents.  done() prints "BENCH_STATUS
-- 201=N ..." and, when an answer was not 2xx, "BENCH_FIRST_ERROR" with
-- its body.

local threads = {}
local consents, body, ctype, fixed, stride

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   consents = {}
   for line in io.lines(args[1]) do
      local appt, request, token = string.match(line, "(%S+) (%S+) (%S+)")
      if appt then
         consents[#consents + 1] = {
            path = "/api/v1/appointments/" .. appt
                   .. "/record/snapshots?request=" .. request,
            file = appt .. "-" .. request,
            auth = "Bearer " .. token
         }
      end
   end

   local f = assert(io.open(args[2], "rb"))
   body = f:read("*a")
   f:close()

   ctype = args[3]
   stride = tonumber(args[4])
   seq = tid

   local count = false
   for i = 5, #args do
      if args[i] == "count" then
         count = true
      elseif string.sub(args[i], 1, 5) == "path=" then
         fixed = string.sub(args[i], 6)
      end
   end

   if not count then
      response = nil
   end

   -- globals, for done() to read through thread:get()
   status = {}
end

function request()
   local c = consents[seq % #consents + 1]

   seq = seq + stride

   if fixed then
      return wrk.format("PUT", fixed .. c.file, { ["Content-Type"] = ctype,
                                        ["Authorization"] = c.auth }, body)
   end

   return wrk.format("POST", c.path, { ["Content-Type"] = ctype,
                                       ["Authorization"] = c.auth }, body)
end

function response(s, h, b)
   status[s] = (status[s] or 0) + 1
   if (s < 200 or s > 299) and not first_error then
      first_error = b
   end
end

function done(summary, latency, requests)
   local total, err = {}, nil
   for _, t in ipairs(threads) do
      local st = t:get("status") or {}
      for k, v in pairs(st) do
         total[k] = (total[k] or 0) + v
      end
      err = err or t:get("first_error")
   end

   local out = {}
   for k, v in pairs(total) do
      out[#out + 1] = k .. "=" .. v
   end
   table.sort(out)
   io.write("BENCH_STATUS " .. table.concat(out, " ") .. "\n")
   if err then
      io.write("BENCH_FIRST_ERROR " .. string.gsub(err, "\n", " ") .. "\n")
   end
end
