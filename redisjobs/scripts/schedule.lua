-- schedule: create or change a schedule (an idempotent upsert).
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV     schedule id (checked by the Client: a job id), spec (msgpack, compared byte for
--          byte, never decoded), its first due time computed by the Client from Redis's now
--          (ms; -1: it never ticks), limit (runs at most; 0: none)
-- Returns  0 the same spec was stored already (nothing written: it keeps its next run),
--          1 created or changed (its next run is the given one; runs so far are kept, so a
--          raised limit gives more runs)
-- Events   control channel 'schedule:<ms>' when it is due, so sleeping schedule loops look
--          again (a message of their own: the promote loops need not wake for it)
-- Effects  HSET schedules; state hash (rev + 1, limit); ZADD or ZREM schedule:due

local sid, spec = ARGV[1], ARGV[2]
local due, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('HGET', K_SCHEDULES, sid) == spec then return 0 end
redis.call('HSET', K_SCHEDULES, sid, spec)
local skey = schedule_state_key(sid)
local runs = tonumber(redis.call('HGET', skey, 'runs') or '0')
redis.call('HINCRBY', skey, 'rev', 1)
redis.call('HSET', skey, 'runs', runs, 'limit', limit)
if set_schedule_due(sid, due, runs, limit) then
  redis.call(PUBLISH, K_CONTROL, 'schedule:' .. due)
end
return 1
