-- release: ARGV 5 id. Frees the grant and leaves the queue; idempotent, and
-- by id alone, so an acquire whose reply was lost can be undone.
-- Replies: {'released', now} | {'none', now}
local id = ARGV[5]
local outcome = 'none'
if redis.call('HEXISTS', pinfo, id) == 1 or redis.call('ZSCORE', holders, id) then
  free_grant(id)
  outcome = 'released'
end
drop_waiter(id)
if changed then notify_heads() end
return {outcome, fmt(now)}
