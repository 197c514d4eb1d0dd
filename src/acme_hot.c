/*
 * The shared segment of hot activation: layout and seqlock. See acme_hot.h.
 * One writer (the parent's monitor); any number of readers in other processes. Barriers are
 * GCC/Clang's __atomic built-ins: the data copy must not move across the seq loads and stores.
 */
#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "acme_hot.h"

#define ACME_HOT_READ_TRIES 64

static acme_hot_head_t *acme_hot_head(const acme_hot_t *hot)
{
    return (acme_hot_head_t *)hot->mem;
}

/* 64-byte strides: slot headers and data never share a cache line with another slot's. */
static apr_size_t acme_hot_round(apr_size_t n)
{
    return (n + 63) & ~(apr_size_t)63;
}

static acme_hot_slot_t *acme_hot_slot(const acme_hot_t *hot, int i)
{
    return (acme_hot_slot_t *)((char *)hot->mem + 64 + (apr_size_t)i * acme_hot_round(
        sizeof(acme_hot_slot_t)));
}

/* The slot's data: after every slot header, so that naming 10,000 slots touches the headers'
 * few MB and not a page of each slot's data (the data pages are touched when published). */
static char *acme_hot_data(const acme_hot_t *hot, int i)
{
    const acme_hot_head_t *h = acme_hot_head(hot);

    return (char *)hot->mem + 64 + (apr_size_t)h->nslots * acme_hot_round(sizeof(acme_hot_slot_t))
           + (apr_size_t)i * acme_hot_round(h->slot_size);
}

apr_size_t acme_hot_size(apr_uint32_t nslots, apr_uint32_t slot_size)
{
    return 64 + (apr_size_t)nslots * (acme_hot_round(sizeof(acme_hot_slot_t))
                                      + acme_hot_round(slot_size));
}

void acme_hot_init(acme_hot_t *hot, void *mem, apr_size_t size, apr_uint32_t nslots,
                   apr_uint32_t slot_size)
{
    acme_hot_head_t *h = mem;

    hot->mem = mem;
    hot->size = size;
    hot->index = NULL;                  /* a new segment: acme_hot_index again */
    hot->free_from = 0;
    /* The head and the slot headers only: a reader copies no more data than a slot's len. */
    memset(mem, 0, 64 + (apr_size_t)nslots * acme_hot_round(sizeof(acme_hot_slot_t)));
    h->nslots = nslots;
    h->slot_size = slot_size;
    __atomic_store_n(&h->magic, ACME_HOT_MAGIC, __ATOMIC_RELEASE);
}

apr_status_t acme_hot_attach(acme_hot_t *hot, void *mem, apr_size_t size)
{
    const acme_hot_head_t *h = mem;

    if (!mem || size < 64 || __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != ACME_HOT_MAGIC
        || acme_hot_size(h->nslots, h->slot_size) > size) {
        return APR_EINVAL;
    }
    hot->mem = mem;
    hot->size = size;
    hot->index = NULL;
    hot->free_from = 0;
    return APR_SUCCESS;
}

apr_uint32_t acme_hot_nslots(const acme_hot_t *hot)
{
    return acme_hot_head(hot)->nslots;
}

apr_uint32_t acme_hot_slot_size(const acme_hot_t *hot)
{
    return acme_hot_head(hot)->slot_size;
}

int acme_hot_find(const acme_hot_t *hot, const char *name)
{
    apr_uint32_t i, n = acme_hot_nslots(hot);

    for (i = 0; i < n; ++i) {
        const acme_hot_slot_t *s = acme_hot_slot(hot, (int)i);
        if (s->name[0] && !strcasecmp(s->name, name)) {
            return (int)i;
        }
    }
    return -1;
}

/* The index's key of name (shorter than ACME_HOT_NAME_MAX) into key: names are case-blind. */
static const char *acme_hot_key(char key[ACME_HOT_NAME_MAX], const char *name)
{
    apr_size_t i;

    for (i = 0; name[i] && i < ACME_HOT_NAME_MAX - 1; ++i) {
        key[i] = (char)apr_tolower((unsigned char)name[i]);
    }
    key[i] = '\0';
    return key;
}

typedef struct {
    acme_hot_t *hot;
    apr_hash_t *index;
} acme_hot_indexed_t;

/* The index goes with its pool (the generation's), unless a newer one replaced it. */
static apr_status_t acme_hot_unindex(void *data)
{
    acme_hot_indexed_t *x = data;

    if (x->hot->index == x->index) {
        x->hot->index = NULL;
        x->hot->free_from = 0;
    }
    return APR_SUCCESS;
}

void acme_hot_index(acme_hot_t *hot, apr_pool_t *p)
{
    apr_uint32_t i, n = acme_hot_nslots(hot), free_from = n;
    apr_hash_t *index = apr_hash_make(p);
    acme_hot_indexed_t *x = apr_palloc(p, sizeof(*x));

    for (i = 0; i < n; ++i) {
        const acme_hot_slot_t *s = acme_hot_slot(hot, (int)i);
        char key[ACME_HOT_NAME_MAX];
        if (s->name[0] && !apr_hash_get(index, acme_hot_key(key, s->name), APR_HASH_KEY_STRING)) {
            int *slot = apr_palloc(p, sizeof(*slot));
            *slot = (int)i;
            apr_hash_set(index, apr_pstrdup(p, key), APR_HASH_KEY_STRING, slot);
        }
        else if (!s->name[0] && free_from == n) {
            free_from = i;
        }
    }
    hot->index = index;
    hot->free_from = free_from;
    x->hot = hot;
    x->index = index;
    apr_pool_cleanup_register(p, x, acme_hot_unindex, apr_pool_cleanup_null);
}

/* The first free slot at or after from, or nslots. */
static apr_uint32_t acme_hot_free(const acme_hot_t *hot, apr_uint32_t from)
{
    apr_uint32_t n = acme_hot_nslots(hot);

    while (from < n && acme_hot_slot(hot, (int)from)->name[0]) {
        ++from;
    }
    return from;
}

/* Names slot i for name (empty, gen 0: a reader that finds it has nothing to serve yet). */
static int acme_hot_take(acme_hot_t *hot, apr_uint32_t i, const char *name, const char *key)
{
    strcpy(acme_hot_slot(hot, (int)i)->name, name);
    if (hot->index) {
        apr_pool_t *p = apr_hash_pool_get(hot->index);
        int *slot = apr_palloc(p, sizeof(*slot));
        *slot = (int)i;
        apr_hash_set(hot->index, apr_pstrdup(p, key), APR_HASH_KEY_STRING, slot);
        hot->free_from = i + 1;
    }
    return (int)i;
}

int acme_hot_claim(acme_hot_t *hot, const char *name)
{
    apr_uint32_t i, n = acme_hot_nslots(hot);
    char key[ACME_HOT_NAME_MAX];
    const int *found;

    if (strlen(name) >= ACME_HOT_NAME_MAX) {
        return -1;
    }
    if (!hot->index) {                  /* not indexed: scans (a few slots, tests) */
        int at = acme_hot_find(hot, name);
        if (at >= 0) {
            return at;
        }
        i = acme_hot_free(hot, 0);
        return i < n ? acme_hot_take(hot, i, name, NULL) : -1;
    }
    if ((found = apr_hash_get(hot->index, acme_hot_key(key, name), APR_HASH_KEY_STRING))) {
        return *found;
    }
    i = acme_hot_free(hot, hot->free_from);
    return i < n ? acme_hot_take(hot, i, name, key) : -1;
}

void acme_hot_clear(acme_hot_t *hot)
{
    apr_uint32_t i, n = acme_hot_nslots(hot);

    if (hot->index) {
        apr_hash_clear(hot->index);
        hot->free_from = 0;
    }
    for (i = 0; i < n; ++i) {
        acme_hot_slot_t *s = acme_hot_slot(hot, (int)i);
        apr_uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
        __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        memset(s->name, 0, sizeof(s->name));
        s->len = 0;
        __atomic_store_n(&s->gen, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
    }
}

apr_status_t acme_hot_publish(acme_hot_t *hot, int slot, const void *data, apr_size_t len)
{
    acme_hot_slot_t *s;
    apr_uint32_t seq;

    if (slot < 0 || (apr_uint32_t)slot >= acme_hot_nslots(hot)) {
        return APR_EINVAL;
    }
    if (len > acme_hot_slot_size(hot)) {
        return APR_ENOSPC;
    }
    s = acme_hot_slot(hot, slot);
    seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(acme_hot_data(hot, slot), data, len);
    s->len = (apr_uint32_t)len;
    s->published = (apr_uint32_t)apr_time_sec(apr_time_now());
    __atomic_store_n(&s->gen, s->gen + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
    return APR_SUCCESS;
}

apr_time_t acme_hot_published(const acme_hot_t *hot, int slot)
{
    if (!hot->mem || slot < 0 || (apr_uint32_t)slot >= acme_hot_nslots(hot)) {
        return 0;
    }
    return apr_time_from_sec(__atomic_load_n(&acme_hot_slot(hot, slot)->published,
                                             __ATOMIC_RELAXED));
}

apr_uint32_t acme_hot_gen(const acme_hot_t *hot, int slot)
{
    if (!hot->mem || slot < 0 || (apr_uint32_t)slot >= acme_hot_nslots(hot)) {
        return 0;
    }
    return __atomic_load_n(&acme_hot_slot(hot, slot)->gen, __ATOMIC_ACQUIRE);
}

apr_status_t acme_hot_read(const acme_hot_t *hot, int slot, const char *name, char *buf,
                           apr_size_t cap, apr_size_t *len, apr_uint32_t *gen)
{
    const acme_hot_slot_t *s;
    int tries;

    if (slot < 0 || (apr_uint32_t)slot >= acme_hot_nslots(hot)) {
        return APR_ENOENT;
    }
    s = acme_hot_slot(hot, slot);
    for (tries = 0; tries < ACME_HOT_READ_TRIES; ++tries) {
        apr_uint32_t before = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE), n, g;
        int mine;
        if (before & 1u) {
            continue;
        }
        mine = strncasecmp(s->name, name, ACME_HOT_NAME_MAX) == 0;
        n = s->len;
        g = s->gen;
        if (mine && g > 0 && n <= cap) {
            memcpy(buf, acme_hot_data(hot, slot), n);
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != before) {
            continue;                   /* torn: the parent wrote meanwhile */
        }
        if (!mine || g == 0) {
            return APR_ENOENT;
        }
        if (n > cap) {
            return APR_ENOSPC;
        }
        *len = n;
        *gen = g;
        return APR_SUCCESS;
    }
    return APR_EAGAIN;
}

/*
 * The name of a slot published at least once, into buf; 0 when nothing was published there. A
 * slot is named before its first publication, whose release of gen makes the name visible.
 */
int acme_hot_published_name(const acme_hot_t *hot, int slot, char *buf, apr_size_t len)
{
    const acme_hot_slot_t *s;

    if (slot < 0 || (apr_uint32_t)slot >= acme_hot_nslots(hot) || len == 0) {
        return 0;
    }
    s = acme_hot_slot(hot, slot);
    if (__atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) == 0) {
        return 0;
    }
    memcpy(buf, s->name, len < sizeof(s->name) ? len : sizeof(s->name));
    buf[len - 1] = '\0';
    return buf[0] != '\0';
}
