"""Lua scripts of the Redis session store: each check-then-write runs as one atomic step.

Tickets of waiting runs live in a sorted set (the queue) scored by band + arrival; each has a
TTL key ``<tickets prefix><run id>`` its waiter refreshes on every poll. A ticket whose key has
expired belongs to a waiter that died: the scripts drop such tickets when they reach the head.
"""

from __future__ import annotations

# Scores of interrupting runs' tickets lie in [AHEAD_BAND, QUEUED_BAND), enqueued runs' in
# [QUEUED_BAND, END_BAND): every interrupter is served before every enqueued run. 2**40
# arrivals per band, far below the 2**53 a double holds exactly.
AHEAD_BAND = 1
QUEUED_BAND = 2**40
END_BAND = 2**41

# The first live ticket of a queue (dead ones in front of it are removed), or nil.
_LIVE_HEAD = """
local function live_head(queue, tickets)
  while true do
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    if not head or redis.call('EXISTS', tickets .. head) == 1 then
      return head
    end
    redis.call('ZREM', queue, head)
  end
end
"""

# Compare-and-delete: a run whose lock expired (and was taken by another run) must not
# release the new holder's lock.
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# A run that does not wait: the lock must be free and nobody alive waiting for it.
# KEYS: lock, queue. ARGV: run id, lock ttl (s), tickets prefix.
ACQUIRE_LOCK = (
    _LIVE_HEAD
    + """
if redis.call('EXISTS', KEYS[1]) == 1 or live_head(KEYS[2], ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
)

# One poll of a waiting run: join or refresh, then take the lock if it is free and this ticket
# is the first live one. The queue key lives as long as its longest-lived ticket.
# KEYS: lock, queue. ARGV: run id, lock ttl (s), ticket ttl (ms), tickets prefix,
# band start, band end (exclusive).
TAKE_TURN = (
    _LIVE_HEAD
    + """
local me, tickets = ARGV[1], ARGV[4]
if not redis.call('ZSCORE', KEYS[2], me) then
  local last = redis.call('ZREVRANGEBYSCORE', KEYS[2], '(' .. ARGV[6], ARGV[5],
    'WITHSCORES', 'LIMIT', 0, 1)
  local score = tonumber(ARGV[5])
  if last[2] then
    score = tonumber(last[2]) + 1
  end
  redis.call('ZADD', KEYS[2], score, me)
end
redis.call('SET', tickets .. me, '1', 'PX', ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
if redis.call('EXISTS', KEYS[1]) == 1 or live_head(KEYS[2], tickets) ~= me then
  return 0
end
redis.call('ZREM', KEYS[2], me)
redis.call('DEL', tickets .. me)
redis.call('SET', KEYS[1], me, 'EX', ARGV[2])
return 1
"""
)

# A waiter that gives up: drop its ticket, and the lock too if its last poll took it.
# KEYS: lock, queue, ticket. ARGV: run id.
ABANDON_TURN = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Push, trim, bump updated_at and every expiry in one atomic step, and only while the session
# still exists: a plain MULTI cannot check that (its HSET would recreate a partial record) and
# WATCH + MULTI livelocks when appends to one session race.
# KEYS: record, messages, owner index, expiry index.
# ARGV: owner, ttl_ms, max_messages, updated_at, deadline, session_id, messages...
APPEND = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
for i = 7, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
redis.call('ZADD', KEYS[4], 'XX', ARGV[5], ARGV[6])
return 1
"""

# A session under a client-chosen id (an AG-UI thread id), only while no live session has it:
# two clients racing for one id cannot both get it. Leftover history of an expired session
# with the same id is dropped, never inherited.
# KEYS: record, messages, owner index, expiry index.
# ARGV: ttl_ms, session_id, created_at score, deadline, then field/value pairs of the record.
CREATE_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[2])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[4], ARGV[1])
return 1
"""
