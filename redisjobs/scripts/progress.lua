#!lua flags=allow-oom
-- progress: record how far a running job is.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  job id
-- ARGV[2]  lease ('' when the caller is not a worker, e.g. JobManager.update_progress)
-- ARGV[3]  progress as text (for the hash)
-- ARGV[4]  progress as a msgpack float (spliced into the event)
-- ARGV[5]  message ('' for none)
-- Returns  1 recorded, 0 ignored (not running, or the lease is not current)
-- Events   progress

local jid, lease = ARGV[1], ARGV[2]
local jkey = job_key(jid)
local job = hmget_named(jkey, {'status', 'lease', 'attempt'})
if job.status ~= 'running' or (lease ~= '' and job.lease ~= lease) then return 0 end
redis.call('HSET', jkey, 'progress', ARGV[3], 'progress_message', ARGV[5])
local extra = {'progress', ARGV[4]}
if ARGV[5] ~= '' then
  extra[3] = 'message'
  extra[4] = mp_str(ARGV[5])
end
emit(jid, 'progress', count_of(job.attempt, 0), extra)
return 1
