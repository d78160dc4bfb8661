/*
 * lua_common.h - the Lua every server-side script of the Redis store
 * starts with (RD_LUA_COMMON, pasted into each script's text at compile
 * time): 64-bit numbers as {hi, lo} halves with their exact sums,
 * products and quotients, window.c's advance, the clock, the TTL, claims
 * and the slot check. fast.c's decision, cancel and penalize scripts and
 * fast_lease.c's lease script use it, so each computes these one way.
 */
#ifndef RL_RD_LUA_COMMON_H
#define RL_RD_LUA_COMMON_H

/* 64-bit numbers are {hi, lo}: hi the signed upper 32 bits, lo the lower
 * 32 bits unsigned, both exact in a double; with them, exact products and
 * quotients, window.c's advance, the clock, the TTL and claims. */
#define RD_LUA_COMMON                                                                              \
    "local P32, H31 = 4294967296, 2147483648\n"                                                    \
    "local sub, byte, floor = string.sub, string.byte, math.floor\n"                               \
    "local pack, unpack, call = struct.pack, struct.unpack, redis.call\n"                          \
    "local W2, W3 = '<I4i4I4i4', '<I4i4I4i4I4i4'\n"                                                \
    "local W12 = '<I4i4I4i4I4i4I4i4I4i4I4i4'\n"                                                    \
    "-- a window's prev and cur at most (RL_WINDOW_UNITS_MAX)\n"                                   \
    "local UMAX = 2199023255552\n"                                                                 \
    "-- x >= 0 added to {hi, lo}, stopping at INT64_MAX as rl__sat_add does\n"                     \
    "local function sat_add(hi, lo, x)\n"                                                          \
    "  local xh = floor(x / P32)\n"                                                                \
    "  lo = lo + x - xh * P32\n"                                                                   \
    "  hi = hi + xh\n"                                                                             \
    "  if lo >= P32 then lo = lo - P32; hi = hi + 1 end\n"                                         \
    "  if hi >= H31 then return H31 - 1, P32 - 1 end\n"                                            \
    "  return hi, lo\n"                                                                            \
    "end\n"                                                                                        \
    "-- 64-bit arithmetic for windows on {h, l}: l in [0, 2^32), h whole and\n"                    \
    "-- signed (a sum may take it past 2^31 until it is clamped)\n"                                \
    "local function add(ah, al, bh, bl)\n"                                                         \
    "  local l = al + bl\n"                                                                        \
    "  if l >= P32 then return ah + bh + 1, l - P32 end\n"                                         \
    "  return ah + bh, l\n"                                                                        \
    "end\n"                                                                                        \
    "local function dif(ah, al, bh, bl)\n"                                                         \
    "  local l = al - bl\n"                                                                        \
    "  if l < 0 then return ah - bh - 1, l + P32 end\n"                                            \
    "  return ah - bh, l\n"                                                                        \
    "end\n"                                                                                        \
    "local function lt(ah, al, bh, bl)\n"                                                          \
    "  return ah < bh or (ah == bh and al < bl)\n"                                                 \
    "end\n"                                                                                        \
    "-- a x {bh, bl} exactly, a whole in [0, 2^53), 0 <= bh < 2^32: four 32-bit\n"                 \
    "-- words, lowest first, made of 16-bit limbs (partial sums below 2^35)\n"                     \
    "local function mul(a, bh, bl)\n"                                                              \
    "  local x = {a % 65536, floor(a / 65536) % 65536, floor(a / P32) % 65536,\n"                  \
    "    floor(a / 281474976710656)}\n"                                                            \
    "  local y = {bl % 65536, floor(bl / 65536), bh % 65536, floor(bh / 65536)}\n"                 \
    "  local z, c = {}, 0\n"                                                                       \
    "  for k = 2, 8 do\n"                                                                          \
    "    for i = math.max(1, k - 4), math.min(4, k - 1) do c = c + x[i] * y[k - i] end\n"          \
    "    z[k - 1] = c % 65536\n"                                                                   \
    "    c = floor(c / 65536)\n"                                                                   \
    "  end\n"                                                                                      \
    "  return {z[1] + z[2] * 65536, z[3] + z[4] * 65536, z[5] + z[6] * 65536, z[7] + c * 65536}\n" \
    "end\n"                                                                                        \
    "local function lt4(x, y)\n"                                                                   \
    "  for i = 4, 1, -1 do\n"                                                                      \
    "    if x[i] ~= y[i] then return x[i] < y[i] end\n"                                            \
    "  end\n"                                                                                      \
    "  return false\n"                                                                             \
    "end\n"                                                                                        \
    "-- w (four 32-bit words, lowest first) over {dh, dl} (0 < it < 2^62), by\n"                   \
    "-- binary long division: quotient {qh, ql} (exact below 2^84) and\n"                          \
    "-- remainder {rh, rl}, never above 2^63 on the way\n"                                         \
    "local function divmod(w, dh, dl)\n"                                                           \
    "  local qh, ql, rh, rl, top = 0, 0, 0, 0, 4\n"                                                \
    "  while top > 1 and w[top] == 0 do top = top - 1 end\n"                                       \
    "  for i = top, 1, -1 do\n"                                                                    \
    "    local x = w[i]\n"                                                                         \
    "    for _ = 1, 32 do\n"                                                                       \
    "      x, rl, rh, ql, qh = x * 2, rl * 2, rh * 2, ql * 2, qh * 2\n"                            \
    "      if x >= P32 then x = x - P32; rl = rl + 1 end\n"                                        \
    "      if rl >= P32 then rl = rl - P32; rh = rh + 1 end\n"                                     \
    "      if ql >= P32 then ql = ql - P32; qh = qh + 1 end\n"                                     \
    "      if rh > dh or (rh == dh and rl >= dl) then\n"                                           \
    "        rh, rl = dif(rh, rl, dh, dl)\n"                                                       \
    "        ql = ql + 1\n"                                                                        \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  return qh, ql, rh, rl\n"                                                                    \
    "end\n"                                                                                        \
    "-- window.c's math, on a window {sh, sl} (its start), cur, prev of a limit\n"                 \
    "-- of period {ph, pl}.\n"                                                                     \
    "-- advance: the state as of {th, tl}: windows that ended by then shifted\n"                   \
    "-- out, keeping its alignment; a time before start changes nothing\n"                         \
    "local function advance(sh, sl, cur, prev, th, tl, ph, pl)\n"                                  \
    "  if lt(th, tl, sh, sl) then return sh, sl, cur, prev end\n"                                  \
    "  local dh, dl = dif(th, tl, sh, sl)\n"                                                       \
    "  if lt(dh, dl, ph, pl) then return sh, sl, cur, prev end\n"                                  \
    "  local h, l = add(ph, pl, ph, pl)\n"                                                         \
    "  if lt(dh, dl, h, l) then\n"                                                                 \
    "    h, l = add(sh, sl, ph, pl)\n"                                                             \
    "    return h, l, 0, cur\n"                                                                    \
    "  end\n"                                                                                      \
    "  local _, _, rh, rl = divmod({dl, dh, 0, 0}, ph, pl)\n"                                      \
    "  h, l = dif(th, tl, rh, rl)\n"                                                               \
    "  return h, l, 0, 0\n"                                                                        \
    "end\n"                                                                                        \
    "-- now in ns as {nh, nl} (arg: 8 bytes, a caller's clock, or '' for the\n"                    \
    "-- server's TIME), and the server's TIME in ms (claims are in it)\n"                          \
    "local function clock(arg)\n"                                                                  \
    "  local t = call('TIME')\n"                                                                   \
    "  local sec, usec = tonumber(t[1]), tonumber(t[2])\n"                                         \
    "  local now_ms = sec * 1000 + floor(usec / 1000)\n"                                           \
    "  if arg ~= '' then\n"                                                                        \
    "    local nl, nh = unpack('<I4i4', arg)\n"                                                    \
    "    return nh, nl, now_ms\n"                                                                  \
    "  end\n"                                                                                      \
    "  -- sec x 1e9 + usec x 1000 in two halves, every step below 2^53\n"                          \
    "  local s1 = floor(sec / 65536)\n"                                                            \
    "  local a, b = s1 * 1e9, (sec - s1 * 65536) * 1e9 + usec * 1000\n"                            \
    "  local ah, bh = floor(a / 65536), floor(b / P32)\n"                                          \
    "  local nh, nl = ah + bh, (a - ah * 65536) * 65536 + b - bh * P32\n"                          \
    "  if nl >= P32 then nl = nl - P32; nh = nh + 1 end\n"                                         \
    "  return nh, nl, now_ms\n"                                                                    \
    "end\n"                                                                                        \
    "-- The TTL of key k, as commit.c's: until every bucket of state st is full\n"                 \
    "-- again (a window's units count until two periods past its start), plus\n"                   \
    "-- idle; a TTL already longer (a lease this script did not read) stays.\n"                    \
    "-- least: the ns until the expiry of a lease it writes (nil: none).\n"                        \
    "local function expire(k, st, row, nh, nl, idle, least)\n"                                     \
    "  local till = least or -1\n"                                                                 \
    "  for j = 0, byte(st, 2) - 1 do\n"                                                            \
    "    local o = 19 + j * 49\n"                                                                  \
    "    if byte(st, o) ~= 2 then\n"                                                               \
    "      local l, h = unpack('<I4i4', st, o + 33)\n"                                             \
    "      if byte(st, o) == 3 then\n"                                                             \
    "        local pl, ph = unpack('<I4i4', st, o + 17)\n"                                         \
    "        h, l = add(h, l, add(ph, pl, ph, pl))\n"                                              \
    "        if h >= H31 then h, l = H31 - 1, P32 - 1 end\n"                                       \
    "      end\n"                                                                                  \
    "      local d = (h - nh) * P32 + (l - nl)\n"                                                  \
    "      if d > till then till = d end\n"                                                        \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  local ttl = till > 0 and floor(till / 1e6) + 1 + idle or idle\n"                            \
    "  if ttl > 4e18 then call('PERSIST', k)\n"                                                    \
    "  elseif row then call('PEXPIRE', k, ttl, 'GT')\n"                                            \
    "  else call('PEXPIRE', k, ttl) end\n"                                                         \
    "end\n"                                                                                        \
    "-- Whether claim q (a committer's token and its deadline in ms) is live.\n"                   \
    "local function claimed(q, now_ms)\n"                                                          \
    "  return q and tonumber(string.match(q, '^%S+ (%d+)$') or '0') > now_ms\n"                    \
    "end\n"                                                                                        \
    "-- Whether a slot of state st (m slots after a head of hd bytes) is not\n"                    \
    "-- as state.c's slot_valid wants it.\n"                                                       \
    "local function damaged(st, hd, m)\n"                                                          \
    "  for j = 0, m - 1 do\n"                                                                      \
    "    local o = hd + 1 + j * 49\n"                                                              \
    "    local kind = byte(st, o)\n"                                                               \
    "    local cl, ch, pl, ph, bl, bh, xl, xh, rl, rh = unpack('<I4i4I4i4I4i4I4i4I4i4', st, o + "  \
    "9)\n"                                                                                         \
    "    local c, b, r = ch * P32 + cl, bh * P32 + bl, rh * P32 + rl\n"                            \
    "    -- RL_COUNT_MAX, RL_PERIOD_MAX\n"                                                         \
    "    if kind > 3 or c < 1 or c > 1099511627776 or lt(ph, pl, 0, 1) or\n"                       \
    "       lt(368133187, 1262747648, ph, pl) then\n"                                              \
    "      return true\n"                                                                          \
    "    end\n"                                                                                    \
    "    if kind == 3 then\n"                                                                      \
    "      if b < 0 or b > UMAX or r < 0 or r > UMAX then return true end\n"                       \
    "    elseif b < 1 or b > 1099511627776 or r < 0 or r >= c or (kind == 2 and xh < 0) then\n"    \
    "      return true\n"                                                                          \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  return false\n"                                                                             \
    "end\n"

#endif
