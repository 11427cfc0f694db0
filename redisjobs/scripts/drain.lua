-- drain: drop the jobs waiting to run (pending, then scheduled), a batch per call. Running jobs
-- are left to finish.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  limit: index entries looked at, at most
-- Returns  {dropped, looked}; looked < limit means nothing is left waiting.
-- Events   cancelled (error 'drained', failure 'cancel') per job dropped, so that whoever
--          waits for it learns it will never run
-- Effects  pending: its stream entry acknowledged and deleted (drop_entry; a job read by a
--          worker but not started yet is then dropped by `start`), out of prio; scheduled
--          (a delay, or a retry waiting out its backoff): out of delayed; then DEL its hash,
--          log and trace context, ZREM its index; stats.cancelled (so enqueued - finished
--          stays the jobs in flight). Pending jobs are found through their status index, so
--          prioritized ones (in prio, without a stream entry) go too.

local limit = tonumber(ARGV[1])
if not (limit and limit > 0) then return redis.error_reply('drain takes a limit > 0') end
local now = now_ms()
local DRAINED = {'error', mp_str('drained'), 'failure', mp_str('cancel')}
local dropped, looked = 0, 0
for _, status in ipairs({'pending', 'scheduled'}) do
  if looked >= limit then break end
  local index = status_key(status)
  local ids = redis.call('ZRANGE', index, 0, limit - looked - 1)
  for _, jid in ipairs(ids) do
    local job = hmget_named(job_key(jid), {'status', 'msg', 'attempt'})
    if job.status == status then
      if status == 'pending' then
        drop_entry(job.msg)
        redis.call('ZREM', K_PRIO, jid)
      else
        redis.call('ZREM', K_DELAYED, jid)
      end
      delete_job(jid)
      emit(jid, 'cancelled', count_of(job.attempt, 0), now, DRAINED)
      dropped = dropped + 1
    end
    redis.call('ZREM', index, jid)
  end
  looked = looked + #ids
end
if dropped > 0 then redis.call('HINCRBY', K_STATS, 'cancelled', dropped) end
return {dropped, looked}
