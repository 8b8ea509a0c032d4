-- status: no arguments of its own. Looks for a restart even though it
-- grants nothing, so the quarantine shows at once (connect runs it).
-- Reply: {'status', now, capacity, quarantine_until, seq, holders, waiters,
--         then per holder: id, deadline, seq, since, pid, slots, host,
--         then per waiter: id, n, since, pid, host, liveness deadline}
check_boot()
local hs = redis.call('ZRANGE', holders, 0, -1, 'WITHSCORES')
local qs = redis.call('ZRANGE', queue, 0, -1)
local reply = {'status', fmt(now), fmt(capacity), fmt(q_until),
  redis.call('HGET', meta, 'seq') or '0', tostring(#hs / 2), tostring(#qs)}
local i = 1
while hs[i] do
  local seq, since, pid, slots, host = parse_grant(redis.call('HGET', pinfo, hs[i]) or '0|0|0||')
  for _, v in ipairs({hs[i], fmt(tonumber(hs[i + 1])), seq, since, pid, slots, host}) do
    table.insert(reply, v)
  end
  i = i + 2
end
for _, id in ipairs(qs) do
  local n, _, since, pid, host = string.match(redis.call('HGET', winfo, id) or '0||0|0|', '^(%d+)|([^|]*)|(%d+)|(%d+)|(.*)$')
  for _, v in ipairs({id, n, since, pid, host, fmt(tonumber(redis.call('ZSCORE', qdl, id) or '0'))}) do
    table.insert(reply, v)
  end
end
return reply
