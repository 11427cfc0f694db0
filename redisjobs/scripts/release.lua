#!lua flags=allow-oom
-- release: a stopping worker hands jobs back so that any worker can start them at once.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  worker id
-- ARGV[2+] pairs: job id, lease of jobs this worker is running and will not finish
-- Returns  the number of jobs handed back
-- Events   released (worker, requeued) for each running job handed back, under the attempt
--          of the interrupted run; entries read but never started emit nothing (their job
--          never left pending)
-- Effects  each job whose lease still matches goes back to pending under a new stream entry (or
--          into prio, by its priority; its old entry is acknowledged and deleted) with its attempt
--          given back: a graceful hand-back is not a crash and burns no attempt. Then every entry
--          still in this worker's PELs (ready and carry) is put back too, so nothing this worker
--          leaves behind waits for lease_ttl: read but never started (pending), and running under
--          this worker though not handed back above: leased by a start or reclaim whose reply never
--          arrived, or finished without its outcome recorded (a late outcome is then rejected, the
--          job is no longer running).

local worker = ARGV[1]
local now = now_ms()
local released = 0

local function requeue(jkey, jid, from, msg, job)
  local attempt, priority = job.attempt, job.priority
  drop_entry(msg)
  if from == 'running' then
    key_left(job.limit_key, jid)
    local ran = count_of(attempt, 1)
    redis.call('HSET', jkey, 'attempt', math.max(ran - 1, 0))
    emit(jid, 'released', ran, {'worker', mp_str(worker), 'requeued', '\195'})
  end
  push_ready(jkey, jid, priority, job.limit_key, now)
  move_status(jid, from, 'pending', now)
  released = released + 1
end

local FIELDS = {'status', 'msg', 'worker', 'attempt', 'priority', 'lease', 'limit_key'}
for i = 2, #ARGV, 2 do
  local jid, lease = ARGV[i], ARGV[i + 1]
  local jkey = job_key(jid)
  local job = hmget_named(jkey, FIELDS)
  if job.lease == lease and job.status == 'running' and job.worker == worker then
    requeue(jkey, jid, 'running', job.msg, job)
  end
end

-- Every entry left in this worker's PEL of `stream`.
local function release_pel(stream)
  local pel = redis.pcall('XPENDING', stream, GROUP, '-', '+', 1000, worker)
  if pel.err then return end  -- no `carry` (or no group) yet: nothing pending there
  for _, p in ipairs(pel) do
    local msg = p[1]
    local entry = redis.call('XRANGE', stream, msg, msg)
    local jid = entry[1] and entry[1][2][1] == 'id' and entry[1][2][2] or nil
    local job = {}
    if jid then job = hmget_named(job_key(jid), FIELDS) end
    if job.status == 'pending' and job.msg == msg then
      requeue(job_key(jid), jid, 'pending', msg, job)
    elseif job.status == 'running' and job.msg == msg and job.worker == worker then
      requeue(job_key(jid), jid, 'running', msg, job)
    else
      drop_entry(msg)
    end
  end
end

release_pel(K_READY)
release_pel(K_CARRY)
return released
