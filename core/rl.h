/*
 * rl.h - librl's application API: a rate limiter whose state lives in
 * SQLite (or Redis), shared by every process that opens the same store.
 *
 * Several processes open the same database file and share every bucket: a
 * decision made by one is seen by all, and survives restarts and crashes.
 * The shape follows Go's golang.org/x/time/rate (Allow / Wait / Reserve +
 * Cancel) with per-key state, weighted costs and tiers of several limits
 * that are checked and consumed all together or not at all.
 *
 * This header is the reference for every function it declares; docs/api.md
 * is the contract behind them (the semantics: group commit, the fail mode,
 * time near the end of int64_t, what each limit algorithm admits), and the
 * two must agree. The API is in three headers, layered as lua.h and
 * lauxlib.h are (the other two include rl.h):
 *   rl.h        what an application needs: open, decide, wait, reserve,
 *               leases, cool-downs, its policy, one key's stats;
 *   rl_admin.h  administration (what rlctl uses): listing keys, leases,
 *               tiers and rules, totals, reset_match, prune, doctor,
 *               export/import, the rate, duration and glob notations;
 *   rl_http.h   HTTP glue: building keys from a request's identities,
 *               rate-limit response headers, a provider's headers read
 *               back into cool-downs.
 * For this release rl.h still includes the other two (see the end of this
 * file).
 *
 * ---- Which function for which job -------------------------------------
 *
 *   Open and close a limiter ........ rl_open, rl_close; rl_options_init,
 *                                     RL_OPTIONS_INIT; rl_default_path
 *   Why a call failed ............... rl_errmsg (the handle's last error),
 *                                     rl_strerror (a code's fixed text)
 *   Decide now, never wait .......... rl_allow (one key, "requests"),
 *                                     rl_acquire (several resources: requests
 *                                     and tokens), rl_acquire_keys (several
 *                                     keys: user and global),
 *                                     rl_allow_batch (many rl_allow in one
 *                                     transaction)
 *   Wait until admitted ............. rl_wait, rl_wait_ex (several resources,
 *                                     interactive or batch priority)
 *   Book now, act later ............. rl_reserve, rl_cancel
 *   Guard a model call .............. rl_guard_begin (wait for every limit
 *                                     of user and account, take the slot),
 *                                     rl_guard_end (settle tokens, read the
 *                                     response's headers), rl_guard_cancel
 *   Cost known only afterwards ...... rl_lease_begin, rl_lease_settle,
 *     (an LLM call's tokens)          rl_lease_cancel
 *   Cap work in flight .............. RL_CONCURRENT limits, held by leases
 *   Back off after a 429 ............ rl_penalize; rl_observe_headers
 *                                     (rl_http.h) reads the response for you
 *   Set the limits .................. rl_options.default_limits or
 *                                     .tiers_file at open; rl_load_tiers,
 *                                     rl_tier_set, rl_tier_delete,
 *                                     rl_key_assign
 *   Look at one key, start it over .. rl_stats, rl_reset
 *   Check the library's version ..... rl_version, RL_VERSION_STRING
 *   In rl_admin.h:
 *   List keys, leases, totals ....... rl_keys_list, rl_leases_list,
 *                                     rl_totals_get
 *   Read the policy back ............ rl_tiers_list, rl_tier_get,
 *                                     rl_rules_list; rl_validate_tiers (a
 *                                     file, without a database)
 *   Maintain a store ................ rl_reset_match, rl_prune, rl_doctor
 *   Back up, move, restore .......... rl_export, rl_import
 *   Read and write the notations .... rl_parse_rate, rl_parse_duration,
 *                                     rl_format_rate, rl_format_duration,
 *                                     rl_glob_match
 *   In rl_http.h:
 *   Keys for a request .............. rl_key_for, rl_keys_for (user, agent,
 *                                     org, ip, global), rl_key_build,
 *                                     rl_key_unescape
 *   Answer with headers ............. rl_format_headers (RateLimit,
 *                                     X-RateLimit-*, Retry-After)
 *   Read a provider's headers ....... rl_parse_provider_headers,
 *                                     rl_observe_headers
 *
 * ---- Conventions (as in hiredis and libgit2) --------------------------
 *
 *   - Return codes. Every function that can fail returns an int: RL_OK (0)
 *     or a negative RL_E* code (rl_error_code). A deciding call (rl_allow,
 *     rl_acquire*, rl_wait*, rl_reserve, rl_lease_begin) returns RL_OK
 *     whether the request was admitted or refused: rl_result.allowed says
 *     which. Any other code is an error.
 *   - Messages. After an error on a handle, rl_errmsg(r) holds a one-line
 *     message naming the cause, safe to print (control characters, bytes
 *     that are not UTF-8 and characters that reorder or hide text are
 *     shown as '?'). Each thread sees the message of its own last call
 *     on the handle, whatever other threads sharing it do; it stays valid
 *     until this thread's next call on the handle (copy it if it has to
 *     outlive that). A thread keeps the messages of its 8 most recently
 *     failed handles. After any call that returns RL_OK it is "no error". Calls without a handle
 *     report through their return code only (rl_validate_tiers also
 *     writes a message to the buffer it is given).
 *   - Ownership. The caller owns everything it passes in and everything
 *     it gets back in its own structs; librl keeps no pointer to caller
 *     memory after a call returns, except rl_options.clock_ctx (the clock's
 *     context, used for the life of the handle). rl_options.default_limits
 *     and tiers_file are copied or read at rl_open. Strings librl returns
 *     are its own: rl_strerror's and rl_version's are static, rl_errmsg's
 *     belongs to the handle (above). Pointers passed to a callback are
 *     valid during that call only.
 *   - Parameter order is (handle, inputs, outputs): results come last, as
 *     in rl_allow(r, key, cost, &res). The exceptions are kept as they
 *     are: rl_open(&r, path, o) takes its output handle first (the handle
 *     it makes is what every other call takes first), rl_options_init
 *     fills the struct it is given first, and the string builders
 *     rl_default_path, rl_key_build and rl_key_for take their (buf, len)
 *     first, as snprintf does. Existing functions are not reordered, not
 *     even to make this rule hold everywhere: a reordering that still
 *     compiles (two pointers of one type swapped) would break callers
 *     silently. New functions follow the rule.
 *   - Output pointers must not be NULL unless a function says so (RL_EINVAL).
 *   - Time is integer nanoseconds (int64_t) throughout: RL_SECOND,
 *     RL_MINUTE, ... help write it. Durations in results are relative
 *     ("retry after 120 ms"); rl_reservation.time_to_act and lease expiry
 *     are clock times (ns since the epoch, or whatever rl_options.clock
 *     returns). What cannot be recorded near the end of int64_t is refused,
 *     never admitted (docs/api.md, Conventions).
 *   - Keys are 1..RL_KEY_MAX bytes of valid UTF-8 without control
 *     characters; names of tiers, limits and resources are
 *     1..RL_NAME_MAX-1 bytes of [A-Za-z0-9_.:-]. Anything else is
 *     RL_EINVAL. Costs are non-negative; a cost larger than a limit's
 *     burst can never pass and is RL_ETOOBIG, not a refusal.
 *   - Enumerations are typedef'd (rl_fail_mode, rl_algorithm, ...) and have
 *     the size and type compatibility of int, because each has a negative
 *     member (the RL_E* codes; elsewhere a private ..._INT_ = -1, never a
 *     valid value), which makes the compiler choose int: they replace the
 *     ints of earlier releases without changing the ABI, and a function or
 *     callback written with int still matches.
 *     Bit flags (RL_OPEN_*, RL_HEADERS_*) stay macros. Each callback type
 *     has a name (rl_key_cb, rl_check_cb, ...); callbacks get a ctx pointer
 *     first and stop a walk by returning non-zero, which the walk returns.
 *   - Deprecated names stay for one release and are marked so here and in
 *     CHANGELOG.md.
 *
 * ---- Threads, processes and fork --------------------------------------
 *
 *   - One rl * may be shared by all the threads of a process: a mutex in
 *     the handle serialises its calls, because the SQLite connection inside
 *     is not shareable. Waiting (rl_wait, rl_wait_ex) sleeps without
 *     holding the mutex, so one thread's wait does not stall the others.
 *   - Because calls are serialised, a thread that wants decisions in
 *     parallel with others can open a handle of its own; every handle on
 *     the same store sees the same buckets.
 *   - Callbacks of rl_keys_list, rl_leases_list, rl_doctor and rl_export
 *     run while the handle's mutex is held: they must not call the same
 *     handle (that would deadlock) and should be quick. rl_tiers_list and
 *     rl_rules_list call back on a private copy without the lock, so their
 *     callbacks may use the handle.
 *   - rl_close: no other thread may be using the handle, or be about to.
 *   - Functions without a handle (rl_strerror, rl_version, the parsers and
 *     formatters, the key builders, rl_validate_tiers) are thread-safe;
 *     rl_default_path as far as getenv is.
 *   - Each process opens its own handle, after fork(). A handle must not
 *     cross fork() (SQLite's rule for its connections): open the store in
 *     the child; the parent's handle may be closed in the parent only. Two
 *     processes sharing a store is the normal case and needs nothing more.
 *
 * ---- What rl_open's path may be ----------------------------------------
 *
 *   ":memory:"        a private in-process store (nothing shared, nothing
 *                     kept); exactly this string.
 *   "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?OPTIONS]"
 *   "unix:///SOCKET-PATH[?OPTIONS]"
 *                     a Redis server (7.0 or newer) shared by machines.
 *                     PORT defaults to 6379 and DB to 0; the unix:// path
 *                     must be absolute. OPTIONS are &-separated: prefix=P
 *                     (default "rl:"), timeout_ms=N (1..3600000; default
 *                     busy_timeout_ms, or 1000 if that is 0),
 *                     idle_ttl=SECONDS (default 86400), db=N, password=P.
 *                     Percent-escapes work in the user, password and
 *                     values; $RL_REDIS_PASSWORD is used when the address
 *                     has no password. A malformed address is RL_EINVAL;
 *                     a librl built without Redis (RL_REDIS=OFF) still
 *                     recognises both schemes and fails with RL_EINVAL.
 *                     docs/redis.md has the details.
 *   NULL              rl_default_path(): $RL_DB (any of these forms), else
 *                     $XDG_STATE_HOME/rl/rl.db (if absolute), else
 *                     ~/.local/state/rl/rl.db; for the two defaults the
 *                     directories above the file are created 0700.
 *   anything else     the path of an SQLite database file, relative to the
 *                     working directory or absolute, created if missing
 *                     (mode file_mode), used in WAL mode beside PATH-wal,
 *                     PATH-shm and rl's lock file PATH-rlshm.
 *
 * This header is self-contained C11 (and C++ compatible); it needs no
 * feature macro (_GNU_SOURCE) and no other header before it.
 */
#ifndef RL_H
#define RL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RL_API __attribute__((visibility("default")))
#else
#define RL_API
#endif

#define RL_VERSION_MAJOR 0
#define RL_VERSION_MINOR 1
#define RL_VERSION_PATCH 0
#define RL_VERSION_STRING "0.1.0"

/* Return codes. Deciding calls return RL_OK whether the request was admitted
 * or refused (rl_result.allowed says which); a code is only for errors.
 * Functions return them as int. */
typedef enum rl_error_code {
    RL_OK = 0,
    RL_EINVAL = -1,     /* invalid argument (bad key, negative cost, bad limit) */
    RL_ENOMEM = -2,     /* out of memory */
    RL_ETOOBIG = -3,    /* cost exceeds a limit's burst: it can never pass */
    RL_EBUSY = -4,      /* the store stayed locked past busy_timeout_ms */
    RL_ESTORE = -5,     /* store failure: I/O error, cannot open */
    RL_EREADONLY = -6,  /* the store is read-only (file permissions, read-only handle) */
    RL_EFULL = -7,      /* the disk or database is full */
    RL_ECORRUPT = -8,   /* not an rl database, damaged, or tampered with */
    RL_EVERSION = -9,   /* database schema newer than this library */
    RL_ECONFIG = -10,   /* invalid configuration (tier file, limits, options) */
    RL_ENOTFOUND = -11, /* no such key or tier */
    RL_ETIMEOUT = -12,  /* the wait would exceed the timeout; nothing consumed */
    RL_ECANCELED = -13, /* the wait was cancelled; its reservation was returned */
    RL_ENOLIMIT = -14,  /* no tier and no default limits apply to the key, or a
                           resource is limited by no tier (RL_OPEN_ANY_RESOURCE) */
    RL_ECONNECT = -15,  /* the store's server is unreachable: refused, lost, timed out */
    RL_EAUTH = -16,     /* the store's server refused our credentials */
    RL_EPERM = -17,     /* a file is owned by another user or its mode is wider than file_mode */
    RL_ELIMITED = -18,  /* refused by a limit (rl_guard_begin): res says which and when to retry */
    RL_EMISMATCH = -19  /* the limits given in code disagree with those the database holds */
} rl_error_code;

/* Durations. */
#define RL_NANOSECOND ((int64_t)1)
#define RL_MICROSECOND ((int64_t)1000)
#define RL_MILLISECOND ((int64_t)1000000)
#define RL_SECOND ((int64_t)1000000000)
#define RL_MINUTE (60 * RL_SECOND)
#define RL_HOUR (60 * RL_MINUTE)
#define RL_DAY (24 * RL_HOUR)

/* Sizes. Keys are 1..RL_KEY_MAX bytes of valid UTF-8 without control
 * characters; names of tiers, limits and resources are 1..RL_NAME_MAX-1 bytes
 * of [A-Za-z0-9_.:-]. */
#define RL_KEY_MAX 512
#define RL_NAME_MAX 64
#define RL_MAX_LIMITS 8
#define RL_MAX_KEYS 8 /* keys in one rl_acquire_keys decision */

/* ======================================================================
 * Limits
 * ====================================================================== */

/* What a limit counts and how (rl_limit.algorithm).
 *   RL_ALGO_GCRA (0, the default): a token bucket of capacity `burst` that
 *     refills at count per period (the Generic Cell Rate Algorithm).
 *   RL_ALGO_SLIDING_WINDOW: the sliding window counter. Time is cut into
 *     fixed windows of period_ns (aligned to the epoch); with cur units
 *     counted in the current window, prev in the one before and e ns
 *     elapsed in the current one, the estimate is
 *         ceil(prev * (period_ns - e) / period_ns) + cur
 *     and a cost c is admitted iff estimate + c <= count. burst is ignored
 *     (it is count). retry_after_ns is the exact wait, rounded up, after
 *     which the same request passes; reset_after_ns lasts until both
 *     windows have aged out (the estimate is 0).
 *   RL_ALGO_CONCURRENT: not a rate but a cap: at most `count` units in
 *     flight, held by leases (rl_lease_begin); other decisions that name
 *     its resource only check it (RL_SLOT_RETRY_NS); period_ns must be 0 and
 *     burst 0 or count. Only this kind may have period 0: a rate limit
 *     with period_ns 0 is RL_EINVAL. RL_CONCURRENT() initialises one. */
typedef enum rl_algorithm {
    RL_ALGO_GCRA = 0,
    RL_ALGO_SLIDING_WINDOW = 1,
    RL_ALGO_CONCURRENT = 2,
    RL_ALGO_INT_ = -1 /* private: keeps the type an int (see Conventions) */
} rl_algorithm;

/* One limit: `count` units per `period_ns` (> 0), bucket capacity `burst`
 * (0 means `count`); or, with algorithm RL_ALGO_CONCURRENT, at most `count`
 * units in flight. `resource` NULL means "requests"; `name` NULL gets
 * "limitN" (its 1-based position). `algorithm` comes last, so that an
 * initialiser that stops before it means GCRA. The strings are copied
 * where the limit is used (rl_tier_set, rl_open). */
typedef struct rl_limit {
    const char *name;
    const char *resource;
    int64_t count;
    int64_t period_ns;
    int64_t burst;
    rl_algorithm algorithm;
} rl_limit;

/* Initialisers for arrays of rl_limit: rl_limit l[] = { RL_PER_MINUTE(60, 10) }; */
#define RL_LIMIT(name, resource, count, period_ns, burst)               \
    {                                                                   \
        (name), (resource), (count), (period_ns), (burst), RL_ALGO_GCRA \
    }
#define RL_PER_SECOND(n, burst) RL_LIMIT(NULL, NULL, (n), RL_SECOND, (burst))
#define RL_PER_MINUTE(n, burst) RL_LIMIT(NULL, NULL, (n), RL_MINUTE, (burst))
#define RL_PER_HOUR(n, burst) RL_LIMIT(NULL, NULL, (n), RL_HOUR, (burst))
#define RL_PER_DAY(n, burst) RL_LIMIT(NULL, NULL, (n), RL_DAY, (burst))
/* At most n units of resource in flight at once, held by leases
 * (rl_lease_begin) until settled or cancelled (RL_ALGO_CONCURRENT). */
#define RL_CONCURRENT(name, resource, n)                  \
    {                                                     \
        (name), (resource), (n), 0, 0, RL_ALGO_CONCURRENT \
    }
/* At most count units per sliding window of period_ns (RL_ALGO_SLIDING_WINDOW). */
#define RL_SLIDING_WINDOW(name, resource, count, period_ns)                 \
    {                                                                       \
        (name), (resource), (count), (period_ns), 0, RL_ALGO_SLIDING_WINDOW \
    }

/* ======================================================================
 * Opening and closing
 * ====================================================================== */

/* rl_options.durability: RL_DURABILITY_FULL syncs every commit to disk
 * (survives a power loss, slower); NORMAL survives a crash of the process. */
typedef enum rl_durability {
    RL_DURABILITY_NORMAL = 0,
    RL_DURABILITY_FULL = 1,
    RL_DURABILITY_INT_ = -1 /* private: keeps the type an int */
} rl_durability;

/* rl_options.fail_mode: what res->allowed says when a deciding call fails
 * because of the store (RL_EBUSY, RL_ESTORE, RL_EREADONLY, RL_EFULL,
 * RL_ECORRUPT, RL_ENOMEM, RL_EVERSION, RL_ECONNECT, RL_EAUTH; the call
 * still returns that code). RL_FAIL_CLOSED: refused. RL_FAIL_OPEN: admitted
 * with res->degraded = 1. A tiers file's `fail_mode:` overrides it. */
typedef enum rl_fail_mode {
    RL_FAIL_CLOSED = 0,
    RL_FAIL_OPEN = 1,
    RL_FAIL_INT_ = -1 /* private: keeps the type an int */
} rl_fail_mode;

/* DEPRECATED (rl_options.busy_strategy, see there): how a writer waits for
 * another process's write transaction. RL_BUSY_LOCK (the default, and the
 * only value an application should use) queues writers on a futex lock kept
 * in the side file PATH-rlshm, whose owners the kernel vouches for
 * (docs/operations.md), and enables group commit; RL_BUSY_SQLITE uses
 * SQLite's own busy handler (sleeps of 1..100 ms), kept for comparison in
 * bench/. */
enum { RL_BUSY_LOCK = 0, RL_BUSY_SQLITE = 1 };

/* rl_options.flags, or'ed. */
#define RL_OPEN_READONLY 0x1 /* never write; deciding calls fail with RL_EREADONLY */
/* The database is shared by a group on purpose: its files may belong to
 * other users of one of our groups (their mode still no wider than
 * file_mode), and a read-only handle accepts files our groups may write. */
#define RL_OPEN_SHARED_GROUP 0x2
/* Admit resources that no limit knows. Without it, a decision that names a
 * resource no limit of the whole policy counts (no tier, nor the handle's
 * default_limits; "requests" is always known) fails with RL_ENOLIMIT, so a
 * misspelt "token" is not admitted uncharged. With it such a resource is
 * unlimited, as before. rl_allow and rl_acquire of a handle opened with it
 * are not grouped with other processes' (group commit, docs/api.md). */
#define RL_OPEN_ANY_RESOURCE 0x4
/* Replace the default limits stored in the database with this handle's
 * rl_options.default_limits when they differ, instead of failing with
 * RL_EMISMATCH. Every process sharing the store applies the new ones from
 * its next decision (they are the tier named "default", see rl_options). */
#define RL_OPEN_OVERRIDE_DEFAULTS 0x8

/* The layout of rl_options this header declares. A program passes it in
 * rl_options.version (RL_OPTIONS_INIT and rl_options_init do); a library
 * accepts every version from 1 to its own, so a program keeps working with
 * a newer librl, and refuses a newer one (RL_EINVAL) instead of reading
 * fields that the program's struct does not have. */
#define RL_OPTIONS_VERSION 1

/* A clock: the current time in ns (any origin, the same for every process
 * sharing a store). Called with rl_options.clock_ctx, under the handle's
 * mutex; must not call the handle. */
typedef int64_t (*rl_clock_cb)(void *ctx);

/* Options of rl_open. Initialise with RL_OPTIONS_INIT (or rl_options_init)
 * and change fields; never fill one from zero, as 0 is no valid version. */
typedef struct rl_options {
    unsigned int version; /* RL_OPTIONS_VERSION */
    /* For keys that no assignment, rule or default_tier covers. They live
     * in the database, as the tier named "default", so that every process
     * and rlctl decide with the same ones: rl_open writes them there if it
     * holds none, fails with RL_EMISMATCH if it holds other ones (unless
     * flags has RL_OPEN_OVERRIDE_DEFAULTS, which replaces them), and a
     * handle opened without them uses the stored ones. Copied at open. */
    const rl_limit *default_limits;
    size_t n_default_limits;  /* 0..RL_MAX_LIMITS; 0: those the database holds */
    int busy_timeout_ms;      /* >= 0; default 5000. How long a writer waits for the
                                 store's lock (Redis: retries conflicting commits)
                                 before RL_EBUSY; on Redis also the default network
                                 timeout */
    rl_durability durability; /* RL_DURABILITY_NORMAL */
    rl_fail_mode fail_mode;   /* RL_FAIL_CLOSED */
    rl_clock_cb clock;        /* NULL: CLOCK_REALTIME (Redis: the server's TIME). An
                                 injected clock turns group commit off */
    void *clock_ctx;          /* kept for the life of the handle */
    unsigned int file_mode;   /* mode of a new database and its side files, and the
                                 widest an existing one may have; must include 0600
                                 (0660 for a group); default 0600 */
    const char *tiers_file;   /* YAML tiers loaded at open (as rl_load_tiers); NULL */
    unsigned int flags;       /* RL_OPEN_* */
    /* DEPRECATED, to leave rl_options in the next release (with a new
     * RL_OPTIONS_VERSION): a benchmark knob, not an application setting.
     * Leave it RL_BUSY_LOCK, as RL_OPTIONS_INIT and rl_options_init set it.
     * It stays for now because the library's handle and the benchmark
     * still read it; see CHANGELOG.md. */
    int busy_strategy; /* RL_BUSY_LOCK */
} rl_options;

#define RL_OPTIONS_INIT                                                                            \
    {                                                                                              \
        RL_OPTIONS_VERSION, NULL, 0, 5000, RL_DURABILITY_NORMAL, RL_FAIL_CLOSED, NULL, NULL, 0600, \
            NULL, 0, RL_BUSY_LOCK                                                                  \
    }

/* Sets *o to the defaults (those of RL_OPTIONS_INIT) for the layout of
 * `version`, and o->version to it, as libgit2's git_*_options_init do:
 *     rl_options o;
 *     rl_options_init(&o, RL_OPTIONS_VERSION);
 * Pass RL_OPTIONS_VERSION, the macro, not a number: it records which
 * layout the program was compiled with. For bindings and code that cannot
 * use the initialiser macro.
 *   o        the options to fill; only the fields `version` has are written.
 *   version  1..RL_OPTIONS_VERSION.
 * Returns RL_OK; RL_EINVAL (leaving *o as it was) if o is NULL or version
 * is 0 or newer than this library's. */
RL_API int rl_options_init(rl_options *o, unsigned int version);

/* A handle on one store: opaque. */
typedef struct rl rl;

/* Opens, creating if needed, the store at `path` (see "What rl_open's path
 * may be" at the top), bringing an SQLite database's schema up to date.
 *   out   receives the handle. On failure *out is still set (unless out is
 *         NULL or memory ran out) so that rl_errmsg(*out) says why:
 *         rl_close it either way.
 *   path  ":memory:", "redis://...", "unix://...", a file path, or NULL
 *         for rl_default_path(); read during the call only.
 *   o     NULL for the defaults, or options made with RL_OPTIONS_INIT or
 *         rl_options_init; o->version may be any of 1..RL_OPTIONS_VERSION
 *         (a newer one, from a program built with a newer rl.h than this
 *         library, is RL_EINVAL, and rl_errmsg says so). Read during the
 *         call; only clock_ctx is kept.
 * A file that exists but that this user may not write is opened read-only
 * automatically (deciding then fails with RL_EREADONLY). An existing file
 * that another user could have planted (the database, PATH-wal, PATH-shm:
 * not a regular file, more than one link, owned by another user, mode wider
 * than file_mode) is refused with RL_EPERM, rl_errmsg naming the file and
 * the fix; see docs/security.md.
 * Returns RL_OK; RL_EINVAL (out NULL, bad options, no default path, a
 * malformed Redis address); RL_ENOMEM; RL_ECONNECT, RL_EAUTH (Redis);
 * RL_EPERM; RL_ESTORE, RL_EREADONLY, RL_EBUSY, RL_EFULL; RL_ECORRUPT (not
 * an rl database, or unknown schema objects); RL_EVERSION (a schema newer
 * than this library); RL_ECONFIG or RL_ESTORE from tiers_file;
 * RL_EMISMATCH (default_limits differ from the stored default limits,
 * compared after tiers_file is loaded; rl_errmsg shows both).
 * Open one handle per process, after any fork(). */
RL_API int rl_open(rl **out, const char *path, const rl_options *o);

/* Closes the store and frees the handle; rl_close(NULL) does nothing. No
 * other thread may be using the handle, or be about to. */
RL_API void rl_close(rl *r);

/* The message of this thread's last call on r if it failed: one line, never
 * NULL, valid until this thread's next call on r (copy it to keep it);
 * another thread's calls on a shared handle do not change it.
 * "no error" after a call that returned RL_OK; for r NULL, a message saying
 * there is no handle (rl_open could not allocate one). */
RL_API const char *rl_errmsg(const rl *r);

/* A fixed description of a return code ("store is read-only"), "unknown
 * error" for a code it does not know. Static; thread-safe. */
RL_API const char *rl_strerror(int code);

/* The library's version, "MAJOR.MINOR.PATCH" (static): compare with
 * RL_VERSION_STRING to detect a header/library mismatch. */
RL_API const char *rl_version(void);

/* Writes to buf (len bytes) the path rl_open(NULL) would use: $RL_DB, else
 * $XDG_STATE_HOME/rl/rl.db, else ~/.local/state/rl/rl.db. Reads the
 * environment only (thread-safe as far as getenv is). Returns RL_OK;
 * RL_ENOTFOUND if neither RL_DB, an absolute XDG_STATE_HOME nor HOME is
 * set; RL_EINVAL if buf is too small. */
RL_API int rl_default_path(char *buf, size_t len);

/* ======================================================================
 * Deciding
 * ====================================================================== */

/* The outcome of a decision. The deciding limit is the one that refused (the
 * largest retry-after) or, when admitted, the one with least room left. */
typedef struct rl_result {
    int allowed;                  /* 1: admitted (and charged); 0: refused */
    int64_t limit;                /* the deciding limit's burst */
    int64_t remaining;            /* units it could still admit now (INT64_MAX: unlimited tier) */
    int64_t retry_after_ns;       /* 0 if allowed; else when the same request would pass
                               (INT64_MAX: never); for a concurrency limit, when to
                               look again (RL_SLOT_RETRY_NS at most); after a store
                               failure, fail-closed, RL_FAIL_RETRY_NS */
    int64_t reset_after_ns;       /* when the deciding limit is full again; for a
                                     concurrency limit, until the first lease
                                     holding it expires */
    char limit_name[RL_NAME_MAX]; /* "cooldown" when an rl_penalize cool-down refused;
                                     "" when no limit applied */
    int degraded;                 /* 1: admitted by RL_FAIL_OPEN without the store */
    int key_index;                /* which key of an rl_acquire_keys call decided */
} rl_result;

/* rl_result.retry_after_ns of a refusal by a concurrency limit (RL_CONCURRENT)
 * is a polling hint, not a promise: a slot comes free whenever a holder
 * settles or cancels its lease, which cannot be foreseen. It is the lesser
 * of this and the time until the first lease holding the limit expires;
 * reset_after_ns is that expiry (at the latest a slot comes free then). */
#define RL_SLOT_RETRY_NS (50 * RL_MILLISECOND)
/* A timeout that never ends (rl_wait, rl_wait_ex, rl_guard_begin); 0 does
 * not wait at all. */
#define RL_FOREVER INT64_MAX
/* How a batch waiter ages: it is served as if it had come this much later
 * than it did, so interactive callers go first, but none that come more
 * than RL_BATCH_AGE_NS after it (see rl_priority). */
#define RL_BATCH_AGE_NS RL_SECOND
/* rl_result.retry_after_ns of a fail-closed refusal (the store failed,
 * rl_fail_mode RL_FAIL_CLOSED): a back-off hint, so that callers that honour
 * it do not retry in a tight loop. A fail-open admission has 0. */
#define RL_FAIL_RETRY_NS (100 * RL_MILLISECOND)

/* One resource's amount in a decision: { "requests", 1 }, { "tokens", 1500 }.
 * resource NULL means "requests". */
typedef struct rl_cost {
    const char *resource;
    int64_t amount; /* >= 0 */
} rl_cost;

/* Decides now whether `cost` units of the resource "requests" may pass for
 * `key` and, if so, charges them to every "requests" limit of the key's
 * tier. Never blocks beyond the store's lock; the clock is read once the
 * lock is held. Every decision updates the key's counters. A concurrency
 * limit (RL_CONCURRENT) on a resource the decision names is checked, not
 * taken: admitted only if its units in flight plus the amount fit its cap,
 * as a cost of 0 checks a rate; only a lease (rl_lease_begin) holds units.
 *   r     the handle.
 *   key   the key (see Conventions); its tier is resolved from assignments,
 *         rules, the default tier, then rl_options.default_limits.
 *   cost  units, >= 0. 0 checks without charging: admitted unless units are
 *         owed beyond an empty bucket or a full window.
 *   res   out: the decision (also on a store failure, per the fail mode).
 * Returns RL_OK (admitted or refused: res->allowed); RL_EINVAL (bad key,
 * negative cost, res NULL); RL_ETOOBIG (cost above a burst); RL_ENOLIMIT
 * (no tier and no default limits; or, for the calls that name resources,
 * a resource that no limit of the policy counts, see RL_OPEN_ANY_RESOURCE);
 * RL_EREADONLY; or a store failure (rl_fail_mode; a fail-closed refusal
 * has retry_after_ns RL_FAIL_RETRY_NS). */
RL_API int rl_allow(rl *r, const char *key, int64_t cost, rl_result *res);

/* rl_allow over several resources of one key: every limit of the key's tier
 * on a resource named in costs is checked, and all of them admit and are
 * charged or none is (a concurrency limit is checked only, as in
 * rl_allow); limits on other resources are left alone. A resource that no
 * limit of the whole policy counts (no tier, nor default_limits) is
 * RL_ENOLIMIT ("resource 'token' is limited by no tier (known: ...)"),
 * unless the key's tier is unlimited or the handle was opened with
 * RL_OPEN_ANY_RESOURCE; one that only other tiers limit is unlimited for
 * this key. "requests" is always known.
 *   costs, n  1..RL_MAX_LIMITS costs, each resource once.
 *   res       out, as rl_allow.
 * The key's `units` counter counts the "requests" amount (or the first
 * cost's, if requests are not named). Returns as rl_allow. */
RL_API int rl_acquire(rl *r, const char *key, const rl_cost *costs, size_t n, rl_result *res);

/* rl_acquire over 1..RL_MAX_KEYS distinct keys at once (user:alice and
 * global): admitted only if every key's limits admit, and then charged to
 * all; if any refuses, none is charged (each key's `refused` counter goes
 * up). res->key_index is the index in keys of the deciding key. Returns as
 * rl_allow; RL_EINVAL also for a key given twice. */
RL_API int rl_acquire_keys(rl *r, const char *const *keys, size_t nkeys, const rl_cost *costs,
                           size_t n, rl_result *res);

/* One item of rl_allow_batch: in, key and cost; out, rc and res. */
typedef struct rl_batch_item {
    const char *key;
    int64_t cost;  /* units of "requests" */
    int rc;        /* out: RL_OK or this item's RL_E* */
    rl_result res; /* out */
} rl_batch_item;

/* Many independent rl_allow calls in one store transaction: one commit on
 * SQLite, one round trip of reads and one of commit on Redis. Each item is
 * decided on its own, in order (a later item on the same key sees the
 * earlier ones), and gets its own rc and result exactly as rl_allow would
 * have returned them: an invalid key or cost (RL_EINVAL, RL_ETOOBIG,
 * RL_ENOLIMIT) fails that item only and the call still returns RL_OK.
 *   items, n  the items (in/out); n may be 0.
 * On a store failure nothing is written and every item gets the error and
 * the fail mode's answer; that error is returned. RL_EINVAL for items NULL
 * with n > 0. */
RL_API int rl_allow_batch(rl *r, rl_batch_item *items, size_t n);

/* ======================================================================
 * Waiting, reserving, cancelling
 * ====================================================================== */

/* Blocks until `cost` units of "requests" are admitted for `key`. It takes
 * its place in the queue at once by reserving (waiters are served in
 * arrival order, across processes; nobody polls the store), then sleeps
 * until its time, without holding the handle's mutex.
 *   timeout_ns  the longest admission delay accepted, measured from the
 *               decision (made once the store's lock is held): if
 *               admission would need more, RL_ETIMEOUT at once, consuming
 *               nothing; exactly timeout_ns is admitted. RL_FOREVER
 *               (INT64_MAX) waits for ever; 0 does not wait; a negative
 *               value is 0. Admission that can never
 *               come (retry_after_ns INT64_MAX) is RL_ETIMEOUT even then.
 *   cancel      NULL, or a flag that ends the wait with RL_ECANCELED when
 *               it becomes non-zero, giving the reservation back. The wait
 *               sleeps on it (a futex): a signal handler that sets it
 *               interrupts the sleep, and a thread that sets it calls
 *               rl_wait_wake(cancel) to end the sleep at once; set without
 *               either, it is seen within 100 ms (10 ms while waiting for
 *               a concurrency slot).
 *   res         out: on success allowed = 1 and retry_after_ns = 0.
 * A concurrency limit on a resource it names (rl_allow) is waited for
 * while it is full: the waiter sleeps until a slot is released (by any
 * process: settle, cancel, reclaim) or 500 ms at most (a holder that died
 * releases nothing by itself), until the timeout (then RL_ETIMEOUT,
 * nothing consumed); on Redis, which cannot wake it, it looks again every
 * RL_SLOT_RETRY_NS. Admission takes no slot: to hold one, use
 * rl_guard_begin, which waits for slots in turn (see rl_priority).
 * Returns RL_OK; the errors of rl_allow; RL_ETIMEOUT; RL_ECANCELED. */
RL_API int rl_wait(rl *r, const char *key, int64_t cost, int64_t timeout_ns,
                   const volatile sig_atomic_t *cancel, rl_result *res);

/* Wakes every rl_wait, rl_wait_ex or rl_guard_begin sleeping on cancel, in
 * any thread of the process (or process sharing the flag's memory), so
 * that they see it at once: call it after setting *cancel from another
 * thread. Harmless when nobody sleeps on it; NULL does nothing. Safe in a
 * signal handler (one system call), where it is not needed: the signal
 * already interrupts the sleep of its own thread. */
RL_API void rl_wait_wake(const volatile sig_atomic_t *cancel);

/* A waiter's priority (rl_wait_ex, rl_guard_begin). For rates, interactive
 * waiters are served in the order they arrive: each takes its place at once
 * by reserving, then sleeps until its time (nobody polls). RL_PRIORITY_BATCH
 * waiters yield to them: they take only room that is free now, and
 * otherwise sleep until room should be free and look again, so an
 * interactive call that arrives meanwhile goes first.
 * For concurrency slots (leases), waiters queue in the store, across
 * processes, and a slot that comes free goes to the live waiter with the
 * earliest place: its arrival time, plus RL_BATCH_AGE_NS for a batch
 * waiter; a caller that does not wait (rl_lease_begin) comes after all.
 * Ageing: a batch waiter is passed only by interactive ones that arrive
 * less than RL_BATCH_AGE_NS after it, and once it has waited that long it
 * reserves rates like an interactive one, so it is never starved. */
typedef enum rl_priority {
    RL_PRIORITY_INTERACTIVE = 0,
    RL_PRIORITY_BATCH = 1,
    RL_PRIORITY_INT_ = -1 /* private: keeps the type an int */
} rl_priority;

/* rl_wait over several resources (costs and n as rl_acquire, concurrency
 * limits and unknown resources too), with a priority (rl_wait is
 * RL_PRIORITY_INTERACTIVE). Returns as rl_wait; RL_EINVAL also for an
 * unknown priority. */
RL_API int rl_wait_ex(rl *r, const char *key, const rl_cost *costs, size_t n, rl_priority priority,
                      int64_t timeout_ns, const volatile sig_atomic_t *cancel, rl_result *res);

/* A reservation made by rl_reserve. Read the first three fields; the rest
 * is private: the struct may be copied but not changed. */
typedef struct rl_reservation {
    int ok;              /* 1: reserved; 0: would wait more than max_delay_ns */
    int64_t delay_ns;    /* how long to wait before acting (ok) or would wait (!ok) */
    int64_t time_to_act; /* clock time at which the caller may act (INT64_MAX at most) */
    /* private */
    uint64_t generation_; /* the generation of the key's state it was made in */
    int64_t amount_[RL_MAX_LIMITS];
    size_t n_;
    uint64_t id_[RL_MAX_LIMITS];
    int64_t tat_[RL_MAX_LIMITS];
    int64_t rem_[RL_MAX_LIMITS];
    char key_[RL_KEY_MAX + 1];
} rl_reservation;

/* Charges `cost` units of "requests" for `key` now if they come free within
 * max_delay_ns, and says when the caller may act.
 *   max_delay_ns  the longest delay accepted, from the decision (made once
 *                 the store's lock is held); taken as it is, INT64_MAX
 *                 meaning no bound; a negative value is 0.
 *   rv            out: ok = 1 with delay_ns (0: at once) and time_to_act;
 *                 or, if the units would come later, nothing is charged,
 *                 ok = 0 and delay_ns says how long it would have been.
 * Returns RL_OK either way, or an error as rl_allow. */
RL_API int rl_reserve(rl *r, const char *key, int64_t cost, int64_t max_delay_ns,
                      rl_reservation *rv);

/* Gives back a reservation's units as far as no later decision has built
 * on them (a later reservation keeps its place), and marks *rv spent: a
 * second rl_cancel of it does nothing (a copy of the struct taken before
 * the first cancel is not marked: cancel each reservation through one
 * struct). Does nothing (RL_OK) once time_to_act has passed (the caller may
 * have acted), for a reservation that was not ok, or once the key's state
 * is of another generation than the reservation's: the key was reset since
 * (rl_reset, rl_reset_match, removed by rl_prune or rl_import) or moved to
 * another tier (rl_key_assign, or a reload that resolves it to another tier
 * or changes its tier's limits). A policy change that leaves the key's tier
 * as it was does not stop a cancel.
 *   rv  in/out: a reservation rl_reserve filled.
 * Returns RL_OK; RL_EINVAL (rv NULL, or its key damaged); RL_EREADONLY; a
 * store failure. */
RL_API int rl_cancel(rl *r, rl_reservation *rv);

/* ======================================================================
 * Leases: costs known only afterwards, and concurrency
 * ====================================================================== */

/* Reserve an estimate now, settle the actual amount later (an LLM call's
 * tokens are known only after the response). The unused part goes back; an
 * excess is charged as debt that delays later requests. A lease also holds
 * units of the key's concurrency limits (RL_CONCURRENT) until it ends.
 * Leases live in the store: one neither settled nor cancelled by
 * expires_at is settled at its estimate, and the slots of a process that
 * died are reclaimed by the next decision on the key that names them. */
typedef struct rl_lease {
    int64_t id;         /* > 0 for a lease that was granted; 0 otherwise */
    int64_t expires_at; /* clock time */
} rl_lease;

/* Decides like rl_acquire on the estimate and, if admitted, records a
 * lease, which takes the units of the concurrency limits it names (a
 * refusal by one says when to look again: RL_SLOT_RETRY_NS at most).
 *   estimate, n  as rl_acquire's costs.
 *   ttl_ns       > 0 (at most 50 years): the lease ends, settled at its
 *                estimate, this long from now if not ended before.
 *   lease        out: id > 0 and expires_at if admitted; zeroed otherwise.
 *   res          out, as rl_allow.
 * Returns as rl_acquire; RL_EINVAL also for lease NULL or a bad ttl_ns. */
RL_API int rl_lease_begin(rl *r, const char *key, const rl_cost *estimate, size_t n, int64_t ttl_ns,
                          rl_lease *lease, rl_result *res);

/* Charges the actual amounts instead of the estimate and ends the lease,
 * freeing its concurrency slots: what was over-estimated goes back, an
 * excess becomes debt.
 *   lease      what rl_lease_begin returned.
 *   actual, n  the resources to settle (actual not NULL; n may be 0); one
 *              the estimate had but actual does not name is settled at its
 *              estimate.
 * Returns RL_OK; RL_ENOTFOUND once the lease is settled, cancelled or
 * reclaimed; RL_ETIMEOUT past expires_at (it is then settled at its
 * estimate); RL_EINVAL; RL_EREADONLY; a store failure. */
RL_API int rl_lease_settle(rl *r, const rl_lease *lease, const rl_cost *actual, size_t n);

/* Gives the whole estimate back and frees the slots. Returns as
 * rl_lease_settle. */
RL_API int rl_lease_cancel(rl *r, const rl_lease *lease);

/* ======================================================================
 * Guards: one model call, every limit of every key
 * ====================================================================== */

/* A guard wraps one call to a rate-limited service (a model call): it waits
 * until every limit of every key the call counts against admits it (the
 * user's and the account's rates, tokens, cool-downs and concurrency
 * slots), takes one lease per key in one transaction, and when the call is
 * over settles the real usage on all of them and feeds the service's
 * response headers into the account's shared cool-down:
 *
 *     const char *keys[] = { "user:alice", "provider:openai" };
 *     rl_cost est[] = { { "requests", 1 }, { "tokens", 1500 }, { "streams", 1 } };
 *     rl_guard g = RL_GUARD_INIT;
 *     rl_result res;
 *     rc = rl_guard_begin(r, keys, 2, est, 3, RL_PRIORITY_INTERACTIVE,
 *                         30 * RL_SECOND, NULL, &g, &res);
 *     if (rc == RL_ELIMITED) ... refuse: res.limit_name, res.retry_after_ns
 *     ... the call; its response says 900 tokens ...
 *     rl_cost used[] = { { "tokens", 900 } };
 *     rl_guard_end(r, &g, used, 1, hdr_names, hdr_values, n_hdrs, &res);
 *
 * A call the service never saw is cancelled (rl_guard_cancel); one it
 * answered, a 429 included, is ended: the service counted it. docs/agents.md
 * has the rules and a worked example. */

/* The layout of rl_guard_options this header declares (as
 * RL_OPTIONS_VERSION). */
#define RL_GUARD_OPTIONS_VERSION 1

/* Options of rl_guard_begin. Initialise with RL_GUARD_OPTIONS_INIT and
 * change fields; NULL options are the defaults. */
typedef struct rl_guard_options {
    unsigned int version; /* RL_GUARD_OPTIONS_VERSION */
    /* > 0 (at most 50 years); default 10 minutes. A lease not ended by then
     * ends, settled at its estimate, and frees its slots: the bound on what
     * a hung process holds. A killed process's slots come back sooner, at
     * the next decision that needs them. */
    int64_t ttl_ns;
    /* The index in keys of the key whose shared cool-down rl_guard_end
     * feeds from the response headers; -1 (the default): the last key, by
     * convention the account. */
    int cooldown_key;
    /* NULL, or a flag the wait sleeps on (a signal handler may set it; a
     * thread that sets it calls rl_wait_wake, as for rl_wait): non-zero
     * ends the wait with RL_ECANCELED. */
    const volatile sig_atomic_t *cancel;
} rl_guard_options;

#define RL_GUARD_OPTIONS_INIT                              \
    {                                                      \
        RL_GUARD_OPTIONS_VERSION, 10 * RL_MINUTE, -1, NULL \
    }

/* A guard: the caller's, filled by rl_guard_begin. Read n and lease; the
 * rest is private. RL_GUARD_INIT is a guard that holds nothing. */
typedef struct rl_guard {
    size_t n;                    /* leases held, one per key; 0: none */
    rl_lease lease[RL_MAX_KEYS]; /* lease[k] is keys[k]'s */
    /* private */
    int cooldown_key_;
    int degraded_;
    size_t ncost_;
    int64_t est_[RL_MAX_LIMITS];
    char resource_[RL_MAX_LIMITS][RL_NAME_MAX];
    char key_[RL_MAX_KEYS][RL_KEY_MAX + 1];
} rl_guard;

#define RL_GUARD_INIT \
    {                 \
        0             \
    }

/* Waits until the estimate passes every limit of every key at once (rates,
 * tokens, cool-downs, concurrency slots) and takes one lease per key, all
 * in one transaction: never some keys' leases without the others'. Slot
 * waiters queue across processes, in priority order and in arrival order
 * within a priority, and are woken when a slot is released (docs/api.md
 * says how batch waiters age); the wait sleeps without the handle's mutex.
 *   keys, nkeys  1..RL_MAX_KEYS distinct keys the call counts against
 *                (user and account); copied.
 *   estimate, n  the call's estimated cost of each resource, as
 *                rl_lease_begin's ({ "tokens", 1500 }, { "streams", 1 }).
 *   priority     RL_PRIORITY_INTERACTIVE or RL_PRIORITY_BATCH.
 *   timeout_ns   the longest wait accepted: 0 decides at once, never
 *                waiting; RL_FOREVER (INT64_MAX) waits for ever; a
 *                negative value is 0.
 *   opts         NULL for the defaults (RL_GUARD_OPTIONS_INIT).
 *   guard        out: guard->n == nkeys leases when admitted; none else.
 *   res          out. Admitted: allowed 1 and the deciding limit (the one
 *                with least room left) for the caller's response metadata:
 *                limit (its burst), remaining, reset_after_ns, limit_name,
 *                key_index. Refused: allowed 0, limit_name the limit that
 *                refused ("cooldown" for a cool-down), key_index its key,
 *                retry_after_ns when to try again (INT64_MAX: never).
 * Returns RL_OK (every lease held); RL_ELIMITED (refused by a limit, at
 * once with timeout 0, or when admission needs longer than timeout_ns or
 * does not come within it: nothing is held or charged); RL_ECANCELED;
 * RL_EINVAL (bad keys, costs, priority or options; guard or res NULL);
 * RL_ETOOBIG; RL_ENOLIMIT; RL_EREADONLY; or a store failure, holding
 * nothing, res per the fail mode (RL_FAIL_OPEN: allowed, degraded 1; the
 * caller may go ahead, and rl_guard_end then only feeds the headers). */
RL_API int rl_guard_begin(rl *r, const char *const *keys, size_t nkeys, const rl_cost *estimate,
                          size_t n, rl_priority priority, int64_t timeout_ns,
                          const rl_guard_options *opts, rl_guard *guard, rl_result *res);

/* Ends a guarded call the service answered, whatever it answered. First
 * the response headers go to the shared cool-down of the guard's
 * cool-down key (rl_observe_headers: Retry-After, retry-after-ms,
 * x-ratelimit-*, anthropic-ratelimit-*), before any slot is freed, so that
 * no waiter gets in ahead of the cool-down; then every lease is settled at
 * actual and its slots freed. A 429 is ended too, with its headers and
 * actual NULL: the service counted the request, so the leases settle at
 * the estimate, and every worker of every process cools down.
 *   guard      what rl_guard_begin filled; holds nothing afterwards.
 *   actual, n  the real usage (the response's token count); a resource it
 *              does not name settles at its estimate; NULL (n 0): all of
 *              them.
 *   names, values, nheaders  the response's header fields (nheaders 0:
 *              none; the arrays may then be NULL).
 *   res        out, or NULL to skip reading it: after settling, the limit
 *              with least room left (as a fraction of its burst) among the
 *              estimate's resources over all the keys: limit, remaining,
 *              reset_after_ns, limit_name, key_index, allowed 1; or, while
 *              a cool-down stops one of them, limit_name "cooldown",
 *              allowed 0, remaining 0 and retry_after_ns its time left.
 *              A key without limits gives remaining INT64_MAX.
 * Everything is tried whatever fails; a lease that could not be settled
 * ends at its TTL, settled at its estimate. Returns RL_OK; RL_EINVAL (a
 * guard that holds nothing and was no fail-open admission, bad actual or
 * headers: nothing is done, the guard keeps its leases); otherwise the
 * first error: RL_ETIMEOUT (a lease outlived its TTL and was settled at
 * its estimate), RL_ENOTFOUND (already ended or reclaimed), RL_EREADONLY,
 * a store failure. */
RL_API int rl_guard_end(rl *r, rl_guard *guard, const rl_cost *actual, size_t n,
                        const char *const *names, const char *const *values, size_t nheaders,
                        rl_result *res);

/* Cancels a guarded call the service never saw (it could not be sent, or
 * was abandoned before): the whole estimate goes back on every key and
 * the slots are freed. A guard that holds nothing (RL_GUARD_INIT, refused,
 * ended, cancelled) is left alone and RL_OK, so that cleanup code may
 * always call it. Returns RL_OK; RL_EINVAL (guard NULL); else the first
 * error of rl_lease_cancel, once every lease was tried. */
RL_API int rl_guard_cancel(rl *r, rl_guard *guard);

/* ======================================================================
 * Cool-downs
 * ====================================================================== */

/* A shared cool-down: every process refuses `resource` (NULL: every
 * resource) of `key` for duration_ns from now, with res->limit_name
 * "cooldown" (a provider's 429 or Retry-After; rl_observe_headers in
 * rl_http.h does this from the response). A longer cool-down already in
 * place is kept; duration 0 lifts it.
 *   duration_ns  0..50 years.
 * Returns RL_OK; RL_EINVAL (bad key or resource name, duration out of
 * range, too many distinct cool-downs on one key); RL_EREADONLY; a store
 * failure. */
RL_API int rl_penalize(rl *r, const char *key, const char *resource, int64_t duration_ns);

/* ======================================================================
 * The policy: tiers, assignments, tiers files
 * ====================================================================== */

/* Stores or replaces the tier `tier`; every process applies it from its
 * next decision.
 *   tier      a name (see Conventions).
 *   limits    n limits (0..RL_MAX_LIMITS, distinct names; copied); n == 0
 *             makes the tier unlimited.
 * Returns RL_OK; RL_EINVAL (bad names or limits, docs/tiers.md gives the
 * bounds); RL_EREADONLY; a store failure; on Redis, RL_ECORRUPT for a
 * damaged stored policy (load a whole one to replace it). */
RL_API int rl_tier_set(rl *r, const char *tier, const rl_limit *limits, size_t n);

/* Removes a tier; its keys fall back to rules, default_tier, `default`,
 * then the default limits. Returns RL_OK; RL_ENOTFOUND; RL_EINVAL;
 * RL_EREADONLY; a store failure. */
RL_API int rl_tier_delete(rl *r, const char *tier);

/* Gives `key` the tier `tier` whatever the rules say; tier NULL removes the
 * assignment. Applies from the key's next decision in every process; limits
 * of the same resource and name carry their state over (rescaled to the
 * new burst), others start full. Returns RL_OK; RL_ENOTFOUND (no such
 * tier); RL_EINVAL; RL_EREADONLY; a store failure. */
RL_API int rl_key_assign(rl *r, const char *key, const char *tier);

/* Replaces every tier, rule and setting (default_tier, fail_mode) from the
 * YAML file yaml_path (docs/tiers.md) in one transaction. The stored policy
 * is not read, so a damaged one is replaced. Returns RL_OK; RL_ECONFIG with
 * "FILE:LINE:COL: message" in rl_errmsg for a bad file (nothing changes);
 * RL_ESTORE if it cannot be read; RL_EREADONLY; a store failure. */
RL_API int rl_load_tiers(rl *r, const char *yaml_path);

/* ======================================================================
 * One key: stats and reset
 * ====================================================================== */

/* Where a key's tier came from (rl_key_stats.tier_source). */
typedef enum rl_tier_source {
    RL_TIER_NONE = 0, /* no tier, no default limits */
    RL_TIER_ASSIGNED, /* rl_key_assign */
    RL_TIER_RULE,     /* a key rule of the tiers file */
    RL_TIER_DEFAULT,  /* the tiers file's default_tier */
    RL_TIER_OPTIONS,  /* the default limits: the tier named "default", where
                         rl_options.default_limits are stored */
    RL_TIER_INT_ = -1 /* private: keeps the type an int */
} rl_tier_source;

/* One limit of a key, as rl_stats sees it now. */
typedef struct rl_limit_stats {
    char name[RL_NAME_MAX];
    char resource[RL_NAME_MAX];
    int64_t count, period_ns, burst;
    int64_t remaining;      /* units admissible now */
    int64_t reset_after_ns; /* until the bucket is full */
    int64_t retry_after_ns; /* until one unit is admissible (0: now) */
    int64_t cooldown_ns;    /* left of an rl_penalize cool-down on this resource */
    int64_t debt;           /* units owed beyond an empty bucket (lease overruns) */
    int64_t in_flight;      /* concurrency limits: units held by leases */
    rl_algorithm algorithm; /* RL_ALGO_CONCURRENT for a concurrency limit */
} rl_limit_stats;

/* Everything known about one key. */
typedef struct rl_key_stats {
    char key[RL_KEY_MAX + 1];
    int exists;             /* 0: never seen (the rest is zero but the tier and full
                                   limits) */
    char tier[RL_NAME_MAX]; /* "default" when the default limits apply */
    rl_tier_source tier_source;
    int64_t allowed;       /* decisions admitted (each counter stops at INT64_MAX) */
    int64_t refused;       /* decisions refused */
    int64_t units;         /* units admitted */
    int64_t first_seen_ns; /* clock at its first decision since created or reset */
    int64_t last_seen_ns;
    int64_t cooldown_ns; /* left of a cool-down on every resource */
    size_t n_limits;
    rl_limit_stats limits[RL_MAX_LIMITS];
} rl_key_stats;

/* Fills *st with everything known about `key`, computed for now without
 * changing anything (a read transaction; works on a read-only handle).
 *   st  out.
 * Returns RL_OK (also for a key never seen: st->exists = 0); RL_EINVAL
 * (bad key, st NULL); a store failure. docs/api.md, "Reading and
 * resetting", says what each field means. */
RL_API int rl_stats(rl *r, const char *key, rl_key_stats *st);

/* Forgets the key's buckets, cool-downs and counters: its next request
 * meets full buckets, and reservations made before can no longer be
 * cancelled. An assigned tier is kept. Returns RL_OK; RL_ENOTFOUND if the
 * key has never been seen; RL_EINVAL; RL_EREADONLY; a store failure. */
RL_API int rl_reset(rl *r, const char *key);

#ifdef __cplusplus
}
#endif

/* Compatibility, for this release only: rl.h still declares the
 * administration and HTTP functions, which lived here before they moved to
 * rl_admin.h and rl_http.h. Include those where you use them. Defining
 * RL_NO_COMPAT_INCLUDES before including rl.h gives rl.h alone, as the next
 * release will. */
#ifndef RL_NO_COMPAT_INCLUDES
#include "rl_admin.h"
#include "rl_http.h"
#endif

#endif /* RL_H */
