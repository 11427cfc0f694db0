-- pause: stop a queue's workers from leasing new jobs (running jobs finish; enqueue goes on).
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- Returns  1 paused now, 0 it was paused already
-- Effects  SET paused, which `start` checks (with `prio`, in one EXISTS a call) and `reclaim`
--          too; control channel 'pause'

local made = redis.call('SET', K_PAUSED, '1', 'NX')
redis.call(PUBLISH, K_CONTROL, 'pause')
if made then return 1 end
return 0
