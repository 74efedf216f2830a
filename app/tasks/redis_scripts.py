"""The Lua scripts of the Redis task backend (app/tasks/redis_backend.py has the layout).

Each runs atomically in Redis on the queue's keys only, all under the ``{tasks}`` hash tag
(one Redis Cluster slot), every one declared in KEYS: a submission is checked (key, cap),
counted and queued in one step. The task's record and indexes are the run store's, written
around it by the backend (app/store/run_store_redis.py).

Fair order without a list per owner (a script could not name those keys in advance): the
waiting tasks are one sorted set scored by round. An owner's next task takes the round after
its previous waiting one; an owner with nothing waiting joins the current round (the round
of the task handed out last), or the next one if it was already served in this round. Ties
go by submission order (the member starts with a zero-padded sequence number). So each round
holds at most one task per owner, and a new task waits behind at most one task per waiting
owner: the owners are served in turn, whatever one owner's backlog.
"""

from __future__ import annotations

from app.tasks.backend import SubmitOutcome

# Lua shared by the scripts that hand waiting tasks to the stream. The queue's keys, in order:
# stream, waiting (round-scored), rounds (owner -> round of its last waiting task), served
# (owners served in the current round), clock (hash: round, seq).
DISPATCH = """
local function undelivered(queue)
  local length = redis.call('XLEN', queue)
  if length == 0 then return 0 end
  local ok, pending = pcall(redis.call, 'XPENDING', queue, 'workers')
  if not ok then return length end  -- no group yet: nothing was ever delivered
  return length - pending[1]
end

-- Move up to `wanted` waiting tasks to the stream, lowest round first.
local function dispatch(queue, waiting, rounds, served, clock, wanted)
  local moved = 0
  while moved < wanted do
    local popped = redis.call('ZPOPMIN', waiting)
    if #popped == 0 then break end
    local round = tonumber(popped[2])
    local task_id, owner = string.match(popped[1], '^%d+:([^:]+):(.*)$')
    if round > tonumber(redis.call('HGET', clock, 'round') or '0') then
      redis.call('HSET', clock, 'round', round)
      redis.call('DEL', served)
    end
    redis.call('SADD', served, owner)
    if tonumber(redis.call('HGET', rounds, owner) or '-1') == round then
      redis.call('HDEL', rounds, owner)  -- its last waiting task
    end
    redis.call('XADD', queue, '*', 'task', task_id)
    moved = moved + 1
  end
  return moved
end
"""

# KEYS: idempotency key (ARGV[2] says whether there is one), the owner's active set, then the
# queue's keys (stream, waiting, rounds, served, clock). ARGV: id, '1' with a key, fingerprint,
# key TTL, max active (0 = no cap), retention (seconds), owner.
# Replies {1, id}: created; {0, id}: the key's task, same body; {2, id}: the key's task,
# another body; {3, '', members}: the owner is at its cap (members: its active tasks, for the
# caller to check). A key stored before fingerprints (no ':') counts as the same body.
# The active set is scored by the expiry of its task's record (server time, as the record's
# TTL): members past it go first.
SUBMIT = (
    DISPATCH
    + """
if ARGV[2] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    local id, fingerprint = string.match(existing, '^([^:]*):?(.*)$')
    if fingerprint == '' or fingerprint == ARGV[3] then return {0, id} end
    return {2, id}
  end
end
local now = tonumber(redis.call('TIME')[1])
local retention, owner = tonumber(ARGV[6]), ARGV[7]
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local limit = tonumber(ARGV[5])
if limit > 0 and redis.call('ZCARD', KEYS[2]) >= limit then
  return {3, '', redis.call('ZRANGE', KEYS[2], 0, -1)}
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[3], 'EX', ARGV[4])
end
redis.call('ZADD', KEYS[2], now + retention, ARGV[1])
redis.call('EXPIRE', KEYS[2], retention)
local current = tonumber(redis.call('HGET', KEYS[7], 'round') or '0')
local last = redis.call('HGET', KEYS[5], owner)
local round = current
if last then
  round = math.max(tonumber(last) + 1, current)
elseif redis.call('SISMEMBER', KEYS[6], owner) == 1 then
  round = current + 1
end
local seq = redis.call('HINCRBY', KEYS[7], 'seq', 1)
redis.call('ZADD', KEYS[4], round, string.format('%016d', seq) .. ':' .. ARGV[1] .. ':' .. owner)
redis.call('HSET', KEYS[5], owner, round)
dispatch(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], 1 - undelivered(KEYS[3]))
return {1, ARGV[1]}
"""
)
OUTCOMES: dict[int, SubmitOutcome] = {
    0: "replayed",
    1: "created",
    2: "key_reused",
    3: "over_cap",
}

# KEYS: the queue's keys. ARGV: the worker's free slots. Tops the stream up to that many
# undelivered entries; returns how many it moved.
REFILL = (
    DISPATCH
    + """
local wanted = tonumber(ARGV[1]) - undelivered(KEYS[1])
return dispatch(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], wanted)
"""
)
