-- release: ARGV 7 id. Frees the grant and leaves the queue; idempotent, and
-- by id alone, so an acquire whose reply was lost can be undone. What it
-- frees goes to the head of the queue in the same step (hand-off).
-- Replies: {'released', now} | {'none', now}
local id = ARGV[7]
local outcome = 'none'
if free_grant(id) then
  outcome = 'released'
  if not queue_empty then grant_heads() end
elseif drop_waiter(id) then
  -- a large request leaving the head may let smaller ones behind it in
  grant_heads()
end
return {outcome, fmt(now)}
