-- _lib.lua: the helpers every transition shares, at the head of the function library
-- (redisjobs/scripts/library.py), which makes each ``<name>.lua`` a function of it.
--
-- The first key of every call is the queue prefix 'rj:{Q}:'; every key below is built from it,
-- so each call touches one cluster slot. Time comes only from Redis (TIME). Lua here has no
-- cmsgpack (fakeredis), so events are assembled as msgpack by the small encoder below, and
-- values that Python already encoded (results, progress floats) are spliced in raw.

-- Redis runs a library's functions with an empty table of globals whose metatable leads to
-- the real ones, so each read of a global is two table lookups and a metamethod; a call
-- reads some (redis.call, string.*, tonumber) dozens of times a job. These upvalues hold
-- them instead, filled by `enter` on the first call: while FUNCTION LOAD runs the library,
-- only its registration API is visible, which is all the registrations at its end use.
local register_function = redis.register_function
local redis, string, math, table, tonumber, tostring, unpack, ipairs, pairs, next, type,
  error, pcall, select

-- The queue of the call being run, and its keys. The library is loaded once (FUNCTION LOAD)
-- and its functions serve every queue, so these are set afresh as each call begins (`enter`,
-- at the end of this file), never carried from one call's queue to the next.
local PREFIX, QUEUE, K_READY, K_DELAYED, K_DEAD, K_STATS, K_CONTROL, K_LOG, K_LEASES, K_PRIO,
  K_CARRY, K_PAUSED, K_LIMITS, K_HOLD, K_KEYS, K_HANDOVER, K_SCHEDULES, K_SCHEDULE_DUE
local GROUP = 'workers'
-- How the control channel is published to: on a Redis Cluster the library is loaded with
-- SPUBLISH here (library.py), so that a message goes to its slot's shard, not to every node.
local PUBLISH = 'PUBLISH'
local LOG_MAXLEN = '10000'  -- text: see num

local function job_key(jid) return PREFIX .. 'job:' .. jid end
local function job_log_key(jid) return PREFIX .. 'job:' .. jid .. ':log' end
local function status_key(s) return PREFIX .. 'status:' .. s end
local function job_trace_key(jid) return PREFIX .. 'job:' .. jid .. ':trace' end
local function unique_lock_key(key) return PREFIX .. 'unique:' .. key end
local function idem_key(jid) return PREFIX .. 'idem:' .. jid end
local function key_hold_key(key) return K_HOLD .. ':' .. key end
local function key_jobs_key(key) return PREFIX .. 'kq:' .. key end
local function key_active_key(key) return PREFIX .. 'active:' .. key end
local function tat_key(field) return PREFIX .. 'tat:' .. field end
local function job_deps_key(jid) return PREFIX .. 'job:' .. jid .. ':deps' end
local function job_results_key(jid) return PREFIX .. 'job:' .. jid .. ':results' end
local function job_dependents_key(jid) return PREFIX .. 'job:' .. jid .. ':dependents' end

-- The fields `names` of hash `key`, read in one HMGET, as a table keyed by field name (a
-- missing field is false, as Redis's nil reaches Lua; a missing key gives all false).
local function hmget_named(key, names)
  local values = redis.call('HMGET', key, unpack(names))
  local out = {}
  for i = 1, #names do out[names[i]] = values[i] end
  return out
end

-- Redis turns each number a script passes to redis.call into text with snprintf('%.17g'),
-- which costs more than a small command's own work (a ms timestamp takes the slow path of
-- float printing). The numbers a batch passes per job are mostly the same few (its `now`,
-- expiry times, attempt 1), so each is printed once a call, here, into that same text.
local nums = {}  -- number -> its text, this call's (emptied by `enter`)
local function num(n)
  local s = nums[n]
  if not s then
    s = string.format('%.17g', n)
    if n == n then nums[n] = s end  -- (NaN is no table key; the command will refuse it)
  end
  return s
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

-- The msgpack header of a string of `n` bytes.
local function mp_str_head(n)
  if n < 32 then return string.char(0xa0 + n) end
  if n < 256 then return '\217' .. string.char(n) end
  if n < 65536 then return '\218' .. be16(n) end
  return '\219' .. be32(n)
end

local function mp_str(s) return mp_str_head(#s) .. s end

-- non-negative integers only (attempts, counts, ms timestamps below 2^53)
local function mp_uint(n)
  if n < 128 then return string.char(n) end
  if n < 4294967296 then return '\206' .. be32(n) end
  return '\207' .. be32(math.floor(n / 4294967296)) .. be32(n % 4294967296)
end

-- What the events share, encoded once: the start of each event type's events (type, the name
-- job_id) and the names of extra fields. A script emits an event per job of its batch, and
-- building these once (and the rest in one concatenation) saves most of an event's string work.
local event_heads, event_names = {}, {}

-- An event is {type, job_id, [attempt], ...extra}; `extra` is a flat list of name,
-- already-encoded value. What the log entry says already is left out: the queue (the log's
-- own), the time (the entry id's) and attempt 0 (docs/wire-format.md, "Events"). It is written
-- once, to the log: followers read the log (XREAD), so one write serves a job's waiters, a
-- queue's followers and a later replay alike.
local function emit(jid, etype, attempt, extra)
  local head = event_heads[etype]
  if not head then
    head = '\164type' .. mp_str(etype) .. '\166job_id'
    event_heads[etype] = head
  end
  local n, tail = 2, ''
  if attempt > 0 then
    n, tail = 3, '\167attempt' .. mp_uint(attempt)
  end
  if extra then
    local parts = {tail}
    for i = 1, #extra, 2 do
      local name = event_names[extra[i]]
      if not name then
        name = mp_str(extra[i])
        event_names[extra[i]] = name
      end
      parts[#parts + 1] = name
      parts[#parts + 1] = extra[i + 1]
      n = n + 1
    end
    tail = table.concat(parts)
  end
  redis.call('XADD', K_LOG, 'MAXLEN', '~', LOG_MAXLEN, '*', 'e',
    string.char(0x80 + n) .. head .. mp_str_head(#jid) .. jid .. tail)
end

-- Status index writes gathered over a call, nil while they go at once (see gather_indexes):
-- index key -> {members in first-write order, member -> score (false: removed)}, and the
-- index keys in first-write order.
local gathered, gathered_keys = nil, nil

-- From now on the calling script's status index writes (move_status) are gathered, the last
-- write of a member winning, and flush_indexes sends them as one ZADD and one ZREM per index.
-- start and complete move whole batches of jobs, and one ZADD of n members costs Redis a
-- fraction of n ZADDs: most of a small command's cost is the glue of its redis.call. A
-- script that gathers flushes before it reads an index (trim_expired, trim_kept do) and
-- before it returns.
local function gather_indexes()
  gathered, gathered_keys = {}, {}
end

-- Write member `jid` of index `key` with `score`, or remove it (score false).
local function index_write(key, score, jid)
  if not gathered then
    if score then redis.call('ZADD', key, score, jid) else redis.call('ZREM', key, jid) end
    return
  end
  local per = gathered[key]
  if not per then
    per = {order = {}, score = {}}
    gathered[key] = per
    gathered_keys[#gathered_keys + 1] = key
  end
  if per.score[jid] == nil then per.order[#per.order + 1] = jid end
  per.score[jid] = score
end

-- Lua's unpack takes a few thousand values at most: longer lists go in chunks of this many.
local UNPACK_CHUNK = 1000

-- Send command `head` (a list: its name and first arguments) with the values of list
-- `values` after them, `step` values an item (2 for score, member), in as many commands as
-- UNPACK_CHUNK values each take.
local function call_chunked(head, values, step)
  local per = UNPACK_CHUNK - UNPACK_CHUNK % step
  for i = 1, #values, per do
    local args = {unpack(head)}
    for j = i, math.min(i + per - 1, #values) do args[#args + 1] = values[j] end
    redis.call(unpack(args))
  end
end

-- Send the gathered index writes; gathering goes on (an empty gathering).
local function flush_indexes()
  if not gathered then return end
  for _, key in ipairs(gathered_keys) do
    local per, adds, rems = gathered[key], {}, {}
    for _, jid in ipairs(per.order) do
      local score = per.score[jid]
      if score then
        adds[#adds + 1] = num(score)
        adds[#adds + 1] = jid
      else
        rems[#rems + 1] = jid
      end
    end
    if #rems > 0 then call_chunked({'ZREM', key}, rems, 1) end
    if #adds > 0 then call_chunked({'ZADD', key}, adds, 2) end
  end
  gather_indexes()
end

-- Run function `body` and then `flush` (which sends what a call gathered), even when `body`
-- raises: a redis.call error (a hash someone else wrote garbage into) aborts a script but
-- keeps its writes so far, and the jobs a batch had done before the one that raised must keep
-- their gathered writes too, as when each wrote at once. The error then goes on to the caller.
local function gathering(body, flush)
  local ok, err = pcall(body)
  flush()
  if not ok then error(err, 0) end
end

-- Whether `msg` is an entry id that XACK takes (both parts under 2^64). The scripts only
-- write such ids, but anyone can write a job's hash, and one bad id in a batched XACK would
-- fail it for every job of the batch.
local function plain_id(msg)
  local ms, seq = string.match(msg, '^(%d+)%-(%d+)$')
  return ms ~= nil and #ms <= 19 and #seq <= 19
end

-- Pending jobs are counted, not indexed one by one. A pending job with a `ready` entry (the
-- plain case) is found through the stream; only those without one (in `prio` or a key's
-- backlog) have an entry in status:pending (see index_unrouted). Their number is
-- stats.enqueued - stats.started + stats.pending_adj: every job is created (enqueued) and
-- leased (started), counters bumped once a call anyway, so a plain job's way through
-- `pending` costs no command of its own; every other move into or out of `pending` bumps
-- pending_adj. `counted`: the move is one the caller counts in enqueued or started.
local function move_status(jid, from, to, score, counted)
  local adj = 0
  if from == 'pending' then
    adj = -1
  elseif from then
    index_write(status_key(from), false, jid)
  end
  if to == 'pending' then
    adj = adj + 1
  else
    index_write(status_key(to), score, jid)
  end
  if adj ~= 0 and not counted then redis.call('HINCRBY', K_STATS, 'pending_adj', adj) end
end

-- A pending job waits without a `ready` entry (in `prio` or its key's backlog) since `now`:
-- it is listed in status:pending, which is how readers and drain find it.
local function index_unrouted(jid, now)
  redis.call('ZADD', status_key('pending'), now, jid)
end

-- The stream an entry id belongs to. `carry` ids are '0-<n>' (see start's lease_prio); no
-- `ready` id starts so, since its time part is Redis's clock.
local function stream_of(msg)
  if string.sub(msg, 1, 2) == '0-' then return K_CARRY end
  return K_READY
end

-- The id of the last entry of `stream` given to the workers' group ('0-0' when none was, or
-- the stream or the group does not exist yet).
local function last_delivered(stream)
  local groups = redis.pcall('XINFO', 'GROUPS', stream)
  if groups.err then return '0-0' end
  for _, g in ipairs(groups) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == GROUP then return info['last-delivered-id'] end
  end
  return '0-0'
end

-- Acknowledge a finished delivery. The entry itself stays in the stream until `reclaim` trims
-- the stream below its oldest pending entry: a per-job XDEL costs more than the rest of the
-- outcome script, and trimming drops whole stream nodes at once.
local function ack(msg)
  if msg then redis.call('XACK', stream_of(msg), GROUP, msg) end
end

-- Acknowledge the finished deliveries of list `msgs` (entry ids; a job without an entry
-- leaves none): one XACK per stream for a whole batch.
local function ack_all(msgs)
  local by_stream = {}
  for _, msg in ipairs(msgs) do
    local stream = stream_of(msg)
    by_stream[stream] = by_stream[stream] or {}
    table.insert(by_stream[stream], msg)
  end
  for _, stream in ipairs({K_READY, K_CARRY}) do
    if by_stream[stream] then call_chunked({'XACK', stream, GROUP}, by_stream[stream], 1) end
  end
end

-- Drop an entry that must never be delivered (again): acknowledged and deleted now.
local function drop_entry(msg)
  if msg and msg ~= '' then
    local stream = stream_of(msg)
    redis.call('XACK', stream, GROUP, msg)
    redis.call('XDEL', stream, msg)
  end
end

local DEFAULT_TTL_MS = 86400000

-- A job's settings at their defaults (the Client's) are not written to its hash: every reader
-- takes an absent field for its default, so a job of default settings costs only its own data.
-- attempt and crashes start absent (0) too.
local DEFAULT_RETRY_DELAY_MS = 1000
local DEFAULT_RETRY_BACKOFF = 2
local DEFAULT_RETRY_JITTER = 0.1

-- The longest a running job is sent back to wait (a retry's delay, a deferral): one day.
local MAX_DELAY_MS = 86400000

-- A dead letter (a job failed for good) is kept at least this long (30 days) unless the job
-- set its own keep_failed age: a failure is looked into later than a success is read.
local DEAD_TTL_MS = 2592000000

-- The numbers of texts, by `parse` (text -> number or nil), remembered. A script parses the
-- same few texts over and over (the options every job of a producer carries, attempts and
-- leases of 1), and a parse (strtod, a pattern) costs a few lookups' worth each time. Each
-- parser holds at most MEMO_MAX texts, then starts afresh.
local MEMO_MAX = 512
local function memoized(parse)
  local memo, held = {}, 0
  return function(text)
    local n = memo[text]
    if n == nil then
      n = parse(text) or false
      if held >= MEMO_MAX then memo, held = {}, 0 end
      memo[text] = n
      held = held + 1
    end
    return n or nil
  end
end

local count_text = memoized(function(v)
  return #v <= 15 and string.find(v, '^%d+$') and tonumber(v)
end)
local real_text = memoized(function(v)
  local n = tonumber(v)
  return n and n == n and n > -math.huge and n < math.huge and n
end)
-- tonumber of an enqueue row's number texts (checked by the Python that sent them)
local number_text = memoized(function(v) return tonumber(v) end)

-- A field that should hold a non-negative integer, as a number; `default` when it does not.
local function count_of(v, default)
  if not v then return default end
  return count_text(v) or default
end

-- A field that should hold a finite number, as a number; `default` when it does not.
local function real_of(v, default)
  if not v then return default end
  return real_text(v) or default
end

-- Priorities -------------------------------------------------------------------------------
-- A job at the default priority is an entry of `ready`, as it always was. Any other runnable
-- job is a member of `prio` scored priority * 2^31 + seq (FIFO within a priority; exact, being
-- below 2^53), plus an entry without an `id` in `ready` that wakes a worker blocked on the
-- stream (start, reclaim and release drop such entries).
local DEFAULT_PRIORITY = 100
local PRIO_SEQ = 2147483648
-- (DEFAULT_PRIORITY + 1) * PRIO_SEQ as a score bound, written out: a library's own top level
-- runs where Redis gives it no `string` (only the functions it registers have one).
local PRIO_BAND_END = '216895848448'

-- Add job `jid` to `prio` behind the jobs already there at `priority`.
local function prio_add(jid, priority)
  local seq = redis.call('HINCRBY', K_STATS, 'prio_seq', 1) % PRIO_SEQ
  redis.call('ZADD', K_PRIO, string.format('%.0f', priority * PRIO_SEQ + seq), jid)
end

-- Rate limits: GCRA ------------------------------------------------------------------------
-- A limiter's state is its theoretical arrival time (TAT, ms). With interval T = per_ms / rate
-- and tolerance tau = (burst - 1) * T, a job may start at `now` while TAT - now <= tau; each
-- start moves TAT to max(TAT, now) + T. Pure functions of the clock, so a test can give it.

-- ms until a limiter at `tat` lets one more job start at `now` (0: it does now).
local function gcra_wait(tat, now, tau) return math.max(0, tat - tau - now) end

-- The TAT of a limiter at `tat` once a job started at `now`.
local function gcra_take(tat, now, T) return math.max(tat, now) + T end

-- Limit keys ------------------------------------------------------------------------------
-- A runnable job with a limit key (field `limit_key`) is never an entry of `ready`: it is a
-- member of its key's sorted set kq:<key>, scored as `prio` scores (priority * 2^31 + seq), and
-- its key is a member of `keys`, the schedule of keys with backlog scored by the time (ms) the
-- key may next be served (0: now). A key at its max_running leaves `keys` until one of its jobs
-- leaves `running` (key_left). Its running jobs are the set active:<key> (SADD when leased,
-- SREM on every way out of running: idempotent, so a re-sent script cannot count twice).

-- Add job `jid` of limit key `key` to its key's backlog, and the key to the schedule (a key
-- already there keeps its time), with a wake-up entry in `ready` for blocked workers.
local function key_add(jid, key, priority)
  local seq = redis.call('HINCRBY', K_STATS, 'prio_seq', 1) % PRIO_SEQ
  redis.call('ZADD', key_jobs_key(key), string.format('%.0f', priority * PRIO_SEQ + seq), jid)
  redis.call('ZADD', K_KEYS, 'NX', 0, key)
  redis.call('XADD', K_READY, '*', 'wake', '1')
end

-- Job `jid` of limit key `key` (nil: none, and nothing to do) left `running`: its slot is
-- free, so a key with backlog that max_running took off the schedule is back on it (and a
-- blocked worker is woken to look).
local function key_left(key, jid)
  if key and redis.call('SREM', key_active_key(key), jid) == 1
    and redis.call('EXISTS', key_jobs_key(key)) == 1
    and redis.call('ZADD', K_KEYS, 'NX', 0, key) == 1 then
    redis.call('XADD', K_READY, '*', 'wake', '1')
  end
end

-- Where a runnable job goes, by its `priority` field (absent: the default) and its limit key
-- (absent: none). The one place that decides. Returns the `ready` entry that is the job's msg,
-- or nil when it went to `prio` or its key's backlog.
local function route_ready(jid, priority, key)
  local p = count_of(priority, DEFAULT_PRIORITY)
  if key then
    key_add(jid, key, p)
    return nil
  end
  if p == DEFAULT_PRIORITY then return redis.call('XADD', K_READY, '*', 'id', jid) end
  prio_add(jid, p)
  redis.call('XADD', K_READY, '*', 'wake', '1')
  return nil
end

-- Make a job runnable (status pending): a fresh stream entry whose id the job remembers, or a
-- member of `prio` or of its key's backlog (and no msg).
local function push_ready(jkey, jid, priority, key, now)
  local msg = route_ready(jid, priority, key)
  if msg then
    redis.call('HSET', jkey, 'status', 'pending', 'msg', msg)
  else
    redis.call('HSET', jkey, 'status', 'pending')
    redis.call('HDEL', jkey, 'msg')
    index_unrouted(jid, now)
  end
end

-- A pending job's `ready` entry was delivered to a worker that will not start it now (a
-- priority or a pause comes first): the job moves into `prio` at the default priority. Such
-- entries came from the head of `ready`, so the job keeps its turn ahead of the entries left
-- there (start takes the default priority's band of `prio` before reading `ready`).
local function displace(jkey, jid, msg, now)
  drop_entry(msg)
  prio_add(jid, DEFAULT_PRIORITY)
  redis.call('HDEL', jkey, 'msg')
  index_unrouted(jid, now)
end

-- A job reaches a final status `to` (from `from`). Its hash expires after `ttl`, and so does
-- its log when it `has_log` (a caller that knows it has none saves the log key's PEXPIRE); the
-- status index (and `dead`) are scored by that expiry, so trim_final trims them as the hashes
-- go. `...` are more fields to set, name, value, ... (the result or the error).
local function end_job(jkey, jid, from, to, now, ttl, cancel_flag, dead, has_log, ...)
  redis.call('HSET', jkey, 'status', to, 'completed_at', num(now), ...)
  if cancel_flag then redis.call('HDEL', jkey, 'cancel') end
  redis.call('PEXPIRE', jkey, num(ttl))
  if has_log then redis.call('PEXPIRE', job_log_key(jid), num(ttl)) end
  local expires = now + ttl
  move_status(jid, from, to, expires)
  if dead then redis.call('ZADD', K_DEAD, expires, jid) end
end

-- end_job for a job that may have a log.
local function finish(jkey, jid, from, to, now, ttl, cancel_flag, dead, ...)
  end_job(jkey, jid, from, to, now, ttl, cancel_flag, dead, true, ...)
end

-- Deleting jobs (remove, purge, drain, obliterate) ----------------------------------------

local FINAL = {completed = true, failed = true, cancelled = true}

-- Append the keys of job `jid` (its hash, log and trace context) to list `keys`: the scripts
-- that delete many jobs delete their keys in one DEL.
local function add_job_keys(keys, jid)
  keys[#keys + 1] = job_key(jid)
  keys[#keys + 1] = job_log_key(jid)
  keys[#keys + 1] = job_trace_key(jid)
  keys[#keys + 1] = job_deps_key(jid)
  keys[#keys + 1] = job_results_key(jid)
  keys[#keys + 1] = job_dependents_key(jid)
end

-- Delete a job of final status `status` now: its keys, its status index entry, its dead letter.
local function delete_final(jid, status)
  redis.call('DEL', job_key(jid), job_log_key(jid), job_trace_key(jid), job_deps_key(jid),
    job_results_key(jid), job_dependents_key(jid))
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
  flush_indexes()
  local n = redis.call('ZCOUNT', key, '-inf', now)
  if n > 0 then redis.call('ZREMRANGEBYRANK', key, 0, math.min(n, TRIM_BATCH) - 1) end
end

local function trim_final(status, now)
  trim_expired(status_key(status), now)
  if status == 'failed' then trim_expired(K_DEAD, now) end
end

-- A job's expiry once it ended as an outcome: its own for that outcome (`own`, the field
-- completed_ttl or failed_ttl, absent unless the job set keep_completed/keep_failed with an
-- age), else its result_ttl.
local function outcome_ttl(own, result_ttl)
  return count_of(own, nil) or count_of(result_ttl, DEFAULT_TTL_MS)
end

-- Release a unique lock if it still names this job (it may have expired and been taken by
-- another job since, which keeps it).
local function unlock(ukey, jid)
  local lock = unique_lock_key(ukey)
  if redis.call('GET', lock) == jid then redis.call('DEL', lock) end
end

-- The end of a job that carries a unique key or an idempotency_ttl (`ukey`, `idem`: its
-- fields, false when absent; a job with neither pays nothing): the lock goes, and the marker
-- rj:{Q}:idem:<id> records how it ended, for idempotency_ttl after now or as long as the hash
-- lives, whichever is longer, so a re-enqueue of its id stays a duplicate that long.
local function settle(jid, to, ttl, ukey, idem)
  if ukey then unlock(ukey, jid) end
  if idem then
    redis.call('SET', idem_key(jid), to, 'PX', math.max(count_of(idem, 1), ttl))
  end
end

-- A running job goes back to wait in `delayed` until `due` (a retry, a deferral): status
-- scheduled, its entry (acknowledged by the caller) and any cancel request forgotten; `...`
-- are more fields to set, name, value, .... A while_queued job takes its unique lock again,
-- unless another job took it meanwhile. `job` holds its unique, unique_key, unique_ttl.
local function reschedule(jkey, jid, due, now, job, ...)
  redis.call('HSET', jkey, 'status', 'scheduled', 'scheduled_at', due, ...)
  redis.call('HDEL', jkey, 'msg', 'cancel')
  redis.call('ZADD', K_DELAYED, due, jid)
  move_status(jid, 'running', 'scheduled', now)
  if job.unique == 'while_queued' then
    redis.call('SET', unique_lock_key(job.unique_key), jid, 'NX', 'PX',
      count_of(job.unique_ttl, 1))
  end
end

-- Jobs deleted per job that sets a count (keep_completed/keep_failed), so a queue over its
-- count shrinks while it takes new jobs, and a call recording 128 results deletes at most 256.
local KEEP_PER_JOB = 2

-- Keep at most `count` jobs of final status `status` in the queue, the ones that expire last
-- (with one TTL, the most recent): up to `budget` of the others go now, hash, log and index
-- entries (final jobs hold no lock; an idempotency marker outlives them on purpose). Entries
-- already expired are left to trim_final: their id may name a new job by now.
local function trim_kept(status, count, budget, now)
  flush_indexes()
  local key = status_key(status)
  local live = '(' .. now
  local over = redis.call('ZCOUNT', key, live, '+inf') - count
  if over <= 0 then return end
  local ids = redis.call('ZRANGEBYSCORE', key, live, '+inf', 'LIMIT', 0, math.min(over, budget))
  for _, jid in ipairs(ids) do
    redis.call('DEL', job_key(jid), job_log_key(jid), job_deps_key(jid), job_results_key(jid),
      job_dependents_key(jid))
  end
  redis.call('ZREM', key, unpack(ids))
  if status == 'failed' then redis.call('ZREM', K_DEAD, unpack(ids)) end
end

-- Flows: jobs that wait for others ----------------------------------------------------------
-- A job enqueued with depends_on is `waiting` (in no stream, no backlog, no delayed set) until
-- each job it depends on (a parent) has ended. Its edges are the hash job:<id>:deps, parent
-- ref -> the edge's policy on a parent's failure ('fail' | 'cancel' | 'ignore' | 'run'), then
-- 'policy=outcome' once that parent ended (so a hand-over sent twice has one effect); its
-- field `deps` counts the edges still open. A parent keeps its waiting jobs in the set
-- job:<id>:dependents, and its field `dependents` says it has any (the outcome scripts read it
-- with the fields they read anyway: a job without dependents pays nothing). A ref is a job id
-- of this queue, or 'queue/id' for a job of another queue: an edge across queues is handed
-- over through the `handover` stream of the parent's queue (another hash slot), which the
-- worker that wrote it (or any worker's reclaim tick) delivers with the script `resolve`.

local POLICIES = {fail = true, cancel = true, ignore = true, run = true}

-- The queue (nil: this one) and id of a ref ('queue/id' naming this queue is its id).
local function split_ref(ref)
  local q, id = string.match(ref, '^([^/]+)/([^/]+)$')
  if q and q ~= QUEUE then return q, id end
  return nil, id or ref
end

-- The msgpack map `map` with one more pair, `name` (a string) -> `raw` (encoded); nil when
-- `map` is no map. A chain step receives the previous step's result so (as `previous_result`).
local function mp_map_put(map, name, raw)
  local b, n, at = string.byte(map, 1), nil, nil
  if b and b >= 0x80 and b <= 0x8f then n, at = b - 0x80, 2
  elseif b == 0xde then n, at = string.byte(map, 2) * 256 + string.byte(map, 3), 4
  elseif b == 0xdf then n, at = 0, 6
    for k = 2, 5 do n = n * 256 + string.byte(map, k) end
  else return nil end
  n = n + 1
  local head = '\223' .. be32(n)
  if n < 16 then head = string.char(0x80 + n) elseif n < 65536 then head = '\222' .. be16(n) end
  return head .. string.sub(map, at) .. mp_str(name) .. raw
end

-- The side keys of a job in a flow (its edges, its parents' results, its dependents) live and
-- go with its hash: `ttl` ms, or for ever (nil: it runs again).
local function flow_keys_ttl(jid, ttl)
  for _, key in ipairs({job_deps_key(jid), job_results_key(jid), job_dependents_key(jid)}) do
    if ttl then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
  end
end

-- A waiting job whose last open edge closed: it becomes runnable.
local function release(ckey, cid, job, now)
  push_ready(ckey, cid, job.priority, job.limit_key, now)
  move_status(cid, 'waiting', 'pending', now)
  emit(cid, 'ready', 0, nil)
end

-- A waiting job ends without running, `to` ('failed' or 'cancelled'), because parent `pref`
-- ended as `outcome` with `value` (its error). Returns the cascade item for its own dependents.
local function end_waiting(ckey, cid, to, pref, outcome, value, job, now)
  local err = string.sub('dependency ' .. pref .. ' ' .. outcome .. ': ' .. value, 1, 2000)
  local ttl = count_of(job.result_ttl, DEFAULT_TTL_MS)
  if to == 'failed' then ttl = count_of(job.failed_ttl, nil) or ttl end
  finish(ckey, cid, 'waiting', to, now, ttl, false, false, 'error', err, 'failure', 'dependency',
    'failed_by', pref)
  flow_keys_ttl(cid, ttl)
  trim_final(to, now)
  if job.unique_key or job.idempotency_ttl then
    settle(cid, to, ttl, job.unique_key, job.idempotency_ttl)
  end
  emit(cid, to, 0, {'error', mp_str(err), 'failure', mp_str('dependency')})
  redis.call('HINCRBY', K_STATS, to, 1)
  return {cid, to, err}
end

-- What a waiting job's edge reads of the job.
local EDGE_FIELDS = {'status', 'priority', 'limit_key', 'pass_result', 'result_ttl',
  'failed_ttl', 'unique_key', 'idempotency_ttl', 'failed_by'}

-- The edges of job `cid` still open (values without '=': see resolve_edge), at most MAX_DEPS.
local function open_edges(cid)
  local n = 0
  for _, v in ipairs(redis.call('HVALS', job_deps_key(cid))) do
    if not string.find(v, '=', 1, true) then n = n + 1 end
  end
  return n
end

-- An edge of job `cid` but `pref` whose parent's failure (or cancel) ends the job by the
-- edge's policy (fail or cancel), or nil: the job may wait again only once none is left.
local function ended_by_another(cid, pref)
  local edges = redis.call('HGETALL', job_deps_key(cid))
  for i = 1, #edges, 2 do
    local policy, was = string.match(edges[i + 1], '^(%a+)=?(%a*)$')
    if edges[i] ~= pref and (policy == 'fail' or policy == 'cancel')
      and (was == 'failed' or was == 'cancelled') then
      return edges[i]
    end
  end
  return nil
end

-- Parent `pref` of job `cid` (this queue) runs again after a retry: an edge its failure closed
-- opens again, and a job that ended because of it waits again. Returns the cascade item when
-- that job waits again (its own dependents that ended with it wait again too), else nil.
local function reopen_edge(cid, pref, policy, was, now)
  if was ~= 'failed' and was ~= 'cancelled' then return nil end
  local ckey = job_key(cid)
  local job = hmget_named(ckey, EDGE_FIELDS)
  redis.call('HSET', job_deps_key(cid), pref, policy)
  redis.call('HDEL', job_results_key(cid), '!' .. pref)
  if job.status == 'waiting' then  -- it had counted the failure as done (ignore)
    redis.call('HINCRBY', ckey, 'deps', 1)
    return nil
  end
  if job.failed_by ~= pref or (job.status ~= 'failed' and job.status ~= 'cancelled') then
    return nil
  end
  local still = ended_by_another(cid, pref)
  if still then  -- that parent's failure still ends it: a retry of that one may revive it
    redis.call('HSET', ckey, 'failed_by', still)
    return nil
  end
  redis.call('PERSIST', ckey)
  redis.call('PERSIST', job_log_key(cid))
  flow_keys_ttl(cid, nil)
  redis.call('HDEL', ckey, 'error', 'failure', 'failed_by', 'completed_at')
  -- Counted again: an edge whose parent ended while this job had ended closed without
  -- counting down (resolve_edge), so the count it ended with may be too high.
  redis.call('HSET', ckey, 'status', 'waiting', 'deps', open_edges(cid))
  move_status(cid, job.status, 'waiting', now)
  emit(cid, 'waiting', 0, nil)
  return {cid, 'revive', ''}
end

-- Parent `pref` of job `cid` completed with `value` after `cid` had ended because of another
-- parent: the result is kept for when a retry of that one revives `cid` (reopen_edge), and goes
-- with the job's hash (its TTL).
local function keep_result(cid, pref, value)
  local rkey = job_results_key(cid)
  redis.call('HSET', rkey, pref, value)
  local ttl = redis.call('PTTL', job_key(cid))
  if ttl > 0 then redis.call('PEXPIRE', rkey, ttl) end
end

-- Parent `pref` of job `cid` (this queue) ended as `outcome` ('completed', 'failed',
-- 'cancelled'; or 'revive': see reopen_edge) with `value` (its result; its error). Closes the
-- edge once; the job runs when none is left open, or ends by the edge's policy. Returns the
-- cascade item when the job ended (or waits again), else nil.
local function resolve_edge(cid, pref, outcome, value, now)
  local dkey = job_deps_key(cid)
  local edge = redis.call('HGET', dkey, pref)
  if not edge then return nil end
  local policy, was = string.match(edge, '^(%a+)=?(%a*)$')
  if outcome == 'revive' then return reopen_edge(cid, pref, policy, was, now) end
  if was ~= '' then return nil end  -- closed already: a re-sent hand-over has one effect
  redis.call('HSET', dkey, pref, policy .. '=' .. outcome)
  local ckey = job_key(cid)
  local job = hmget_named(ckey, EDGE_FIELDS)
  if job.status ~= 'waiting' then
    if job.failed_by and outcome == 'completed' then keep_result(cid, pref, value) end
    return nil
  end
  if outcome == 'completed' then
    redis.call('HSET', job_results_key(cid), pref, value)
    if job.pass_result then
      local payload = mp_map_put(redis.call('HGET', ckey, 'payload') or '', 'previous_result',
        value)
      if payload then redis.call('HSET', ckey, 'payload', payload) end
    end
  elseif policy == 'fail' or policy == 'cancel' then
    local to = 'cancelled'
    if policy == 'fail' and outcome == 'failed' then to = 'failed' end
    return end_waiting(ckey, cid, to, pref, outcome, value, job, now)
  else
    redis.call('HSET', job_results_key(cid), '!' .. pref, value)
    if policy == 'run' then  -- it runs now, not waiting for the others
      release(ckey, cid, job, now)
      return nil
    end
  end
  if redis.call('HINCRBY', ckey, 'deps', -1) <= 0 then release(ckey, cid, job, now) end
  return nil
end

-- Job `jid` of this queue ended as `outcome` with `value` (or runs again: 'revive'), and has
-- dependents: each edge to it closes (or opens again), here for a dependent of this queue,
-- through the handover stream for one of another; dependents that end (or wait again) so
-- tell theirs in turn. Returns the number of hand-overs written.
local function tell_dependents(jid, outcome, value, now)
  local work, handed, k = {{jid, outcome, value}}, 0, 1
  while k <= #work do
    local pid, out, val = unpack(work[k])
    for _, ref in ipairs(redis.call('SMEMBERS', job_dependents_key(pid))) do
      local q, cid = split_ref(ref)
      if q then
        redis.call('XADD', K_HANDOVER, '*', 'q', q, 'c', cid, 'p', QUEUE .. '/' .. pid,
          'o', out, 'v', val)
        handed = handed + 1
      else
        local item = resolve_edge(cid, pid, out, val, now)
        if item then work[#work + 1] = item end
      end
    end
    k = k + 1
  end
  return handed
end

-- Job `ref` (a job id of this queue, or 'queue/id') waits for parent `pid` (hash `pkey`, status
-- `st`). A parent that failed or was cancelled records it too: the dependent ended because of
-- it, and a retry of the parent must find it to revive it, whether the end came before the
-- dependent was written or after. Such a set lives as long as the parent's hash.
local function add_dependent(pkey, pid, ref, st)
  local dkey = job_dependents_key(pid)
  redis.call('SADD', dkey, ref)
  redis.call('HSET', pkey, 'dependents', 1)
  if st == 'failed' or st == 'cancelled' then
    local ttl = redis.call('PTTL', pkey)
    if ttl > 0 then redis.call('PEXPIRE', dkey, ttl) end
  end
end

-- Job `jid` (just created, `waiting`) depends on the parents of `spec`: 'policy:ref' tokens,
-- space separated. Each edge opens; a parent of this queue records the job as a dependent,
-- or, when it has ended already, closes the edge at once. A parent of another queue is linked
-- by the client, which then sends what the parent's queue answered through `resolve`.
local function wait_for(jid, spec, now)
  local ended = {}
  for token in string.gmatch(spec, '%S+') do
    local policy, ref = string.match(token, '^(%a+):(.+)$')
    local q, id = split_ref(ref)
    if not q then ref = id end
    redis.call('HSET', job_deps_key(jid), ref, policy)
    if not q then
      local pkey = job_key(ref)
      local p = hmget_named(pkey, {'status', 'result', 'error'})
      if FINAL[p.status] then
        ended[#ended + 1] = {ref, p.status, p.result or p.error or ''}
      end
      if p.status ~= 'completed' then add_dependent(pkey, ref, jid, p.status) end
    end
  end
  -- (a job this new has no dependents to tell when such an edge ends it)
  for _, e in ipairs(ended) do resolve_edge(jid, e[1], e[2], e[3], now) end
end

-- The fields of a job the end of its run as `failed` reads (see fail_job).
local FAILED_FIELDS = {'result_ttl', 'failed_ttl', 'failed_keep', 'unique_key',
  'idempotency_ttl', 'limit_key', 'depends_on', 'dependents'}

-- A job of a flow reached final status `to` with `value` (its result or error) and `ttl`
-- (or runs again: 'revive', nil): its side keys go (or stay) with it, its dependents learn. `dependents`, `depends_on`: its
-- fields (false when absent: a job outside any flow pays nothing). Returns the hand-overs
-- written (see tell_dependents).
local function flow_end(jid, to, value, ttl, now, depends_on, dependents)
  if not depends_on and not dependents then return 0 end
  flow_keys_ttl(jid, ttl)
  if not dependents then return 0 end
  return tell_dependents(jid, to, value, now)
end

-- A job completes with `result` (from `from`, its hash kept `ttl` ms and its log too when it
-- `has_log`): its unique lock and idempotency marker settle (`ukey`, `idem`: its fields), a
-- `completed` event is emitted under `attempt`, and the jobs waiting for it learn of it. The
-- caller counts it (stats.completed) and trims the completed index, once per call. Returns
-- flow_end's count of hand-overs.
local function complete_job(jkey, jid, from, now, ttl, cancel_flag, has_log, result, attempt,
    ukey, idem, depends_on, dependents)
  end_job(jkey, jid, from, 'completed', now, ttl, cancel_flag, false, has_log,
    'result', result, 'progress', '100')
  if ukey or idem then settle(jid, 'completed', ttl, ukey, idem) end
  emit(jid, 'completed', attempt, {'result', result})
  return flow_end(jid, 'completed', result, ttl, now, depends_on, dependents)
end

-- Take a job that waits to run (status `st`: pending, scheduled or waiting) out of where it
-- waits, so that nothing starts it: its stream entry, `delayed`, its key's backlog or `prio`.
-- `job` holds (at least) its msg and limit_key. Its status index is left to the caller.
local function withdraw(jid, st, job)
  if st == 'waiting' then
    -- in no stream and no set but its index: it waits for its parents, which keep it as a
    -- dependent (their end then finds it ended and only closes the edge)
  elseif st == 'scheduled' then
    redis.call('ZREM', K_DELAYED, jid)
  elseif job.msg then
    drop_entry(job.msg)
  else
    if job.limit_key then
      redis.call('ZREM', key_jobs_key(job.limit_key), jid)  -- it waits in its key's backlog
    else
      redis.call('ZREM', K_PRIO, jid)  -- a pending job without an entry waits in prio
    end
    redis.call('ZREM', status_key('pending'), jid)
  end
end

-- A run fails for good: the job is failed with error `err` and reason `why` (its `failure`:
-- 'timeout' | 'error' | 'fatal'), kept in `dead`, announced and counted; its dependents
-- learn of it (flow_end, whose count of hand-overs it returns). `job` holds (at least) its
-- FAILED_FIELDS.
local function fail_job(jkey, jid, from, now, job, cancel_flag, attempt, err, why)
  local ttl = count_of(job.failed_ttl, nil) or
    math.max(count_of(job.result_ttl, DEFAULT_TTL_MS), DEAD_TTL_MS)
  finish(jkey, jid, from, 'failed', now, ttl, cancel_flag, true, 'error', err, 'failure', why)
  if from == 'running' then key_left(job.limit_key, jid) end
  trim_final('failed', now)
  if job.unique_key or job.idempotency_ttl then
    settle(jid, 'failed', ttl, job.unique_key, job.idempotency_ttl)
  end
  if job.failed_keep then
    trim_kept('failed', count_of(job.failed_keep, 1), KEEP_PER_JOB, now)
  end
  emit(jid, 'failed', attempt, {'error', mp_str(err), 'failure', mp_str(why)})
  redis.call('HINCRBY', K_STATS, 'failed', 1)
  return flow_end(jid, 'failed', err, ttl, now, job.depends_on, job.dependents)
end

-- The fields of job hash `jkey` a lease needs (the delivery's, and the numbers the job's
-- transitions compute with, checked before it is leased: bad_field), by name. One HGETALL:
-- a job waiting to run has few fields, and naming the 16 in an HMGET cost Redis a scan of
-- the hash for each (most are options a job seldom sets) and Lua a 16-slot reply; this runs
-- for every job a worker starts. A missing key gives an empty table.
local function lease_fields(jkey)
  local all = redis.call('HGETALL', jkey)
  local job = {}
  for i = 1, #all, 2 do job[all[i]] = all[i + 1] end
  return job
end
-- {field, required}: fields holding a non-negative integer (an absent one is its default)
local COUNT_FIELDS = {{'lease', false}, {'attempt', false}, {'timeout', false},
  {'crashes', false}, {'max_retries', false}, {'retry_delay', false}, {'result_ttl', false}}
local REAL_FIELDS = {'retry_backoff', 'retry_jitter'}
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
    if job[name] and not real_of(job[name], nil) then return name, job[name] end
  end
  return nil
end

-- A delivery as start and reclaim return it: job id, lease, attempt, kind, payload, timeout_ms
-- (the fields of Python's Delivery, in its order).
local function delivery(jid, lease, attempt, job)
  return {jid, lease, attempt or 0, job.kind or '', job.payload or '', job.timeout or '0'}
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
  local attempt = count_of(job.attempt, 0) + 1
  redis.call('HSET', jkey, 'status', 'running', 'started_at', num(now), 'worker', worker,
    'lease', num(lease), 'attempt', num(attempt), 'msg', msg)
  move_status(jid, from, 'running', now, true)  -- the caller counts it in `started`
  -- a lock held until the job starts (until_start, while_queued) goes with its first lease
  if job.unique and job.unique ~= 'until_done' then unlock(job.unique_key, jid) end
  emit(jid, 'started', attempt, {'worker', mp_str(worker)})
  return delivery(jid, lease, attempt, job)
end

-- Fail a delivered job whose hash holds garbage (see bad_field) instead of leasing it.
local function fail_corrupt(jkey, jid, from, msg, now, job, field, value)
  local shown = 'missing'
  if value then shown = "'" .. string.gsub(string.sub(value, 1, 40), '[^%w%p ]', '?') .. "'" end
  local err = 'corrupt job hash: field ' .. field .. ' is ' .. shown .. ', not a number'
  ack(msg)
  fail_job(jkey, jid, from, now, hmget_named(jkey, FAILED_FIELDS), true,
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


-- An enqueue row (the fields of Python's EnqueueRow, redisjobs/wire.py): FIXED values, then
-- n, then n pairs `name, value`, its rules, each named by a key of RULES (its hash field). A
-- plain job sends n = 0; a rule left out is unset.
local FIXED = 12
local MAX_PRIORITY = 2097152
local RULES = {completed_ttl_ms = 'completed_ttl', completed_keep = 'completed_keep',
  failed_ttl_ms = 'failed_ttl', failed_keep = 'failed_keep', unique = 'unique',
  unique_key = 'unique_key', unique_ttl_ms = 'unique_ttl', idempotency_ttl_ms = 'idempotency_ttl',
  limit_key = 'limit_key', depends_on = 'depends_on', flow = 'flow', pass_result = 'pass_result'}
local RULE_TEXT = {unique = true, unique_key = true, limit_key = true, depends_on = true,
  flow = true}  -- the rest are integers >= 0 (0 = none)
local UNIQUE_MODES = {until_start = true, until_done = true, while_queued = true}
local NO_RULES = {}

-- The rules of the row whose n is `args[c]` (present), by name, and the index of the next
-- row; or nil and why they cannot be read: an n that is no count, a row running past the end
-- of `args`, an unknown or repeated name. Values are not checked here (check_rules does).
local PAST_END = 'enqueue row ends past the last argument: 12 values, n, then n pairs'
local function read_rules(args, c)
  if args[c] == '0' then return NO_RULES, c + 1 end  -- a plain row: one comparison
  local n = count_of(args[c], nil)
  if not n then return nil, 'invalid rule count: an integer >= 0 after the 12 fixed values' end
  local nxt = c + 1 + 2 * n
  if nxt - 1 > #args then return nil, PAST_END end
  if n == 0 then return NO_RULES, nxt end
  local rules = {}
  for k = c + 1, nxt - 1, 2 do
    local name = args[k]
    if not RULES[name] or rules[name] then return nil, 'unknown or repeated rule: ' .. name end
    rules[name] = args[k + 1]
  end
  return rules, nxt
end

-- Whether `ref` names a job: a job id (the rule of keys.py), or 'queue/id' with a queue name
-- of 1-128 of A-Z a-z 0-9 _ . : -.
local function is_ref(ref)
  local q, id = split_ref(ref)
  if q and (#q > 128 or not string.find(q, '^[%w_.:%-]+$')) then return false end
  return #id <= 200 and string.find(id, '^[%w_@+=][%w_@+=%.%-]*$') ~= nil
end

-- A job depends on at most this many others (a fan-in wider than that is a group of groups).
local MAX_DEPS = 1000

-- Why the flow rules of `rules` cannot be written, or nil: depends_on is 1..MAX_DEPS
-- 'policy:ref' tokens, space separated, each ref once; flow is a ref.
local function check_flow_rules(rules)
  if rules.flow and not is_ref(rules.flow) then return 'invalid flow: a job id or queue/id' end
  local spec = rules.depends_on
  if not spec then return nil end
  local n, seen = 0, {}
  for token in string.gmatch(spec, '%S+') do
    local policy, ref = string.match(token, '^(%a+):(.+)$')
    local q, id = nil, nil
    if ref and is_ref(ref) then q, id = split_ref(ref) end
    if q then id = ref end  -- the edge's key: the ref, or the id of a job of this queue
    if not POLICIES[policy or ''] or not id or seen[id] then
      return 'invalid depends_on: policy:ref tokens (fail, cancel, ignore or run; a job id ' ..
        'or queue/id), each job once'
    end
    seen[id], n = true, n + 1
  end
  if n == 0 or n > MAX_DEPS then return 'invalid depends_on: 1-' .. MAX_DEPS .. ' jobs' end
  return nil
end

-- Why `rules` (read_rules') cannot be written, or nil.
local function check_rules(rules)
  for name, v in pairs(rules) do
    if not RULE_TEXT[name] and not count_of(v, nil) then
      return 'invalid retention or ttl: an integer of ms or a count >= 0 (0 = none)'
    end
  end
  local bad = check_flow_rules(rules)
  if bad then return bad end
  local lkey = rules.limit_key
  if lkey and (#lkey > 200 or not string.find(lkey, '^[%w_@+=:/][%w_@+=.:/%-]*$')) then
    return 'invalid limit key: 1-200 characters of A-Z a-z 0-9 _ - . @ + = : /, ' ..
      'not starting with - . or *'
  end
  local mode, key = rules.unique, rules.unique_key
  if not mode then
    if key or rules.unique_ttl_ms then
      return 'invalid unique key: unique_key and unique_ttl_ms need unique'
    end
    return nil
  end
  if not UNIQUE_MODES[mode] then
    return 'invalid unique mode: until_start, until_done or while_queued'
  end
  if not key or #key > 200 or not string.find(key, '^[%w_@+=.:/%-]+$') then
    return 'invalid unique key: 1-200 characters of A-Z a-z 0-9 _ - . : / @ + ='
  end
  if tonumber(rules.unique_ttl_ms or '0') == 0 then
    return 'invalid unique ttl: a unique job needs one > 0'
  end
  return nil
end

-- Why the row at `args[i..]`, whose `rules` set depends_on, cannot wait for its parents, or
-- nil: it must not be delayed, and each parent of this queue must exist, or be the job of a
-- row before it in `args[from..]` (a flow is written parents first, so it holds no cycle).
local function bad_parents(args, from, i, rules)
  if args[i + 9] ~= '0' or args[i + 10] ~= '0' then
    return 'invalid depends_on: a job that waits for others cannot be delayed too'
  end
  local before, k = {}, from
  while k < i do
    before[args[k]] = true
    local _, nxt = read_rules(args, k + FIXED)
    k = nxt
  end
  for token in string.gmatch(rules.depends_on, '%S+') do
    local q, id = split_ref(string.match(token, ':(.+)$'))
    if not q and not before[id] and redis.call('EXISTS', job_key(id)) == 0 then
      return 'unknown dependency: no job ' .. id .. ' in queue ' .. QUEUE
    end
  end
  return nil
end

-- Why the enqueue rows in `args[from..]` cannot be written, or nil when they all can: each
-- row must end within `args` (FIXED values, n, n pairs), every id must keep the job id rule of
-- keys.py (enforced here too for producers that call the scripts without the Python client),
-- every priority must be an integer 0..MAX_PRIORITY, the rules as read_rules and check_rules
-- say. Checked before anything is written.
local function check_rows(args, from)
  local i, last = from, #args
  while i <= last do
    if i + FIXED > last then return PAST_END end
    local job_id, priority = args[i], args[i + FIXED - 1]
    if #job_id > 200 or not string.find(job_id, '^[%w_@+=][%w_@+=%.%-]*$') then
      return 'invalid job id: a job id is 1-200 characters of ' ..
        'A-Z a-z 0-9 _ - . @ + =, not starting with - or .'
    end
    priority = count_of(priority, nil)
    if not priority or priority > MAX_PRIORITY then
      return 'invalid priority: a priority is an integer 0..' .. MAX_PRIORITY
    end
    local rules, nxt = read_rules(args, i + FIXED)
    if not rules then return nxt end
    if rules ~= NO_RULES then
      local bad = check_rules(rules) or (rules.depends_on and bad_parents(args, from, i, rules))
      if bad then return bad end
    end
    i = nxt
  end
  return nil
end

-- Whether a row's job id is taken: a hash, or an idempotency marker for a row that sets
-- idempotency_ttl. `known`: whether the hash exists, when the caller knows already (true or
-- false: no EXISTS for it); nil asks Redis.
local function id_taken(job_id, rules, known)
  if known == nil then known = redis.call('EXISTS', job_key(job_id)) == 1 end
  if known then return true end
  local idem = rules.idempotency_ttl_ms
  return idem and tonumber(idem) > 0 and redis.call('EXISTS', idem_key(job_id)) == 1
end

-- Whether a row may create its job: nil when it may (its unique lock, if it asks for one, is
-- taken now); false when its id is taken (id_taken); the id of the job holding its unique
-- lock otherwise.
local function admit(job_id, rules, known)
  if id_taken(job_id, rules, known) then return false end
  if rules.unique then
    local lock = unique_lock_key(rules.unique_key)
    if not redis.call('SET', lock, job_id, 'NX', 'PX', tonumber(rules.unique_ttl_ms)) then
      return redis.call('GET', lock)
    end
  end
  return nil
end

-- The hash fields of the rules the row at `args[i..]` sets (its pairs), appended to `fields`:
-- a job stores only those it sets (a rule of 0 is unset), so a job without any reads as before.
local function rule_fields(fields, args, i)
  local c = i + FIXED
  if args[c] == '0' then return end
  for k = c + 1, c + 2 * tonumber(args[c]), 2 do
    local name, v = args[k], args[k + 1]
    if not RULE_TEXT[name] then v = tonumber(v) end
    if v ~= 0 then
      fields[#fields + 1] = RULES[name]
      fields[#fields + 1] = v
    end
  end
end

-- Append field `name` with `value` to list `fields` unless it is the setting's `default`.
local function unless_default(fields, name, value, default)
  if number_text(value) ~= default then
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
end

-- Create the job of the row at `args[i..]` (checked by check_rows) unless admit refuses it
-- (`known`: whether the job has a hash, when the caller knows; nil: not known). `now` is
-- Redis's time (ms), or nil when the caller has not read it yet: a job runnable at once takes
-- it from its new stream entry's id (Redis's clock too), so a plain enqueue needs no TIME.
-- Returns the index of the next row; created (bool); for a job scheduled for later, its due
-- time (ms); for a duplicate of a job that holds its unique lock, that job's id; then `now`,
-- read if it was not (nil only when nothing needed it).
local function create_job(now, args, i, known)
  local job_id, kind, payload, max_retries, retry_delay_ms, retry_backoff, retry_jitter,
    timeout_ms, result_ttl_ms, delay_ms, at_ms, priority = unpack(args, i, i + FIXED - 1)
  local rules, nxt = read_rules(args, i + FIXED)
  local refused = admit(job_id, rules, known)
  if refused ~= nil then return nxt, false, nil, refused or nil, now end
  local jkey = job_key(job_id)
  local at, delay = number_text(at_ms), number_text(delay_ms)
  local due = nil
  if at > 0 or delay > 0 then
    now = now or now_ms()
    due = now + delay
    if at > 0 then due = at end
  end
  local status, extra, value = 'pending', 'msg', nil
  if rules.depends_on then
    -- its open edges: one per parent until wait_for closes those that ended already
    status, extra, due = 'waiting', 'deps', nil
    value = select(2, string.gsub(rules.depends_on, '%S+', ''))
  elseif due and due > now then
    status, extra, value = 'scheduled', 'scheduled_at', due
    redis.call('ZADD', K_DELAYED, due, job_id)
  else
    -- nil for a job in `prio` or a key's backlog: it has no msg
    value = route_ready(job_id, priority, rules.limit_key)
    due = nil
    if value and not now then  -- its text too, so num(now) prints nothing
      local text = string.match(value, '^(%d+)')
      now = tonumber(text)
      nums[now] = text
    end
  end
  now = now or now_ms()
  if status == 'pending' and not value then index_unrouted(job_id, now) end
  local fields = {'kind', kind, 'payload', payload, 'created_at', num(now), 'status', status}
  unless_default(fields, 'max_retries', max_retries, 0)
  unless_default(fields, 'retry_delay', retry_delay_ms, DEFAULT_RETRY_DELAY_MS)
  unless_default(fields, 'retry_backoff', retry_backoff, DEFAULT_RETRY_BACKOFF)
  unless_default(fields, 'retry_jitter', retry_jitter, DEFAULT_RETRY_JITTER)
  unless_default(fields, 'timeout', timeout_ms, 0)
  unless_default(fields, 'result_ttl', result_ttl_ms, DEFAULT_TTL_MS)
  if value then
    fields[#fields + 1] = extra
    fields[#fields + 1] = value
  end
  if number_text(priority) ~= DEFAULT_PRIORITY then  -- the default priority has no field
    fields[#fields + 1] = 'priority'
    fields[#fields + 1] = number_text(priority)
  end
  rule_fields(fields, args, i)
  redis.call('HSET', jkey, unpack(fields))
  if status ~= 'pending' then  -- the caller counts every job it creates in `enqueued`
    move_status(job_id, nil, status, now)
    redis.call('HINCRBY', K_STATS, 'pending_adj', -1)
  end
  emit(job_id, 'enqueued', 0, {'kind', mp_str(kind)})
  if rules.depends_on then wait_for(job_id, rules.depends_on, now) end
  return nxt, true, due, nil, now
end

-- Backpressure (enqueue only: schedules, retries and promotions are never refused) ----------

-- How many jobs are pending (see move_status).
local function pending_count()
  local enqueued, started, adj = unpack(redis.call('HMGET', K_STATS, 'enqueued', 'started',
    'pending_adj'))
  return count_of(enqueued, 0) - count_of(started, 0) + (tonumber(adj) or 0)
end

-- The jobs waiting to start (the backlog max_pending bounds): pending and scheduled, retries
-- waiting out their backoff included.
local function backlog()
  return pending_count() + redis.call('ZCARD', status_key('scheduled'))
end

-- How many of the enqueue rows in `args[from..]` (checked by check_rows) would create a job:
-- a row whose id is taken, or whose unique lock is held, would not, nor would one repeating
-- the id or unique key of a row before it in the call. `first_known`: whether the first
-- row's job has a hash (true or false), when the caller knows; nil: not known.
local function new_rows(args, from, first_known)
  local n, i, last, seen = 0, from, #args, {}
  while i <= last do
    local rules, nxt = read_rules(args, i + FIXED)
    local lock = rules.unique and unique_lock_key(rules.unique_key)
    local again = seen[args[i]] or (lock and seen[lock])
    local known = nil
    if i == from then known = first_known end
    if not again and not id_taken(args[i], rules, known)
      and not (lock and redis.call('EXISTS', lock) == 1) then
      n = n + 1
    end
    seen[args[i]] = true
    if lock then seen[lock] = true end
    i = nxt
  end
  return n
end

-- The queue's max_pending (an integer >= 1), or nil when it has none.
local function max_pending()
  local limit = count_of(redis.call('HGET', K_LIMITS, 'max_pending'), nil)
  if limit and limit >= 1 then return limit end
  return nil
end

-- The error that refuses the enqueue rows in `args[from..]` when they would bring the backlog
-- above `limit` (the queue's max_pending), or nil (see new_rows for `first_known`).
local function over_max_pending(args, from, limit, first_known)
  local adding = new_rows(args, from, first_known)
  if adding == 0 then return nil end  -- a re-send only: it answers "already there"
  local waiting = backlog()
  if waiting + adding <= limit then return nil end
  return 'QUEUEFULL ' .. limit .. ' ' .. waiting .. ' ' .. adding
end

-- Schedules (see schedule.lua and fire.lua) ---------------------------------------------------

-- A schedule's spec is msgpack the Client encoded (never decoded here); its next due time is
-- its score in K_SCHEDULE_DUE; the numbers the scripts work with are plain fields of its state
-- hash: rev (bumped by every change, the fire token), runs, limit (0: none), last_run, last_job.
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

-- Begin a call on the queue whose prefix is `keys[1]`: every function of the library runs this
-- first. The keys are built again only when the queue differs from the last call's (a worker's
-- calls mostly name one queue), and PREFIX is set last, so a prefix that fails here leaves no
-- queue half entered. A call that gathered its index writes (gather_indexes) left gathering on,
-- flushed: it ends here, so this call writes at once unless it gathers too.
local function enter(keys)
  if not redis then
    local G = _G
    redis, string, math, table, tonumber, tostring, unpack, ipairs, pairs, next, type,
      error, pcall, select = G.redis, G.string, G.math, G.table, G.tonumber, G.tostring,
      G.unpack, G.ipairs, G.pairs, G.next, G.type, G.error, G.pcall, G.select
  end
  gathered, gathered_keys, nums = nil, nil, {}
  local p = keys[1]
  if p == PREFIX and p then return end
  PREFIX = nil
  QUEUE = string.match(p, '^rj:{(.-)}:$')
  if not QUEUE then error('not a queue prefix: ' .. tostring(p)) end
  K_READY, K_DELAYED, K_DEAD = p .. 'ready', p .. 'delayed', p .. 'dead'
  K_STATS, K_CONTROL, K_LOG = p .. 'stats', p .. 'control', p .. 'log'
  K_LEASES, K_PRIO, K_CARRY = p .. 'leases', p .. 'prio', p .. 'carry'
  K_PAUSED, K_LIMITS, K_HOLD = p .. 'paused', p .. 'limits', p .. 'hold'
  K_KEYS, K_HANDOVER = p .. 'keys', p .. 'handover'
  K_SCHEDULES, K_SCHEDULE_DUE = p .. 'schedules', p .. 'schedule:due'
  PREFIX = p
end
