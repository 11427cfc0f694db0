-- _lib.lua: local helpers prepended to every script by the loader (never run on its own).
--
-- KEYS[1] of every script is the queue prefix 'rj:{Q}:'; every key below is built from it, so
-- each script touches one cluster slot. Time comes only from Redis (TIME). Lua here has no
-- cmsgpack (fakeredis), so events are assembled as msgpack by the small encoder below, and
-- values that Python already encoded (results, progress floats) are spliced in raw.

local PREFIX = KEYS[1]
local QUEUE = string.match(PREFIX, '{(.-)}')
local GROUP = 'workers'
local K_READY = PREFIX .. 'ready'
local K_DELAYED = PREFIX .. 'delayed'
local K_DEAD = PREFIX .. 'dead'
local K_STATS = PREFIX .. 'stats'
local K_CONTROL = PREFIX .. 'control'
local K_LOG = PREFIX .. 'log'
local K_LEASES = PREFIX .. 'leases'
local K_PRIO = PREFIX .. 'prio'
local LOG_MAXLEN = 10000

local function job_key(jid) return PREFIX .. 'job:' .. jid end
local function job_log_key(jid) return PREFIX .. 'job:' .. jid .. ':log' end
local function job_events_key(jid) return PREFIX .. 'job:' .. jid .. ':events' end
local function status_key(s) return PREFIX .. 'status:' .. s end
local function job_trace_key(jid) return PREFIX .. 'job:' .. jid .. ':trace' end

-- The fields `names` of hash `key`, read in one HMGET, as a table keyed by field name (a
-- missing field is false, as Redis's nil reaches Lua; a missing key gives all false).
local function hmget_named(key, names)
  local values = redis.call('HMGET', key, unpack(names))
  local out = {}
  for i = 1, #names do out[names[i]] = values[i] end
  return out
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- msgpack encoding of the few shapes events need -------------------------------------------
local function be16(n) return string.char(math.floor(n / 256) % 256, n % 256) end
local function be32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

local function mp_str(s)
  local n = #s
  if n < 32 then return string.char(0xa0 + n) .. s end
  if n < 256 then return '\217' .. string.char(n) .. s end
  if n < 65536 then return '\218' .. be16(n) .. s end
  return '\219' .. be32(n) .. s
end

-- non-negative integers only (attempts, counts, ms timestamps below 2^53)
local function mp_uint(n)
  if n < 128 then return string.char(n) end
  if n < 4294967296 then return '\206' .. be32(n) end
  return '\207' .. be32(math.floor(n / 4294967296)) .. be32(n % 4294967296)
end

local Q_MP = mp_str(QUEUE)

-- An event is {type, queue, job_id, attempt, ts, ...extra}; `extra` is a flat list of
-- name, already-encoded value. It goes to the job channel (queue followers PSUBSCRIBE to the
-- job channels' pattern, so one PUBLISH serves both) and to the log.
local function emit(jid, etype, attempt, now, extra)
  local parts = {'\164type', mp_str(etype), '\165queue', Q_MP, '\166job_id', mp_str(jid),
    '\167attempt', mp_uint(attempt), '\162ts', mp_uint(now)}
  local n = 5
  if extra then
    for i = 1, #extra, 2 do
      parts[#parts + 1] = mp_str(extra[i])
      parts[#parts + 1] = extra[i + 1]
      n = n + 1
    end
  end
  local msg = string.char(0x80 + n) .. table.concat(parts)
  redis.call('PUBLISH', job_events_key(jid), msg)
  redis.call('XADD', K_LOG, 'MAXLEN', '~', LOG_MAXLEN, '*', 'e', msg)
end

local function move_status(jid, from, to, score)
  if from then redis.call('ZREM', status_key(from), jid) end
  redis.call('ZADD', status_key(to), score, jid)
end

-- Acknowledge a finished delivery. The entry itself stays in the stream until `reclaim` trims
-- the stream below its oldest pending entry: a per-job XDEL costs more than the rest of the
-- outcome script, and trimming drops whole stream nodes at once.
local function ack(msg)
  if msg then redis.call('XACK', K_READY, GROUP, msg) end
end

-- Drop an entry that must never be delivered (again): acknowledged and deleted now.
local function drop_entry(msg)
  if msg and msg ~= '' then
    redis.call('XACK', K_READY, GROUP, msg)
    redis.call('XDEL', K_READY, msg)
  end
end

-- Make a job runnable: a fresh stream entry whose id the job remembers.
local function push_ready(jkey, jid)
  local msg = redis.call('XADD', K_READY, '*', 'id', jid)
  redis.call('HSET', jkey, 'status', 'pending', 'msg', msg)
  return msg
end

-- A dead letter (a job failed for good) is kept at least this long (30 days), whatever its
-- result_ttl says: a failure is looked into later than a success is read.
local DEAD_TTL_MS = 2592000000

-- A job reaches a final status. Its hash and log expire after result_ttl (a dead letter after
-- DEAD_TTL_MS at least); the status index (and `dead`) are scored by that expiry, so
-- trim_final trims them as the hashes go.
-- `...` are more fields to set, name, value, ... (the result or the error).
local function finish(jkey, jid, from, to, now, ttl, cancel_flag, dead, ...)
  if dead then ttl = math.max(ttl, DEAD_TTL_MS) end
  redis.call('HSET', jkey, 'status', to, 'completed_at', now, ...)
  if cancel_flag then redis.call('HDEL', jkey, 'cancel') end
  redis.call('PEXPIRE', jkey, ttl)
  redis.call('PEXPIRE', job_log_key(jid), ttl)
  local expires = now + ttl
  move_status(jid, from, to, expires)
  if dead then redis.call('ZADD', K_DEAD, expires, jid) end
end

-- Deleting jobs (remove, purge, drain, obliterate) ----------------------------------------

local FINAL = {completed = true, failed = true, cancelled = true}

-- Append the keys of job `jid` (its hash, log and trace context) to list `keys`: the scripts
-- that delete many jobs delete their keys in one DEL.
local function add_job_keys(keys, jid)
  keys[#keys + 1] = job_key(jid)
  keys[#keys + 1] = job_log_key(jid)
  keys[#keys + 1] = job_trace_key(jid)
end

-- Delete a job of final status `status` now: its keys, its status index entry, its dead letter.
local function delete_final(jid, status)
  redis.call('DEL', job_key(jid), job_log_key(jid), job_trace_key(jid))
  redis.call('ZREM', status_key(status), jid)
  if status == 'failed' then redis.call('ZREM', K_DEAD, jid) end
end

-- At most this many expired entries leave an index per call: jobs finished together (a bulk
-- run with one result_ttl) expire together, and removing 100,000 at once blocks Redis for
-- 10-15 ms. Removing 1,000 by rank takes about 0.2 ms, and every outcome script and reclaim
-- tick trims again, so a busy queue trims faster than it finishes jobs.
local TRIM_BATCH = 1000

-- Expired entries are the lowest-scored ones: count them (one O(log n) lookup, all it costs
-- when none expired) and remove the first of them by rank.
local function trim_expired(key, now)
  local n = redis.call('ZCOUNT', key, '-inf', now)
  if n > 0 then redis.call('ZREMRANGEBYRANK', key, 0, math.min(n, TRIM_BATCH) - 1) end
end

local function trim_final(status, now)
  trim_expired(status_key(status), now)
  if status == 'failed' then trim_expired(K_DEAD, now) end
end

-- A run fails for good: the job is failed with error `err` and reason `why` (its `failure`:
-- 'timeout' | 'error' | 'fatal'), kept in `dead`, announced and counted.
local function fail_job(jkey, jid, from, now, ttl, cancel_flag, attempt, err, why)
  finish(jkey, jid, from, 'failed', now, ttl, cancel_flag, true, 'error', err, 'failure', why)
  trim_final('failed', now)
  emit(jid, 'failed', attempt, now, {'error', mp_str(err), 'failure', mp_str(why)})
  redis.call('HINCRBY', K_STATS, 'failed', 1)
end

-- The job fields a delivery needs, read in one HMGET by start and reclaim; then the other
-- numbers the job's transitions compute with, checked before it is leased (bad_field).
-- The fields a lease needs, by name, in one HMGET. Spelled out as a table constructor, which
-- sizes the table once: this runs for every job a worker starts.
local function lease_fields(jkey)
  local v = redis.call('HMGET', jkey, 'status', 'msg', 'worker', 'lease', 'attempt', 'kind',
    'payload', 'timeout', 'crashes', 'max_retries', 'retry_delay', 'result_ttl', 'retry_backoff',
    'retry_jitter')
  return {status = v[1], msg = v[2], worker = v[3], lease = v[4], attempt = v[5], kind = v[6],
    payload = v[7], timeout = v[8], crashes = v[9], max_retries = v[10], retry_delay = v[11],
    result_ttl = v[12], retry_backoff = v[13], retry_jitter = v[14]}
end
-- {field, required}: fields holding a non-negative integer
local COUNT_FIELDS = {{'lease', false}, {'attempt', true}, {'timeout', false}, {'crashes', false},
  {'max_retries', true}, {'retry_delay', true}, {'result_ttl', true}}
local REAL_FIELDS = {'retry_backoff', 'retry_jitter'}
local DEFAULT_TTL_MS = 86400000

-- A field that should hold a non-negative integer, as a number; `default` when it does not.
local function count_of(v, default)
  if v and #v <= 15 and string.find(v, '^%d+$') then return tonumber(v) end
  return default
end

-- A field that should hold a finite number, as a number; `default` when it does not.
local function real_of(v, default)
  local n = tonumber(v)
  if n and n == n and n > -math.huge and n < math.huge then return n end
  return default
end

-- Something other than these scripts may have written a job hash (a bug, a migration, someone
-- with redis-cli). Garbage in a field the scripts compute with would make every script that
-- reads the job fail, and a batch with it, so such a job is failed when it is leased, with an
-- error naming the field (fail_corrupt). `job` holds lease_fields(); nil when all is well.
local function bad_field(job)
  for _, c in ipairs(COUNT_FIELDS) do
    local v = job[c[1]]
    if (v or c[2]) and not count_of(v, nil) then return c[1], v end
  end
  for _, name in ipairs(REAL_FIELDS) do
    if not real_of(job[name], nil) then return name, job[name] end
  end
  return nil
end

-- A delivery as start and reclaim return it: job id, lease, attempt, kind, payload, timeout_ms
-- (the fields of Python's Delivery, in its order).
local function delivery(jid, lease, attempt, job)
  return {jid, lease, attempt, job.kind or '', job.payload or '', job.timeout or '0'}
end

-- Append the values of list `row` to list `out` (the flat reply of start and reclaim).
local function append(out, row)
  for i = 1, #row do out[#out + 1] = row[i] end
end

-- Hand a delivered job to the caller under a fresh fencing token (shared by start and reclaim).
-- The token is the job's delivery count, so it only grows. `job` holds lease_fields().
-- Returns its delivery.
local function lease_job(jkey, jid, from, worker, msg, now, job)
  local lease = tonumber(job.lease or 0) + 1
  local attempt = tonumber(job.attempt) + 1
  redis.call('HSET', jkey, 'status', 'running', 'started_at', now, 'worker', worker,
    'lease', lease, 'attempt', attempt, 'msg', msg)
  move_status(jid, from, 'running', now)
  emit(jid, 'started', attempt, now, {'worker', mp_str(worker)})
  return delivery(jid, lease, attempt, job)
end

-- Fail a delivered job whose hash holds garbage (see bad_field) instead of leasing it.
local function fail_corrupt(jkey, jid, from, msg, now, job, field, value)
  local shown = 'missing'
  if value then shown = "'" .. string.gsub(string.sub(value, 1, 40), '[^%w%p ]', '?') .. "'" end
  local err = 'corrupt job hash: field ' .. field .. ' is ' .. shown .. ', not a number'
  ack(msg)
  fail_job(jkey, jid, from, now, count_of(job.result_ttl, DEFAULT_TTL_MS), true,
    count_of(job.attempt, 0), err, 'fatal')
end

-- lease_job for a job whose fields were not checked yet: nil when it was failed as corrupt.
local function lease_checked(jkey, jid, from, worker, msg, now, job)
  local field, value = bad_field(job)
  if field then
    fail_corrupt(jkey, jid, from, msg, now, job, field, value)
    return nil
  end
  return lease_job(jkey, jid, from, worker, msg, now, job)
end

-- ------------------------------------------------------------------------------------------

-- Job creation, shared by enqueue and the scripts that enqueue on a schedule ----------------

-- Values per job of an enqueue row (the fields of Python's EnqueueRow, redisjobs/wire.py).
local STRIDE = 12
local MAX_PRIORITY = 2097152

-- Why the enqueue rows in `args[from..]` cannot be written, or nil when they all can: the
-- values must be STRIDE per job, every id must keep the job id rule of keys.py (enforced here
-- too for producers that call the scripts without the Python client), every priority must be
-- an integer 0..MAX_PRIORITY. Checked before anything is written.
local function check_rows(args, from)
  if (#args - from + 1) % STRIDE ~= 0 then
    return 'enqueue takes ' .. STRIDE .. ' values per job, got ' .. (#args - from + 1)
  end
  for i = from, #args, STRIDE do
    local job_id, priority = args[i], args[i + STRIDE - 1]  -- a row's first and last values
    if #job_id > 200 or not string.find(job_id, '^[%w_@+=][%w_@+=%.%-]*$') then
      return 'invalid job id: a job id is 1-200 characters of ' ..
        'A-Z a-z 0-9 _ - . @ + =, not starting with - or .'
    end
    priority = count_of(priority, nil)
    if not priority or priority > MAX_PRIORITY then
      return 'invalid priority: a priority is an integer 0..' .. MAX_PRIORITY
    end
  end
  return nil
end

-- Create the job of the row at `args[i..]` (checked by the caller) unless a job with its id
-- exists. Returns created (bool) and, for a job scheduled for later, its due time (ms).
local function create_job(now, args, i)
  local job_id, kind, payload, max_retries, retry_delay_ms, retry_backoff, retry_jitter,
    timeout_ms, result_ttl_ms, delay_ms, at_ms, priority = unpack(args, i, i + STRIDE - 1)
  local jkey = job_key(job_id)
  if redis.call('EXISTS', jkey) == 1 then return false, nil end
  local at = tonumber(at_ms)
  local due = now + tonumber(delay_ms)
  if at > 0 then due = at end
  local status, extra, value = 'pending', 'msg', nil
  if due > now then
    status, extra, value = 'scheduled', 'scheduled_at', due
    redis.call('ZADD', K_DELAYED, due, job_id)
  else
    value = redis.call('XADD', K_READY, '*', 'id', job_id)
    due = nil
  end
  local fields = {'kind', kind, 'payload', payload, 'attempt', 0, 'max_retries', max_retries,
    'retry_delay', retry_delay_ms, 'retry_backoff', retry_backoff, 'retry_jitter', retry_jitter,
    'timeout', timeout_ms, 'result_ttl', result_ttl_ms, 'created_at', now, 'crashes', 0,
    'status', status, extra, value}
  if tonumber(priority) > 0 then  -- a job without a priority has no field for it
    fields[#fields + 1] = 'priority'
    fields[#fields + 1] = tonumber(priority)
  end
  redis.call('HSET', jkey, unpack(fields))
  move_status(job_id, nil, status, now)
  emit(job_id, 'enqueued', 0, now, {'kind', mp_str(kind)})
  return true, due
end

-- Schedules (see schedule.lua and fire.lua) ---------------------------------------------------

-- A schedule's spec is msgpack the Client encoded (never decoded here); its next due time is
-- its score in K_SCHEDULE_DUE; the numbers the scripts work with are plain fields of its state
-- hash: rev (bumped by every change, the fire token), runs, limit (0: none), last_run, last_job.
local K_SCHEDULES = PREFIX .. 'schedules'
local K_SCHEDULE_DUE = PREFIX .. 'schedule:due'
local function schedule_state_key(sid) return PREFIX .. 'schedule:' .. sid .. ':state' end

-- Put a schedule due at `due` (ms), or take it out of K_SCHEDULE_DUE for good (finished: no
-- tick left, due < 0, or its limit of runs reached). Returns whether it is still due.
local function set_schedule_due(sid, due, runs, limit)
  if due < 0 or (limit > 0 and runs >= limit) then
    redis.call('ZREM', K_SCHEDULE_DUE, sid)
    return false
  end
  redis.call('ZADD', K_SCHEDULE_DUE, due, sid)
  return true
end
