#!lua flags=allow-oom
-- drain: drop the jobs waiting to run (pending, then scheduled, then those waiting for other
-- jobs), a batch per call. Running jobs are left to finish.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  cutoff (Redis ms): only jobs waiting since then or earlier (their index score), so
--          that a drain ends even while producers keep enqueueing
-- ARGV[2]  limit: index entries looked at, at most
-- Returns  {dropped, looked}; looked < limit means nothing is left waiting since the cutoff.
-- Events   cancelled (error 'drained', failure 'cancel') per job dropped, so that whoever
--          waits for it learns it will never run
-- Effects  pending: its stream entry acknowledged and deleted (drop_entry; a job read by a
--          worker but not started yet is then dropped by `start`), out of prio or its limit
--          key's backlog (kq:<key>, which `start` takes off the schedule once empty); scheduled
--          (a delay, or a retry waiting out its backoff): out of delayed; then DEL its hash,
--          log and trace context, ZREM its index; stats.cancelled (so enqueued - finished
--          stays the jobs in flight); a dropped job's unique lock is released and its
--          idempotency marker written, and the jobs waiting for it learn it was cancelled
--          (tell_dependents), as for any job that ends. Pending jobs are found through
--          their status index, so prioritized ones (in prio, without a stream entry) go too.

local cutoff, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if not (cutoff and limit and limit > 0) then
  return redis.error_reply('drain takes a cutoff and a limit > 0')
end
local now = now_ms()
local DRAIN_FIELDS = {'status', 'msg', 'attempt', 'unique_key', 'idempotency_ttl', 'limit_key',
  'dependents'}
local DRAINED = {'error', mp_str('drained'), 'failure', mp_str('cancel')}
local dropped, looked = 0, 0
for _, status in ipairs({'pending', 'scheduled', 'waiting'}) do
  if looked >= limit then break end
  local index = status_key(status)
  local ids = redis.call('ZRANGEBYSCORE', index, '-inf', cutoff, 'LIMIT', 0, limit - looked)
  -- Gathered, then changed in one command each: a call per job costs more than the change.
  local gone, keys, msgs = {}, {}, {}
  for _, jid in ipairs(ids) do
    local job = hmget_named(job_key(jid), DRAIN_FIELDS)
    if job.status == status then
      gone[#gone + 1] = jid
      add_job_keys(keys, jid)
      if status == 'pending' and job.msg and job.msg ~= '' then msgs[#msgs + 1] = job.msg end
      if status == 'pending' and job.limit_key then  -- it waits in its key's backlog
        redis.call('ZREM', key_jobs_key(job.limit_key), jid)
      end
      if job.unique_key or job.idempotency_ttl then  -- its lock goes; its id stays taken
        settle(jid, 'cancelled', 0, job.unique_key, job.idempotency_ttl)
      end
      emit(jid, 'cancelled', count_of(job.attempt, 0), now, DRAINED)
      if job.dependents then tell_dependents(jid, 'cancelled', 'drained', now) end
    end
  end
  if #msgs > 0 then  -- drop_entry, for many entries at once
    redis.call('XACK', K_READY, GROUP, unpack(msgs))
    redis.call('XDEL', K_READY, unpack(msgs))
  end
  if #gone > 0 then
    redis.call('DEL', unpack(keys))
    redis.call('ZREM', status == 'pending' and K_PRIO or K_DELAYED, unpack(gone))
  end
  if #ids > 0 then redis.call('ZREM', index, unpack(ids)) end
  dropped = dropped + #gone
  looked = looked + #ids
end
if dropped > 0 then redis.call('HINCRBY', K_STATS, 'cancelled', dropped) end
return {dropped, looked}
