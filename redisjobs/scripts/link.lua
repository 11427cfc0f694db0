-- link: a job of another queue is enqueued to wait for a job of this queue (its parent).
--
-- KEYS[1]  queue prefix 'rj:{Q}:' (the parent's queue)
-- ARGV[1]  the parent's job id
-- ARGV[2]  the dependent's ref, 'queue/id'
-- Returns  {'linked', ''} (it will be told through the handover stream when the parent ends);
--          {status, value} when the parent has ended already (status completed, failed or
--          cancelled; value its result, msgpack, or its error), which the caller hands over
--          itself (resolve); {'missing', ''} when there is no such job
-- Effects  SADD of the dependent to the parent's dependents set, its `dependents` flag
--          (both idempotent: a re-sent link has one effect), unless the parent completed: a
--          failed or cancelled one keeps it for a retry of it to revive (add_dependent)

local jid, ref = ARGV[1], ARGV[2]
local jkey = job_key(jid)
local p = hmget_named(jkey, {'status', 'result', 'error'})
if not p.status then return {'missing', ''} end
if p.status ~= 'completed' then add_dependent(jkey, jid, ref, p.status) end
if FINAL[p.status] then return {p.status, p.result or p.error or ''} end
return {'linked', ''}
