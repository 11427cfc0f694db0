#!lua flags=allow-oom
-- purge: delete the jobs of one final status that finished at or before a time, a batch of
-- index entries per call.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  the status: completed | failed | cancelled
-- ARGV[2]  cutoff (Redis ms): a job goes when its completed_at is at or before it
-- ARGV[3]  offset: the rank in the status index this call starts at (the caller adds up the
--          entries kept so far: deleted entries leave the index, kept ones stay before it)
-- ARGV[4]  limit: index entries looked at, at most
-- Returns  {deleted, kept, looked}; looked < limit means the walk reached the index's end.
-- Effects  per job deleted: DEL its hash, log and trace context, ZREM its index (and dead).
--          An entry whose hash expired leaves the index. No event (as remove).
--
-- The index is scored by expiry (completed_at + the job's own TTL), not by completed_at, so
-- the age of each job is read from its hash: a walk of the whole index, a bounded part a call.

local status = ARGV[1]
local cutoff, offset, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if not FINAL[status] then return redis.error_reply('purge: not a final status: ' .. status) end
if not (cutoff and offset and limit and offset >= 0 and limit > 0) then
  return redis.error_reply('purge takes a cutoff, an offset >= 0 and a limit > 0')
end
local ids = redis.call('ZRANGE', status_key(status), offset, offset + limit - 1)
local deleted, kept = 0, 0
for _, jid in ipairs(ids) do
  local job = hmget_named(job_key(jid), {'status', 'completed_at'})
  if not job.status then
    delete_final(jid, status)  -- expired: only its index entries were left
  elseif job.status == status and count_of(job.completed_at, 0) <= cutoff then
    delete_final(jid, status)
    deleted = deleted + 1
  else
    kept = kept + 1
  end
end
return {deleted, kept, #ids}
