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
-- its body (bench/lib/tally.lua).

local tally = dofile(string.match(debug.getinfo(1, "S").source,
                                  "^@(.-)[^/]*$") .. "tally.lua")
local consents, body, ctype, fixed, stride

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

   fixed = tally.options(args, 5).path
end

function request()
   local c = consents[seq % #consents + 1]

   seq = seq + stride

   if fixed then
      return wrk.format("PUT", fixed .. c.file,
                        { ["Content-Type"] = ctype,
                          ["Authorization"] = c.auth }, body)
   end

   return wrk.format("POST", c.path, { ["Content-Type"] = ctype,
                                       ["Authorization"] = c.auth }, body)
end
