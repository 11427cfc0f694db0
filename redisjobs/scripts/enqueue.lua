-- enqueue: create jobs, each runnable at once or scheduled for later.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV     one row per job, repeated (the fields of Python's EnqueueRow, in its order):
--          job id, kind, payload (msgpack), max_retries, retry_delay_ms, retry_backoff,
--          retry_jitter, timeout_ms, result_ttl_ms, delay_ms, at_ms (epoch ms, 0 = none),
--          priority (0..2097152, lower runs sooner; 100 is the default),
--          then n, the count of the job's rules (0 for none), then n pairs name, value: the
--          names completed_ttl_ms, completed_keep, failed_ttl_ms, failed_keep (integers, 0 =
--          none), unique (until_start, until_done, while_queued), unique_key, unique_ttl_ms,
--          idempotency_ttl_ms (integer, 0 = none), each at most once, in any order
-- Returns  one value per job: 1 created, 0 already existed (dedup by id, or by its
--          idempotency marker for a row that sets idempotency_ttl: nothing written), or the
--          id of the job holding the row's unique lock (a duplicate: nothing written);
--          an error, with nothing written, when a row runs past the last value, when any
--          id breaks the job id rule (1-200 of A-Z a-z 0-9 _ - . @ + =, not starting with - or
--          .: the rule of keys.py, enforced here too for producers that call this script
--          without the Python client), any priority is not an integer 0..2097152, or a rule
--          is unknown, repeated or out of its form (read_rules, check_rules); the error
--          'QUEUEFULL <max_pending> <backlog> <new rows>', with nothing written, when the rows
--          that would create a job (not those whose id is taken or whose unique lock is held)
--          would bring the queue's backlog (pending + scheduled) above the max_pending field of
--          rj:{Q}:limits
-- Events   enqueued (per created job); control channel 'due:<ms>' when a job was scheduled
-- Effects  job hash (priority only when not 100, each rule only when set); XADD ready (or ZADD
--          delayed; or, at another priority, ZADD prio and a wake-up entry in ready); status
--          index; stats.enqueued; SET NX PX of the unique lock rj:{Q}:unique:<key>

local bad = check_rows(ARGV, 1)
if bad then return redis.error_reply(bad) end
if #ARGV == 0 then return {} end

-- One EXISTS asks both whether the first row's job exists (admit's question) and whether the
-- queue has flow settings. EXISTS counts a key named twice twice, so naming the job twice tells
-- all four cases apart: 0 neither (the common case), 1 the limits hash only, 2 the job only, 3
-- both. A queue without flow settings pays nothing more, and neither does a re-send to it.
local jkey = job_key(ARGV[1])
local found = redis.call('EXISTS', jkey, jkey, K_LIMITS)
local first = found >= 2
local limit = found % 2 == 1 and max_pending()
if limit then
  local full = over_max_pending(ARGV, 1, limit, first)
  if full then return redis.error_reply(full) end
end

local now = nil  -- Redis's time, once a row needed it (see create_job)
local out = {}
local created = 0
local first_due = nil
local i, last = 1, #ARGV
while i <= last do
  local made, due, holder
  local known = nil  -- what the EXISTS above told of the first row's job only
  if i == 1 then known = first end
  i, made, due, holder, now = create_job(now, ARGV, i, known)
  if made then
    created = created + 1
    if due and (not first_due or due < first_due) then first_due = due end
  end
  out[#out + 1] = made and 1 or holder or 0
end
if created > 0 then redis.call('HINCRBY', K_STATS, 'enqueued', created) end
if first_due then redis.call(PUBLISH, K_CONTROL, 'due:' .. first_due) end
return out
