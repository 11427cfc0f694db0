-- unschedule: remove a schedule (its spec, state and due time). Jobs it made are kept.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  schedule id
-- Returns  1 removed, 0 there was none
-- Effects  HDEL schedules; DEL the state hash; ZREM schedule:due

local sid = ARGV[1]
redis.call('ZREM', K_SCHEDULE_DUE, sid)
redis.call('DEL', schedule_state_key(sid))
return redis.call('HDEL', K_SCHEDULES, sid)
