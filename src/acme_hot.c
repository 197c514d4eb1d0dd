/*
 * The shared segment of hot activation: layout and seqlock. See acme_hot.h.
 * One writer (the parent's monitor); any number of readers in other processes. Barriers are
 * GCC/Clang's __atomic built-ins: the data copy must not move across the seq loads and stores.
 */
#include <string.h>
#include <strings.h>

#include "acme_hot.h"

#define ACME_HOT_READ_TRIES 64

static acme_hot_head_t *acme_hot_head(const acme_hot_t *hot)
{
    return (acme_hot_head_t *)hot->mem;
}

static apr_size_t acme_hot_stride(apr_uint32_t slot_size)
{
    apr_size_t n = sizeof(acme_hot_slot_t) + slot_size;

    return (n + 63) & ~(apr_size_t)63;
}

static acme_hot_slot_t *acme_hot_slot(const acme_hot_t *hot, int i)
{
    const acme_hot_head_t *h = acme_hot_head(hot);

    return (acme_hot_slot_t *)((char *)hot->mem + 64 + (apr_size_t)i * acme_hot_stride(
        h->slot_size));
}

apr_size_t acme_hot_size(apr_uint32_t nslots, apr_uint32_t slot_size)
{
    return 64 + (apr_size_t)nslots * acme_hot_stride(slot_size);
}

void acme_hot_init(acme_hot_t *hot, void *mem, apr_size_t size, apr_uint32_t nslots,
                   apr_uint32_t slot_size)
{
    acme_hot_head_t *h = mem;

    hot->mem = mem;
    hot->size = size;
    memset(mem, 0, acme_hot_size(nslots, slot_size));
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

int acme_hot_claim(acme_hot_t *hot, const char *name)
{
    apr_uint32_t i, n = acme_hot_nslots(hot);
    int found = acme_hot_find(hot, name);

    if (found >= 0 || strlen(name) >= ACME_HOT_NAME_MAX) {
        return strlen(name) >= ACME_HOT_NAME_MAX ? -1 : found;
    }
    for (i = 0; i < n; ++i) {
        acme_hot_slot_t *s = acme_hot_slot(hot, (int)i);
        if (!s->name[0]) {
            /* Named while empty (gen 0): a reader that finds it has nothing to serve yet. */
            strcpy(s->name, name);
            return (int)i;
        }
    }
    return -1;
}

void acme_hot_clear(acme_hot_t *hot)
{
    apr_uint32_t i, n = acme_hot_nslots(hot);

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
    memcpy((char *)(s + 1), data, len);
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
            memcpy(buf, (const char *)(s + 1), n);
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
