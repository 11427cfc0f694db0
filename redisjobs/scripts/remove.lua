#!lua flags=allow-oom
-- remove: delete finished jobs (completed, failed or cancelled) now, before they expire.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV     job ids
-- Returns  the number of jobs deleted. A job that has not finished is left alone; an id whose
--          hash expired leaves the final indexes and `dead` (trim_final would drop it later).
-- Effects  DEL the hash, its log and trace context; ZREM its status index (and dead). No event:
--          the job's history ends with its final event, and the counters keep counting it.

local removed = 0
for i = 1, #ARGV do
  local jid = ARGV[i]
  local st = redis.call('HGET', job_key(jid), 'status')
  if FINAL[st] then
    delete_final(jid, st)
    removed = removed + 1
  elseif not st then
    for status in pairs(FINAL) do delete_final(jid, status) end
  end
end
return removed
