-- resolve: a hand-over from another queue: a parent there ended (or runs again) and a job of
-- this queue depends on it.
--
-- KEYS[1]  queue prefix 'rj:{Q}:' (the dependent's queue)
-- ARGV[1]  the dependent's job id
-- ARGV[2]  the parent's ref, 'queue/id'
-- ARGV[3]  its outcome: 'completed', 'failed', 'cancelled', or 'revive' (it was retried)
-- ARGV[4]  its result (msgpack) when completed, else its error text
-- Returns  the hand-overs this wrote in turn to jobs of other queues (its own handover
--          stream), to be delivered as well
-- Effects  resolve_edge: the edge closes once (a re-sent hand-over finds it closed and does
--          nothing), the job runs when none is left open (`ready` event), or ends by the edge's
--          policy and tells its own dependents (tell_dependents); 'revive' opens a closed
--          failed edge again (reopen_edge). An unknown job or edge: nothing.

local now = now_ms()
local item = resolve_edge(ARGV[1], ARGV[2], ARGV[3], ARGV[4], now)
if not item then return 0 end
return tell_dependents(item[1], item[2], item[3], now)
