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

if #ARGV % STRIDE ~= 0 then
  return redis.error_reply('enqueue takes ' .. STRIDE .. ' values per job, got ' .. #ARGV)
end
for i = 1, #ARGV, STRIDE do
  local job_id, priority = ARGV[i], ARGV[i + STRIDE - 1]  -- a row's first and last values
  if #job_id > 200 or not string.find(job_id, '^[%w_@+=][%w_@+=%.%-]*$') then
    return redis.error_reply('invalid job id: a job id is 1-200 characters of ' ..
      'A-Z a-z 0-9 _ - . @ + =, not starting with - or .')
  end
  priority = count_of(priority, nil)
  if not priority or priority > MAX_PRIORITY then
    return redis.error_reply('invalid priority: a priority is an integer 0..' .. MAX_PRIORITY)
  end
end

local now = now_ms()
local out = {}
local created = 0
local first_due = nil
for i = 1, #ARGV, STRIDE do
  -- The row, named: the fields of Python's EnqueueRow (redisjobs/wire.py), in its order.
  local job_id, kind, payload, max_retries, retry_delay_ms, retry_backoff, retry_jitter,
    timeout_ms, result_ttl_ms, delay_ms, at_ms, priority = unpack(ARGV, i, i + STRIDE - 1)
  local jkey = job_key(job_id)
  if redis.call('EXISTS', jkey) == 1 then
    out[#out + 1] = 0
  else
    local at = tonumber(at_ms)
    local due = now + tonumber(delay_ms)
    if at > 0 then due = at end
    local status, extra, value = 'pending', 'msg', nil
    if due > now then
      status, extra, value = 'scheduled', 'scheduled_at', due
      redis.call('ZADD', K_DELAYED, due, job_id)
      if not first_due or due < first_due then first_due = due end
    else
      value = redis.call('XADD', K_READY, '*', 'id', job_id)
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
    created = created + 1
    out[#out + 1] = 1
  end
end
if created > 0 then redis.call('HINCRBY', K_STATS, 'enqueued', created) end
if first_due then redis.call('PUBLISH', K_CONTROL, 'due:' .. first_due) end
return out
