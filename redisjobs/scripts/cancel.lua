-- cancel: stop a job that has not finished.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  job id
-- ARGV[2]  the request's token ('' for none): a cancel re-sent after a lost reply carries the
--          same token and gets the first call's answer, though the job is cancelled by now
-- Returns  'cancelled' (it was pending, scheduled or waiting and is now cancelled, or this
--          very request cancelled it already), 'handed' (as 'cancelled', and hand-overs to
--          jobs of other queues waiting for it were written: the caller delivers them),
--          'requested' (it is running: its worker is told and records `cancelled` itself),
--          'final' (it had already finished), 'missing' (no such job)
-- Events   cancelled (pending/scheduled); control channel 'cancel:<id>' (running)
-- Effects  pending: XACK+XDEL its entry (ZREM prio, or its key's backlog, when it waits there); scheduled: ZREM
--          delayed; then status cancelled, failure 'cancel', EXPIRE, stats.cancelled, the
--          unique lock released and the idempotency marker written (settle), the jobs waiting
--          for it told (flow_end). running: the
--          `cancel` flag, which heartbeats also report, so a worker that missed the pub/sub
--          message still stops the job.

local jid, token = ARGV[1], ARGV[2]
local jkey = job_key(jid)
local job = hmget_named(jkey, {'status', 'msg', 'attempt', 'result_ttl', 'cancel_token',
  'unique_key', 'idempotency_ttl', 'limit_key', 'depends_on', 'dependents'})
local st = job.status
if not st then return 'missing' end
if st == 'running' then
  -- the flag holds the token, which `fail` keeps as cancel_token when it records the cancel
  redis.call('HSET', jkey, 'cancel', token ~= '' and token or '1')
  redis.call(PUBLISH, K_CONTROL, 'cancel:' .. jid)
  return 'requested'
end
if st == 'cancelled' and token ~= '' and job.cancel_token == token then return 'cancelled' end
if st ~= 'pending' and st ~= 'scheduled' and st ~= 'waiting' then return 'final' end
local now = now_ms()
withdraw(jid, st, job)
local ttl = count_of(job.result_ttl, DEFAULT_TTL_MS)
finish(jkey, jid, st, 'cancelled', now, ttl, false, false,
  'error', 'cancelled', 'failure', 'cancel', 'cancel_token', token)
trim_final('cancelled', now)
if job.unique_key or job.idempotency_ttl then
  settle(jid, 'cancelled', ttl, job.unique_key, job.idempotency_ttl)
end
emit(jid, 'cancelled', count_of(job.attempt, 0),
  {'error', mp_str('cancelled'), 'failure', mp_str('cancel')})
redis.call('HINCRBY', K_STATS, 'cancelled', 1)
if flow_end(jid, 'cancelled', 'cancelled', ttl, now, job.depends_on, job.dependents) > 0 then
  return 'handed'
end
return 'cancelled'
