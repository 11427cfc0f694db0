#!lua flags=allow-oom
-- finish_waiting: record by hand the outcome of a job that waits to run (no worker runs it):
-- an operator's "mark done" or "mark failed" (Pyjobkit's succeed and fail without a lease).
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  job id
-- ARGV[2]  'completed', or the failure reason of a failed job: 'fatal' or 'timeout'
-- ARGV[3]  the result (msgpack) when completed, else the error text
-- Returns  'done' (recorded), 'handed' (recorded, and hand-overs to jobs of other queues that
--          wait for it were written: the caller delivers them), 'running' (a worker holds it:
--          its outcome is that run's), 'final' (it had already finished), 'missing'
-- Events   completed (with the result), or failed (error, failure)
-- Effects  as cancel for a waiting job: out of its stream entry, `delayed`, its key's backlog or
--          `prio` (withdraw); then, completed: result, progress 100, EXPIRE (completed_ttl, else
--          result_ttl), index, stats.completed, the unique lock released and the idempotency
--          marker written (settle), the completed jobs beyond a completed_keep count trimmed
--          (trim_kept, as complete does); failed: as a run that failed for good (fail_job, into
--          `dead`). The jobs waiting for it learn of it (flow_end). Its attempt is unchanged:
--          it never ran.

local jid, outcome, value = ARGV[1], ARGV[2], ARGV[3]
local jkey = job_key(jid)
local job = hmget_named(jkey, {'status', 'msg', 'attempt', 'result_ttl', 'completed_ttl',
  'completed_keep', 'failed_ttl', 'failed_keep', 'unique_key', 'idempotency_ttl', 'limit_key',
  'depends_on', 'dependents'})
local st = job.status
if not st then return 'missing' end
if st == 'running' then return 'running' end
if st ~= 'pending' and st ~= 'scheduled' and st ~= 'waiting' then return 'final' end
local now = now_ms()
local attempt = count_of(job.attempt, 0)
withdraw(jid, st, job)
local handed
if outcome == 'completed' then
  handed = complete_job(jkey, jid, st, now, outcome_ttl(job.completed_ttl, job.result_ttl),
    false, true, value, attempt, job.unique_key, job.idempotency_ttl, job.depends_on,
    job.dependents)
  redis.call('HINCRBY', K_STATS, 'completed', 1)
  trim_final('completed', now)
  if job.completed_keep then
    trim_kept('completed', count_of(job.completed_keep, 1), KEEP_PER_JOB, now)
  end
else
  handed = fail_job(jkey, jid, st, now, job, false, attempt, value, outcome)
end
if handed > 0 then return 'handed' end
return 'done'
