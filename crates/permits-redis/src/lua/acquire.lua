-- acquire: ARGV 7 id, 8 n, 9 mode ('try' or 'wait'), 10 waiter liveness ms,
-- 11 host, 12 pid, 13 wake channel, 14 fresh ('1': a random id on its first
-- call, which cannot have a grant yet).
-- Replies: {'granted', seq, deadline, now, since, slot...} | {'wait', wake_at, now}
--          | {'busy', wake_at, now, quarantined} | {'conflict', capacity}
--          | {'toolarge', capacity}
local id, n, mode = ARGV[7], tonumber(ARGV[8]), ARGV[9]
local liveness, host, pid, ch = tonumber(ARGV[10]), ARGV[11], ARGV[12], ARGV[13]
local fresh = ARGV[14] == '1'

-- Idempotent: a retried request with the same id gets the same grant, and
-- so does a waiter whose hand-off message was lost. A fresh id skips the
-- look-up (one command less on the uncontended path): nothing can have
-- been granted to it, and it is not queued.
local function granted_reply(raw)
  local seq, since, _, slots = parse_grant(raw)
  local reply = {'granted', seq, fmt(redis.call('ZSCORE', holders, id)), fmt(now), since}
  for s in string.gmatch(slots, '%d+') do table.insert(reply, s) end
  return reply
end
if not fresh then
  local raw = redis.call('HGET', pinfo, id)
  if raw then return granted_reply(raw) end
end
if n > capacity then return {'toolarge', fmt(capacity)} end

-- Strict FIFO with head-of-line blocking: queued requests that fit are
-- granted first (the caller among them, if it is queued); after that the
-- head of the queue, if any, does not fit, so an unqueued caller may be
-- granted only when the queue is empty.
local free, empty, mine = grant_heads(id)
if mine then return granted_reply(redis.call('HGET', pinfo, id)) end
if empty and n <= free and not quarantined() then
  local seq, deadline, list = grant(id, n, pid, host)
  local reply = {'granted', fmt(seq), fmt(deadline), fmt(now), fmt(now)}
  for s in string.gmatch(list, '%d+') do table.insert(reply, s) end
  return reply
end

if mode == 'wait' then
  queue_empty = false
  if not redis.call('ZSCORE', queue, id) then
    redis.call('ZADD', queue, redis.call('HINCRBY', meta, 'ticket', 1), id)
    redis.call('HSET', winfo, id, n .. '|' .. ch .. '|' .. fmt(now) .. '|' .. pid .. '|' .. host)
  end
  redis.call('ZADD', qdl, now + liveness, id)
  return {'wait', fmt(wake_at(id)), fmt(now)}
end
local q = '0'
if honour and now < q_until then q = '1' end
return {'busy', fmt(wake_at(id)), fmt(now), q}
