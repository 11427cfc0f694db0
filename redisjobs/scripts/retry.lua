-- retry: run jobs that failed for good (the dead letters) or were cancelled again, under the
-- same id.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV     job ids
-- Returns  {put back, hand-overs written}: the number of jobs put back, and of hand-overs to
--          jobs of other queues that waited for them (the caller delivers them). A job neither `failed` nor `cancelled` now is left
--          alone (a retry that races with another does nothing twice) and leaves `dead`; one
--          whose hash expired leaves the failed index too (trim_final would drop it later
--          anyway).
-- Events   enqueued (per job put back, attempt 0)
-- Effects  the hash and its log lose their TTL; the outcome of the last run (error, failure,
--          result, times, worker, progress) is cleared and attempt, crashes and deferrals
--          start again from 0, but the lease counter is kept, so fencing tokens keep growing; ZREM dead;
--          status failed (or cancelled) -> pending under a new stream entry (or in prio, by its
--          priority); stats.enqueued (each job that runs again counts as enqueued again, so
--          enqueued - finished stays the jobs in flight); the jobs that ended because it did
--          (on_parent_failure fail or cancel) wait for it again (flow_end 'revive')

local now = now_ms()
local revived, handed = 0, 0
for i = 1, #ARGV do
  local jid = ARGV[i]
  local jkey = job_key(jid)
  local job = hmget_named(jkey, {'status', 'kind', 'priority', 'limit_key', 'depends_on',
    'dependents'})
  if job.status == 'failed' or job.status == 'cancelled' then
    redis.call('PERSIST', jkey)
    redis.call('PERSIST', job_log_key(jid))
    redis.call('HDEL', jkey, 'error', 'failure', 'result', 'completed_at', 'started_at', 'worker',
      'progress', 'progress_message', 'scheduled_at', 'cancel', 'cancel_token', 'deferrals',
      'failed_by')
    redis.call('HSET', jkey, 'attempt', 0, 'crashes', 0)
    redis.call('ZREM', K_DEAD, jid)
    push_ready(jkey, jid, job.priority, job.limit_key, now)
    move_status(jid, job.status, 'pending', now, true)  -- counted in `enqueued` below
    emit(jid, 'enqueued', 0, {'kind', mp_str(job.kind or '')})
    revived = revived + 1
    -- the jobs that ended because it did wait for it again (a retried step continues its
    -- chain); its own side keys live on with it
    handed = handed + flow_end(jid, 'revive', '', nil, now, job.depends_on, job.dependents)
  else
    redis.call('ZREM', K_DEAD, jid)
    if not job.status then redis.call('ZREM', status_key('failed'), jid) end
  end
end
if revived > 0 then redis.call('HINCRBY', K_STATS, 'enqueued', revived) end
return {revived, handed}
