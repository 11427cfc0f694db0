#!lua flags=allow-oom
-- obliterate: delete the jobs of the queue, whatever their status, a batch per call. The caller
-- then deletes the queue's own keys (keys.py) and sweeps what is left under its prefix.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  limit: jobs deleted per call, at most
-- Returns  {deleted, looked}: the job hashes deleted and the entries looked at; looked < limit
--          means the stream and the indexes are empty.
-- Effects  first `ready` (where pending jobs without an index entry wait), then per index
--          (status indexes, delayed, dead, prio): its first entries' jobs lose their hash, log
--          and trace context, and the entries leave the stream or the index. No event: the queue
--          and its event log go too. A running job's worker finds its lease lost. Jobs of
--          other queues waiting for a deleted job are handed its cancel (tell_dependents:
--          the caller delivers the handover stream before it deletes it).

local limit = tonumber(ARGV[1])
if not (limit and limit > 0) then return redis.error_reply('obliterate takes a limit > 0') end
local INDEXES = {status_key('waiting'), status_key('pending'), status_key('scheduled'),
  status_key('running'), status_key('completed'), status_key('failed'), status_key('cancelled'),
  K_DELAYED, K_DEAD, K_PRIO}
local now = now_ms()
local deleted, looked = 0, 0

-- Delete the jobs `ids`, counting each hash once (a retried job has an entry a run).
local function delete_jobs(ids)
  local hashes, keys, seen = {}, {}, {}
  for _, jid in ipairs(ids) do
    if not seen[jid] then
      seen[jid] = true
      hashes[#hashes + 1] = job_key(jid)
      add_job_keys(keys, jid)
      -- jobs of other queues waiting for it would wait for ever: they learn it was cancelled
      if redis.call('SCARD', job_dependents_key(jid)) > 0 then
        tell_dependents(jid, 'cancelled', 'obliterated', now)
      end
    end
  end
  if #hashes == 0 then return end
  deleted = deleted + redis.call('EXISTS', unpack(hashes))
  redis.call('DEL', unpack(keys))
end

local entries = redis.call('XRANGE', K_READY, '-', '+', 'COUNT', limit)
if #entries > 0 then
  local msgs, ids = {}, {}
  for i, e in ipairs(entries) do
    msgs[i] = e[1]
    if e[2][1] == 'id' then ids[#ids + 1] = e[2][2] end
  end
  delete_jobs(ids)
  redis.call('XDEL', K_READY, unpack(msgs))
  looked = #entries
end
for _, index in ipairs(INDEXES) do
  if looked >= limit then break end
  local ids = redis.call('ZRANGE', index, 0, limit - looked - 1)
  if #ids > 0 then
    delete_jobs(ids)
    redis.call('ZREMRANGEBYRANK', index, 0, #ids - 1)
    looked = looked + #ids
  end
end
return {deleted, looked}
