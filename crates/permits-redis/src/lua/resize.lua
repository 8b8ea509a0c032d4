-- resize: ARGV 7 new capacity. An admin operation: the stored capacity
-- changes for every client. Shrinking below what is held leaves a debt:
-- holders keep their slots, and nobody is granted until enough is released.
-- Growing hands the new permits to the queue at once.
-- Reply: {'resized', previous capacity}
local previous = capacity
capacity = tonumber(ARGV[7])
redis.call('HSET', meta, 'capacity', fmt(capacity))
grant_heads()
return {'resized', fmt(previous)}
