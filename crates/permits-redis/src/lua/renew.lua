-- renew: ARGV 7 id, 8 seq. Extends a lease that is still valid; never
-- revives one that ran out (the prelude has already reclaimed it).
-- Replies: {'renewed', deadline, now} | {'lost', now}
local id, seq = ARGV[7], ARGV[8]
local raw = redis.call('HGET', pinfo, id)
if raw and parse_grant(raw) == seq then
  local deadline = now + lease
  redis.call('ZADD', holders, 'XX', deadline, id)
  return {'renewed', fmt(deadline), fmt(now)}
end
return {'lost', fmt(now)}
