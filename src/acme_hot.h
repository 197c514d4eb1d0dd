#ifndef ACME_HOT_H
#define ACME_HOT_H

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_time.h>

/*
 * Hot activation (issue 19): the parent publishes a domain's newly activated set (chains and
 * keys, PEM) in memory it shares with its children, and the children's certificate callback
 * serves it from there, with no graceful restart.
 *
 * The memory is anonymous, created by the parent before it forks (so no other program can open
 * it), and mapped read-only in the children. It holds one slot per managed domain (and spares
 * for names approved on demand), each with the domain's name and a seqlock: `seq` is odd while
 * the parent writes, and a reader copies the data between two equal even readings of it. `gen`
 * counts publications; 0 means nothing was published and mod_ssl's own certificate stands, so
 * the common handshake costs one load and compare.
 *
 *   [acme_hot_head_t][acme_hot_slot_t 0][acme_hot_slot_t 1] ... [data 0][data 1] ...
 *
 * The slot headers come first, together: at start-up every domain names its slot, which then
 * touches a few MB, not a page of each slot (10,000 slots of 16 KiB: 160 MB). Data pages are
 * touched only when published; a fresh segment is zero-filled, so only the headers are cleared.
 */
#define ACME_HOT_NAME_MAX 256
#define ACME_HOT_MAGIC 0x41434d48u          /* "ACMH" */

typedef struct {
    apr_uint32_t magic;
    apr_uint32_t nslots;
    apr_uint32_t slot_size;                 /* data bytes per slot */
    apr_uint32_t reserved;
} acme_hot_head_t;

typedef struct {
    char name[ACME_HOT_NAME_MAX];           /* "" free */
    apr_uint32_t seq;                       /* seqlock: odd while being written */
    apr_uint32_t gen;                       /* publications, 0: none */
    apr_uint32_t len;                       /* data bytes */
    apr_uint32_t published;                 /* when, in seconds since the epoch */
} acme_hot_slot_t;

typedef struct {
    void *mem;
    apr_size_t size;
    apr_hash_t *index;                      /* the parent's: lower-case name -> int *, or NULL */
    apr_uint32_t free_from;                 /* with index: no free slot below this one */
} acme_hot_t;

/* The name of a slot published at least once, into buf; 0 when nothing was published there. */
int acme_hot_published_name(const acme_hot_t *hot, int slot, char *buf, apr_size_t len);

/* Bytes needed for nslots slots of slot_size data bytes each. */
apr_size_t acme_hot_size(apr_uint32_t nslots, apr_uint32_t slot_size);

/* Lays out an empty segment over mem (size bytes, from acme_hot_size). */
void acme_hot_init(acme_hot_t *hot, void *mem, apr_size_t size, apr_uint32_t nslots,
                   apr_uint32_t slot_size);

/* A view of a segment laid out before (NULL mem or a bad magic: APR_EINVAL). */
apr_status_t acme_hot_attach(acme_hot_t *hot, void *mem, apr_size_t size);

apr_uint32_t acme_hot_nslots(const acme_hot_t *hot);
apr_uint32_t acme_hot_slot_size(const acme_hot_t *hot);

/* The slot named name, or -1. A linear scan: for set-up and for names first seen. */
int acme_hot_find(const acme_hot_t *hot, const char *name);

/* Parent: the slot of name, claiming a free one for it; -1 when none is free. */
int acme_hot_claim(acme_hot_t *hot, const char *name);

/*
 * Parent: indexes the named slots in p (dropped when p is cleared), so that acme_hot_claim
 * costs a hash lookup and not a scan: at start-up with 10,000 domains the scans were O(n^2).
 * Slots are freed only all at once (acme_hot_clear), so the first free slot only moves up.
 */
void acme_hot_index(acme_hot_t *hot, apr_pool_t *p);

/* Parent: frees every slot (a new configuration assigns them again). */
void acme_hot_clear(acme_hot_t *hot);

/* Parent: publishes data in slot (APR_ENOSPC when it does not fit: nothing changes). */
apr_status_t acme_hot_publish(acme_hot_t *hot, int slot, const void *data, apr_size_t len);

/* When the slot was last published (0: never). */
apr_time_t acme_hot_published(const acme_hot_t *hot, int slot);

/* The slot's publication count now (0: never published); one atomic load. */
apr_uint32_t acme_hot_gen(const acme_hot_t *hot, int slot);

/*
 * Child: copies the slot's data into buf (cap bytes) when the slot is still name's, with the
 * generation it had. APR_EAGAIN when writes kept tearing the copy, APR_ENOENT when the slot is
 * not name's or empty, APR_ENOSPC when cap is too small.
 */
apr_status_t acme_hot_read(const acme_hot_t *hot, int slot, const char *name, char *buf,
                           apr_size_t cap, apr_size_t *len, apr_uint32_t *gen);

#endif
