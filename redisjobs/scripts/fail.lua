#!lua flags=allow-oom
-- fail: record that a run ended without a result: retry later, fail for good, or cancelled.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  worker id
-- ARGV[2]  job id
-- ARGV[3]  lease
-- ARGV[4]  error text
-- ARGV[5]  mode: 'error' (retry while attempts are left), 'fatal' (never retry),
--          'cancel' (the run was cancelled on request)
-- ARGV[6]  defer_ms: explicit retry delay (a job raised Retry(defer)), or -1 for the policy
--          retry_delay * retry_backoff^(attempt-1), capped at one day
-- ARGV[7]  a uniform random number in [0, 1) that places the jitter: delay * (1 +- jitter)
-- Returns  {outcome, due_ms}: outcome 'retry' | 'failed' | 'cancelled' | 'stale' | 'dup';
--          due_ms is the retry's due time on Redis's clock (0 otherwise)
-- Events   retrying | failed | cancelled
-- Effects  XACK; retry: status scheduled, ZADD delayed; failed: EXPIRE, index, dead;
--          stats.retried / failed / cancelled

local MAX_DELAY_MS = 86400000
local jid, lease, err, mode = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jkey = job_key(jid)
local f = redis.call('HMGET', jkey, 'lease', 'status', 'msg', 'attempt', 'max_retries',
  'retry_delay', 'retry_backoff', 'retry_jitter', 'result_ttl', 'cancel')
if f[1] ~= lease then return {'stale', 0} end
if f[2] ~= 'running' then return {'dup', 0} end

local now = now_ms()
-- (checked when leased; garbage written since falls back to defaults rather than failing here)
local attempt = count_of(f[4], 0)
local ttl = count_of(f[9], DEFAULT_TTL_MS)
ack(f[3])

if mode == 'cancel' then
  -- the request's token stays, so that the request re-sent after a lost reply is recognised
  finish(jkey, jid, 'running', 'cancelled', now, ttl, f[10], false, 'error', err,
    f[10] and 'cancel_token', f[10])
  trim_final('cancelled', now)
  emit(jid, 'cancelled', attempt, now, {'error', mp_str(err)})
  redis.call('HINCRBY', K_STATS, 'cancelled', 1)
  return {'cancelled', 0}
end

if mode == 'error' and attempt <= count_of(f[5], 0) then
  local delay = tonumber(ARGV[6])
  if delay < 0 then
    delay = count_of(f[6], 0) * real_of(f[7], 1) ^ (attempt - 1)
    delay = delay * (1 + real_of(f[8], 0) * (2 * tonumber(ARGV[7]) - 1))
  end
  delay = math.floor(math.max(0, math.min(delay, MAX_DELAY_MS)))
  local due = now + delay
  redis.call('HSET', jkey, 'status', 'scheduled', 'scheduled_at', due, 'error', err)
  redis.call('HDEL', jkey, 'msg', 'cancel')
  redis.call('ZADD', K_DELAYED, due, jid)
  move_status(jid, 'running', 'scheduled', now)
  emit(jid, 'retrying', attempt, now, {'error', mp_str(err), 'due', mp_uint(due)})
  redis.call('HINCRBY', K_STATS, 'retried', 1)
  return {'retry', due}
end

finish(jkey, jid, 'running', 'failed', now, ttl, f[10], true, 'error', err)
trim_final('failed', now)
emit(jid, 'failed', attempt, now, {'error', mp_str(err)})
redis.call('HINCRBY', K_STATS, 'failed', 1)
return {'failed', 0}
