-- acquire: ARGV 5 id, 6 n, 7 mode ('try' or 'wait'), 8 waiter liveness ms,
-- 9 host, 10 pid, 11 wake channel.
-- Replies: {'granted', seq, deadline, now, since, slot...} | {'wait', wake_at, now}
--          | {'busy', wake_at, now, quarantined} | {'conflict', capacity}
--          | {'toolarge', capacity}
local id, n, mode = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local liveness, host, pid, ch = tonumber(ARGV[8]), ARGV[9], ARGV[10], ARGV[11]

-- Idempotent: a retried request with the same id gets the same grant.
local raw = redis.call('HGET', pinfo, id)
if raw then
  local seq, since, _, slots = parse_grant(raw)
  local reply = {'granted', seq, fmt(redis.call('ZSCORE', holders, id)), fmt(now), since}
  for s in string.gmatch(slots, '%d+') do table.insert(reply, s) end
  return reply
end
if n > capacity then return {'toolarge', fmt(capacity)} end

-- Strict FIFO with head-of-line blocking: the caller may be granted only if
-- everything queued ahead of it (everything, when it is not queued) fits too.
local function eligible()
  local free = free_permits()
  if quarantined or n > free then return false end
  local rank = redis.call('ZRANK', queue, id)
  local ahead
  if rank then
    if rank == 0 then return true end
    if rank >= free then return false end
    ahead = redis.call('ZRANGE', queue, 0, rank - 1)
  else
    local len = redis.call('ZCARD', queue)
    if len == 0 then return true end
    if len >= free then return false end
    ahead = redis.call('ZRANGE', queue, 0, -1)
  end
  local sum = n
  for _, w in ipairs(ahead) do sum = sum + waiter_n(w) end
  return sum <= free
end

if eligible() then
  local slots = {}
  for s = 0, capacity - 1 do
    if #slots == n then break end
    if redis.call('HEXISTS', used, tostring(s)) == 0 then
      table.insert(slots, tostring(s))
      redis.call('HSET', used, tostring(s), id)
    end
  end
  -- A hybrid logical clock: strictly increasing while the state lives, and
  -- still increasing after the state is lost unless the server clock went back.
  local seq = math.max(tonumber(redis.call('HGET', meta, 'seq') or '0') + 1, now_us)
  redis.call('HSET', meta, 'seq', fmt(seq))
  local deadline = now + lease
  redis.call('HSET', pinfo, id, fmt(seq) .. '|' .. fmt(now) .. '|' .. pid .. '|' .. table.concat(slots, ',') .. '|' .. host)
  redis.call('ZADD', holders, deadline, id)
  drop_waiter(id)
  if changed then notify_heads() end
  local reply = {'granted', fmt(seq), fmt(deadline), fmt(now), fmt(now)}
  for _, s in ipairs(slots) do table.insert(reply, s) end
  return reply
end

if mode == 'wait' then
  if not redis.call('ZSCORE', queue, id) then
    redis.call('ZADD', queue, redis.call('HINCRBY', meta, 'ticket', 1), id)
    redis.call('HSET', winfo, id, n .. '|' .. ch .. '|' .. fmt(now) .. '|' .. pid .. '|' .. host)
  end
  redis.call('ZADD', qdl, now + liveness, id)
  if changed then notify_heads() end
  return {'wait', fmt(wake_at(id)), fmt(now)}
end
if changed then notify_heads() end
local q = '0'
if quarantined then q = '1' end
return {'busy', fmt(wake_at(id)), fmt(now), q}
