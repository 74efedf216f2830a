"""The Lua scripts of the Redis run store (app/store/run_store_redis.py): each touches the keys
of one run only (one hash tag, one Redis Cluster slot)."""

from __future__ import annotations

# KEYS: record. ARGV[1]: the new status ('' keeps it); ARGV[2]: the allowed statuses;
# ARGV[3]: '1' when the new status is terminal; then field, value... Replies {moved, owner}:
# the owner of a task that has just finished (its active-set member goes next), else ''.
TRANSITION = """
local found = redis.call('HMGET', KEYS[1], 'status', 'owner', 'kind')
local current = found[1]
if not current then return {0, ''} end
for allowed in string.gmatch(ARGV[2], '[^,]+') do
  if allowed == current then
    redis.call('HSET', KEYS[1], unpack(ARGV, 4))
    if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'status', ARGV[1]) end
    if ARGV[3] ~= '' and found[3] ~= 'run' and found[2] then return {1, found[2]} end
    return {1, ''}
  end
end
return {0, ''}
"""

# KEYS: events, seq. ARGV: max events kept, retention, event json. Returns the new seq.
APPEND_EVENT = """
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return seq
"""

# KEYS: events, seq. ARGV: max events kept, retention, the seqs joined by ',', the events'
# JSON joined by '\n' (JSON text never holds a raw newline): two arguments for any batch,
# since encoding one argument per event was most of the client's cost. Skips events at or
# below the stored seq (a late write from a run another process took over).
APPEND_EVENTS = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seqs = {}
for seq in string.gmatch(ARGV[3], '[^,]+') do seqs[#seqs + 1] = tonumber(seq) end
local i = 0
for json in string.gmatch(ARGV[4], '[^\\n]+') do
  i = i + 1
  if seqs[i] > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seqs[i] .. '-0', 'e', json)
    last = seqs[i]
  end
end
redis.call('SET', KEYS[2], last, 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return last
"""

# KEYS: record. ARGV: record TTL, then field, value... (a script: no record without its TTL)
CREATE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
