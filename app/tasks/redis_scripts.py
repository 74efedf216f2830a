"""The Lua scripts of the Redis task backend (app/tasks/redis_backend.py has the layout).

Each runs atomically in Redis: a submission is stored, indexed, counted against its owner's
cap and queued in one step. Status changes and their effect on the cap are the run store's
(app/store/run_store_redis.py).
"""

from __future__ import annotations

from app.tasks.backend import SubmitOutcome

# Lua shared by the scripts that hand waiting tasks to the stream.
DISPATCH = """
local function undelivered(queue)
  local length = redis.call('XLEN', queue)
  if length == 0 then return 0 end
  local ok, pending = pcall(redis.call, 'XPENDING', queue, 'workers')
  if not ok then return length end  -- no group yet: nothing was ever delivered
  return length - pending[1]
end

-- Move up to `wanted` waiting tasks to the stream, one owner at a time (round-robin).
local function dispatch(queue, owners, waiting_total, prefix, wanted)
  local moved = 0
  while moved < wanted do
    local owner = redis.call('LPOP', owners)
    if not owner then break end
    local waiting = prefix .. 'tasks:waiting:' .. owner
    local task_id = redis.call('LPOP', waiting)
    if task_id then
      redis.call('XADD', queue, '*', 'task', task_id)
      redis.call('DECR', waiting_total)
      moved = moved + 1
    end
    if redis.call('LLEN', waiting) > 0 then redis.call('RPUSH', owners, owner) end
  end
  return moved
end
"""

# KEYS: idempotency key ('' = none), record, owner's task index, queue, active set, owner's
# waiting list, owners, waiting total, owner's run index, session's run index ('' = none).
# ARGV: id, submit time, retention, key TTL, fingerprint, max active (0 = no cap), prefix,
# owner, then field, value...
# Replies {1, id}: created; {0, id}: the key's task, same body; {2, id}: the key's task,
# another body; {3, ''}: the owner is at its cap. A key stored before fingerprints (no ':')
# counts as the same body.
SUBMIT = (
    DISPATCH
    + """
if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    local id, fingerprint = string.match(existing, '^([^:]*):?(.*)$')
    if fingerprint == '' or fingerprint == ARGV[5] then return {0, id} end
    return {2, id}
  end
end
local limit = tonumber(ARGV[6])
if limit > 0 and redis.call('SCARD', KEYS[5]) >= limit then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
    local status = redis.call('HGET', ARGV[7] .. 'run:' .. id, 'status')
    if not status or status == 'completed' or status == 'failed' or status == 'cancelled' then
      redis.call('SREM', KEYS[5], id)
    end
  end
  if redis.call('SCARD', KEYS[5]) >= limit then return {3, ''} end
end
if KEYS[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[5], 'EX', ARGV[4])
end
redis.call('HSET', KEYS[2], unpack(ARGV, 9))
redis.call('EXPIRE', KEYS[2], ARGV[3])
for _, index in ipairs({KEYS[3], KEYS[9], KEYS[10]}) do
  if index ~= '' then
    redis.call('ZADD', index, ARGV[2], ARGV[1])
    redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (tonumber(ARGV[2]) - tonumber(ARGV[3])))
    redis.call('EXPIRE', index, ARGV[3])
  end
end
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('EXPIRE', KEYS[5], ARGV[3])
redis.call('RPUSH', KEYS[6], ARGV[1])
if redis.call('LLEN', KEYS[6]) == 1 then redis.call('RPUSH', KEYS[7], ARGV[8]) end
redis.call('INCR', KEYS[8])
dispatch(KEYS[4], KEYS[7], KEYS[8], ARGV[7], 1 - undelivered(KEYS[4]))
return {1, ARGV[1]}
"""
)
OUTCOMES: dict[int, SubmitOutcome] = {
    0: "replayed",
    1: "created",
    2: "key_reused",
    3: "over_cap",
}

# KEYS: queue, owners, waiting total. ARGV: prefix, the worker's free slots. Tops the
# stream up to that many undelivered entries; returns how many it moved.
REFILL = (
    DISPATCH
    + """
return dispatch(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]) - undelivered(KEYS[1]))
"""
)
