"""Refund reservation: a refund checked against its bounds and recorded as pending."""
from __future__ import annotations

from oms.server.redis.scripts.lua import LuaScript

_RESERVE_REFUND = r"""
-- RESERVE_REFUND: check a refund against the bounds and record it as pending on the order, in
-- one step, before the gateway is called: a concurrent refund sees this one's reservation, so
-- together they never pass the bounds, and the gateway can never pay more than the order holds.
-- Bounds: the return's value (ARGV[3], from its lines: fixed once requested) less what was
-- refunded and is pending on that return; the captured amount less what was refunded and is
-- pending on the whole order. Refunds are order hash fields "rf:<return id>/f<n>" =
-- "<amount> <state>", state P (pending: the gateway may or may not have paid), D (done:
-- counted in the return's and the payment's refunded_cents, set in the same TRANSITION) or
-- X (the gateway refused it).
-- KEYS[1] order hash
-- ARGV[1] return id  ARGV[2] amount in cents (> 0)  ARGV[3] the return's value in cents
-- returns {1, refund id} reserved now; {0, refund id} a refund of the same amount already
--         pending on this return (this request's retry: it finishes that one, never pays twice);
--         {-1} no such return; {-2, return status} not received yet; {-3, payment status}
--         nothing captured; {-4, room, value} over the return's value; {-5, room, captured}
--         over what the order's capture has left
local okey, rid = KEYS[1], ARGV[1]
local amount, value = tonumber(ARGV[2]), tonumber(ARGV[3])
local raw = redis.call('HGET', okey, 'ret:' .. rid)
if not raw then return {-1} end
local ret = cjson.decode(raw)
if ret.status ~= 'RECEIVED' and ret.status ~= 'REFUNDED' then return {-2, ret.status} end
local praw = redis.call('HGET', okey, 'pay')
local pay = praw and cjson.decode(praw) or {status = 'NONE'}
if pay.status ~= 'CAPTURED' and pay.status ~= 'PARTIALLY_REFUNDED' and pay.status ~= 'REFUNDED' then
  return {-3, pay.status}
end
local mine = 'rf:' .. rid .. '/f'
local held_ret, held_all, n = 0, 0, 0
for _, f in ipairs(redis.call('HKEYS', okey)) do
  if string.sub(f, 1, 3) == 'rf:' then
    local amt, st = string.match(redis.call('HGET', okey, f), '^(%d+) (%u)$')
    amt = tonumber(amt)
    local ours = string.sub(f, 1, #mine) == mine
    if ours then n = n + 1 end
    if st == 'P' then
      if ours and amt == amount then return {0, string.sub(f, 4)} end
      held_all = held_all + amt
      if ours then held_ret = held_ret + amt end
    end
  end
end
local room = value - (tonumber(ret.refunded_cents) or 0) - held_ret
if amount > room then return {-4, room, value} end
local captured = tonumber(pay.captured_cents) or 0
room = captured - (tonumber(pay.refunded_cents) or 0) - held_all
if amount > room then return {-5, room, captured} end
local id = rid .. '/f' .. (n + 1)
redis.call('HSET', okey, 'rf:' .. id, ARGV[2] .. ' P')
return {1, id}
"""

# The scripts as they run. Each one's KEYS count is checked on every call.
RESERVE_REFUND = LuaScript("RESERVE_REFUND", _RESERVE_REFUND, 1)
