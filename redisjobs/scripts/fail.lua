#!lua flags=allow-oom
-- fail: record that a run ended without a result: retry later, fail for good, or cancelled.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  worker id
-- ARGV[2]  job id
-- ARGV[3]  lease
-- ARGV[4]  error text
-- ARGV[5]  mode, why the run failed, kept as the job's `failure`: 'error' (it raised) or
--          'timeout' (it outlived its timeout), both retried while attempts are left; 'fatal'
--          (never retried); 'cancel' (the run was cancelled on request)
-- ARGV[6]  defer_ms: explicit retry delay (a job raised Retry(defer)), or -1 for the policy
--          retry_delay * retry_backoff^(attempt-1), capped at one day
-- ARGV[7]  a uniform random number in [0, 1) that places the jitter: delay * (1 +- jitter)
-- Returns  {outcome, due_ms[, handed]}: outcome 'retry' | 'failed' | 'cancelled' | 'stale' |
--          'dup'; due_ms is the retry's due time on Redis's clock (0 otherwise); handed (failed
--          and cancelled) the hand-overs written to jobs of other queues that depend on it
--          (the caller delivers them: see tell_dependents)
-- Events   retrying | failed | cancelled, each with the error and the failure
-- Effects  XACK; error, failure; retry: status scheduled, ZADD delayed (a while_queued job
--          takes its unique lock again when free); failed: EXPIRE (failed_ttl, else
--          result_ttl), index, dead, trim_kept for a job with failed_keep; failed and
--          cancelled: the unique lock released, the idempotency marker written (settle), the
--          jobs waiting for it told (flow_end); the job's limit key slot freed (key_left);
--          stats.retried / failed / cancelled. An unknown mode is an error.

local RETRIED = {error = true, timeout = true}
local jid, lease, err, mode = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not RETRIED[mode] and mode ~= 'fatal' and mode ~= 'cancel' then
  return redis.error_reply('fail: unknown mode ' .. string.sub(mode, 1, 40))
end
local jkey = job_key(jid)
local job = hmget_named(jkey, {'lease', 'status', 'msg', 'attempt', 'max_retries', 'retry_delay',
  'retry_backoff', 'retry_jitter', 'result_ttl', 'cancel', 'failed_ttl', 'failed_keep', 'unique',
  'unique_key', 'unique_ttl', 'idempotency_ttl', 'limit_key', 'depends_on', 'dependents'})
if job.lease ~= lease then return {'stale', 0} end
if job.status ~= 'running' then return {'dup', 0} end

local now = now_ms()
-- (checked when leased; garbage written since falls back to defaults rather than failing here)
local attempt = count_of(job.attempt, 0)
ack(job.msg)
key_left(job.limit_key, jid)  -- every outcome below leaves `running`

if mode == 'cancel' then
  local ttl = count_of(job.result_ttl, DEFAULT_TTL_MS)
  -- the request's token stays, so that the request re-sent after a lost reply is recognised
  if job.cancel then
    finish(jkey, jid, 'running', 'cancelled', now, ttl, true, false, 'error', err,
      'failure', 'cancel', 'cancel_token', job.cancel)
  else
    finish(jkey, jid, 'running', 'cancelled', now, ttl, false, false, 'error', err,
      'failure', 'cancel')
  end
  trim_final('cancelled', now)
  if job.unique_key or job.idempotency_ttl then
    settle(jid, 'cancelled', ttl, job.unique_key, job.idempotency_ttl)
  end
  emit(jid, 'cancelled', attempt, {'error', mp_str(err), 'failure', mp_str('cancel')})
  redis.call('HINCRBY', K_STATS, 'cancelled', 1)
  return {'cancelled', 0, flow_end(jid, 'cancelled', err, ttl, now, job.depends_on,
    job.dependents)}
end

if RETRIED[mode] and attempt <= count_of(job.max_retries, 0) then
  local delay = tonumber(ARGV[6])
  if delay < 0 then
    delay = count_of(job.retry_delay, DEFAULT_RETRY_DELAY_MS) *
      real_of(job.retry_backoff, DEFAULT_RETRY_BACKOFF) ^ (attempt - 1)
    delay = delay * (1 + real_of(job.retry_jitter, DEFAULT_RETRY_JITTER) *
      (2 * tonumber(ARGV[7]) - 1))
  end
  delay = math.floor(math.max(0, math.min(delay, MAX_DELAY_MS)))
  local due = now + delay
  reschedule(jkey, jid, due, now, job, 'error', err, 'failure', mode)
  emit(jid, 'retrying', attempt,
    {'error', mp_str(err), 'failure', mp_str(mode), 'due', mp_uint(due)})
  redis.call('HINCRBY', K_STATS, 'retried', 1)
  return {'retry', due}
end

return {'failed', 0, fail_job(jkey, jid, 'running', now, job, job.cancel, attempt, err, mode)}
