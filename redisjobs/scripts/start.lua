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
--          worker before, by a call whose reply was lost); held back by a limit or hold
--          before it leased what it could, it starts with 'throttled' (the queue's own rate
--          or hold) or 'throttled_keys' (only its keys'), then the ms until one may pass
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
local KEY_LOOK = 16  -- keys a call looks at at most for one job (held, full or drained keys)
local TURN = 0.001  -- ms a served key moves behind its last turn (the keys due this ms tie)
local PAUSE_HOLD_MS = 1000  -- the wait a hold without expiry gives (it ends when deleted)
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
      displace(job_key(jid), jid, msg, now)
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
  local jobs, members = {}, {}
  for i = 1, #popped, 2 do
    members[#members + 1] = popped[i]
    local job = lease_fields(job_key(popped[i]))
    -- a member whose job is no longer pending and entry-less is stale: it was popped, so gone
    if job.status == 'pending' and not job.msg then jobs[#jobs + 1] = {popped[i], job} end
  end
  -- out of `prio` or its key's backlog, so out of the index of such jobs (index_unrouted)
  if #members > 0 then redis.call('ZREM', status_key('pending'), unpack(members)) end
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

-- Flow control: rate limits (GCRA on Redis's clock), holds, limit keys --------------------
-- A rate spec (a field of `limits`) is '<rate> <per_ms> <burst> <max_running>', 0 = none.
-- A limiter's TAT (see gcra_wait) is kept in tat:<field>, a string that expires by itself
-- once the TAT is past (a limiter at rest holds no key).
local wait = nil  -- the shortest wait (ms) a limit or hold imposed on this call
local queue_held = false  -- the queue's own rate or hold stopped it (not only its keys')
local limiters = {}  -- field -> {tat, T, tau, dirty}, written back once at the end
local specs = nil  -- HGETALL of `limits`, read once a call

local function held_back(ms)
  if not wait or ms < wait then wait = math.max(1, math.ceil(ms)) end
end

local function spec_of(field)
  local v = specs[field]
  if not v then return nil end
  local rate, per, burst, running = string.match(v, '^(%S+) (%S+) (%S+) (%S+)$')
  return {rate = real_of(rate, 0), per = real_of(per, 1000), burst = real_of(burst, 0),
    running = count_of(running, 0)}
end

-- The GCRA state of limit `field` (spec `sp`, with a rate), read once a call.
local function limiter(field, sp)
  local lim = limiters[field]
  if not lim then
    local T = sp.per / sp.rate
    local burst = sp.burst
    if burst < 1 then burst = math.max(1, math.floor(sp.rate)) end
    lim = {tat = real_of(redis.call('GET', tat_key(field)), 0), T = T, tau = (burst - 1) * T}
    limiters[field] = lim
  end
  return lim
end

-- ms until limit `field` (spec `sp`) lets one more job start: 0 when it does now.
local function token_wait(field, sp)
  if not sp or sp.rate <= 0 then return 0 end
  local lim = limiter(field, sp)
  return gcra_wait(lim.tat, now, lim.tau)
end

local function take(field, sp)
  if not sp or sp.rate <= 0 then return end
  local lim = limiter(field, sp)
  lim.tat = gcra_take(lim.tat, now, lim.T)
  lim.dirty = true
end

local function save_limiters()
  for field, lim in pairs(limiters) do
    if lim.dirty then
      local at = math.ceil(lim.tat)
      redis.call('SET', tat_key(field), string.format('%.3f', lim.tat), 'PXAT', at)
    end
  end
end

-- The spec of limit key `key`: its own (k:<key>), else its task's (k:<prefix>:*, the prefix
-- being the key up to its last ':'), else every key's (k:*); nil when none.
local function key_spec(key)
  local field = 'k:' .. key
  if specs[field] then return field, spec_of(field) end
  local prefix = string.match(key, '^(.+):[^:]*$')
  if prefix and specs['k:' .. prefix .. ':*'] then return field, spec_of('k:' .. prefix .. ':*') end
  if specs['k:*'] then return field, spec_of('k:*') end
  return field, nil
end

local function hold_wait(key)
  local left = redis.call('PTTL', key)
  if left == -1 then return PAUSE_HOLD_MS end  -- a hold without expiry: look again later
  return math.max(0, left)
end

-- The score of a key served now: behind every key due now, even those whose turn came this
-- same ms (ties would go by name), so keys take turns and a key waits at most one job of
-- each other key due before it. The last turn is looked up once a call.
local last_turn = nil
local function next_turn()
  if not last_turn then
    local tail = redis.call('ZREVRANGEBYSCORE', K_KEYS, now + 1, '-inf', 'WITHSCORES',
      'LIMIT', 0, 1)
    last_turn = tail[2] and tonumber(tail[2]) or now
  end
  last_turn = math.max(now, last_turn + TURN)
  return last_turn
end

-- Serve limit key `key`, due now: lease its next job unless its hold, max_running or
-- rate stops it (then it is rescheduled, or leaves `keys` at max_running or without backlog).
local function serve_key(key)
  local field, sp = key_spec(key)
  local stop = hold_wait(key_hold_key(key))
  if stop == 0 then stop = token_wait(field, sp) end
  if stop > 0 then
    held_back(stop)
    redis.call('ZADD', K_KEYS, 'XX', now + stop, key)
    return
  end
  local active = key_active_key(key)
  if sp and sp.running > 0 and redis.call('SCARD', active) >= sp.running then
    redis.call('ZREM', K_KEYS, key)  -- back with key_left when one of its jobs ends
    return
  end
  local before = started
  lease_prio(redis.call('ZPOPMIN', key_jobs_key(key), 1))
  if started > before then
    redis.call('SADD', active, out[#out - 5])
    take(field, sp)
  end
  if redis.call('EXISTS', key_jobs_key(key)) == 0 then
    redis.call('ZREM', K_KEYS, key)
  else
    redis.call('ZADD', K_KEYS, 'XX', string.format('%.4f', next_turn()), key)
  end
end

-- Lease one job of the key due first; false when no key due now had one (a key due later
-- makes the call wait for it) or KEY_LOOK keys were looked at in vain.
local function lease_keyed()
  for _ = 1, KEY_LOOK do
    local head = redis.call('ZRANGE', K_KEYS, 0, 0, 'WITHSCORES')
    if not head[1] then return false end
    local due = tonumber(head[2])
    if due >= now + 1 then  -- (next_turn's scores run a fraction of a ms ahead of now)
      held_back(due - now)
      return false
    end
    local before = started
    serve_key(head[1])
    if started > before then return true end
  end
  return false
end

-- Lease one job without a limit key: `prio` up to the default priority, then `ready`, then
-- the rest of `prio`; false when there is none.
local function lease_plain()
  local before = started
  local want = started + 1
  if redis.call('ZCOUNT', K_PRIO, '-inf', '(' .. PRIO_BAND_END) > 0 then
    lease_prio(redis.call('ZPOPMIN', K_PRIO, 1))
  end
  if started < want and lease_ready(want) and started < want then
    lease_prio(redis.call('ZPOPMIN', K_PRIO, 1))
  end
  return started > before
end

-- Lease up to `want` jobs one at a time, under the queue's hold and rate limit, alternating
-- between the keys' rotation and the jobs without a key (the call's first turn alternates
-- from call to call), so neither starves the other; either fills in when the other has none.
local function lease_limited(want)
  local q = spec_of('q')
  local keyed_turn = redis.call('HINCRBY', K_STATS, 'turn', 1) % 2 == 0
  local keyed_dry, plain_dry = false, false
  while started < want and not (keyed_dry and plain_dry) do
    local stop = hold_wait(K_HOLD)
    if stop == 0 then stop = token_wait('q', q) end
    if stop > 0 then
      held_back(stop)
      queue_held = true
      break
    end
    local got
    if (keyed_turn and not keyed_dry) or plain_dry then
      got = lease_keyed()
      keyed_dry = not got
    else
      got = lease_plain()
      plain_dry = not got
    end
    if got then take('q', q) end
    keyed_turn = not keyed_turn
  end
  save_limiters()
end

-- Read the queue's flow settings into `specs`; whether any is a rate spec (a queue with only
-- max_pending, which enqueue enforces, leases as a queue without settings does).
local function read_specs()
  specs = {}
  local all = redis.call('HGETALL', K_LIMITS)
  local any = false
  for i = 1, #all, 2 do
    specs[all[i]] = all[i + 1]
    any = any or all[i] ~= 'max_pending'
  end
  return any
end

-- Lease the given entries' jobs, and up to `count` more of new `ready` entries.
local function lease_plainly(entries)
  if count > 0 then read_ready(count, entries) end
  for _, e in ipairs(entries) do settle(e, false) end
end

-- The queue has jobs in `prio` or of limit keys, flow settings, a hold, or is paused (see the
-- header). Only a queue whose sole setting is max_pending (enqueue's business) leases plainly.
local function slow_path(entries)
  local rated = read_specs()
  local other = redis.call('EXISTS', K_PRIO, K_PAUSED, K_KEYS, K_HOLD)
  if not rated and other == 0 then return lease_plainly(entries) end
  for _, e in ipairs(entries) do settle(e, true) end
  if redis.call('EXISTS', K_PAUSED) == 1 then
    table.insert(out, 1, 'paused')
    return
  end
  local want = math.max(count, #entries - resent)
  if want <= 0 then return end
  if not rated and redis.call('EXISTS', K_KEYS, K_HOLD) == 0 then
    local urgent = redis.call('ZCOUNT', K_PRIO, '-inf', '(' .. PRIO_BAND_END)
    if urgent > 0 then lease_prio(redis.call('ZPOPMIN', K_PRIO, math.min(urgent, want))) end
    if started < want and lease_ready(want) and started < want then
      lease_prio(redis.call('ZPOPMIN', K_PRIO, want - started))
    end
    return
  end
  lease_limited(want)
  if wait and started < want then
    redis.call('HINCRBY', K_STATS, 'throttled', 1)
    table.insert(out, 1, wait)
    -- held by its keys only, new work of another key may start at once: the worker waits for
    -- new entries too; held by the queue, nothing can, and it only sleeps
    table.insert(out, 1, queue_held and 'throttled' or 'throttled_keys')
  end
end

-- The batch's moves to running go in one ZADD (gather_indexes), and its leases are counted,
-- also when a job of it raises (gathering).
gather_indexes()
gathering(function()
  local entries = {}
  for i = 3, #ARGV, 2 do entries[#entries + 1] = {ARGV[i], ARGV[i + 1]} end
  if redis.call('EXISTS', K_PRIO, K_PAUSED, K_LIMITS, K_KEYS, K_HOLD) > 0 then
    slow_path(entries)
  else
    lease_plainly(entries)
  end
end, function()
  flush_indexes()
  if started > 0 then redis.call('HINCRBY', K_STATS, 'started', started) end
end)
return out
