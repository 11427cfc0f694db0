-- resume: let a paused queue's workers lease jobs again.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- Returns  1 resumed now, 0 it was not paused
-- Effects  DEL paused; control channel 'resume', on which paused workers read again at once
--          (they also look again every few seconds, since pub/sub may lose a message)

local gone = redis.call('DEL', K_PAUSED)
redis.call(PUBLISH, K_CONTROL, 'resume')
return gone
