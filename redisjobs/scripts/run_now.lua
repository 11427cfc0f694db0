-- run_now: an operator's "run now": a scheduled job (delayed, or a retry waiting out its
-- backoff) becomes pending at once, as if its due time had come.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  job id
-- Returns  1 when the job was made pending, 0 when it is not scheduled (any more, or never was)
-- Effects  as promote's for this one job: ZREM delayed; status pending; XADD ready (or ZADD prio,
--          or its limit key's backlog, as the job says)

local now = now_ms()
local jid = ARGV[1]
local jkey = job_key(jid)
local status, priority, key = unpack(redis.call('HMGET', jkey, 'status', 'priority',
  'limit_key'))
if status ~= 'scheduled' or redis.call('ZREM', K_DELAYED, jid) == 0 then return 0 end
push_ready(jkey, jid, priority, key, now)
move_status(jid, 'scheduled', 'pending', now)
return 1
