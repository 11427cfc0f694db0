#!lua flags=allow-oom
-- complete: record the results of jobs that succeeded (a batch, fenced per job).
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV[1]  worker id
-- ARGV[2+] quads: job id, lease, result (msgpack), logged ('1' the run wrote log lines; with
--          '0' at the job's first delivery (lease 1) it has no log: its key's expiry is not set)
-- Returns  one integer per job: 1 recorded; 3 recorded, and hand-overs to jobs of other queues
--          that depend on it were written (the caller delivers them: see tell_dependents);
--          2 already recorded under this lease (a re-send); 0 rejected: the lease is stale
--          (another worker owns the job now)
-- Events   completed (with the result)
-- Effects  result, progress 100, status completed, XACK, EXPIRE (completed_ttl, else
--          result_ttl), index, stats.completed; a job's limit key slot is freed (key_left); a
--          job with a unique key releases its lock, one with idempotency_ttl leaves its marker;
--          the jobs waiting for it learn of it (flow_end: run when it was their last parent);
--          jobs that keep a count of completed jobs
--          delete up to 2 each of the oldest beyond the smallest count (trim_kept)

local now = now_ms()
local out = {}
local done = 0
local keep = nil  -- the smallest completed_keep of this call's jobs, if any set one
local keepers = 0
local acked = {}  -- the entries of the jobs recorded, acknowledged together (ack_all)

-- Record the result of the job of ARGV[i..i+3] (see the header).
local function record(i)
  local jid, lease, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  -- only a run of the job writes its log: a first delivery that wrote none left no log
  local has_log = ARGV[i + 3] ~= '0' or lease ~= '1'
  local jkey = job_key(jid)
  -- Named locals, not a table: this runs for every job that succeeds.
  local held, status, msg, result_ttl, attempt, cancel, own_ttl, own_keep, ukey, idem, lkey,
    depends_on, dependents = unpack(redis.call('HMGET', jkey, 'lease', 'status', 'msg',
      'result_ttl', 'attempt', 'cancel', 'completed_ttl', 'completed_keep', 'unique_key',
      'idempotency_ttl', 'limit_key', 'depends_on', 'dependents'))
  if held ~= lease then
    out[#out + 1] = 0
    return
  elseif status ~= 'running' then
    if status == 'completed' then out[#out + 1] = 2 else out[#out + 1] = 0 end
    return
  end
  if msg and plain_id(msg) then acked[#acked + 1] = msg else ack(msg) end  -- (raises on junk)
  key_left(lkey, jid)
  if own_keep then
    keep, keepers = math.min(keep or math.huge, count_of(own_keep, 1)), keepers + 1
  end
  done = done + 1
  if complete_job(jkey, jid, 'running', now, outcome_ttl(own_ttl, result_ttl), cancel, has_log,
      result, count_of(attempt, 0), ukey, idem, depends_on, dependents) > 0 then
    out[#out + 1] = 3
  else
    out[#out + 1] = 1
  end
end

-- The batch's entries go in one XACK, its moves from running to completed in one ZREM and
-- one ZADD (gather_indexes), also when a job of it raises (gathering).
gather_indexes()
gathering(function()
  for i = 2, #ARGV, 4 do record(i) end
end, function()
  ack_all(acked)
  if done > 0 then redis.call('HINCRBY', K_STATS, 'completed', done) end
  flush_indexes()
end)
if done > 0 then trim_final('completed', now) end
if keep then trim_kept('completed', keep, KEEP_PER_JOB * keepers, now) end
return out
