//! The Lua the store runs, atomically, for the `state-sync` thread; the
//! arithmetic is `lease.rs`'s (whose tests drive a Rust model of it).
//!
//! Keys of one subject share a hash tag (`sg:{k:<id>}:…`), so they sit in
//! one slot of a Redis Cluster. Money is whole nano-dollars; Lua's numbers
//! are doubles, exact below 2^53 nano-dollars (about $9 million) — larger
//! budgets are compared to within a few nano-dollars.
//!
//! Invariants: an op's side effects happen once per `(instance, seq)`
//! (a repeated seq is answered from the stored answer and changes
//! nothing); a grant is only ever given within
//! `budget − spend − every other live grant − the asker's hold`.

/// KEYS: lease hash, spend counter (for the op's period), rpm bucket
/// prefix, spend seed (the part of the period's spend a store that came
/// back empty was re-seeded with; the spend is seed + counter). ARGV: instance, seq, ttl_ms, period, budget (-1: none), batch,
/// hold, want, floor, rpm (-1: none), rpm_hold, rpm_want, rpm_unsynced.
/// Returns {granted, spend, target, rpm_granted, rpm_target, retry}.
pub const LEASE: &str = r#"
local inst, seq = ARGV[1], ARGV[2]
local ttl = tonumber(ARGV[3])
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = redis.call('HGET', KEYS[1], 'q:' .. inst)
if last then
  local sep = string.find(last, '|', 1, true)
  if sep and string.sub(last, 1, sep - 1) == seq then
    local out = {}
    for v in string.gmatch(string.sub(last, sep + 1), '%d+') do
      out[#out + 1] = tonumber(v)
    end
    return out
  end
end
local period = ARGV[4]
local keep = now_ms + 2 * ttl
-- Who else is alive, and what they hold of this period's budget.
local all = redis.call('HGETALL', KEYS[1])
local n, others = 1, 0
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local kind, who = string.sub(f, 1, 1), string.sub(f, 3)
  if who ~= inst then
    if kind == 'i' then
      if tonumber(v) > now_ms then
        n = n + 1
      else
        redis.call('HDEL', KEYS[1], f, 'b:' .. who, 'q:' .. who)
      end
    elseif kind == 'b' then
      local hold, p, exp = string.match(v, '^(%d+) (%d+) (%d+)$')
      if hold and p == period and tonumber(exp) > now_ms then
        others = others + tonumber(hold)
      end
    end
  end
end
redis.call('HSET', KEYS[1], 'i:' .. inst, string.format('%d', keep))
local seed = tonumber(redis.call('GET', KEYS[4]) or '0')
local spend = tonumber(redis.call('GET', KEYS[2]) or '0')
local batch = tonumber(ARGV[6])
if batch > 0 then
  spend = redis.call('INCRBY', KEYS[2], ARGV[6])
end
spend = spend + seed
local granted, target = 0, 0
local budget = tonumber(ARGV[5])
if budget >= 0 then
  local hold, want, floor = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  local room = budget - spend - others - hold
  if room < 0 then room = 0 end
  -- A grant is a share of what is left: half of it split between the
  -- instances alive, at most a tenth of the budget, at least what the
  -- biggest waiting reservation lacks. Nothing if even that does not fit:
  -- a part would only strand budget a smaller request elsewhere could use.
  local cap = math.max(math.min(math.floor(room / (2 * n)), math.floor(budget / 10)), floor)
  if room >= floor then granted = math.min(want, room, cap) end
  redis.call('HSET', KEYS[1], 'b:' .. inst,
    string.format('%d %s %d', hold + granted, period, keep))
  target = math.min(math.floor((room - granted) / (2 * n)), math.floor(budget / 10))
end
local rgranted, rtarget, retry = 0, 0, 0
local rpm = tonumber(ARGV[10])
if rpm >= 0 then
  local prefix = KEYS[3]
  local unsynced = tonumber(ARGV[13])
  if unsynced > 0 then
    redis.call('INCRBY', prefix .. now_s, unsynced)
    redis.call('EXPIRE', prefix .. now_s, 120)
  end
  rtarget = math.max(math.floor(rpm / (10 * n)), 1)
  local want = math.min(tonumber(ARGV[12]), rtarget - tonumber(ARGV[11]))
  if want > 0 then
    local names = {}
    for s = now_s - 59, now_s do names[#names + 1] = prefix .. s end
    local vals = redis.call('MGET', unpack(names))
    local used = 0
    for i = 1, 60 do used = used + ((vals[i] and tonumber(vals[i])) or 0) end
    local room = rpm - used
    if room < 0 then room = 0 end
    rgranted = math.min(want, room)
    if rgranted > 0 then
      redis.call('INCRBY', prefix .. now_s, rgranted)
      redis.call('EXPIRE', prefix .. now_s, 120)
    end
    if rgranted < want then
      -- The bucket at index i leaves the minute in i seconds.
      retry = 60
      for i = 1, 60 do
        if vals[i] and tonumber(vals[i]) > 0 then retry = i break end
      end
    end
  end
end
local out = {granted, spend, target, rgranted, rtarget, retry}
local parts = {}
for i = 1, #out do parts[i] = string.format('%d', out[i]) end
redis.call('HSET', KEYS[1], 'q:' .. inst, seq .. '|' .. table.concat(parts, ' '))
redis.call('PEXPIRE', KEYS[1], 2 * ttl + 60000)
return out
"#;

/// KEYS: a spend seed. ARGV: a spend. Raises the seed to the spend if it
/// is below. A store that came back empty is re-seeded by every instance
/// with the spend it last knew; the highest is the latest the store had
/// (the instance that made the last settle knew it). Batches settled after
/// the restart go to the counter beside it, so a late seed never undoes
/// them.
pub const SEED: &str = r#"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"#;

/// The hash-tagged name of a subject's keys: `sg:{k:<id>}` or `sg:{t:<id>}`.
pub fn subject_tag(team: bool, id: &str) -> String {
    format!("sg:{{{}:{id}}}", if team { 't' } else { 'k' })
}
