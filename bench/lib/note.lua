-- wrk script: PUT a visit note with every request, round-robin over many
-- appointments of one doctor.
--
--   wrk -s bench/lib/note.lua URL -- IDS TOKEN THREADS [path=PATH] [count]
--
-- IDS      a file of appointment ids, one a line: request k of thread n
--          writes the note of id n + k * THREADS (modulo their number)
-- TOKEN    the doctor's token (POST /api/v1/doctor/login), sent as
--          Authorization: Bearer
-- THREADS  wrk's -t
-- path=P   PUT every request to P instead (a `return 200` location for
--          the reference run, which then sends the same requests)
-- count    tally the answers by status (costs wrk some CPU; left out of
--          the reference run)
--
-- The body is the same note every time, about 600 bytes of JSON, all five
-- fields filled.  done() prints "BENCH_STATUS 200=N ..." for record.sh and,
-- when an answer was not 2xx, "BENCH_FIRST_ERROR" with its body
-- (bench/lib/tally.lua).

local tally = dofile(string.match(debug.getinfo(1, "S").source,
                                  "^@(.-)[^/]*$") .. "tally.lua")
local ids, fixed, stride
local body = '{"complaint":"dry cough for two weeks, worse at night, no '
             .. 'fever at home","history":"no smoking; asthma as a child, '
             .. 'no inhaler for ten years; hay fever in spring; no known '
             .. 'drug allergies; works in an open-plan office where '
             .. 'colleagues had colds","findings":"speaks full sentences, '
             .. 'no distress on video; audible wheeze when breathing out '
             .. 'fast; T 37.9 C by the patient\'s thermometer; SpO2 97% '
             .. 'on a home pulse oximeter","diagnosis":"acute bronchitis, '
             .. 'likely viral","advice":"rest, fluids, paracetamol when '
             .. 'needed; salbutamol inhaler as prescribed; come in person '
             .. 'or call again if short of breath, fever above 39 C or no '
             .. 'better in one week"}'
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   ids = {}
   for line in io.lines(args[1]) do
      if line ~= "" then
         ids[#ids + 1] = line
      end
   end
   headers["Authorization"] = "Bearer " .. args[2]
   stride = tonumber(args[3])
   seq = tid

   fixed = tally.options(args, 4).path
end

function request()
   local path = fixed

   if not path then
      path = "/api/v1/appointments/" .. ids[seq % #ids + 1] .. "/record/note"
   end

   seq = seq + stride

   return wrk.format("PUT", path, headers, body)
end
