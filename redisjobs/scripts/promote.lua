-- promote: make due delayed jobs (scheduled ones and retries) runnable.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  at most this many jobs per call (keeps the script short under a backlog)
-- Returns  {moved, next_due_ms, now_ms}: next_due_ms is the earliest remaining due time or -1,
--          so the caller can sleep exactly until then on Redis's clock
-- Effects  ZREM delayed; status pending; XADD ready (or ZADD prio, by the job's priority). Members
--          whose hash vanished, or that are no longer scheduled (cancelled meanwhile), are just
--          removed.

local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local moved = 0
for _, jid in ipairs(ids) do
  local jkey = job_key(jid)
  local status, priority, key = unpack(redis.call('HMGET', jkey, 'status', 'priority',
    'limit_key'))
  if status == 'scheduled' then
    push_ready(jkey, jid, priority, key, now)
    move_status(jid, 'scheduled', 'pending', now)
    moved = moved + 1
  end
end
if #ids > 0 then redis.call('ZREM', K_DELAYED, unpack(ids)) end
local nxt = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
local next_due = -1
if #nxt > 0 then next_due = tonumber(nxt[2]) end
return {moved, next_due, now}
