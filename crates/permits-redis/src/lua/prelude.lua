-- The prelude shared by every permits-redis script (see src/script.rs).
-- It is prepended to each operation's body, so one EVALSHA does the whole
-- operation atomically against Redis server time.
--
-- KEYS: 1 meta (HASH: capacity, seq, boot, quarantine_until, max_lease, ticket)
--       2 holders (ZSET permit id -> lease deadline, server ms)
--       3 pinfo (HASH permit id -> "seq|since|pid|slot,slot|host")
--       4 used (HASH slot -> permit id)
--       5 queue (ZSET waiter id -> ticket)
--       6 qdl (ZSET waiter id -> liveness deadline, server ms)
--       7 winfo (HASH waiter id -> "n|channel|since|pid|host")
-- ARGV: 1 lease ms, 2 honour quarantine (1/0), 3 capacity (stored if none is;
--       0: none given), 4 strict (1: a different stored capacity is a
--       conflict; 0: the stored one wins, as after an admin resize),
--       5.. the operation's own arguments.
-- No key ever gets a TTL: a lease ends by its score, not by eviction.
local meta, holders, pinfo, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local queue, qdl, winfo = KEYS[5], KEYS[6], KEYS[7]
local lease = tonumber(ARGV[1])
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local changed = false

-- Integers above 1e14 must be formatted by hand: Lua's default conversion
-- keeps 14 significant digits and a seq has 16.
local function fmt(x) return string.format('%.0f', x) end

-- Restart or failover: a new run_id means the state may be older than what
-- holders were told, so grants pause for one (longest seen) lease.
local max_lease = tonumber(redis.call('HGET', meta, 'max_lease') or '0')
if lease > max_lease then
  max_lease = lease
  redis.call('HSET', meta, 'max_lease', fmt(max_lease))
end
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if run_id and redis.call('HGET', meta, 'boot') ~= run_id then
  redis.call('HSET', meta, 'boot', run_id, 'quarantine_until', fmt(now + max_lease))
end
local q_until = tonumber(redis.call('HGET', meta, 'quarantine_until') or '0')
local quarantined = ARGV[2] == '1' and now < q_until

-- Capacity agreement: the first caller stores it (again after a state
-- loss); a strict caller with a different one is refused.
local capacity = tonumber(redis.call('HGET', meta, 'capacity'))
local asked = tonumber(ARGV[3])
if not capacity then
  capacity = asked
  if asked > 0 then redis.call('HSET', meta, 'capacity', fmt(asked)) end
elseif ARGV[4] == '1' and asked > 0 and asked ~= capacity then
  return {'conflict', fmt(capacity)}
end

local function parse_grant(raw)
  local seq, since, pid, slots, host = string.match(raw, '^(%d+)|(%d+)|(%d+)|([%d,]*)|(.*)$')
  return seq, since, pid, slots, host
end

local function free_grant(id)
  local raw = redis.call('HGET', pinfo, id)
  if raw then
    local _, _, _, slots = parse_grant(raw)
    for s in string.gmatch(slots, '%d+') do
      if redis.call('HGET', used, s) == id then redis.call('HDEL', used, s) end
    end
    redis.call('HDEL', pinfo, id)
  end
  redis.call('ZREM', holders, id)
  changed = true
end

local function drop_waiter(id)
  if redis.call('ZREM', queue, id) == 1 then changed = true end
  redis.call('ZREM', qdl, id)
  redis.call('HDEL', winfo, id)
end

local function waiter_n(id)
  local raw = redis.call('HGET', winfo, id)
  if not raw then return 0 end
  return tonumber(string.match(raw, '^(%d+)|'))
end

-- Reclaim expired leases (deadline <= now) and waiters that stopped polling.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', holders, '-inf', now)) do free_grant(id) end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', qdl, '-inf', now)) do drop_waiter(id) end

local function free_permits()
  return capacity - redis.call('HLEN', used)
end

-- Hint the waiters at the head of the queue whose requests now fit. A hint
-- only makes a client re-run acquire: the queue, not the hint, decides.
local function notify_heads()
  if quarantined or capacity == 0 then return end
  local free = free_permits()
  if free <= 0 then return end
  for _, id in ipairs(redis.call('ZRANGE', queue, 0, free - 1)) do
    local raw = redis.call('HGET', winfo, id)
    if raw then
      local n, ch = string.match(raw, '^(%d+)|([^|]*)|')
      n = tonumber(n)
      if n > free then return end
      free = free - n
      redis.call('PUBLISH', ch, id)
    end
  end
end

-- The earliest server time at which the answer to a waiter may change
-- without anyone publishing: a lease or a waiter's liveness running out.
local function wake_at(self_id)
  if quarantined then return q_until end
  local at = 0
  local h = redis.call('ZRANGE', holders, 0, 0, 'WITHSCORES')
  if h[2] then at = tonumber(h[2]) end
  -- pairs of (member, score); skip the caller's own entry
  local q = redis.call('ZRANGE', qdl, 0, 1, 'WITHSCORES')
  local i = 1
  while q[i] do
    if q[i] ~= self_id then
      local d = tonumber(q[i + 1])
      if at == 0 or d < at then at = d end
      break
    end
    i = i + 2
  end
  return at
end
