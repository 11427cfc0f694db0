#!lua flags=allow-oom
-- reclaim: take over jobs whose worker stopped heartbeating, and sweep orphans.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  worker id (the new owner)
-- ARGV[2]  lease_ttl_ms of a holder that never recorded its own (see `leases`)
-- ARGV[3]  count: claim at most this many (the caller's free slots); 0 only reports
-- ARGV[4]  max_deliveries: a job whose runs killed this many workers fails for good
-- ARGV[5]  sweep: check at most this many `running` jobs for a missing PEL entry
-- Returns  {owed, ...}: owed is 1 when jobs are up for reclaim that `count` left no room for
--          (the caller gives its next free slots to reclaim), then 6 values per job to run now
--          (as start.lua): job id, lease, attempt, kind, payload, timeout_ms
-- Events   reclaimed + started (a crashed run taken over), started (delivered but never
--          started), failed (poison job over max_deliveries)
-- Effects  Both PELs hold leases (ready's, and carry's for jobs taken from prio) and are read
--          alike. An entry is taken over once it has been idle longer than its *holder's*
--          lease_ttl, which each worker records in the `leases` hash (a worker with a short lease
--          must not take jobs from one with a long lease while they still beat). XCLAIM moves the
--          entries to this worker; each gets a fresh lease in the same script, so there is no
--          moment where the old owner's lease still matches. Entries without a live job are
--          acknowledged and deleted, a job whose hash holds garbage where a number belongs is
--          failed. Orphan sweep: a `running` job whose entry left the PEL is made runnable again.
--          Then the stream is trimmed below its oldest pending entry (every older entry is
--          acknowledged: outcome scripts only XACK). Housekeeping: consumers idle for 10 lease_ttl
--          with nothing pending are deleted (with their `leases` entry), and expired jobs leave the
--          terminal status indexes. stats.reclaimed / started / failed.

local worker, idle, count, max_deliveries = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local out = {0}
local paused = redis.call('EXISTS', K_PAUSED) == 1

local function crashed(jkey, jid, msg, job)
  local crashes = redis.call('HINCRBY', jkey, 'crashes', 1)
  redis.call('HINCRBY', K_STATS, 'reclaimed', 1)
  if crashes >= max_deliveries then
    local err = 'worker died ' .. crashes .. ' times while running this job (max_deliveries=' ..
      max_deliveries .. ')'
    ack(msg)
    fail_job(jkey, jid, 'running', now, hmget_named(jkey, FAILED_FIELDS), true,
      count_of(job.attempt, 0), err, 'fatal')
    return nil
  end
  emit(jid, 'reclaimed', count_of(job.attempt, 0), {'crashes', mp_uint(crashes)})
  return lease_job(jkey, jid, 'running', worker, msg, now, job)
end

-- Entries older than the oldest pending one were all delivered and acknowledged; with nothing
-- pending, so was every entry up to the group's last delivered one. An exact trim, so a drained
-- queue ends with an empty stream (once per tick, not per job).
local function trim_stream(stream, summary)
  local minid = summary[2]
  local last = not minid and last_delivered(stream)
  if last and last ~= '0-0' then
    local ms, seq = string.match(last, '(%d+)-(%d+)')
    minid = ms .. '-' .. (tonumber(seq) + 1)
  end
  if minid and minid ~= '0-0' then redis.call('XTRIM', stream, 'MINID', minid) end
end

-- Consumers of workers that died (a clean stop deletes its own) hold nothing once their
-- entries were claimed; drop them when long idle. A live worker that is dropped is recreated
-- by its next read. Its `leases` entry goes only when it is long idle in both streams.
local function drop_idle_consumers(streams, idle_ms)
  local idle, alive = {}, {}
  for _, stream in ipairs(streams) do
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, GROUP)) do
      local info = {}
      for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
      if info['pending'] == 0 and info['name'] ~= worker and info['idle'] > idle_ms then
        idle[#idle + 1] = {stream, info['name']}
      else
        alive[info['name']] = true
      end
    end
  end
  for _, c in ipairs(idle) do
    redis.call('XGROUP', 'DELCONSUMER', c[1], GROUP, c[2])
    if not alive[c[2]] then redis.call('HDEL', K_LEASES, c[2]) end
  end
end

-- Lease one claimed entry {msg, fields}: run it, fail it, or drop it; a row to run or nil.
local function take(entry)
  local msg, fields = entry[1], entry[2]
  local jid = fields and fields[1] == 'id' and fields[2] or nil
  local job = {}
  if jid then job = lease_fields(job_key(jid)) end
  local field, value = nil, nil
  if job.msg == msg then field, value = bad_field(job) end
  if field and (job.status == 'running' or job.status == 'pending') then
    fail_corrupt(job_key(jid), jid, job.status, msg, now, job, field, value)
  elseif job.msg == msg and job.status == 'running' then
    return crashed(job_key(jid), jid, msg, job)
  elseif job.msg == msg and job.status == 'pending' and paused then
    displace(job_key(jid), jid, msg, now)  -- delivered, never started: a paused queue starts nothing
  elseif job.msg == msg and job.status == 'pending' then
    redis.call('HINCRBY', K_STATS, 'started', 1)
    return lease_job(job_key(jid), jid, 'pending', worker, msg, now, job)
  else
    drop_entry(msg)
  end
  return nil
end

-- Each holder's entries of `stream` (its XPENDING summary) idle past that holder's own
-- lease_ttl, up to `budget` in all; one more is asked for to learn whether some are owed.
-- Returns the budget left.
local function claim(stream, summary, budget)
  local holders = type(summary[4]) == 'table' and summary[4] or {}
  for _, h in ipairs(holders) do
    local ttl = count_of(redis.call('HGET', K_LEASES, h[1]), nil) or tonumber(idle)
    local expired = redis.call('XPENDING', stream, GROUP, 'IDLE', ttl, '-', '+', budget + 1, h[1])
    local ids = {}
    for i = 1, math.min(#expired, budget) do ids[i] = expired[i][1] end
    if #expired > #ids then out[1] = 1 end
    if #ids > 0 then
      budget = budget - #ids
      for _, entry in ipairs(redis.call('XCLAIM', stream, GROUP, worker, ttl, unpack(ids))) do
        local row = take(entry)
        if row then append(out, row) end
      end
    end
    if budget <= 0 and out[1] == 1 then break end
  end
  return budget
end

-- The streams whose PEL hold leases: `ready`, and `carry` once start made it.
local streams, summaries = {K_READY}, {redis.call('XPENDING', K_READY, GROUP)}
local carried = redis.pcall('XPENDING', K_CARRY, GROUP)
if not carried.err then
  streams[2] = K_CARRY
  summaries[2] = carried
end
local budget = count
for i, stream in ipairs(streams) do budget = claim(stream, summaries[i], budget) end

-- Orphan sweep, a bounded window per call that walks the running index by start time.
local cursor = redis.call('HGET', K_STATS, 'sweep_cursor')
if cursor then cursor = '(' .. cursor else cursor = '-inf' end
local swept = redis.call('ZRANGEBYSCORE', status_key('running'), cursor, '+inf',
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[5]))
for i = 1, #swept, 2 do
  local jid = swept[i]
  local jkey = job_key(jid)
  local job = hmget_named(jkey, {'status', 'msg', 'attempt', 'priority', 'limit_key'})
  if job.status ~= 'running' then
    redis.call('ZREM', status_key('running'), jid)
  elseif not job.msg
    or #redis.call('XPENDING', stream_of(job.msg), GROUP, job.msg, job.msg, 1) == 0 then
    redis.call('HSET', jkey, 'attempt', math.max(count_of(job.attempt, 1) - 1, 0))
    key_left(job.limit_key, jid)
    push_ready(jkey, jid, job.priority, job.limit_key, now)
    move_status(jid, 'running', 'pending', now)
  end
end
if #swept < 2 * tonumber(ARGV[5]) then
  redis.call('HDEL', K_STATS, 'sweep_cursor')
else
  redis.call('HSET', K_STATS, 'sweep_cursor', swept[#swept])
end
-- after the claims: the summaries' oldest entries may have left the PELs since, which only
-- trims less this tick
for i, stream in ipairs(streams) do trim_stream(stream, summaries[i]) end
drop_idle_consumers(streams, 10 * tonumber(idle))
-- Finished jobs leave their status index when their hash expires (indexes are scored by it).
trim_final('completed', now)
trim_final('failed', now)
trim_final('cancelled', now)
return out
