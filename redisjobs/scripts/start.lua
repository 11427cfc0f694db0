-- start: lease the jobs of stream entries this worker read, or reads now.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  worker id (the consumer name)
-- ARGV[2]  count: when > 0, first read up to this many new entries with XREADGROUP (no BLOCK),
--          so a busy worker fetches and leases in one round trip
-- ARGV[3+] pairs: stream entry id, job id ('' when the entry had no id field), read earlier
--          by a blocking XREADGROUP
-- Returns  flat list, 6 values per job to run: job id, lease, attempt, kind, payload, timeout_ms
-- Events   started
-- Effects  status running, attempt+1, a fresh lease (fencing token = delivery count),
--          started_at, worker, msg; stats.started; the unique lock of an until_start or
--          while_queued job is released (lease_job). Entries without a live pending job
--          (garbage, vanished hash, cancelled meanwhile) are acknowledged and deleted. A job
--          whose hash holds garbage where a number belongs is failed (event failed).
--          Re-sent after a lost reply, a job already running under this worker and entry is
--          returned again with its existing lease rather than leased twice.

local worker = ARGV[1]
local entries = {}
for i = 3, #ARGV, 2 do entries[#entries + 1] = {ARGV[i], ARGV[i + 1]} end
if tonumber(ARGV[2]) > 0 then
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, worker, 'COUNT', ARGV[2],
    'STREAMS', K_READY, '>')
  if reply and reply[1] then
    -- {{stream, entries}}; fakeredis answers {stream, entries}
    local read
    if type(reply[1]) == 'string' then read = reply[2] else read = reply[1][2] end
    for _, e in ipairs(read) do
      local fields = e[2]
      entries[#entries + 1] = {e[1], fields and fields[1] == 'id' and fields[2] or ''}
    end
  end
end

local now = now_ms()
local out = {}
local started = 0
for _, e in ipairs(entries) do
  local msg, jid = e[1], e[2]
  local job = {}
  if jid ~= '' then job = lease_fields(job_key(jid)) end
  if job.status == 'pending' and job.msg == msg then
    local row = lease_checked(job_key(jid), jid, 'pending', worker, msg, now, job)
    if row then
      append(out, row)
      started = started + 1
    end
  elseif job.status == 'running' and job.msg == msg and job.worker == worker then
    append(out, delivery(jid, job.lease, job.attempt, job))
  elseif job.msg ~= msg or job.status ~= 'running' then
    drop_entry(msg)
  end
end
if started > 0 then redis.call('HINCRBY', K_STATS, 'started', started) end
return out
