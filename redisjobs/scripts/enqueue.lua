-- enqueue: create jobs, each runnable at once or scheduled for later.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV     11 values per job, repeated:
--          id, kind, payload (msgpack), max_retries, retry_delay_ms, retry_backoff,
--          retry_jitter, timeout_ms, result_ttl_ms, delay_ms, at_ms (epoch ms, 0 = none)
-- Returns  one integer per job: 1 created, 0 already existed (dedup by id: nothing written);
--          an error, with nothing written, when any id breaks the job id rule (1-200 of
--          A-Z a-z 0-9 _ - . @ + =, not starting with - or .: the rule of keys.py, enforced here
--          too for producers that call this script without the Python client)
-- Events   enqueued (per created job); control channel 'due:<ms>' when a job was scheduled
-- Effects  job hash; XADD ready (or ZADD delayed); status index; stats.enqueued

for i = 1, #ARGV, 11 do
  local jid = ARGV[i]
  if #jid > 200 or not string.find(jid, '^[%w_@+=][%w_@+=%.%-]*$') then
    return redis.error_reply('invalid job id: a job id is 1-200 characters of ' ..
      'A-Z a-z 0-9 _ - . @ + =, not starting with - or .')
  end
end

local now = now_ms()
local out = {}
local created = 0
local first_due = nil
for i = 1, #ARGV, 11 do
  local jid = ARGV[i]
  local jkey = job_key(jid)
  if redis.call('EXISTS', jkey) == 1 then
    out[#out + 1] = 0
  else
    local at = tonumber(ARGV[i + 10])
    local due = now + tonumber(ARGV[i + 9])
    if at > 0 then due = at end
    local status, extra, value = 'pending', 'msg', nil
    if due > now then
      status, extra, value = 'scheduled', 'scheduled_at', due
      redis.call('ZADD', K_DELAYED, due, jid)
      if not first_due or due < first_due then first_due = due end
    else
      value = redis.call('XADD', K_READY, '*', 'id', jid)
    end
    redis.call('HSET', jkey, 'kind', ARGV[i + 1], 'payload', ARGV[i + 2], 'attempt', 0,
      'max_retries', ARGV[i + 3], 'retry_delay', ARGV[i + 4], 'retry_backoff', ARGV[i + 5],
      'retry_jitter', ARGV[i + 6], 'timeout', ARGV[i + 7], 'result_ttl', ARGV[i + 8],
      'created_at', now, 'crashes', 0, 'status', status, extra, value)
    move_status(jid, nil, status, now)
    emit(jid, 'enqueued', 0, now, {'kind', mp_str(ARGV[i + 1])})
    created = created + 1
    out[#out + 1] = 1
  end
end
if created > 0 then redis.call('HINCRBY', K_STATS, 'enqueued', created) end
if first_due then redis.call('PUBLISH', K_CONTROL, 'due:' .. first_due) end
return out
