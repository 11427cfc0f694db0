#!lua flags=allow-oom
-- heartbeat: extend this worker's lease on every job it runs; report what it must stop.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  worker id
-- ARGV[2]  this worker's lease_ttl_ms
-- ARGV[3+] pairs: job id, lease
-- Returns  flat list of pairs for jobs needing action: job id, 'lost' | 'cancel'
--          lost   = the lease is no longer ours (reclaimed, finished elsewhere, expired, or its
--                   stream entry left our PEL): stop the job, record nothing
--          cancel = a cancel was requested while it runs: stop it and record `cancelled`
-- Effects  XCLAIM ... JUSTID by the owner resets the PEL idle time, which is the lease clock
--          that `reclaim` reads; the worker's lease_ttl is (re)recorded in `leases`, so its
--          jobs are judged by its own lease even after Redis lost the entry; nothing else
--          changes.

local FIELDS = {'lease', 'status', 'msg', 'cancel', 'worker'}  -- built once a call
local worker = ARGV[1]
local out = {}
redis.call('HSET', K_LEASES, worker, ARGV[2])
for i = 3, #ARGV, 2 do
  local jid, lease = ARGV[i], ARGV[i + 1]
  local job = hmget_named(job_key(jid), FIELDS)
  local ok = job.lease == lease and job.status == 'running' and job.worker == worker
  if ok then
    ok = #redis.call('XCLAIM', stream_of(job.msg), GROUP, worker, 0, job.msg, 'JUSTID') == 1
  end
  if not ok then
    out[#out + 1] = jid
    out[#out + 1] = 'lost'
  elseif job.cancel then
    out[#out + 1] = jid
    out[#out + 1] = 'cancel'
  end
end
return out
