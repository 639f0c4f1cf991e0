"""The notifier's send claims (server/redis/notifications.py)."""
from __future__ import annotations

from oms.server.redis.scripts.lua import LuaScript

_NOTIFY_RELEASE = r"""
-- NOTIFY_RELEASE: compare-and-delete a send claim: only the holder of a claim may release it.
-- KEYS[1] claim key  ARGV[1] the holder's token; returns 1 deleted, 0 not ours
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_NOTIFY_MARK = r"""
-- NOTIFY_MARK: mark a send claim sent, only if it is still ours (an expired and re-taken claim
-- is left alone).
-- KEYS[1] claim key  ARGV[1] the holder's token  ARGV[2] new value  ARGV[3] ttl (s)
-- returns 1 marked, 0 not ours
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""

# The scripts as they run. Each one's KEYS count is checked on every call.
NOTIFY_RELEASE = LuaScript("NOTIFY_RELEASE", _NOTIFY_RELEASE, 1)
NOTIFY_MARK = LuaScript("NOTIFY_MARK", _NOTIFY_MARK, 1)
