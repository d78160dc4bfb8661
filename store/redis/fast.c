/*
 * fast.c - the Redis store's one-round-trip decision: a server-side script
 * that decides rl_allow / rl_acquire / rl_acquire_keys and reservations
 * (rl_reserve, rl_wait's decisions: admitted to act later, within a
 * horizon) on GCRA and sliding window limits, and concurrency limits on
 * keys without leases, on keys under cool-downs too, and lease begins
 * (rl_lease_begin) on a key whose hash holds no lease or waiter, and writes
 * its outcome (rl_store_ops.decide_fast; the plan is core/fast.c's), then
 * the replay that lets core check it.
 *
 * Why: the usual way reads the rows, decides in C and commits with a
 * script that checks what it read. That is two round trips, and processes
 * that share one hot key conflict and retry: the more of them, the fewer
 * decisions. Deciding on the server serialises them in Redis instead, with
 * no retries. The math stays exact without 128-bit integers in Lua: core
 * sends each named GCRA limit's cost × period and burst × period over
 * count (whole ns and a remainder), so the script only adds and compares
 * 64-bit numbers kept as two 32-bit halves in doubles. A sliding window's
 * products involve its stored counts and the server's clock, so the
 * script makes them itself, exactly: a count below 2^42 times a 64-bit
 * time as four 32-bit words from 16-bit limbs (every partial sum below
 * 2^53), divided by binary long division, each step of which stays below
 * 2^63 in {hi, lo} halves. It ports window.c line by line (advance,
 * estimate, first_fit, wait_for, charge); with no horizon (rl_allow) it
 * only compares the two products that tell whether the estimate at now
 * leaves room, which is wait_for's answer being 0.
 *
 * A second script gives a reservation back (rl_cancel, reserve.c's
 * cancel_tx and eval.c's cancel rules), also in one round trip and
 * replayed by core the same way; it writes only when the usual way
 * would write, and answers 0 otherwise (the time to act has come, the
 * key is gone or of another generation or tier), where the usual way
 * writes nothing either. A third sets a cool-down (rl_penalize,
 * cooldown.c's penalize_tx), on a new row too, and leaves the usual way
 * to refuse a fifth.
 *
 * Guarantees:
 *   - all or nothing, like every decision: the script checks every key
 *     before it writes any, and answers 0 (nothing written) whenever a key
 *     is not what the plan expects: another layout or policy version, an
 *     explicit tier, a live claim of a committer of the usual way;
 *   - what the script writes is what core would: the reply carries each
 *     row as it was and as it is now, core decides again on the first
 *     (rd_fast_check compares the second byte for byte), and the answer
 *     the caller gets is core's;
 *   - a lease begin it admits is numbered by INCR of the lease counter,
 *     as the usual way numbers one (ids only grow, none is given twice),
 *     and the reply carries its id and record: core puts the lease under
 *     that id (rd_lease_put) and rd_fast_check compares the record byte
 *     for byte; a refused begin numbers and writes no lease;
 *   - rows it writes get a new version token, so a commit of the usual
 *     way that read them before conflicts; it never shortens a key's TTL
 *     (a lease it did not read may need it) and indexes new keys;
 *   - NOSCRIPT (a restarted or flushed server) loads the script again.
 */
#include "bytes.h"
#include "lua_common.h"
#include "rd.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The decision script. Numbers are lua_common.h's {hi, lo}; a GCRA time
 * is {hi, lo, rem} (ns and a remainder below the limit's count), compared
 * in that order. */
static const char fast_lua[] =
    "#!lua\n"
    "-- KEYS: policy, key index, then the row of each key of the decision,\n"
    "-- then for a lease begin (one key) the lease sequence and the lease map.\n"
    "-- ARGV: policy version, now ('' for TIME, else 8 bytes), new version\n"
    "-- token, units, idle ttl ms, the horizon (8 bytes: 0 now or never,\n"
    "-- INT64_MAX none), the ids of the cool-downs that refuse the request\n"
    "-- (8 bytes each), for a lease begin its record as rd_lease_encode\n"
    "-- writes it but for created and expires ('' not a lease begin) and its\n"
    "-- ttl (8 bytes), then per key: its name, the explicit tier\n"
    "-- its row names ('' none), the state of a key\n"
    "-- new to its tier (its windows start here), 48 bytes per slot (cost, -1\n"
    "-- if not named; count; for a GCRA limit cost x period / count as ns and\n"
    "-- rem, burst x period / count as ns and rem; for a window its period and\n"
    "-- three 0; for a concurrency limit four 0). Numbers in bytes are\n"
    "-- little-endian int64, read and written as two 32-bit halves (struct: lo\n"
    "-- unsigned, hi signed).\n"
    "-- Returns 0 (nothing written) or {1, now, per key: row before ('' if\n"
    "-- none), row after; for a lease begin then its id and record ('' and ''\n"
    "-- if refused)}.\n" RD_LUA_COMMON
    "if (call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return 0 end\n"
    "local nh, nl, now_ms = clock(ARGV[2])\n"
    "-- the horizon D: admitted if the caller can act by now + D, which is\n"
    "-- kept exact ({zh, zl}, zh may pass 2^31 in a double); core's delays\n"
    "-- saturate at INT64_MAX, so D = INT64_MAX admits any delay (inf)\n"
    "local dl, dh = unpack('<I4i4', ARGV[6])\n"
    "local inf = dh == H31 - 1 and dl == P32 - 1\n"
    "local zh, zl = nh + dh, nl + dl\n"
    "if zl >= P32 then zl = zl - P32; zh = zh + 1 end\n"
    "-- More of window.c's math, at now.\n"
    "-- The start of the window that holds now (rl_window_fresh): floor(now /\n"
    "-- period) x period, no earlier than INT64_MIN.\n"
    "local function aligned(ph, pl)\n"
    "  if nh >= 0 then\n"
    "    local _, _, rh, rl = divmod({nl, nh, 0, 0}, ph, pl)\n"
    "    return dif(nh, nl, rh, rl)\n"
    "  end\n"
    "  local mh, ml = dif(0, 0, nh, nl)\n"
    "  local _, _, rh, rl = divmod({ml, mh, 0, 0}, ph, pl)\n"
    "  if rh == 0 and rl == 0 then return nh, nl end\n"
    "  local h, l = dif(nh, nl, dif(ph, pl, rh, rl))\n"
    "  if h < -H31 then return -H31, 0 end\n"
    "  return h, l\n"
    "end\n"
    "-- estimate at now (advanced to now): ceil(prev x (period - e) / period) +\n"
    "-- cur, e = now - start, 0 while now is before start\n"
    "local function estimate(sh, sl, cur, prev, ph, pl)\n"
    "  if prev == 0 then return cur end\n"
    "  local eh, el = ph, pl\n"
    "  if not lt(nh, nl, sh, sl) then eh, el = dif(ph, pl, dif(nh, nl, sh, sl)) end\n"
    "  local qh, ql, rh, rl = divmod(mul(prev, eh, el), ph, pl)\n"
    "  return qh * P32 + ql + ((rh > 0 or rl > 0) and 1 or 0) + cur\n"
    "end\n"
    "-- first_fit: the first e in [0, period) at which ceil(c x (period - e) /\n"
    "-- period) <= room, nil if none: period - floor(room x period / c)\n"
    "local function first_fit(c, room, ph, pl)\n"
    "  if room < 0 then return nil end\n"
    "  if c == 0 or room >= c then return 0, 0 end\n"
    "  local qh, ql = divmod(mul(room, ph, pl), floor(c / P32), c % P32)\n"
    "  if qh == 0 and ql == 0 then return nil end\n"
    "  return dif(ph, pl, qh, ql)\n"
    "end\n"
    "-- wait_for: from now (advanced to now) until cost fits, room1 = n - cur -\n"
    "-- cost, room2 = n - cost; the caller clamps it to [0, INT64_MAX]\n"
    "local function wait_for(sh, sl, cur, prev, room1, room2, ph, pl)\n"
    "  local eh, el = first_fit(prev, room1, ph, pl)\n"
    "  if eh then\n"
    "    if eh == 0 and el == 0 then return 0, 0 end\n"
    "    local h, l = add(sh, sl, eh, el)\n"
    "    return dif(h, l, nh, nl)\n"
    "  end\n"
    "  local h, l = add(sh, sl, ph, pl)\n"
    "  eh, el = first_fit(cur, room2, ph, pl)\n"
    "  if eh then h, l = add(h, l, eh, el) else h, l = add(h, l, ph, pl) end\n"
    "  return dif(h, l, nh, nl)\n"
    "end\n"
    "local cids = {}\n"
    "for i = 1, #ARGV[7], 8 do cids[sub(ARGV[7], i, i + 7)] = true end\n"
    "-- a cool-down slot as rl_penalize writes it: count, period and burst 1,\n"
    "-- rem 0 (any other, valid or not, goes the usual way)\n"
    "local one, zero = pack('<I4i4', 1, 0), pack('<I4i4', 0, 0)\n"
    "local cone = one .. one .. one\n"
    "-- cdh, cdl: the latest end of a running cool-down that refuses the\n"
    "-- request\n"
    "-- L: a lease begin's record, on one key\n"
    "local L = ARGV[8]\n"
    "local nr = #KEYS - (L ~= '' and 2 or 0)\n"
    "if L ~= '' and (nr ~= 3 or #L < 41 or byte(L, 1) ~= 1 or #ARGV[9] ~= 8) then return 0 end\n"
    "local keys, a, ok, cdh, cdl = {}, 10, true, nil, nil\n"
    "for i = 3, nr do\n"
    "  local k, tier, tm, lim = KEYS[i], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]\n"
    "  local got = call('HMGET', k, 'r', 'q')\n"
    "  local row, q, st = got[1], got[2], tm\n"
    "  if claimed(q, now_ms) then return 0 end\n"
    "  -- a lease begin on a key that has a lease or a waiter (fields l:ID)\n"
    "  -- goes the usual way, which asks whether their owners live\n"
    "  if L ~= '' and call('HLEN', k) > (row and 2 or 0) + (q and 1 or 0) then return 0 end\n"
    "  local tl = #tier\n"
    "  if row then\n"
    "    if #row < 42 + tl or byte(row, 1) ~= 1 or byte(row, 2) ~= tl or\n"
    "       sub(row, 3, 2 + tl) ~= tier then\n"
    "      return 0\n"
    "    end\n"
    "    st = sub(row, 43 + tl)\n"
    "  elseif tl > 0 then\n"
    "    return 0\n"
    "  end\n"
    "  -- the layout core planned for: format 2, a generation, the tier's\n"
    "  -- fingerprint and limits, then m - n cool-downs (at most 12 slots)\n"
    "  local n, m = byte(tm, 2), byte(st, 2)\n"
    "  if #tm ~= 18 + 49 * n or #lim ~= 48 * n or byte(st, 1) ~= 2 or m < n or m > 12 or\n"
    "     #st ~= 18 + 49 * m or sub(st, 11, 18) ~= sub(tm, 11, 18) or\n"
    "     sub(st, 3, 10) == '\\0\\0\\0\\0\\0\\0\\0\\0' then\n"
    "    return 0\n"
    "  end\n"
    "  -- a window's limit is its first 25 bytes: then prev, start, cur\n"
    "  for j = 0, n - 1 do\n"
    "    local o = 19 + j * 49\n"
    "    local w = byte(tm, o) == 3 and 24 or 32\n"
    "    if sub(st, o, o + w) ~= sub(tm, o, o + w) then return 0 end\n"
    "    if w == 24 and not row then\n"
    "      local pl, ph = unpack('<I4i4', tm, o + 17)\n"
    "      local h, l = aligned(ph, pl)\n"
    "      st = sub(st, 1, o + 32) .. pack('<I4i4', l, h) .. sub(st, o + 41)\n"
    "    end\n"
    "  end\n"
    "  -- cool-downs, as rl__state_align brings them along: running ones\n"
    "  -- (end > now) kept in order, ended ones dropped\n"
    "  local kept = {}\n"
    "  for j = n, m - 1 do\n"
    "    local o = 19 + j * 49\n"
    "    local bad = byte(st, o) ~= 1 or sub(st, o + 9, o + 32) ~= cone\n"
    "    if bad or sub(st, o + 41, o + 48) ~= zero then return 0 end\n"
    "    local l, h = unpack('<I4i4', st, o + 33)\n"
    "    if h > nh or (h == nh and l > nl) then\n"
    "      kept[#kept + 1] = sub(st, o, o + 48)\n"
    "      local later = not cdh or h > cdh or (h == cdh and l > cdl)\n"
    "      if later and cids[sub(st, o + 1, o + 8)] then cdh, cdl = h, l end\n"
    "    end\n"
    "  end\n"
    "  if m > n then\n"
    "    st = sub(st, 1, 1) .. string.char(n + #kept) .. sub(st, 3, 18 + 49 * n) ..\n"
    "      table.concat(kept)\n"
    "  end\n"
    "  keys[#keys + 1] = {k, ARGV[a], row, q, st, lim, n, tier}\n"
    "  a = a + 4\n"
    "end\n"
    "-- a running cool-down refuses unless it ends within the horizon\n"
    "if cdh and not inf and (cdh > zh or (cdh == zh and cdl > zl)) then ok = false end\n"
    "-- Dh, Dl: when the decision lets the caller act, the latest delay of any\n"
    "-- named rate or cool-down (decide.c's x->delay), each at most INT64_MAX\n"
    "local Dh, Dl, now_only = 0, 0, dh == 0 and dl == 0\n"
    "local function later(h, l)\n"
    "  if h < 0 then return end\n"
    "  if h >= H31 then h, l = H31 - 1, P32 - 1 end\n"
    "  if lt(Dh, Dl, h, l) then Dh, Dl = h, l end\n"
    "end\n"
    "if cdh then later(dif(cdh, cdl, nh, nl)) end\n"
    "-- GCRA as gcra.c: cur = max(tat, now); a cost adds cost x period /\n"
    "-- count (past INT64_MAX: refused); admitted if cur - burst x period /\n"
    "-- count <= now + D. A cost of 0 only checks.\n"
    "-- A window as window.c: advanced to now; admitted if its wait for the\n"
    "-- cost is within D (D = 0: if the estimate at now leaves room for it,\n"
    "-- found by products alone); a cost of 0 only checks. Its cost is counted\n"
    "-- below, once the decision's delay is known.\n"
    "local new, charges = {}, {}\n"
    "for x, e in ipairs(keys) do\n"
    "  local st, lim, nw = e[5], e[6], {}\n"
    "  for j = 0, e[7] - 1 do\n"
    "    local o = 19 + j * 49 + 33\n"
    "    if byte(st, o - 33) == 3 then\n"
    "      local cl, ch, c, chi, pl, ph = unpack(W3, lim, j * 48 + 1)\n"
    "      local vl, vh, sl, sh, ul, uh = unpack(W3, st, o - 8)\n"
    "      local prev, cur = vh * P32 + vl, uh * P32 + ul\n"
    "      if prev < 0 or prev > UMAX or cur < 0 or cur > UMAX then return 0 end\n"
    "      if ch >= 0 then\n"
    "        local cost, n = ch * P32 + cl, chi * P32 + c\n"
    "        sh, sl, cur, prev = advance(sh, sl, cur, prev, nh, nl, ph, pl)\n"
    "        local room = n - cur - cost\n"
    "        if now_only then\n"
    "          if room < 0 or (prev > 0 and room < prev and (lt(nh, nl, sh, sl) or\n"
    "             lt4(mul(room, ph, pl), mul(prev, dif(ph, pl, dif(nh, nl, sh, sl)))))) then\n"
    "            ok = false\n"
    "          end\n"
    "        else\n"
    "          local wh, wl = wait_for(sh, sl, cur, prev, room, n - cost, ph, pl)\n"
    "          if wh < 0 then wh, wl = 0, 0 elseif wh >= H31 then wh, wl = H31 - 1, P32 - 1 end\n"
    "          if not inf and lt(dh, dl, wh, wl) then ok = false end\n"
    "          later(wh, wl)\n"
    "        end\n"
    "        if cost > 0 then\n"
    "          charges[#charges + 1] = {x, o - 8, sh, sl, cur, prev, cost, n, ph, pl}\n"
    "        end\n"
    "      end\n"
    "    else\n"
    "      local cl, ch, c, chi, il, ih, ir, irh, ul, uh, ur, urh = unpack(W12, lim, j * 48 + 1)\n"
    "      local l, h, r, rh = unpack(W2, st, o)\n"
    "      c, r = c + chi * P32, r + rh * P32\n"
    "      -- as state.c checks a slot: a damaged one goes the usual way, which\n"
    "      -- reports it (RL_ECORRUPT), before anything is written\n"
    "      if r < 0 or r >= c or (h < 0 and byte(st, o - 33) == 2) then return 0 end\n"
    "      if ch >= 0 and byte(st, o - 33) == 2 then\n"
    "        -- a concurrency limit named, on a key without leases (so none to\n"
    "        -- reclaim and no waiter ahead): admitted while the units in\n"
    "        -- flight leave room for the cost; nothing is held\n"
    "        local hl = call('HLEN', e[1])\n"
    "        if hl > (e[3] and 2 or 0) + (e[4] and 1 or 0) then return 0 end\n"
    "        if h * P32 + l > c - (ch * P32 + cl) then\n"
    "          ok = false\n"
    "        elseif L ~= '' and (ch > 0 or cl > 0) then\n"
    "          -- a lease holds its units in the slot (eval.c's inflight_decide);\n"
    "          -- the sum is at most count (2^40)\n"
    "          local v = h * P32 + l + ch * P32 + cl\n"
    "          nw[#nw + 1] = {o, pack('<I4i4', v % P32, floor(v / P32))}\n"
    "        end\n"
    "      elseif ch >= 0 then\n"
    "        local cost = ch * P32 + cl\n"
    "        if h < nh or (h == nh and l < nl) then h, l, r = nh, nl, 0 end\n"
    "        if cost > 0 then\n"
    "          r, l, h = r + ir + irh * P32, l + il, h + ih\n"
    "          if r >= c then r = r - c; l = l + 1 end\n"
    "          if l >= P32 then l = l - P32; h = h + 1 end\n"
    "          if h >= H31 then ok = false end\n"
    "          local rh = floor(r / P32)\n"
    "          nw[#nw + 1] = {o, pack(W2, l, h, r - rh * P32, rh)}\n"
    "        end\n"
    "        local ah, al, ar = h - uh, l - ul, r - ur - urh * P32\n"
    "        if ar < 0 then ar = ar + c; al = al - 1 end\n"
    "        if al < 0 then al = al + P32; ah = ah - 1 end\n"
    "        if not inf and (ah > zh or (ah == zh and (al > zl or (al == zl and ar > 0)))) then\n"
    "          ok = false\n"
    "        end\n"
    "        -- its delay: allow_at - now, rounded up to whole ns\n"
    "        local gh, gl = dif(ah, al, nh, nl)\n"
    "        if ar > 0 then gh, gl = add(gh, gl, 0, 1) end\n"
    "        later(gh, gl)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  new[x] = nw\n"
    "end\n"
    "-- window.c's charge: the cost counts in the window of now + the delay;\n"
    "-- a window moved to ahead of now gets prev >= min(estimate, n) - cost\n"
    "if ok then\n"
    "  local th, tl = add(nh, nl, Dh, Dl)\n"
    "  if th >= H31 then th, tl = H31 - 1, P32 - 1 end\n"
    "  for _, w in ipairs(charges) do\n"
    "    local sh, sl, cur, prev, cost = w[3], w[4], w[5], w[6], w[7]\n"
    "    local n, ph, pl = w[8], w[9], w[10]\n"
    "    local h, l, c1, p1 = advance(sh, sl, cur, prev, th, tl, ph, pl)\n"
    "    if h ~= sh or l ~= sl then\n"
    "      local f = math.min(estimate(sh, sl, cur, prev, ph, pl), n) - cost\n"
    "      if p1 < f then p1 = f end\n"
    "    end\n"
    "    c1 = c1 + cost\n"
    "    local nwx = new[w[1]]\n"
    "    local b = pack(W3, p1 % P32, floor(p1 / P32), l, h, c1 % P32, floor(c1 / P32))\n"
    "    nwx[#nwx + 1] = {w[2], b}\n"
    "  end\n"
    "end\n"
    "-- an admitted lease begin: numbered as rd_lease_put numbers it (INCR of\n"
    "-- the sequence: no id is given twice), its record as put_lease writes\n"
    "-- it, created now and expiring ttl later (at most INT64_MAX); nothing is\n"
    "-- written before this point, so a sequence that is not a number below\n"
    "-- 2^53 (exact in a double) still leaves it to the usual way\n"
    "local lid, lrec, least = '', '', nil\n"
    "if L ~= '' and ok then\n"
    "  local seq = tonumber(call('GET', KEYS[nr + 1]) or '0')\n"
    "  if not seq or seq < 0 or seq >= 9007199254740991 or seq ~= floor(seq) then return 0 end\n"
    "  lid = string.format('%d', call('INCR', KEYS[nr + 1]))\n"
    "  local tl_, th_ = unpack('<I4i4', ARGV[9])\n"
    "  local eh, el = add(nh, nl, th_, tl_)\n"
    "  if eh >= H31 then eh, el = H31 - 1, P32 - 1 end\n"
    "  lrec = sub(L, 1, 1) .. pack('<I4i4I4i4', nl, nh, el, eh) .. sub(L, 18)\n"
    "  least = (eh - nh) * P32 + (el - nl)\n"
    "end\n"
    "local out, units, idle = {1, pack('<I4i4', nl, nh)}, tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "for x, e in ipairs(keys) do\n"
    "  local k, row, st, tier = e[1], e[3], e[5], e[8]\n"
    "  if ok then\n"
    "    for _, v in ipairs(new[x]) do\n"
    "      st = sub(st, 1, v[1] - 1) .. v[2] .. sub(st, v[1] + #v[2])\n"
    "    end\n"
    "  end\n"
    "  local al, ah, rl, rh, ul, uh, fl, fh, ll, lh = 0, 0, 0, 0, 0, 0, 0, 0, 0, 0\n"
    "  if row then\n"
    "    al, ah, rl, rh, ul, uh, fl, fh = unpack('<I4i4I4i4I4i4I4i4', row, 3 + #tier)\n"
    "  end\n"
    "  if al == 0 and ah == 0 and rl == 0 and rh == 0 then fh, fl = nh, nl end\n"
    "  if ok then\n"
    "    ah, al = sat_add(ah, al, 1)\n"
    "    uh, ul = sat_add(uh, ul, units)\n"
    "  else\n"
    "    rh, rl = sat_add(rh, rl, 1)\n"
    "  end\n"
    "  local nrow = pack('<BB', 1, #tier) .. tier ..\n"
    "    pack('<I4i4I4i4I4i4I4i4I4i4', al, ah, rl, rh, ul, uh, fl, fh, nl, nh) .. st\n"
    "  call('HSET', k, 'r', nrow, 'v', ARGV[3])\n"
    "  if e[4] then call('HDEL', k, 'q') end -- lapsed: a live one said 0\n"
    "  if not row then call('ZADD', KEYS[2], 0, e[2]) end\n"
    "  if lid ~= '' then\n"
    "    call('HSET', k, 'l:' .. lid, lrec)\n"
    "    call('HSET', KEYS[nr + 2], lid, e[2])\n"
    "  end\n"
    "  -- an explicit tier's key has no TTL\n"
    "  if #tier == 0 then expire(k, st, row, nh, nl, idle, least) end\n"
    "  out[#out + 1] = row or ''\n"
    "  out[#out + 1] = nrow\n"
    "end\n"
    "if L ~= '' then\n"
    "  out[#out + 1] = lid\n"
    "  out[#out + 1] = lrec\n"
    "end\n"
    "return out\n";

/* The script of rl_cancel. */
static const char cancel_lua[] =
    "#!lua\n"
    "-- rl_cancel as reserve.c's cancel_tx: a reservation's units given back.\n"
    "-- KEYS: policy, the row of the reservation's key.\n"
    "-- ARGV: policy version, now ('' for TIME, else 8 bytes), new version\n"
    "-- token, idle ttl ms, its time to act (8 bytes), the explicit tier the\n"
    "-- row names ('' none), the generation and tier fingerprint its state must\n"
    "-- have (16 bytes), then 80 bytes per limit it took: id; kind (that of\n"
    "-- the limit of that id in the tier); amount, tat and rem as taken; the\n"
    "-- limit's count, period and burst; for GCRA amount x period / count as\n"
    "-- ns and rem. Numbers in bytes are little-endian int64.\n"
    "-- Returns 0 (nothing written: the usual way decides, and writes nothing\n"
    "-- either when the time to act has come, the key is gone or its state is\n"
    "-- of another generation or tier) or {1, now, row before, row after}.\n" RD_LUA_COMMON
    "if (call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return 0 end\n"
    "local nh, nl, now_ms = clock(ARGV[2])\n"
    "local k, tier = KEYS[2], ARGV[6]\n"
    "local al, ah = unpack('<I4i4', ARGV[5])\n"
    "if not lt(nh, nl, ah, al) then return 0 end\n"
    "local got = call('HMGET', k, 'r', 'q')\n"
    "local row, q = got[1], got[2]\n"
    "if not row or claimed(q, now_ms) then return 0 end\n"
    "local tl = #tier\n"
    "if #row < 42 + tl or byte(row, 1) ~= 1 or byte(row, 2) ~= tl or\n"
    "   sub(row, 3, 2 + tl) ~= tier then\n"
    "  return 0\n"
    "end\n"
    "local st = sub(row, 43 + tl)\n"
    "local m = byte(st, 2) or 0\n"
    "if byte(st, 1) ~= 2 or m > 12 or #st ~= 18 + 49 * m or sub(st, 3, 18) ~= ARGV[7] then\n"
    "  return 0\n"
    "end\n"
    "-- a damaged slot goes the usual way, which reports it (RL_ECORRUPT),\n"
    "-- before anything is written\n"
    "if damaged(st, 18, m) then return 0 end\n"
    "for i = 1, #ARGV[8], 80 do\n"
    "  local id, e = sub(ARGV[8], i, i + 7), i + 8\n"
    "  local kl, kh, nl_, nh_, tl_, th_, rl_, rh_ = unpack('<I4i4I4i4I4i4I4i4', ARGV[8], e)\n"
    "  local lim = sub(ARGV[8], e + 32, e + 55)\n"
    "  local il, ih, irl, irh = unpack('<I4i4I4i4', ARGV[8], e + 56)\n"
    "  local kind, amount, rem = kh * P32 + kl, nh_ * P32 + nl_, rh_ * P32 + rl_\n"
    "  for j = 0, m - 1 do\n"
    "    local o = 19 + j * 49\n"
    "    if sub(st, o + 1, o + 8) == id then\n"
    "      local sk = byte(st, o)\n"
    "      -- the slot is the limit of the tier the plan knew, or core decides\n"
    "      if (sk == 0 or sk == 3 or kind == 0 or kind == 3) and\n"
    "         (sk ~= kind or sub(st, o + 9, o + (sk == 3 and 24 or 32)) ~=\n"
    "          sub(lim, 1, sk == 3 and 16 or 24)) then\n"
    "        return 0\n"
    "      end\n"
    "      local cl, ch, pl, ph, bl, bh = unpack('<I4i4I4i4I4i4', st, o + 9)\n"
    "      local c, p, b = ch * P32 + cl, nil, bh * P32 + bl\n"
    "      if sk == 0 and rem >= 0 and rem < c and amount > 0 and amount <= b then\n"
    "        -- GCRA as gcra.c's rl_gcra_cancel, in {ns hi, ns lo, rem} (rem in\n"
    "        -- [0, count)): restore = amount x period - (tat - after); nothing\n"
    "        -- if <= 0, at most amount x period; tat - restore, its ns no\n"
    "        -- earlier than INT64_MIN\n"
    "        local xl, xh, xrl, xrh = unpack('<I4i4I4i4', st, o + 33)\n"
    "        local xr = xrh * P32 + xrl\n"
    "        local dh, dl = dif(xh, xl, th_, tl_)\n"
    "        local dr = xr - rem\n"
    "        if dr < 0 then dr = dr + c; dh, dl = dif(dh, dl, 0, 1) end\n"
    "        local rh2, rl2 = dif(ih, il, dh, dl)\n"
    "        local rr = irh * P32 + irl - dr\n"
    "        if rr < 0 then rr = rr + c; rh2, rl2 = dif(rh2, rl2, 0, 1) end\n"
    "        if not (rh2 < 0 or (rh2 == 0 and rl2 == 0 and rr == 0)) then\n"
    "          if dh < 0 then rh2, rl2, rr = ih, il, irh * P32 + irl end\n"
    "          local yh, yl = dif(xh, xl, rh2, rl2)\n"
    "          local yr = xr - rr\n"
    "          if yr < 0 then yr = yr + c; yh, yl = dif(yh, yl, 0, 1) end\n"
    "          if yh < -H31 then yh, yl = -H31, 0 end\n"
    "          local yrh = floor(yr / P32)\n"
    "          local b2 = pack(W2, yl, yh, yr - yrh * P32, yrh)\n"
    "          st = sub(st, 1, o + 32) .. b2 .. sub(st, o + 49)\n"
    "        end\n"
    "      elseif sk == 3 and amount > 0 and amount <= c then\n"
    "        -- a window as window.c's rl_window_cancel: advanced to now; the\n"
    "        -- units come out of cur if it is still the window they were\n"
    "        -- counted in, and go to prev while that window has not begun\n"
    "        local vl, vh, sl, sh, ul, uh = unpack(W3, st, o + 25)\n"
    "        local prev, cur = vh * P32 + vl, uh * P32 + ul\n"
    "        sh, sl, cur, prev = advance(sh, sl, cur, prev, nh, nl, ph, pl)\n"
    "        if sh == th_ and sl == tl_ then\n"
    "          local back = math.min(amount, cur)\n"
    "          cur = cur - back\n"
    "          if lt(nh, nl, sh, sl) then prev = math.min(prev + back, UMAX) end\n"
    "        end\n"
    "        local b3 = pack(W3, prev % P32, floor(prev / P32), sl, sh, cur % P32,\n"
    "          floor(cur / P32))\n"
    "        st = sub(st, 1, o + 24) .. b3 .. sub(st, o + 49)\n"
    "      end\n"
    "      break\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local nrow = sub(row, 1, 42 + tl) .. st\n"
    "call('HSET', k, 'r', nrow, 'v', ARGV[3])\n"
    "if tl == 0 then expire(k, st, row, nh, nl, tonumber(ARGV[4])) end\n"
    "return {1, pack('<I4i4', nl, nh), row, nrow}\n";

/* The script of rl_penalize. */
static const char penalize_lua[] =
    "#!lua\n"
    "-- rl_penalize as cooldown.c's penalize_tx: a cool-down started, grown\n"
    "-- or lifted in a key's state, ended ones dropped.\n"
    "-- KEYS: key index, the key's row.\n"
    "-- ARGV: now ('' for TIME, else 8 bytes), new version token, idle ttl ms,\n"
    "-- the key's name, the cool-down's id (8 bytes), its duration (8 bytes,\n"
    "-- 0 lifts it).\n"
    "-- Returns 0 (nothing written: the usual way decides, and refuses a fifth\n"
    "-- cool-down) or {1, now, row before ('' if none), row after}.\n" RD_LUA_COMMON
    "local nh, nl, now_ms = clock(ARGV[1])\n"
    "local k, id = KEYS[2], ARGV[5]\n"
    "local dl, dh = unpack('<I4i4', ARGV[6])\n"
    "local got = call('HMGET', k, 'r', 'q')\n"
    "local row, q = got[1], got[2]\n"
    "if claimed(q, now_ms) then return 0 end\n"
    "-- the row's bytes before its state (a new one: no tier, counters 0)\n"
    "local head, st, tl = pack('<BB', 1, 0) .. string.rep('\\0', 40), '', 0\n"
    "if row then\n"
    "  tl = byte(row, 2) or 0\n"
    "  if #row < 42 + tl or byte(row, 1) ~= 1 then return 0 end\n"
    "  head, st = sub(row, 1, 42 + tl), sub(row, 43 + tl)\n"
    "end\n"
    "-- the state: none, format 1 or format 2 (generation and fingerprint)\n"
    "local hd, m, gf = 2, 0, string.rep('\\0', 16)\n"
    "if #st > 0 then\n"
    "  local f = byte(st, 1)\n"
    "  m = byte(st, 2) or 255\n"
    "  hd = f == 2 and 18 or 2\n"
    "  if (f ~= 1 and f ~= 2) or m > 12 or #st ~= hd + 49 * m or damaged(st, hd, m) then\n"
    "    return 0\n"
    "  end\n"
    "  if f == 2 then gf = sub(st, 3, 18) end\n"
    "end\n"
    "-- the end of the cool-down: now + duration, no later than INT64_MAX\n"
    "local eh, el = add(nh, nl, dh, dl)\n"
    "if eh >= H31 then eh, el = H31 - 1, P32 - 1 end\n"
    "local slots, found, ncool = {}, false, 0\n"
    "for j = 0, m - 1 do\n"
    "  local o = hd + 1 + j * 49\n"
    "  local s, keep = sub(st, o, o + 48), true\n"
    "  if byte(s, 1) == 1 then\n"
    "    local l, h = unpack('<I4i4', s, 34)\n"
    "    if sub(s, 2, 9) == id then\n"
    "      found = true\n"
    "      if dh == 0 and dl == 0 then\n"
    "        keep = false\n"
    "      elseif lt(h, l, eh, el) then\n"
    "        s = sub(s, 1, 33) .. pack('<I4i4', el, eh) .. sub(s, 42)\n"
    "      end\n"
    "    elseif not lt(nh, nl, h, l) then\n"
    "      keep = false\n"
    "    end\n"
    "    if keep then ncool = ncool + 1 end\n"
    "  end\n"
    "  if keep then slots[#slots + 1] = s end\n"
    "end\n"
    "if not found and not (dh == 0 and dl == 0) then\n"
    "  if ncool >= 4 or #slots >= 12 then return 0 end\n"
    "  local one = pack('<I4i4', 1, 0)\n"
    "  local tat = pack('<I4i4I4i4', el, eh, 0, 0)\n"
    "  slots[#slots + 1] = string.char(1) .. id .. one .. one .. one .. tat\n"
    "end\n"
    "-- as state.c encodes it: format 1 while generation and fingerprint are 0\n"
    "local nst\n"
    "if gf == string.rep('\\0', 16) then\n"
    "  nst = string.char(1, #slots) .. table.concat(slots)\n"
    "else\n"
    "  nst = string.char(2, #slots) .. gf .. table.concat(slots)\n"
    "end\n"
    "local nrow = head .. nst\n"
    "call('HSET', k, 'r', nrow, 'v', ARGV[2])\n"
    "if q then call('HDEL', k, 'q') end -- lapsed: a live one said 0\n"
    "if not row then call('ZADD', KEYS[1], 0, ARGV[4]) end\n"
    "-- the TTL as commit.c's, which counts from the row's last decision\n"
    "if tl == 0 then\n"
    "  local ll, lh = unpack('<I4i4', head, 35)\n"
    "  local sh = string.char(2, #slots) .. string.rep('\\0', 16) .. table.concat(slots)\n"
    "  expire(k, sh, row, lh, ll, tonumber(ARGV[3]))\n"
    "end\n"
    "return {1, pack('<I4i4', nl, nh), row or '', nrow}\n";

int rd_load_fast_script(rd_store *s)
{
    int rc = rd_script_load(s, fast_lua, s->sha_fast, "load the decision script");
    if (rc == RL_OK)
        rc = rd_script_load(s, cancel_lua, s->sha_cancel, "load the cancel script");
    if (rc == RL_OK)
        rc = rd_script_load(s, penalize_lua, s->sha_penalize, "load the cool-down script");
    return rc;
}

/* Fills the transaction's cache with the rows as the script found them and
 * what it wrote, for core to decide again (rd_fast_check). */
static int replay(rd_store *s, const rl_fast_req *q, const redisReply *r)
{
    size_t k;
    const redisReply *now = r->element[1];
    size_t nl = q->lease ? 2 : 0;
    if (now->type != REDIS_REPLY_STRING || now->len != 8 || r->elements != 2 + 2 * q->nkeys + nl)
        return rl_seterr(s->base.err, RL_ESTORE, "redis %s: decision script: unexpected reply",
                         s->where);
    rd_tx_reset(s);
    if (nl) { /* the lease it numbered and wrote, if admitted: for lease_put */
        const redisReply *id = r->element[r->elements - 2], *rec = r->element[r->elements - 1];
        char ids[24], *end;
        if (id->type != REDIS_REPLY_STRING || rec->type != REDIS_REPLY_STRING ||
            id->len >= sizeof ids || rec->len > sizeof s->fl_raw ||
            (id->len == 0) != (rec->len == 0))
            return rl_seterr(s->base.err, RL_ESTORE, "redis %s: decision script: unexpected reply",
                             s->where);
        memcpy(ids, id->str, id->len);
        ids[id->len] = 0;
        s->fl_id = id->len ? strtoll(ids, &end, 10) : 0;
        if (id->len && (*end || s->fl_id <= 0))
            return rl_seterr(s->base.err, RL_ESTORE, "redis %s: decision script: unexpected reply",
                             s->where);
        memcpy(s->fl_raw, rec->str, rec->len);
        s->fl_len = rec->len;
        s->fl_want = 1;
    }
    s->in_tx = s->write = s->replay = 1;
    s->pver = q->pol_version;
    s->time_ns = (int64_t)rl_get64((const unsigned char *)now->str);
    s->have_pver = s->have_time = 1;
    for (k = 0; k < q->nkeys; k++) {
        const redisReply *was = r->element[2 + 2 * k], *is = r->element[3 + 2 * k];
        rd_row *w = calloc(1, sizeof *w);
        if (!w || rd_push_row(s, w) != 0) {
            free(w);
            return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
        }
        snprintf(w->key, sizeof w->key, "%s", q->k[k].key);
        snprintf(w->ver, sizeof w->ver, "*");
        if (was->type != REDIS_REPLY_STRING || is->type != REDIS_REPLY_STRING ||
            is->len > sizeof w->expect)
            return rl_seterr(s->base.err, RL_ESTORE, "redis %s: decision script: unexpected reply",
                             s->where);
        memcpy(w->expect, is->str, is->len);
        w->expect_len = is->len;
        if (was->len == 0 && q->penalize) { /* none: rl_penalize makes it */
            w->row.exists = 0;
        } else if (was->len == 0) { /* new: its state starts as the tier's, at the server's time */
            w->row.exists = 1;
            w->row.state_len =
                rl_state_fresh_at(q->k[k].tmpl, q->k[k].tmpl_len, s->time_ns, w->row.state);
        } else if (rd_row_decode(&w->row, (const unsigned char *)was->str, was->len) != RL_OK) {
            return rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: key '%.64s': damaged record",
                             s->where, w->key);
        }
    }
    return RL_OK;
}

/* Little-endian int64 at b. */
static void put(unsigned char *b, int64_t v)
{
    rl_put64(b, (uint64_t)v);
}

/* EVALSHA of a script (sha) with n arguments, loading the scripts again
 * after NOSCRIPT; the reply's checks and replay are the caller's. */
static int run(rd_store *s, char *sha, int n, const char **argv, size_t *len, redisReply **r)
{
    int rc = rd_cmd(s, r, "decide", n, argv, len);
    if (rc == RL_ESTORE && strstr(s->base.err, "NOSCRIPT")) {
        if ((rc = rd_load_fast_script(s)) != RL_OK)
            return rc;
        argv[1] = sha;
        len[1] = strlen(sha);
        rc = rd_cmd(s, r, "decide", n, argv, len);
    }
    return rc;
}

/* The reply r of a script that answers 0 or {1, now, rows}: replayed. */
static int answer(rd_store *s, const rl_fast_req *q, redisReply *r)
{
    int rc;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        rc = RL_FAST_NO;
    else if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
             r->element[0]->type != REDIS_REPLY_INTEGER || r->element[0]->integer != 1)
        rc = rl_seterr(s->base.err, RL_ESTORE, "redis %s: decision script: unexpected reply",
                       s->where);
    else if ((rc = replay(s, q, r)) == RL_OK) {
        s->fast_hits++;
        s->begin_hits += q->lease != 0;
    }
    freeReplyObject(r);
    if (rc != RL_OK && rc != RL_FAST_NO)
        rd_tx_reset(s);
    return rc;
}

/* rl_cancel in one round trip (cancel_lua). */
static int cancel_fast(rd_store *s, const rl_fast_req *q)
{
    const char *argv[13];
    size_t len[sizeof argv / sizeof argv[0]];
    char names[2][RD_NAME_MAX], pver[24], token[20], idle[24];
    unsigned char now[8], act[8], state[16], back[RL_MAX_LIMITS * 80];
    redisReply *r = NULL;
    size_t i, n = 0;
    int rc;

    if (s->readonly || !s->sha_cancel[0] || q->nkeys != 1 || q->nback > RL_MAX_LIMITS)
        return RL_FAST_NO;
    rd_name_of(s, "policy", names[0]);
    snprintf(pver, sizeof pver, "%" PRId64, q->pol_version);
    snprintf(token, sizeof token, "%016" PRIx64, rd_next_rand(s));
    snprintf(idle, sizeof idle, "%" PRId64, s->idle_ttl_ms);
    put(now, q->now);
    put(act, q->time_to_act);
    rl_put64(state, q->gen);
    rl_put64(state + 8, q->fp);
    for (i = 0; i < q->nback; i++) {
        const rl_fast_back *b = &q->back[i];
        unsigned char *p = back + 80 * i;
        rl_put64(p, b->id);
        put(p + 8, b->kind);
        put(p + 16, b->amount);
        put(p + 24, b->tat);
        put(p + 32, b->rem);
        put(p + 40, b->count);
        put(p + 48, b->period_ns);
        put(p + 56, b->burst);
        put(p + 64, b->inc_ns);
        put(p + 72, b->inc_rem);
    }
#define ARG(p, l) (argv[n] = (const char *)(p), len[n++] = (l))
    ARG("EVALSHA", 7);
    ARG(s->sha_cancel, strlen(s->sha_cancel));
    ARG("2", 1);
    ARG(names[0], strlen(names[0]));
    ARG(names[1], rd_row_name(s, q->k[0].key, names[1]));
    ARG(pver, strlen(pver));
    ARG(now, q->have_now ? 8 : 0);
    ARG(token, strlen(token));
    ARG(idle, strlen(idle));
    ARG(act, 8);
    ARG(q->k[0].tier, strlen(q->k[0].tier));
    ARG(state, 16);
    ARG(back, 80 * q->nback);
#undef ARG
    if ((rc = run(s, s->sha_cancel, (int)n, argv, len, &r)) != RL_OK)
        return rc;
    return answer(s, q, r);
}

/* rl_penalize in one round trip (penalize_lua). */
static int penalize_fast(rd_store *s, const rl_fast_req *q)
{
    const char *argv[11];
    size_t len[sizeof argv / sizeof argv[0]];
    char names[2][RD_NAME_MAX], token[20], idle[24];
    unsigned char now[8], id[8], dur[8];
    redisReply *r = NULL;
    size_t n = 0;
    int rc;

    if (s->readonly || !s->sha_penalize[0] || q->nkeys != 1)
        return RL_FAST_NO;
    rd_name_of(s, "keys", names[0]);
    snprintf(token, sizeof token, "%016" PRIx64, rd_next_rand(s));
    snprintf(idle, sizeof idle, "%" PRId64, s->idle_ttl_ms);
    put(now, q->now);
    rl_put64(id, q->pen_id);
    put(dur, q->pen_ns);
#define ARG(p, l) (argv[n] = (const char *)(p), len[n++] = (l))
    ARG("EVALSHA", 7);
    ARG(s->sha_penalize, strlen(s->sha_penalize));
    ARG("2", 1);
    ARG(names[0], strlen(names[0]));
    ARG(names[1], rd_row_name(s, q->k[0].key, names[1]));
    ARG(now, q->have_now ? 8 : 0);
    ARG(token, strlen(token));
    ARG(idle, strlen(idle));
    ARG(q->k[0].key, strlen(q->k[0].key));
    ARG(id, 8);
    ARG(dur, 8);
#undef ARG
    if ((rc = run(s, s->sha_penalize, (int)n, argv, len, &r)) != RL_OK)
        return rc;
    return answer(s, q, r);
}

int rd_decide_fast(rl_store *base, const rl_fast_req *q)
{
    rd_store *s = (rd_store *)base;
    const char *argv[16 + 5 * RL_MAX_KEYS];
    size_t len[sizeof argv / sizeof argv[0]];
    char names[4 + RL_MAX_KEYS][RD_NAME_MAX], nk[8], pver[24], token[20], units[24], idle[24];
    unsigned char now[8], horizon[8], cool[8 * (1 + RL_MAX_LIMITS)], ttl[8], raw[RD_LEASE_MAX];
    size_t raw_len = 0;
    unsigned char lim[RL_MAX_KEYS][RL_MAX_LIMITS * 48];
    redisReply *r = NULL;
    size_t i, j, n = 0;
    int rc;

    if (q->cancel)
        return cancel_fast(s, q);
    if (q->penalize)
        return penalize_fast(s, q);
    if (s->readonly || !s->sha_fast[0] || q->nkeys > RL_MAX_KEYS || q->ncool > sizeof cool / 8 ||
        q->max_delay_ns < 0 || (q->lease && (q->nkeys != 1 || q->ttl < 0)))
        return RL_FAST_NO;
    rd_name_of(s, "policy", names[0]);
    rd_name_of(s, "keys", names[1]);
    if (q->lease) { /* its created and expires are the server's: 0 here */
        rd_name_of(s, "lease_seq", names[2 + RL_MAX_KEYS]);
        rd_name_of(s, "leases", names[3 + RL_MAX_KEYS]);
        raw_len = rd_lease_encode(&q->lease_tmpl, s->host_id, raw);
        put(ttl, q->ttl);
    }
    snprintf(nk, sizeof nk, "%zu", 2 + q->nkeys + (q->lease ? 2 : 0));
    snprintf(pver, sizeof pver, "%" PRId64, q->pol_version);
    snprintf(token, sizeof token, "%016" PRIx64, rd_next_rand(s));
    snprintf(units, sizeof units, "%" PRId64, q->units);
    snprintf(idle, sizeof idle, "%" PRId64, s->idle_ttl_ms);
    put(now, q->now);
    put(horizon, q->max_delay_ns);
    for (i = 0; i < q->ncool; i++)
        rl_put64(cool + 8 * i, q->cool_id[i]);
#define ARG(p, l) (argv[n] = (const char *)(p), len[n++] = (l))
    ARG("EVALSHA", 7);
    ARG(s->sha_fast, strlen(s->sha_fast));
    ARG(nk, strlen(nk));
    for (i = 0; i < 2; i++)
        ARG(names[i], strlen(names[i]));
    for (i = 0; i < q->nkeys; i++)
        ARG(names[2 + i], rd_row_name(s, q->k[i].key, names[2 + i]));
    if (q->lease) {
        ARG(names[2 + RL_MAX_KEYS], strlen(names[2 + RL_MAX_KEYS]));
        ARG(names[3 + RL_MAX_KEYS], strlen(names[3 + RL_MAX_KEYS]));
    }
    ARG(pver, strlen(pver));
    ARG(now, q->have_now ? 8 : 0);
    ARG(token, strlen(token));
    ARG(units, strlen(units));
    ARG(idle, strlen(idle));
    ARG(horizon, 8);
    ARG(cool, 8 * q->ncool);
    ARG(raw, raw_len);
    ARG(ttl, q->lease ? 8 : 0);
    for (i = 0; i < q->nkeys; i++) {
        const rl_fast_key *fk = &q->k[i];
        for (j = 0; j < fk->n; j++) {
            const rl_fast_slot *sl = &fk->slot[j];
            unsigned char *b = lim[i] + 48 * j;
            put(b, sl->cost);
            put(b + 8, sl->count);
            put(b + 16, sl->period_ns > 0 ? sl->period_ns : sl->inc_ns); /* a window's period */
            put(b + 24, sl->inc_rem);
            put(b + 32, sl->tau_ns);
            put(b + 40, sl->tau_rem);
        }
        ARG(fk->key, strlen(fk->key));
        ARG(fk->tier, strlen(fk->tier));
        ARG(fk->tmpl, fk->tmpl_len);
        ARG(lim[i], 48 * fk->n);
    }
#undef ARG
    if ((rc = run(s, s->sha_fast, (int)n, argv, len, &r)) != RL_OK)
        return rc;
    return answer(s, q, r);
}

/* Whether core's writes to w's leases are what the server did: for a
 * decision, the one lease a begin put (its id the server's, rd_lease_put),
 * byte for byte, or none if neither did; for a lease settle or cancel
 * (RD_REPLAY_LEASE), the one lease deleted. */
static int leases_match(const rd_store *s, const rd_row *w)
{
    if (s->replay == RD_REPLAY_LEASE)
        return !w->n_leases && w->n_gone == 1;
    return !w->n_gone && w->n_leases == (s->fl_len ? 1 : 0) &&
           (!w->n_leases ||
            (s->fl_used && w->leases[0].rec.id == s->fl_id && w->leases[0].raw_len == s->fl_len &&
             memcmp(w->leases[0].raw, s->fl_raw, s->fl_len) == 0));
}

int rd_fast_check(rd_store *s)
{
    unsigned char buf[RD_ROW_MAX];
    size_t i;
    int rc = RL_OK;
    for (i = 0; i < s->n_rows && rc == RL_OK; i++) {
        rd_row *w = s->rows[i];
        if (!w->expect_len)
            continue; /* read by core, not written on the server */
        if (!w->dirty || !leases_match(s, w) || rd_row_encode(&w->row, buf) != w->expect_len ||
            memcmp(buf, w->expect, w->expect_len) != 0)
            rc = rl_seterr(s->base.err, RL_ESTORE,
                           "redis %s: key '%.64s': the server %s otherwise than the library "
                           "(a bug in rl: please report it)",
                           s->where, w->key,
                           s->replay == RD_REPLAY_LEASE ? "settled a lease" : "decided");
    }
    rd_tx_reset(s);
    return rc;
}
