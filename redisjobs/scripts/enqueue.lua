-- enqueue: create jobs, each runnable at once or scheduled for later.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV     12 values per job, repeated (the fields of Python's EnqueueRow, in its order):
--          job id, kind, payload (msgpack), max_retries, retry_delay_ms, retry_backoff,
--          retry_jitter, timeout_ms, result_ttl_ms, delay_ms, at_ms (epoch ms, 0 = none),
--          priority (0..2097152, lower is more urgent; recorded, not yet used for ordering)
-- Returns  one integer per job: 1 created, 0 already existed (dedup by id: nothing written);
--          an error, with nothing written, when the values are not 12 per job, when any id
--          breaks the job id rule (1-200 of A-Z a-z 0-9 _ - . @ + =, not starting with - or
--          .: the rule of keys.py, enforced here too for producers that call this script
--          without the Python client) or any priority is not an integer 0..2097152
-- Events   enqueued (per created job); control channel 'due:<ms>' when a job was scheduled
-- Effects  job hash (priority only when not 0); XADD ready (or ZADD delayed); status index;
--          stats.enqueued

local STRIDE = 12
local MAX_PRIORITY = 2097152

-- The row that starts at ARGV[i], by name: the fields of Python's EnqueueRow (redisjobs/wire.py),
-- in its order. The one place a script reads the enqueue layout by position.
local function row_at(i)
  return {job_id = ARGV[i], kind = ARGV[i + 1], payload = ARGV[i + 2], max_retries = ARGV[i + 3],
    retry_delay_ms = ARGV[i + 4], retry_backoff = ARGV[i + 5], retry_jitter = ARGV[i + 6],
    timeout_ms = ARGV[i + 7], result_ttl_ms = ARGV[i + 8], delay_ms = ARGV[i + 9],
    at_ms = ARGV[i + 10], priority = ARGV[i + 11]}
end

if #ARGV % STRIDE ~= 0 then
  return redis.error_reply('enqueue takes ' .. STRIDE .. ' values per job, got ' .. #ARGV)
end
local rows = {}
for i = 1, #ARGV, STRIDE do
  local row = row_at(i)
  if #row.job_id > 200 or not string.find(row.job_id, '^[%w_@+=][%w_@+=%.%-]*$') then
    return redis.error_reply('invalid job id: a job id is 1-200 characters of ' ..
      'A-Z a-z 0-9 _ - . @ + =, not starting with - or .')
  end
  row.priority = count_of(row.priority, nil)
  if not row.priority or row.priority > MAX_PRIORITY then
    return redis.error_reply('invalid priority: a priority is an integer 0..' .. MAX_PRIORITY)
  end
  rows[#rows + 1] = row
end

local now = now_ms()
local out = {}
local created = 0
local first_due = nil
for _, row in ipairs(rows) do
  local jkey = job_key(row.job_id)
  if redis.call('EXISTS', jkey) == 1 then
    out[#out + 1] = 0
  else
    local at = tonumber(row.at_ms)
    local due = now + tonumber(row.delay_ms)
    if at > 0 then due = at end
    local status, extra, value = 'pending', 'msg', nil
    if due > now then
      status, extra, value = 'scheduled', 'scheduled_at', due
      redis.call('ZADD', K_DELAYED, due, row.job_id)
      if not first_due or due < first_due then first_due = due end
    else
      value = redis.call('XADD', K_READY, '*', 'id', row.job_id)
    end
    local fields = {'kind', row.kind, 'payload', row.payload, 'attempt', 0,
      'max_retries', row.max_retries, 'retry_delay', row.retry_delay_ms,
      'retry_backoff', row.retry_backoff, 'retry_jitter', row.retry_jitter,
      'timeout', row.timeout_ms, 'result_ttl', row.result_ttl_ms, 'created_at', now,
      'crashes', 0, 'status', status, extra, value}
    if row.priority > 0 then  -- a job without a priority has no field for it
      fields[25] = 'priority'
      fields[26] = row.priority
    end
    redis.call('HSET', jkey, unpack(fields))
    move_status(row.job_id, nil, status, now)
    emit(row.job_id, 'enqueued', 0, now, {'kind', mp_str(row.kind)})
    created = created + 1
    out[#out + 1] = 1
  end
end
if created > 0 then redis.call('HINCRBY', K_STATS, 'enqueued', created) end
if first_due then redis.call('PUBLISH', K_CONTROL, 'due:' .. first_due) end
return out
