"""Lua scripts of the Redis session store: each check-then-write runs as one atomic step.

Every script touches the keys of ONE session only (they share its hash tag, so on a cluster
they live in one slot) and declares all of them in KEYS; no key name is built inside Lua.
The owner's listing and expiry indexes are another entity and are written beside the
scripts by ``session_redis``.

Waiting runs hold tickets: the queue (a sorted set scored by band + arrival) says in which
order they are served, and the tickets set (a sorted set run id -> deadline, in ms on the
Redis server's clock, ``TIME``) says which waiters are still alive: every poll pushes its
waiter's deadline forward. A ticket whose deadline has passed belongs to a waiter that died:
the scripts drop such tickets when they reach the head.
"""

from __future__ import annotations

# Scores of interrupting runs' tickets lie in [AHEAD_BAND, QUEUED_BAND), enqueued runs' in
# [QUEUED_BAND, END_BAND): every interrupter is served before every enqueued run. 2**40
# arrivals per band, far below the 2**53 a double holds exactly.
AHEAD_BAND = 1
QUEUED_BAND = 2**40
END_BAND = 2**41

# The server's clock in ms (scripts replicate by effects since Redis 7, so TIME is allowed
# before writes), and the first live ticket of a queue (dead ones in front of it are
# removed from both sets), or nil.
_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""
_LIVE_HEAD = (
    _NOW_MS
    + """
local function live_head(queue, tickets, now)
  while true do
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    if not head then
      return nil
    end
    local deadline = redis.call('ZSCORE', tickets, head)
    if deadline and tonumber(deadline) > now then
      return head
    end
    redis.call('ZREM', queue, head)
    redis.call('ZREM', tickets, head)
  end
end
"""
)

# Compare-and-delete: a run whose lock expired (and was taken by another run) must not
# release the new holder's lock.
# KEYS: lock. ARGV: run id.
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# A run that does not wait: the lock must be free and nobody alive waiting for it.
# KEYS: lock, queue, tickets. ARGV: run id, lock ttl (s).
ACQUIRE_LOCK = (
    _LIVE_HEAD
    + """
if redis.call('EXISTS', KEYS[1]) == 1 or live_head(KEYS[2], KEYS[3], now_ms()) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
)

# One poll of a waiting run: join or refresh, then take the lock if it is free and this ticket
# is the first live one. The queue and tickets keys live as long as their longest-lived ticket.
# KEYS: lock, queue, tickets. ARGV: run id, lock ttl (s), ticket ttl (ms), band start,
# band end (exclusive).
TAKE_TURN = (
    _LIVE_HEAD
    + """
local me, ticket_ms = ARGV[1], tonumber(ARGV[3])
local now = now_ms()
if not redis.call('ZSCORE', KEYS[2], me) then
  local last = redis.call('ZREVRANGEBYSCORE', KEYS[2], '(' .. ARGV[5], ARGV[4],
    'WITHSCORES', 'LIMIT', 0, 1)
  local score = tonumber(ARGV[4])
  if last[2] then
    score = tonumber(last[2]) + 1
  end
  redis.call('ZADD', KEYS[2], score, me)
end
redis.call('ZADD', KEYS[3], now + ticket_ms, me)
for i = 2, 3 do
  if redis.call('PTTL', KEYS[i]) < ticket_ms then
    redis.call('PEXPIRE', KEYS[i], ticket_ms)
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 or live_head(KEYS[2], KEYS[3], now) ~= me then
  return 0
end
redis.call('ZREM', KEYS[2], me)
redis.call('ZREM', KEYS[3], me)
redis.call('SET', KEYS[1], me, 'EX', ARGV[2])
return 1
"""
)

# A waiter that gives up: drop its ticket, and the lock too if its last poll took it.
# KEYS: lock, queue, tickets. ARGV: run id.
ABANDON_TURN = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# The live waiters, in the order they will be served (read only).
# KEYS: queue, tickets.
WAITING = (
    _NOW_MS
    + """
local now, live = now_ms(), {}
for _, run in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local deadline = redis.call('ZSCORE', KEYS[2], run)
  if deadline and tonumber(deadline) > now then
    live[#live + 1] = run
  end
end
return live
"""
)

# Push, trim, bump updated_at and the expiries in one atomic step, and only while the session
# still exists: a plain MULTI cannot check that (its HSET would recreate a partial record) and
# WATCH + MULTI livelocks when appends to one session race.
# KEYS: record, messages. ARGV: owner, ttl_ms, max_messages, updated_at, messages...
APPEND = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
for i = 5, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
for i = 1, 2 do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
"""

# A session under a client-chosen id (an AG-UI thread id), only while no live session has it:
# two clients racing for one id cannot both get it. Leftover history of an expired session
# with the same id is dropped, never inherited.
# KEYS: record, messages. ARGV: ttl_ms, then field/value pairs of the record.
CREATE_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[2])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
