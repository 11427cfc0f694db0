-- start: lease the jobs of stream entries this worker read, or reads now, and of `prio`.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  worker id (the consumer name)
-- ARGV[2]  count: when > 0, first read up to this many new entries with XREADGROUP (no BLOCK),
--          so a busy worker fetches and leases in one round trip
-- ARGV[3+] pairs: stream entry id, job id ('' when the entry had no id field), read earlier
--          by a blocking XREADGROUP
-- Returns  flat list, 6 values per job to run: job id, lease, attempt, kind, payload, timeout_ms;
--          on a paused queue the list starts with 'paused' (then only jobs leased to this
--          worker before, by a call whose reply was lost)
-- Events   started
-- Effects  status running, attempt+1, a fresh lease (fencing token = delivery count),
--          started_at, worker, msg; stats.started; the unique lock of an until_start or
--          while_queued job is released (lease_job). Entries without a live pending job
--          (garbage, vanished hash, cancelled meanwhile, the wake-up entries of `prio`) are
--          acknowledged and deleted. A job whose hash holds garbage where a number belongs is
--          failed (event failed). Re-sent after a lost reply, a job already running under this
--          worker and entry is returned again with its existing lease rather than leased twice.
--          While `prio` or `paused` exists (one EXISTS a call tells), the given entries of
--          pending jobs move into `prio` at the default priority; paused, nothing is leased;
--          else up to max(count, #entries) jobs are leased: `prio` members up to the default
--          priority, then new `ready` entries, then the rest of `prio` once `ready` ran dry.
--          A job taken from `prio` is leased under an entry of `carry` (id '0-<n>') that this
--          call adds and reads, so that its lease is a PEL entry like any other.

local worker, count = ARGV[1], tonumber(ARGV[2])
local TOKEN_SKIP = 128  -- wake-up entries a call drops at most while it looks for jobs
local now = now_ms()
local out = {}
local started = 0  -- jobs leased by this call
local resent = 0  -- jobs leased to this worker before, returned again

-- Read up to `n` new entries of `ready` into `into` as {msg, job id}; returns how many.
local function read_ready(n, into)
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, worker, 'COUNT', n,
    'STREAMS', K_READY, '>')
  if not (reply and reply[1]) then return 0 end
  -- {{stream, entries}}; fakeredis answers {stream, entries}
  local read
  if type(reply[1]) == 'string' then read = reply[2] else read = reply[1][2] end
  for _, e in ipairs(read) do
    local fields = e[2]
    into[#into + 1] = {e[1], fields and fields[1] == 'id' and fields[2] or ''}
  end
  return #read
end

-- Settle one entry {msg, job id}: lease its pending job (or, with `hold`, move it into
-- `prio`), return a job already leased to this worker under it, or drop the entry.
local function settle(e, hold)
  local msg, jid = e[1], e[2]
  local job = {}
  if jid ~= '' then job = lease_fields(job_key(jid)) end
  if job.status == 'pending' and job.msg == msg then
    if hold then
      displace(job_key(jid), jid, msg)
      return
    end
    local row = lease_checked(job_key(jid), jid, 'pending', worker, msg, now, job)
    if row then
      append(out, row)
      started = started + 1
    end
  elseif job.status == 'running' and job.msg == msg and job.worker == worker then
    append(out, delivery(jid, job.lease, job.attempt, job))
    resent = resent + 1
  elseif job.msg ~= msg or job.status ~= 'running' then
    drop_entry(msg)
  end
end

-- Lease the jobs of `prio` members popped off (ZPOPMIN reply: member, score, ...) under fresh
-- `carry` entries: added here and read at once, so every `carry` entry is delivered by the
-- call that adds it and the group's next undelivered entry is always the first one added.
local function lease_prio(popped)
  local jobs = {}
  for i = 1, #popped, 2 do
    local job = lease_fields(job_key(popped[i]))
    -- a member whose job is no longer pending and entry-less is stale: it was popped, so gone
    if job.status == 'pending' and not job.msg then jobs[#jobs + 1] = {popped[i], job} end
  end
  if #jobs == 0 then return end
  redis.pcall('XGROUP', 'CREATE', K_CARRY, GROUP, '$', 'MKSTREAM')  -- BUSYGROUP once made
  local msgs = {}
  for i, j in ipairs(jobs) do msgs[i] = redis.call('XADD', K_CARRY, '0-*', 'id', j[1]) end
  redis.call('XREADGROUP', 'GROUP', GROUP, worker, 'COUNT', #jobs, 'STREAMS', K_CARRY, '>')
  for i, j in ipairs(jobs) do
    local row = lease_checked(job_key(j[1]), j[1], 'pending', worker, msgs[i], now, j[2])
    if row then
      append(out, row)
      started = started + 1
    end
  end
end

-- Lease up to `want` jobs of new `ready` entries, skipping wake-up entries; returns whether
-- the stream ran dry (only then may jobs behind the default priority go first).
local function lease_ready(want)
  local skipped = 0
  while started < want and skipped < TOKEN_SKIP do
    local asked, before, batch = want - started, started, {}
    local got = read_ready(asked, batch)
    for _, e in ipairs(batch) do settle(e, false) end
    if got < asked then return true end
    skipped = skipped + asked - (started - before)
  end
  return false
end

-- The queue has jobs in `prio`, or is paused (see the header).
local function slow_path(entries)
  for _, e in ipairs(entries) do settle(e, true) end
  if redis.call('EXISTS', K_PAUSED) == 1 then
    table.insert(out, 1, 'paused')
    return
  end
  local want = math.max(count, #entries - resent)
  local urgent = redis.call('ZCOUNT', K_PRIO, '-inf', '(' .. PRIO_BAND_END)
  if urgent > 0 and want > 0 then
    lease_prio(redis.call('ZPOPMIN', K_PRIO, math.min(urgent, want)))
  end
  if started < want and lease_ready(want) and started < want then
    lease_prio(redis.call('ZPOPMIN', K_PRIO, want - started))
  end
end

local entries = {}
for i = 3, #ARGV, 2 do entries[#entries + 1] = {ARGV[i], ARGV[i + 1]} end
if redis.call('EXISTS', K_PRIO, K_PAUSED) > 0 then
  slow_path(entries)
else
  if count > 0 then read_ready(count, entries) end
  for _, e in ipairs(entries) do settle(e, false) end
end
if started > 0 then redis.call('HINCRBY', K_STATS, 'started', started) end
return out
