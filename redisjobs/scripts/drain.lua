#!lua flags=allow-oom
-- drain: drop the jobs waiting to run (pending, then scheduled, then those waiting for other
-- jobs), a batch per call. Running jobs are left to finish.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  cutoff (Redis ms): only jobs waiting since then or earlier (their stream entry's
--          time, or their index score), so that a drain ends even while producers keep
--          enqueueing
-- ARGV[2]  limit: stream entries and index entries looked at, at most
-- Returns  {dropped, looked}; looked < limit means nothing is left waiting since the cutoff.
-- Events   cancelled (error 'drained', failure 'cancel') per job dropped, so that whoever
--          waits for it learns it will never run
-- Effects  pending jobs with a `ready` entry are found through the entries the group has not
--          delivered yet: every such entry looked at is deleted (a wake-up entry too: the jobs
--          it was to wake are dropped here, or have their own after the cutoff). A job a
--          worker read but has not started yet is left: it starts a moment later, as if the
--          drain had come after. Pending jobs without an entry (in prio, or their limit key's
--          backlog kq:<key>, which `start` takes off the schedule once empty) are found
--          through status:pending; scheduled ones (a delay, or a retry waiting out its
--          backoff) leave delayed. Each job dropped: DEL its hash, log and trace context,
--          ZREM its index; stats.cancelled (so enqueued - finished stays the jobs in flight)
--          and pending_adj; its unique lock is released and its idempotency marker written,
--          and the jobs waiting for it learn it was cancelled (tell_dependents), as for any
--          job that ends.

local cutoff, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if not (cutoff and limit and limit > 0) then
  return redis.error_reply('drain takes a cutoff and a limit > 0')
end
local now = now_ms()
local DRAIN_FIELDS = {'status', 'msg', 'attempt', 'unique_key', 'idempotency_ttl', 'limit_key',
  'dependents'}
local DRAINED = {'error', mp_str('drained'), 'failure', mp_str('cancel')}
local dropped, looked, unpended = 0, 0, 0
local keys = {}  -- of the jobs dropped, deleted in one DEL a part (a call per job costs more)

-- Drop job `jid` (its fields `job`); its keys go with the part's DEL (flush).
local function drop(jid, job)
  add_job_keys(keys, jid)
  if job.unique_key or job.idempotency_ttl then  -- its lock goes; its id stays taken
    settle(jid, 'cancelled', 0, job.unique_key, job.idempotency_ttl)
  end
  emit(jid, 'cancelled', count_of(job.attempt, 0), DRAINED)
  if job.dependents then tell_dependents(jid, 'cancelled', 'drained', now) end
  dropped = dropped + 1
end

local function flush()
  if #keys > 0 then redis.call('DEL', unpack(keys)) end
  keys = {}
end

-- The pending jobs of the entries of `ready` not delivered yet, up to the cutoff.
local function drain_ready()
  local entries = redis.call('XRANGE', K_READY, '(' .. last_delivered(K_READY), cutoff,
    'COUNT', limit)
  if #entries == 0 then return end
  local ids = {}
  for i, e in ipairs(entries) do
    ids[i] = e[1]
    local fields = e[2]
    local jid = fields[1] == 'id' and fields[2]
    local job = jid and hmget_named(job_key(jid), DRAIN_FIELDS)
    if job and job.status == 'pending' and job.msg == e[1] then
      drop(jid, job)
      unpended = unpended + 1
    end
  end
  redis.call('XDEL', K_READY, unpack(ids))
  flush()
  looked = looked + #ids
end

-- The jobs of index `status` waiting since the cutoff, up to what the limit leaves.
local function drain_index(status)
  local index = status_key(status)
  local ids = redis.call('ZRANGEBYSCORE', index, '-inf', cutoff, 'LIMIT', 0, limit - looked)
  local gone = {}
  for _, jid in ipairs(ids) do
    local job = hmget_named(job_key(jid), DRAIN_FIELDS)
    if job.status == status then
      gone[#gone + 1] = jid
      if status == 'pending' and job.limit_key then  -- it waits in its key's backlog
        redis.call('ZREM', key_jobs_key(job.limit_key), jid)
      end
      drop(jid, job)
    end
  end
  if #gone > 0 then
    redis.call('ZREM', status == 'pending' and K_PRIO or K_DELAYED, unpack(gone))
    if status == 'pending' then unpended = unpended + #gone end
  end
  if #ids > 0 then redis.call('ZREM', index, unpack(ids)) end
  flush()
  looked = looked + #ids
end

drain_ready()
for _, status in ipairs({'pending', 'scheduled', 'waiting'}) do
  if looked >= limit then break end
  drain_index(status)
end
if dropped > 0 then redis.call('HINCRBY', K_STATS, 'cancelled', dropped) end
if unpended > 0 then redis.call('HINCRBY', K_STATS, 'pending_adj', -unpended) end
return {dropped, looked}
