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
--       5 proven run_id and 6 proof channel (both '' without a proof; see
--       ServerProof in src/client.rs), 7.. the operation's own arguments.
-- No key ever gets a TTL: a lease ends by its score, not by eviction.
--
-- Every grant, whether to the caller or handed to the head of the queue by
-- whichever script freed a slot, goes through grant() below, after
-- quarantined() said no. Scripts that grant nothing never read INFO.
local meta, holders, pinfo, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local queue, qdl, winfo = KEYS[5], KEYS[6], KEYS[7]
local lease = tonumber(ARGV[1])
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)

-- Integers above 1e14 must be formatted by hand: Lua's default conversion
-- keeps 14 significant digits and a seq has 16.
local function fmt(x) return string.format('%.0f', x) end

-- One read for the semaphore's settings.
local m = redis.call('HMGET', meta, 'max_lease', 'quarantine_until', 'capacity', 'boot', 'seq')
local max_lease = tonumber(m[1] or '0')
if lease > max_lease then
  max_lease = lease
  redis.call('HSET', meta, 'max_lease', fmt(max_lease))
end
local q_until = tonumber(m[2] or '0')
local honour = ARGV[2] == '1'

-- Restart or failover: a new run_id means the state may be older than what
-- holders were told, so grants pause for one (longest seen) lease. Checked
-- before any grant (and by status), not on every call: a script that
-- grants nothing cannot over-admit, and the next one that would grant
-- looks first, in the same atomic step as the grant. Most often the
-- client's proof spares the INFO call.
local boot_checked = false
local function check_boot()
  if boot_checked then return end
  boot_checked = true
  -- The proof channel is subscribed only on the process whose run_id the
  -- client read on that same connection; anywhere else, ask the server.
  local run_id
  if ARGV[6] ~= '' then
    local subs = redis.pcall('PUBSUB', 'NUMSUB', ARGV[6])
    if type(subs) == 'table' and tonumber(subs[2]) and tonumber(subs[2]) > 0 then
      run_id = ARGV[5]
    end
  end
  if not run_id then
    run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  end
  if run_id and m[4] ~= run_id then
    q_until = now + max_lease
    redis.call('HSET', meta, 'boot', run_id, 'quarantine_until', fmt(q_until))
  end
end
local function quarantined()
  check_boot()
  return honour and now < q_until
end

-- Capacity agreement: the first caller stores it (again after a state
-- loss); a strict caller with a different one is refused.
local capacity = tonumber(m[3])
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

-- Frees `id`'s grant; true if it had one.
local function free_grant(id)
  local raw = redis.call('HGET', pinfo, id)
  if raw then
    local _, _, _, slots = parse_grant(raw)
    for s in string.gmatch(slots, '%d+') do
      if redis.call('HGET', used, s) == id then redis.call('HDEL', used, s) end
    end
    redis.call('HDEL', pinfo, id)
  end
  -- (a missing field reads as false, not nil)
  return redis.call('ZREM', holders, id) == 1 or raw ~= false
end

-- Leaves the queue; true if `id` was queued (queue, qdl and winfo entries
-- are written and removed together).
local function drop_waiter(id)
  if redis.call('ZREM', queue, id) == 0 then return false end
  redis.call('ZREM', qdl, id)
  redis.call('HDEL', winfo, id)
  return true
end

-- Known while nothing is queued (true stays true as waiters leave; the
-- one place that queues clears it), so the uncontended path skips the
-- queue's other keys.
local queue_empty = redis.call('EXISTS', queue) == 0

local function free_permits()
  return capacity - redis.call('HLEN', used)
end

local last_seq = tonumber(m[5] or '0')

-- Grants `n` free slots (the lowest) to `id`; the caller has checked that
-- they fit and that no quarantine is in force. Returns seq, deadline and
-- the slots as a comma-separated list.
local function grant(id, n, pid, host)
  local slots = {}
  for s = 0, capacity - 1 do
    if #slots == n then break end
    if redis.call('HSETNX', used, tostring(s), id) == 1 then
      table.insert(slots, tostring(s))
    end
  end
  -- A hybrid logical clock: strictly increasing while the state lives, and
  -- still increasing after the state is lost unless the server clock went back.
  local seq = math.max(last_seq + 1, now_us)
  last_seq = seq
  redis.call('HSET', meta, 'seq', fmt(seq))
  local deadline = now + lease
  local list = table.concat(slots, ',')
  redis.call('HSET', pinfo, id, fmt(seq) .. '|' .. fmt(now) .. '|' .. pid .. '|' .. list .. '|' .. host)
  redis.call('ZADD', holders, deadline, id)
  return seq, deadline, list
end

-- Hand-off: grants freed permits to the head of the queue, in order, while
-- the head's request fits (head-of-line: a large head holds back smaller
-- ones behind it), and publishes each grant on the waiter's wake channel as
-- "G seq deadline now slots id". The message spares the waiter a call; it
-- is not needed for safety: a waiter that misses it finds the same grant by
-- its id on its next (timer) call, and one that gave up releases it by id.
-- Returns the permits still free, whether the queue is now empty, and
-- whether `self_id` (the caller) was granted; the caller's own grant is not
-- published: its reply carries it.
local function grant_heads(self_id)
  if queue_empty then return free_permits(), true, false end
  local free = free_permits()
  if free <= 0 then return free, redis.call('EXISTS', queue) == 0, false end
  local ids = redis.call('ZRANGE', queue, 0, free - 1)
  if #ids == 0 then return free, true, false end
  local self_granted = false
  for _, id in ipairs(ids) do
    local raw = redis.call('HGET', winfo, id)
    local n, ch, _, pid, host = string.match(raw or '', '^(%d+)|([^|]*)|(%d+)|(%d+)|(.*)$')
    n = tonumber(n)
    if not n then
      drop_waiter(id) -- unreadable entry: it can never be granted
    else
      if n > free or quarantined() then return free, false, self_granted end
      local seq, deadline, list = grant(id, n, pid, host)
      drop_waiter(id)
      free = free - n
      if id == self_id then
        self_granted = true
      else
        redis.call('PUBLISH', ch, 'G ' .. fmt(seq) .. ' ' .. fmt(deadline) .. ' ' .. fmt(now) .. ' ' .. list .. ' ' .. id)
      end
    end
  end
  return free, redis.call('EXISTS', queue) == 0, self_granted
end

-- Reclaim expired leases (deadline <= now) and waiters that stopped
-- re-checking, then hand what they held to the queue.
local changed = false
for _, id in ipairs(redis.call('ZRANGEBYSCORE', holders, '-inf', now)) do
  free_grant(id)
  changed = true
end
if not queue_empty then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', qdl, '-inf', now)) do
    drop_waiter(id)
    changed = true
  end
end
if changed then grant_heads() end

-- The earliest server time at which the answer to a waiter may change
-- without a script granting it: a lease or a waiter's liveness running
-- out, or a quarantine ending.
local function wake_at(self_id)
  if honour and now < q_until then return q_until end
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
