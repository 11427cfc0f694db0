-- due_schedules: the schedules due now, with what a worker needs to fire them.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  at most this many schedules per call
-- Returns  {now_ms, next_due_ms, id, due_ms, rev, runs, spec, id, ...}: Redis's now, the
--          earliest due time of any schedule (-1: none), then per due schedule its id, due
--          time (the tick to fire from), rev (the token fire.lua checks), runs so far and spec
--          (msgpack, as stored)
-- Effects  none (a read, in one round trip on Redis's clock)

local now = now_ms()
local first = redis.call('ZRANGE', K_SCHEDULE_DUE, 0, 0, 'WITHSCORES')
local out = {now, -1}
if #first > 0 then out[2] = tonumber(first[2]) end
local due = redis.call('ZRANGEBYSCORE', K_SCHEDULE_DUE, '-inf', now, 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[1]))
for i = 1, #due, 2 do
  local sid = due[i]
  local state = redis.call('HMGET', schedule_state_key(sid), 'rev', 'runs')
  append(out, {sid, due[i + 1], state[1] or '0', state[2] or '0',
    redis.call('HGET', K_SCHEDULES, sid) or ''})
end
return out
