"""The Redis ledger's Lua scripts, admission and settlement, each one atomic step in Redis, and
the keys and arguments ADMIT is given for a request.

Redis runs a script to the end before any other command, so `ADMIT` does across replicas what
reservations.py does within one process: read every applicable budget and rate limit, decide,
and hold, with nothing in between. A budget refusal says what is spent and what is held, and
whether the holds alone are what refuse it (`1`: the request may wait for them to settle).
Keys per budget and window (the window's start is in the name, so a new window starts at zero
and old ones expire at their end):

    {p}b:{budget}:{start}:{value}     hash: spent, reserved, h:<hold id> -> nano-dollars held
    {p}b:{budget}:{start}:{value}:h   sorted set: hold id -> the time it expires
    {p}bv:{budget}:{start}            set: the scope values seen in the window (for reports)
    {p}r:{limit}:{rpm|tpm}:{value}    hash: level, at (a token bucket)

A hold carries an expiry (`spend.reservation_ttl_s`): a replica that dies holding money does not
hold it for ever; the next admission on that budget releases expired holds first. Integers go
through string.format('%d') (Lua prints large numbers as 1e+15, which HINCRBY refuses).
"""

from __future__ import annotations

import random
from typing import Any

from sidecar.spend.policy import Ask
from sidecar.spend.redis_rows import PREFIX
from sidecar.spend.windows import window_end, window_start

ADMIT = """
local now = tonumber(ARGV[1])
local hold_until = tonumber(ARGV[2])
local id = ARGV[3]
local fixed = tonumber(ARGV[4])
local per_token = tonumber(ARGV[5])
local want = tonumber(ARGV[6])
local prompt_tokens = tonumber(ARGV[7])
local choices = tonumber(ARGV[8])
local nb = tonumber(ARGV[9])
local nl = tonumber(ARGV[10])

local function affordable(room)
  if math.ceil(fixed) > room then return -1 end
  if want <= 0 or per_token <= 0 then return want end
  local t = math.floor((room - fixed) / per_token)
  if t > want then t = want end
  while t > 0 and math.ceil(fixed + per_token * t) > room do t = t - 1 end
  if t > 0 then return t end
  return -1
end

local spent, reserved = {}, {}
local tokens = want
local held = nil  -- the first budget refused only because of holds in flight
local a = 11
for i = 1, nb do
  local h, z = KEYS[3 * i - 2], KEYS[3 * i - 1]
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, hid in ipairs(expired) do
    local amount = tonumber(redis.call('HGET', h, 'h:' .. hid)) or 0
    redis.call('HINCRBY', h, 'reserved', string.format('%d', -amount))
    redis.call('HDEL', h, 'h:' .. hid)
    redis.call('ZREM', z, hid)
  end
  local v = redis.call('HMGET', h, 'spent', 'reserved')
  spent[i] = tonumber(v[1]) or 0
  reserved[i] = tonumber(v[2]) or 0
  if ARGV[a + 1] == '1' then
    local fits = affordable(tonumber(ARGV[a]) - spent[i] - reserved[i])
    if fits < 0 then
      if affordable(tonumber(ARGV[a]) - spent[i]) < 0 then  -- spent alone leaves no room
        return {'budget', tostring(i), string.format('%d', spent[i]),
                string.format('%d', reserved[i]), '0'}
      end
      if held == nil then held = i end
    elseif fits < tokens then tokens = fits end
  end
  a = a + 4
end
if held ~= nil then
  return {'budget', tostring(held), string.format('%d', spent[held]),
          string.format('%d', reserved[held]), '1'}
end

local tpm_need = prompt_tokens + tokens * choices
local levels = {}
for j = 1, nl do
  local key = KEYS[3 * nb + j]
  local cap, rate = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local v = redis.call('HMGET', key, 'level', 'at')
  local level, at = tonumber(v[1]) or cap, tonumber(v[2]) or now
  if now > at then level = math.min(cap, level + (now - at) * rate) end
  local need = 1
  if ARGV[a + 2] == '1' then need = math.min(tpm_need, cap) end
  if level < need then
    return {'rate', tostring(j), tostring(level), tostring((need - level) / rate)}
  end
  levels[j] = level - need
  a = a + 3
end

local cost = math.ceil(fixed + per_token * tokens)
a = 11 + 4 * nb
for j = 1, nl do
  local key = KEYS[3 * nb + j]
  local cap, rate = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  redis.call('HSET', key, 'level', tostring(levels[j]), 'at', tostring(now))
  redis.call('EXPIRE', key, math.ceil(cap / rate) + 60)
  a = a + 3
end
local remaining = nil
local warned = {}
a = 11
for i = 1, nb do
  local h, z, vs = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local limit, expire_at = tonumber(ARGV[a]), tonumber(ARGV[a + 2])
  redis.call('HINCRBY', h, 'reserved', string.format('%d', cost))
  redis.call('HSET', h, 'h:' .. id, string.format('%d', cost))
  redis.call('ZADD', z, hold_until, id)
  redis.call('SADD', vs, ARGV[a + 3])
  if expire_at > 0 then
    redis.call('EXPIREAT', h, expire_at)
    redis.call('EXPIREAT', z, expire_at)
    redis.call('EXPIREAT', vs, expire_at)
  end
  local left = limit - spent[i] - reserved[i] - cost
  if ARGV[a + 1] ~= '1' and left < 0 then table.insert(warned, tostring(i)) end
  if remaining == nil or left < remaining then remaining = left end
  a = a + 4
end
local rem = ''
if remaining ~= nil then rem = string.format('%d', remaining) end
return {'ok', string.format('%d', tokens), string.format('%d', cost), rem,
        table.concat(warned, ',')}
"""

SETTLE = """
local id = ARGV[1]
local held = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local nb, nt = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 1, nb do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('EXISTS', h) == 1 then  -- gone: its window ended, the cost counts in none
    if redis.call('HDEL', h, 'h:' .. id) == 1 then
      redis.call('HINCRBY', h, 'reserved', string.format('%d', -held))
      redis.call('ZREM', z, id)
    end
    redis.call('HINCRBY', h, 'spent', string.format('%d', cost))
  end
end
for j = 1, nt do
  local key = KEYS[2 * nb + j]
  local cap, back = tonumber(ARGV[4 + 2 * j]), tonumber(ARGV[5 + 2 * j])
  if back > 0 and redis.call('EXISTS', key) == 1 then
    local level = tonumber(redis.call('HGET', key, 'level')) or 0
    redis.call('HSET', key, 'level', tostring(math.min(cap, level + back)))
  end
end
return 1
"""


def admit_args(ask: Ask, hold_s: float) -> tuple[list[str], list[Any], list[str],
                                                 list[tuple[str, int]]]:
    """ADMIT's KEYS and ARGV for one request, and the keys its hold will be settled on: the
    budgets' (hash, holds) and the token buckets' (key, capacity)."""
    now = ask.now
    keys: list[str] = []
    budget_keys: list[str] = []
    args: list[Any] = [repr(now), repr(now + hold_s),
                       f"{random.getrandbits(64):016x}",  # a hold id, not a secret: no
                       repr(ask.fixed), repr(ask.per_token),  # syscall per admission
                       ask.want, ask.prompt_tokens, ask.choices, len(ask.budgets), 0]
    for rule, value in ask.budgets:
        start = window_start(rule.window, now)
        base = f"{PREFIX}b:{rule.name}:{start}:{value}"
        keys += [base, base + ":h", f"{PREFIX}bv:{rule.name}:{start}"]
        budget_keys += [base, base + ":h"]
        end = window_end(rule.window, start)
        args += [rule.limit, int(rule.block), 0 if end is None else end + 60, value]
    tpm_keys: list[tuple[str, int]] = []
    for limit, value in ask.limits:
        for kind, per_minute in (("rpm", limit.rpm), ("tpm", limit.tpm)):
            if per_minute is not None:
                key = f"{PREFIX}r:{limit.name}:{kind}:{value}"
                keys.append(key)
                args += [per_minute, repr(per_minute / 60.0), int(kind == "tpm")]
                args[9] += 1
                if kind == "tpm":
                    tpm_keys.append((key, per_minute))
    return keys, args, budget_keys, tpm_keys


def limit_at(ask: Ask, index: int) -> tuple[Any, str, int, str]:
    """The (rule, value, per minute, unit) of the index-th bucket ADMIT checked."""
    j = 0
    for rule, value in ask.limits:
        for kind, per_minute in (("rpm", rule.rpm), ("tpm", rule.tpm)):
            if per_minute is not None:
                j += 1
                if j == index:
                    return rule, value, per_minute, "requests" if kind == "rpm" else "tokens"
    raise ValueError(index)
