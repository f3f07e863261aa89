-- wrk script: POST a booking for a distinct slot with every request.
--
--   wrk -s bench/lib/book.lua URL -- PATH DOCTORS SLOTS MINUTES DAYS THREADS
--                                    [count] [start=N]
--
-- PATH     where to POST (the API, or a `return 200` location for the
--          reference run, which then sends the same requests)
-- DOCTORS  the directory's round-the-clock doctors d000.. (bench/lib/
--          directory.pl), SLOTS per day each, MINUTES apart from 00:00
-- DAYS     comma-separated YYYYMMDD days to book, in order
-- THREADS  wrk's -t: thread n sends slots n, n + THREADS, ...
-- count    "count" to tally the answers by status (costs wrk some CPU;
--          left out of the reference run)
-- start=N  skip the first N slots (for a second run on the same state)
--
-- Slots go round-robin over the doctors, then times, then days; when the
-- days run out they start over and every answer is a 409.  wrk calls the
-- first thread's request() once to check it, so slot 0 is never sent.
-- done() prints one line, "BENCH_STATUS 201=N 409=N ... slots=N", for
-- booking.sh; no slot from N on has been sent (start=N goes on from there).

local tally = dofile(string.match(debug.getinfo(1, "S").source,
                                  "^@(.-)[^/]*$") .. "tally.lua")
local path, ndoctors, nslots, minutes, days, stride
local body_head = '{"slot":"'
local body_tail = '","patient":{"name":"Bench Patient",'
                  .. '"phone":"+49 30 1234567"},"reason":"load test"}'
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   path = args[1]
   ndoctors = tonumber(args[2])
   nslots = tonumber(args[3])
   minutes = tonumber(args[4])
   days = {}
   for d in string.gmatch(args[5], "%d+") do
      days[#days + 1] = d
   end
   stride = tonumber(args[6])
   seq = tid + (tally.options(args, 7).start or 0)
end

function request()
   local d = seq % ndoctors
   local r = math.floor(seq / ndoctors)
   local m = (r % nslots) * minutes
   local day = days[math.floor(r / nslots) % #days + 1]

   seq = seq + stride

   local slot = string.format("d%03d.%s.%02d%02d", d, day,
                              math.floor(m / 60), m % 60)

   return wrk.format("POST", path, headers, body_head .. slot .. body_tail)
end

-- no slot from N on has been sent: start=N goes on from there
tally.extra = function(threads)
   local slots = 0
   for _, t in ipairs(threads) do
      slots = math.max(slots, t:get("seq") or 0)
   end
   return " slots=" .. slots
end
