/*
 * fast_lease.c - the Redis store's one-round-trip lease settle and cancel
 * (rl_store_ops.lease_end_fast; the plan is core/fast_lease.c's): a
 * server-side script that finds the lease in its key's hash, applies the
 * settle to the key's row, frees the slots the lease held and deletes the
 * lease, then the replay that lets core check it.
 *
 * Why: the usual way finds the lease (HGET of the id map), reads the key
 * and commits with a checked script: three round trips, and conflicts with
 * every other writer of a hot key, which retry. Here it is one, serialised
 * in Redis, with no retries. Core sends every product already made
 * (store.h), so the script only adds 64-bit numbers kept as two 32-bit
 * halves in doubles, as fast.c's does.
 *
 * Guarantees:
 *   - all or nothing: the script answers 0 (nothing written) unless the
 *     lease field holds byte for byte the lease core planned with, the row
 *     names the planned tier and has its layout (cool-downs after it), the
 *     policy version is core's, no live claim of a committer of the usual
 *     way stands, and every sum fits int64 without saturating (where C
 *     saturates, the usual way decides);
 *   - what the script writes is what core would: the reply carries the
 *     row as it was and as it is now; core settles again on the first
 *     (lease_end_tx), and rd_fast_check compares what core would
 *     write with the second byte for byte and checks that core deleted
 *     that lease and nothing else;
 *   - the row gets a new version token, so a commit of the usual way that
 *     read it before conflicts; the key's TTL is never shortened (other
 *     leases may need it);
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

/* Numbers as in fast.c: {hi, lo}, hi the signed upper 32 bits, lo the
 * lower 32 bits unsigned; a GCRA time also has a remainder below count. */
static const char lease_lua[] =
    "#!lua\n"
    "-- KEYS: policy, lease map, the lease's row.\n"
    "-- ARGV: policy version, now ('' for TIME, else 8 bytes), new version\n"
    "-- token, idle ttl ms, lease id, the lease as core knows it, its\n"
    "-- expiry (8 bytes), the explicit tier its row names ('' none), the\n"
    "-- state of a key new to its tier, 24 bytes per limit (GCRA: what the\n"
    "-- settle adds to TAT as ns and rem; in flight: units to free), what it\n"
    "-- adds to the units counter (8 bytes). Numbers in bytes are\n"
    "-- little-endian int64.\n"
    "-- Returns 0 (nothing written) or {1, now, row before, row after}.\n" RD_LUA_COMMON
    "if (call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return 0 end\n"
    "local k = KEYS[3]\n"
    "local got = call('HMGET', k, 'r', 'q', 'l:' .. ARGV[5])\n"
    "local row, q = got[1], got[2]\n"
    "if not row or got[3] ~= ARGV[6] then return 0 end\n"
    "local nh, nl, now_ms = clock(ARGV[2])\n"
    "if claimed(q, now_ms) then return 0 end\n"
    "local tier, tm, lim = ARGV[8], ARGV[9], ARGV[10]\n"
    "local tl = #tier\n"
    "if #row < 42 + tl or byte(row, 1) ~= 1 or byte(row, 2) ~= tl or\n"
    "   sub(row, 3, 2 + tl) ~= tier then\n"
    "  return 0\n"
    "end\n"
    "local st = sub(row, 43 + tl)\n"
    "-- the layout core planned for, as fast.c's script checks it\n"
    "local n, m = byte(tm, 2), byte(st, 2)\n"
    "if #tm ~= 18 + 49 * n or #lim ~= 24 * n or byte(st, 1) ~= 2 or m < n or m > 12 or\n"
    "   #st ~= 18 + 49 * m or sub(st, 11, 18) ~= sub(tm, 11, 18) or\n"
    "   sub(st, 3, 10) == '\\0\\0\\0\\0\\0\\0\\0\\0' then\n"
    "  return 0\n"
    "end\n"
    "for j = 0, n - 1 do\n"
    "  local o = 19 + j * 49\n"
    "  if sub(st, o, o + 32) ~= sub(tm, o, o + 32) then return 0 end\n"
    "end\n"
    "-- cool-downs as rl__state_align brings them along: running ones kept\n"
    "local one, zero = pack('<I4i4', 1, 0), pack('<I4i4', 0, 0)\n"
    "local cone, kept = one .. one .. one, {}\n"
    "for j = n, m - 1 do\n"
    "  local o = 19 + j * 49\n"
    "  local bad = byte(st, o) ~= 1 or sub(st, o + 9, o + 32) ~= cone\n"
    "  if bad or sub(st, o + 41, o + 48) ~= zero then return 0 end\n"
    "  local l, h = unpack('<I4i4', st, o + 33)\n"
    "  if h > nh or (h == nh and l > nl) then kept[#kept + 1] = sub(st, o, o + 48) end\n"
    "end\n"
    "local head = sub(st, 1, 1) .. string.char(n + #kept) .. sub(st, 3, 18)\n"
    "-- an expired lease was settled at its estimate: only its slots go\n"
    "local el, eh = unpack('<I4i4', ARGV[7])\n"
    "local expired = nh > eh or (nh == eh and nl >= el)\n"
    "local slots = {}\n"
    "for j = 0, n - 1 do\n"
    "  local o = 19 + j * 49\n"
    "  local kind = byte(st, o)\n"
    "  local al, ah, rl, rh, fl, fh = unpack('<I4i4I4i4I4i4', lim, j * 24 + 1)\n"
    "  local l, h, r, rr = unpack(W2, st, o + 33)\n"
    "  local s = sub(st, o, o + 48)\n"
    "  if kind == 2 then\n"
    "    -- in flight: what the lease held is freed, down to 0\n"
    "    if h < 0 or h >= 1048576 or fh < 0 or fh >= 1048576 then return 0 end\n"
    "    local v, amt = h * P32 + l, fh * P32 + fl\n"
    "    if amt > 0 then\n"
    "      v = v > amt and v - amt or 0\n"
    "      local vh = floor(v / P32)\n"
    "      s = sub(s, 1, 33) .. pack('<I4i4', v - vh * P32, vh) .. sub(s, 42)\n"
    "    end\n"
    "  elseif kind == 0 then\n"
    "    local cl, ch = unpack('<I4i4', st, o + 9)\n"
    "    local c = ch * P32 + cl\n"
    "    r = r + rr * P32\n"
    "    if r < 0 or r >= c then return 0 end\n"
    "    if not expired and (al ~= 0 or ah ~= 0 or rl ~= 0 or rh ~= 0) then\n"
    "      -- TAT + (ns, rem): rem carries into ns; past int64: the usual way\n"
    "      r = r + rl + rh * P32\n"
    "      local carry = 0\n"
    "      if r >= c then r = r - c; carry = 1 end\n"
    "      l = l + al + carry\n"
    "      local lh = floor(l / P32)\n"
    "      l, h = l - lh * P32, h + ah + lh\n"
    "      if h >= H31 or h < -H31 then return 0 end\n"
    "      local rhi = floor(r / P32)\n"
    "      s = sub(s, 1, 33) .. pack(W2, l, h, r - rhi * P32, rhi)\n"
    "    end\n"
    "  else\n"
    "    return 0\n"
    "  end\n"
    "  slots[#slots + 1] = s\n"
    "end\n"
    "st = head .. table.concat(slots) .. table.concat(kept)\n"
    "-- the units counter (third of the row's five), as lease_end_tx adds\n"
    "local pre = sub(row, 1, 42 + tl)\n"
    "local dl, dh = unpack('<I4i4', ARGV[11])\n"
    "if not expired and (dl ~= 0 or dh ~= 0) then\n"
    "  local ul, uh = unpack('<I4i4', row, 19 + tl)\n"
    "  ul = ul + dl\n"
    "  local c = floor(ul / P32)\n"
    "  ul, uh = ul - c * P32, uh + dh + c\n"
    "  if uh >= H31 or uh < -H31 then return 0 end\n"
    "  pre = sub(pre, 1, 18 + tl) .. pack('<I4i4', ul, uh) .. sub(pre, 27 + tl)\n"
    "end\n"
    "local nrow = pre .. st\n"
    "call('HSET', k, 'r', nrow, 'v', ARGV[3])\n"
    "call('HDEL', k, 'l:' .. ARGV[5])\n"
    "call('HDEL', KEYS[2], ARGV[5])\n"
    "if q then call('HDEL', k, 'q') end -- lapsed: a live one said 0\n"
    "-- TTL as the decision script sets it, never shortened\n"
    "if tl == 0 then expire(k, st, row, nh, nl, tonumber(ARGV[4])) end\n"
    "return {1, pack('<I4i4', nl, nh), row, nrow}\n";

int rd_load_lease_script(rd_store *s)
{
    return rd_script_load(s, lease_lua, s->sha_lease, "load the lease script");
}

static int bad_reply(rd_store *s)
{
    return rl_seterr(s->base.err, RL_ESTORE, "redis %s: lease script: unexpected reply", s->where);
}

/* Fills the transaction's cache with the row as the script found it, and
 * the lease in it, for core to settle again (rd_fast_check). */
static int replay(rd_store *s, const rl_fast_lease *q, const unsigned char *raw, size_t raw_len,
                  const redisReply *r)
{
    const redisReply *now = r->element[1], *was = r->element[2], *is = r->element[3];
    rl_lease_rec rec;
    rd_row *w;
    if (now->type != REDIS_REPLY_STRING || now->len != 8 || was->type != REDIS_REPLY_STRING ||
        is->type != REDIS_REPLY_STRING || is->len > RD_ROW_MAX)
        return bad_reply(s);
    rd_tx_reset(s);
    s->in_tx = s->write = 1;
    s->replay = RD_REPLAY_LEASE;
    s->pver = q->pol_version;
    s->time_ns = (int64_t)rl_get64((const unsigned char *)now->str);
    s->have_pver = s->have_time = 1;
    if (!(w = calloc(1, sizeof *w)) || rd_push_row(s, w) != 0) {
        free(w);
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    }
    snprintf(w->key, sizeof w->key, "%s", q->rec.key);
    snprintf(w->ver, sizeof w->ver, "*");
    memcpy(w->expect, is->str, is->len);
    w->expect_len = is->len;
    memset(&rec, 0, sizeof rec);
    if (rd_row_decode(&w->row, (const unsigned char *)was->str, was->len) != RL_OK ||
        rd_lease_decode(&rec, s->host_id, raw, raw_len) != RL_OK)
        return rl_seterr(s->base.err, RL_ECORRUPT, "redis %s: key '%.64s': damaged record",
                         s->where, w->key);
    rec.id = q->rec.id;
    snprintf(rec.key, sizeof rec.key, "%s", w->key);
    if (rd_add_lease(w, &rec, raw, raw_len) != RL_OK)
        return rl_seterr(s->base.err, RL_ENOMEM, "out of memory");
    return RL_OK;
}

int rd_lease_end_fast(rl_store *base, const rl_fast_lease *q)
{
    rd_store *s = (rd_store *)base;
    const char *argv[20];
    size_t len[sizeof argv / sizeof argv[0]];
    char names[3][RD_NAME_MAX], pver[24], token[20], idle[24], id[24];
    unsigned char now[8], expires[8], units[8], lim[RL_MAX_LIMITS * 24], raw[RD_LEASE_MAX];
    size_t i, n = 0, raw_len;
    redisReply *r = NULL;
    int rc;

    if (s->readonly || !s->sha_lease[0] || q->n > RL_MAX_LIMITS || q->rec.id <= 0)
        return RL_FAST_NO;
    raw_len = rd_lease_encode(&q->rec, s->host_id, raw);
    rd_name_of(s, "policy", names[0]);
    rd_name_of(s, "leases", names[1]);
    snprintf(pver, sizeof pver, "%" PRId64, q->pol_version);
    snprintf(token, sizeof token, "%016" PRIx64, rd_next_rand(s));
    snprintf(idle, sizeof idle, "%" PRId64, s->idle_ttl_ms);
    snprintf(id, sizeof id, "%" PRId64, q->rec.id);
    rl_put64(now, (uint64_t)q->now);
    rl_put64(expires, (uint64_t)q->rec.expires);
    rl_put64(units, (uint64_t)q->units);
    for (i = 0; i < q->n; i++) {
        rl_put64(lim + 24 * i, (uint64_t)q->add_ns[i]);
        rl_put64(lim + 24 * i + 8, (uint64_t)q->add_rem[i]);
        rl_put64(lim + 24 * i + 16, (uint64_t)q->release[i]);
    }
#define ARG(p, l) (argv[n] = (const char *)(p), len[n++] = (l))
    ARG("EVALSHA", 7);
    ARG(s->sha_lease, strlen(s->sha_lease));
    ARG("3", 1);
    ARG(names[0], strlen(names[0]));
    ARG(names[1], strlen(names[1]));
    ARG(names[2], rd_row_name(s, q->rec.key, names[2]));
    ARG(pver, strlen(pver));
    ARG(now, q->have_now ? 8 : 0);
    ARG(token, strlen(token));
    ARG(idle, strlen(idle));
    ARG(id, strlen(id));
    ARG(raw, raw_len);
    ARG(expires, 8);
    ARG(q->tier, strlen(q->tier));
    ARG(q->tmpl, q->tmpl_len);
    ARG(lim, 24 * q->n);
    ARG(units, 8);
#undef ARG
    rc = rd_cmd(s, &r, "settle a lease", (int)n, argv, len);
    if (rc == RL_ESTORE && strstr(s->base.err, "NOSCRIPT")) {
        if ((rc = rd_load_lease_script(s)) != RL_OK)
            return rc;
        argv[1] = s->sha_lease;
        len[1] = strlen(s->sha_lease);
        rc = rd_cmd(s, &r, "settle a lease", (int)n, argv, len);
    }
    if (rc != RL_OK)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        rc = RL_FAST_NO;
    else if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
             r->element[0]->type != REDIS_REPLY_INTEGER || r->element[0]->integer != 1)
        rc = bad_reply(s);
    else if ((rc = replay(s, q, raw, raw_len, r)) == RL_OK)
        s->lease_hits++;
    freeReplyObject(r);
    if (rc != RL_OK && rc != RL_FAST_NO)
        rd_tx_reset(s);
    return rc;
}
