-- A fixed amount of script work, about one cleaning batch's worth: the yardstick
-- tests/script_budget.py times to learn how fast this machine runs scripts.
local key = KEYS[1]
local n = tonumber(ARGV[1])
for i = 1, n do
  redis.call('HSET', key .. ':' .. i, 'status', 'failed', 'completed_at', i)
  redis.call('ZADD', key .. ':index', i, i)
end
for i = 1, n do
  redis.call('DEL', key .. ':' .. i)
end
redis.call('DEL', key .. ':index')
return n
