-- fire: a schedule's due ticks become jobs, at most once per tick however many workers race.
--
-- KEYS[1]  queue prefix 'rj:{Q}:'
-- ARGV     schedule id, rev and due time the caller computed from (the compare-and-set token:
--          both must still be the stored ones), the next due time (ms; -1: no tick left), then
--          one enqueue row per tick to fire (as enqueue.lua's, rules included; the job id is
--          '<schedule id>@<tick ms>', so a tick's job exists once)
-- Returns  {fired, created, now}: fired 0 when the token no longer matches (another worker
--          fired it, or it was changed or removed: nothing written), else 1; created counts
--          the new jobs (a tick whose job exists already creates none but counts as a run)
-- Events   enqueued (per created job)
-- Effects  the jobs (create_job); stats.enqueued; state (rev + 1, runs, last_run, last_job);
--          ZADD schedule:due, or ZREM once no tick is left or its limit is reached (the spec
--          stays listed, finished)

local sid, rev, from, next_due = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local bad = check_rows(ARGV, 5)
if bad then return redis.error_reply(bad) end

local now = now_ms()
local skey = schedule_state_key(sid)
local state = hmget_named(skey, {'rev', 'runs', 'limit'})
local score = redis.call('ZSCORE', K_SCHEDULE_DUE, sid)
if (state.rev or '0') ~= rev or not score or tonumber(score) ~= tonumber(from) then
  return {0, 0, now}
end
local created, last_job, ticks = 0, nil, 0
local i, last = 5, #ARGV
while i <= last do
  local made
  last_job = ARGV[i]
  i, made = create_job(now, ARGV, i)
  if made then created = created + 1 end
  ticks = ticks + 1
end
if created > 0 then redis.call('HINCRBY', K_STATS, 'enqueued', created) end
local runs = tonumber(state.runs or '0') + ticks
redis.call('HINCRBY', skey, 'rev', 1)
redis.call('HSET', skey, 'runs', runs)
if last_job then redis.call('HSET', skey, 'last_run', now, 'last_job', last_job) end
set_schedule_due(sid, next_due, runs, tonumber(state.limit or '0'))
return {1, created, now}
