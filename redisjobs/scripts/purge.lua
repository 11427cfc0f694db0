-- purge: delete jobs that failed for good (the dead letters) before their result_ttl.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV     job ids
-- Returns  the number of jobs deleted. A job that is not `failed` now is left alone and leaves
--          `dead`; one whose hash expired leaves the failed index too.
-- Effects  DEL the hash and its log; ZREM the failed index and dead. No event: the job's
--          history ends with its `failed` event, and the counters keep counting it as failed.

local purged = 0
for i = 1, #ARGV do
  local jid = ARGV[i]
  local jkey = job_key(jid)
  local st = redis.call('HGET', jkey, 'status')
  if st == 'failed' then
    redis.call('DEL', jkey, job_log_key(jid))
    purged = purged + 1
  end
  redis.call('ZREM', K_DEAD, jid)
  if st == 'failed' or not st then redis.call('ZREM', status_key('failed'), jid) end
end
return purged
