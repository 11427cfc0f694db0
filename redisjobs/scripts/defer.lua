#!lua flags=allow-oom
-- defer: a run asked to run again later (it raised RateLimited, or its executor Declined the
-- job): the job waits in `delayed` without using an attempt; with pause, its limit key (or the
-- queue) is held as long.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  worker id
-- ARGV[2]  job id
-- ARGV[3]  lease
-- ARGV[4]  retry_after_ms: how long until it may run again (capped at one day)
-- ARGV[5]  pause: '1' also holds rj:{Q}:hold:<limit_key> (a job without one: rj:{Q}:hold)
--          for retry_after_ms, unless a longer hold is there already; '0' does not
-- ARGV[6]  counted: '1' counts a deferral (RateLimited); '0' does not (the worker declined the
--          job: another worker may take it, so declining never fails it)
-- Returns  {outcome, due_ms}: outcome 'deferred' | 'failed' (deferred MAX_DEFERRALS times
--          already: it failed for good) | 'stale' | 'dup'; due_ms is when it runs again on
--          Redis's clock (0 otherwise)
-- Events   deferred (due, deferrals, paused), under the attempt of the deferred run; or failed
-- Effects  XACK; status running -> scheduled, ZADD delayed, attempt given back (the next start
--          counts the same attempt again: no retry used, no failure counted), deferrals + 1
--          (when counted); a while_queued job takes its unique lock again when free (as a retry
--          does); stats.deferred. Past MAX_DEFERRALS (counted only): failed as fail.lua fails a
--          job (fail_job)

-- A job that is refused every time must not be deferred forever: its deferral after this many
-- fails it for good (`retry` of the dead letter starts the count again).
local MAX_DEFERRALS = 100
local jid, lease = ARGV[2], ARGV[3]
local jkey = job_key(jid)
local job = hmget_named(jkey, {'lease', 'status', 'msg', 'attempt', 'deferrals', 'limit_key',
  'cancel', 'unique', 'unique_key', 'unique_ttl', 'result_ttl', 'failed_ttl', 'failed_keep',
  'idempotency_ttl', 'depends_on', 'dependents'})
if job.lease ~= lease then return {'stale', 0} end
if job.status ~= 'running' then return {'dup', 0} end

local now = now_ms()
local attempt = count_of(job.attempt, 1)
local counted = ARGV[6] ~= '0'
local deferrals = count_of(job.deferrals, 0) + (counted and 1 or 0)
ack(job.msg)
key_left(job.limit_key, jid)  -- deferred or failed, it leaves `running`
if counted and deferrals > MAX_DEFERRALS then
  fail_job(jkey, jid, 'running', now, job, job.cancel, attempt,
    'rate limited: deferred ' .. MAX_DEFERRALS .. ' times, never ran to the end',
    'error')
  return {'failed', 0}
end

local wait = math.floor(math.max(0, math.min(tonumber(ARGV[4]) or 0, MAX_DELAY_MS)))
local due = now + wait
reschedule(jkey, jid, due, now, job, 'attempt', math.max(attempt - 1, 0), 'deferrals',
  deferrals)
local paused = ARGV[5] == '1' and wait > 0
if paused then
  local hold = K_HOLD
  if job.limit_key then hold = key_hold_key(job.limit_key) end
  local left = redis.call('PTTL', hold)  -- -2: none; -1: no expiry, the longest of all
  if left ~= -1 and left < wait then redis.call('SET', hold, jid, 'PX', wait) end
end
emit(jid, 'deferred', attempt, {'due', mp_uint(due), 'deferrals', mp_uint(deferrals),
  'paused', paused and '\195' or '\194'})
redis.call('HINCRBY', K_STATS, 'deferred', 1)
return {'deferred', due}
