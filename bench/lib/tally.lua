-- What the wrk scripts of bench/lib share: each thread's number, the
-- options after their own arguments, and the answers tallied by status.
-- A script loads it with
--
--   local tally = dofile(string.match(debug.getinfo(1, "S").source,
--                                     "^@(.-)[^/]*$") .. "tally.lua")
--
-- and gets setup() (thread n sends requests n, n + THREADS, ...: the
-- global tid), response() and done() as its own globals.
--
-- tally.options(args, from) reads args[from] on: "count" keeps
-- response(), which tallies the answers by status (costs wrk some CPU;
-- left out of the reference runs); "path=P" and "start=N" are returned
-- as path and start.  done() prints "BENCH_STATUS 200=N ..." (and, with
-- tally.extra set, what it returns after that) and, when an answer was
-- not 2xx, "BENCH_FIRST_ERROR" with its body, for the bench scripts.

local tally = {}
local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function tally.options(args, from)
   local opts = { count = false }

   for i = from, #args do
      if args[i] == "count" then
         opts.count = true
      elseif string.sub(args[i], 1, 5) == "path=" then
         opts.path = string.sub(args[i], 6)
      elseif string.sub(args[i], 1, 6) == "start=" then
         opts.start = tonumber(string.sub(args[i], 7))
      end
   end

   if not opts.count then
      response = nil
   end

   -- a global, for done() to read through thread:get()
   status = {}

   return opts
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
   io.write("BENCH_STATUS " .. table.concat(out, " ")
            .. (tally.extra and tally.extra(threads) or "") .. "\n")
   if err then
      io.write("BENCH_FIRST_ERROR " .. string.gsub(err, "\n", " ") .. "\n")
   end
end

return tally
