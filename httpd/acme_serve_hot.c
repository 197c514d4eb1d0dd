/*
 * Hot activation in the children (issue 19). See acme_serve_hot.h.
 *
 * The handshake path: one hash lookup of the SNI name in the configuration (read-only since
 * post_config), one atomic load of the slot's generation, and when it is 0 (nothing published
 * since this generation started) nothing else: mod_ssl's certificate stands. Only when the
 * parent published a set does the callback take the process's cache lock, parse the new set
 * once per process and hand the connection references to it. A replaced set is freed once no
 * thread is between reading it and handing its references on (acme_serve_hot_retire).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "acme_config.h"
#include "acme_crypto.h"
#include "acme_config_ondemand.h"
#include "acme_serve_hot.h"
#include "acme_serve_ondemand.h"

APLOG_USE_MODULE(acme);

#define ACME_SERVE_HOT_SHM_KEY "mod_acme-hot-shm"
#define ACME_SERVE_HOT_SLOTS_KEY "mod_acme-hot-slots"
#define ACME_SERVE_HOT_CHILD_KEY "mod_acme-hot-child"
#define ACME_SERVE_HOT_SPECS_MAX 4

/* One key spec of a published set, parsed. */
typedef struct {
    X509 *leaf;
    EVP_PKEY *key;
    STACK_OF(X509) *chain;
} acme_serve_hot_cert_t;

typedef struct {
    apr_uint32_t gen;                   /* of the parsed set; 0: none */
    int n;
    acme_serve_hot_cert_t certs[ACME_SERVE_HOT_SPECS_MAX];
} acme_serve_hot_entry_t;

/* A parsed set replaced by a newer one, freed once no thread can still be using it. */
typedef struct acme_serve_hot_retired_t {
    acme_serve_hot_entry_t *entry;
    struct acme_serve_hot_retired_t *next;
} acme_serve_hot_retired_t;

/* Per child process. */
typedef struct {
    apr_thread_mutex_t *lock;           /* taken to parse a newer set, not to serve one */
    acme_serve_hot_entry_t **entries;   /* one per slot: the newest parsed set, or NULL; never
                                         * changed once published here */
    apr_uint32_t nslots;
    char *buf;                          /* a slot's copy, under lock */
    apr_uint32_t users;                 /* threads between reading an entry and handing its
                                         * references to their connection (atomic) */
    acme_serve_hot_retired_t *retired;  /* under lock */
} acme_serve_hot_child_t;

acme_serve_hot_shm_t *acme_serve_hot_shm(process_rec *process)
{
    acme_serve_hot_shm_t *h = NULL;

    apr_pool_userdata_get((void **)&h, ACME_SERVE_HOT_SHM_KEY, process->pool);
    if (!h) {
        h = apr_pcalloc(process->pool, sizeof(*h));
        apr_pool_userdata_set(h, ACME_SERVE_HOT_SHM_KEY, apr_pool_cleanup_null, process->pool);
    }
    return h;
}

acme_hot_t *acme_serve_hot_segment(process_rec *process)
{
    acme_serve_hot_shm_t *h = acme_serve_hot_shm(process);

    return h->shm && h->hot.mem ? &h->hot : NULL;
}

apr_hash_t *acme_serve_hot_slots(apr_pool_t *pconf)
{
    apr_hash_t *slots = NULL;

    apr_pool_userdata_get((void **)&slots, ACME_SERVE_HOT_SLOTS_KEY, pconf);
    if (!slots) {
        slots = apr_hash_make(pconf);
        apr_pool_userdata_set(slots, ACME_SERVE_HOT_SLOTS_KEY, apr_pool_cleanup_null, pconf);
    }
    return slots;
}

static void acme_serve_hot_entry_free(acme_serve_hot_entry_t *e)
{
    int i;

    for (i = 0; i < e->n; ++i) {
        X509_free(e->certs[i].leaf);
        EVP_PKEY_free(e->certs[i].key);
        sk_X509_pop_free(e->certs[i].chain, X509_free);
    }
    e->n = 0;
    e->gen = 0;
}

/* One key spec's PEM (the key, then the leaf and its chain) into cur. */
static int acme_serve_hot_parse_one(const char *pem, apr_size_t len, acme_serve_hot_cert_t *cur)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x;

    *cur = (acme_serve_hot_cert_t){ .chain = sk_X509_new_null() };
    if (!bio || !cur->chain) {
        BIO_free(bio);
        return 0;
    }
    cur->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    while (cur->key && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (!cur->leaf) {
            cur->leaf = x;
        }
        else if (sk_X509_push(cur->chain, x) <= 0) {
            X509_free(x);
        }
    }
    ERR_clear_error();                  /* the end of the input reads as an error */
    BIO_free(bio);
    return cur->key && cur->leaf;
}

/* The published set: per key spec one PEM, the specs separated by a NUL byte. */
static int acme_serve_hot_parse(const char *buf, apr_size_t len, acme_serve_hot_entry_t *e)
{
    apr_size_t at = 0;

    while (at < len && e->n < ACME_SERVE_HOT_SPECS_MAX) {
        const char *end = memchr(buf + at, '\0', len - at);
        apr_size_t n = end ? (apr_size_t)(end - (buf + at)) : len - at;
        if (n > 0 && !acme_serve_hot_parse_one(buf + at, n, &e->certs[e->n++])) {
            return 0;
        }
        at += n + 1;
    }
    return e->n > 0;
}

/*
 * Under ch->lock, by a thread counted in ch->users: the replaced set joins the retired ones, and
 * they all go when this thread is the only user. A reader counts itself before it loads an
 * entry (both sequentially consistent), so one that comes later finds the new entry: a server
 * that runs for months without a restart does not keep every set it ever served.
 */
static void acme_serve_hot_retire(acme_serve_hot_child_t *ch, acme_serve_hot_entry_t *old)
{
    acme_serve_hot_retired_t *r;

    if (old && (r = malloc(sizeof(*r)))) {
        *r = (acme_serve_hot_retired_t){ .entry = old, .next = ch->retired };
        ch->retired = r;
    }
    if (__atomic_load_n(&ch->users, __ATOMIC_SEQ_CST) != 1) {
        return;                         /* others may hold one: at a later replacement */
    }
    while ((r = ch->retired)) {
        ch->retired = r->next;
        acme_serve_hot_entry_free(r->entry);
        free(r->entry);
        free(r);
    }
}

/* Under ch->lock: the slot's set parsed at generation gen (copied and parsed when newer). */
static const acme_serve_hot_entry_t *acme_serve_hot_entry_locked(acme_serve_hot_child_t *ch,
                                                                 const acme_hot_t *hot,
                                                                 int slot, const char *name,
                                                                 apr_uint32_t gen)
{
    acme_serve_hot_entry_t *e = ch->entries[slot], *fresh;
    apr_size_t len = 0;
    apr_uint32_t got = 0;

    if (e && e->gen == gen) {
        return e->n > 0 ? e : NULL;
    }
    if (acme_hot_read(hot, slot, name, ch->buf, acme_hot_slot_size(hot), &len, &got)
        != APR_SUCCESS || !(fresh = calloc(1, sizeof(*fresh)))) {
        return NULL;                    /* mod_ssl's certificate, and a new try next time */
    }
    if (!acme_serve_hot_parse(ch->buf, len, fresh)) {
        acme_serve_hot_entry_free(fresh);
    }
    fresh->gen = got;                   /* a set that does not parse is not tried again */
    __atomic_store_n(&ch->entries[slot], fresh, __ATOMIC_SEQ_CST);
    acme_serve_hot_retire(ch, e);
    return fresh->n > 0 ? fresh : NULL;
}

/* The slot's parsed set at generation gen: without a lock when this process has it already. */
static const acme_serve_hot_entry_t *acme_serve_hot_entry(acme_serve_hot_child_t *ch,
                                                          const acme_hot_t *hot, int slot,
                                                          const char *name, apr_uint32_t gen)
{
    const acme_serve_hot_entry_t *e = __atomic_load_n(&ch->entries[slot], __ATOMIC_SEQ_CST);

    if (e && e->gen == gen) {
        return e->n > 0 ? e : NULL;
    }
    apr_thread_mutex_lock(ch->lock);
    e = acme_serve_hot_entry_locked(ch, hot, slot, name, gen);
    apr_thread_mutex_unlock(ch->lock);
    return e;
}

/* Serves slot's published set on ssl; 1 when it did. */
static int acme_serve_hot_use(SSL *ssl, acme_serve_hot_child_t *ch, const acme_hot_t *hot,
                              int slot, const char *name)
{
    apr_uint32_t gen = acme_hot_gen(hot, slot);
    const acme_serve_hot_entry_t *e;
    int i, used = 0;

    if (gen == 0 || (apr_uint32_t)slot >= ch->nslots) {
        return 0;                       /* the common case: mod_ssl's own certificate */
    }
    __atomic_add_fetch(&ch->users, 1, __ATOMIC_SEQ_CST);
    e = acme_serve_hot_entry(ch, hot, slot, name, gen);
    for (i = 0; e && i < e->n; ++i) {
        /* override: replaces what mod_ssl configured for this key type, this connection only;
         * the connection takes references of its own */
        used += SSL_use_cert_and_key(ssl, e->certs[i].leaf, e->certs[i].key, e->certs[i].chain,
                                     1) == 1;
    }
    __atomic_sub_fetch(&ch->users, 1, __ATOMIC_SEQ_CST);
    return used > 0;
}

typedef struct {
    SSL *ssl;
    acme_serve_hot_child_t *ch;
    const acme_hot_t *hot;
} acme_serve_hot_wait_t;

/* For the on-demand wait: the name's slot appeared and was published (then it is served). */
static int acme_serve_hot_ready(void *baton, const char *name)
{
    acme_serve_hot_wait_t *w = baton;
    int slot = acme_hot_find(w->hot, name);

    return slot >= 0 && acme_serve_hot_use(w->ssl, w->ch, w->hot, slot, name);
}

int acme_serve_hot_cert(SSL *ssl, server_rec *s)
{
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    acme_serve_hot_child_t *ch = NULL;
    const acme_hot_t *hot = acme_serve_hot_segment(s->process);
    const acme_conf_t *conf;
    const acme_domain_t *dom;
    const int *slot;
    conn_rec *c;

    apr_pool_userdata_get((void **)&ch, ACME_SERVE_HOT_CHILD_KEY, s->process->pool);
    if (!hot || !ch) {
        return 1;
    }
    conf = acme_config_get(s->process->pconf);
    dom = sni ? acme_config_domain_for(conf, sni) : acme_config_domain_of_server(conf, s);
    slot = dom ? apr_hash_get(acme_serve_hot_slots(s->process->pconf), dom->name,
                              APR_HASH_KEY_STRING) : NULL;
    if (slot) {
        acme_serve_hot_use(ssl, ch, hot, *slot, dom->name);
        return 1;
    }
    c = SSL_get_app_data(ssl);
    if (!dom && sni && c) {
        acme_serve_hot_wait_t w = { .ssl = ssl, .ch = ch, .hot = hot };
        if (!acme_serve_hot_ready(&w, sni)) {
            acme_serve_ondemand_handshake(c, s, sni, acme_serve_hot_ready, &w);
        }
    }
    return 1;                           /* never fail a handshake for the module's sake */
}

int acme_serve_hot_wanted(server_rec *s)
{
    const acme_conf_t *conf = acme_config_get(s->process->pconf);

    return conf->activation == ACME_ACTIVATION_HOT && acme_serve_hot_segment(s->process)
           && (acme_config_domain_of_server(conf, s)
               || acme_config_ondemand_of(acme_config_ondemand_get(s->process->pconf), s));
}

/* The children may read the segment, never write it: a compromised child changes nothing. */
static void acme_serve_hot_protect(const acme_serve_hot_shm_t *h, server_rec *s)
{
    long page = sysconf(_SC_PAGESIZE);
    char *base = apr_shm_baseaddr_get(h->shm);
    apr_size_t size = apr_shm_size_get(h->shm);
    char *start = (char *)((apr_uintptr_t)base & ~(apr_uintptr_t)(page - 1));

    if (mprotect(start, (apr_size_t)(base - start) + size, PROT_READ) != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, APR_FROM_OS_ERROR(errno), s, "ACME09001: "
                     "mod_acme: the shared certificate memory cannot be made read-only in this "
                     "child; it is served as is");
    }
}

void acme_serve_hot_readonly(server_rec *s)
{
    acme_serve_hot_shm_t *h = acme_serve_hot_shm(s->process);

    if (h->shm && h->hot.mem) {
        acme_serve_hot_protect(h, s);
    }
}

void acme_serve_hot_child_init(apr_pool_t *pchild, server_rec *s)
{
    acme_serve_hot_shm_t *h = acme_serve_hot_shm(s->process);
    acme_serve_hot_child_t *ch;
    apr_uint32_t n;

    if (!h->shm || !h->hot.mem) {
        return;
    }
    acme_serve_hot_protect(h, s);
    n = acme_hot_nslots(&h->hot);
    ch = apr_pcalloc(pchild, sizeof(*ch));
    ch->entries = apr_pcalloc(pchild, sizeof(*ch->entries) * (apr_size_t)(n ? n : 1));
    ch->nslots = n;
    ch->buf = apr_palloc(pchild, acme_hot_slot_size(&h->hot) + 1);
    if (apr_thread_mutex_create(&ch->lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS) {
        return;
    }
    apr_pool_userdata_set(ch, ACME_SERVE_HOT_CHILD_KEY, apr_pool_cleanup_null, s->process->pool);
}

/* The certificates of loaded replaced by those of the published set (leaf info only). */
static acme_active_t *acme_serve_hot_active_of(apr_pool_t *p, const acme_serve_hot_entry_t *e,
                                               const acme_active_t *loaded, apr_time_t at)
{
    acme_active_t *active = apr_pmemdup(p, loaded, sizeof(*loaded));
    int i;

    active->certs = apr_array_make(p, e->n, sizeof(acme_active_cert_t));
    active->complete = 1;
    for (i = 0; i < e->n; ++i) {
        acme_active_cert_t *c = apr_array_push(active->certs);
        acme_cert_t *cert = NULL;
        acme_result_t res;
        *c = (acme_active_cert_t){
            .spec = i < loaded->certs->nelts
                    ? APR_ARRAY_IDX(loaded->certs, i, acme_active_cert_t).spec : "?",
            .activated = at,
        };
        acme_result_reset(&res);
        if (acme_crypto_cert_wrap(p, e->certs[i].leaf, &cert, &res) != APR_SUCCESS
            || acme_crypto_cert_info(p, cert, &c->info, &res) != APR_SUCCESS) {
            apr_array_pop(active->certs);
        }
    }
    return active;
}

/* What a name approved on demand since the start had loaded: nothing, its site's key specs. */
static const acme_active_t *acme_serve_hot_unloaded(apr_pool_t *p, const acme_domain_t *dom)
{
    acme_active_t *a = apr_pcalloc(p, sizeof(*a));
    int i, n = dom->policy.key_specs ? dom->policy.key_specs->nelts : 0;

    a->name = dom->name;
    a->certs = apr_array_make(p, n + 1, sizeof(acme_active_cert_t));
    for (i = 0; i < n; ++i) {
        acme_active_cert_t *c = apr_array_push(a->certs);
        *c = (acme_active_cert_t){ .spec = acme_crypto_keyspec_name(
            &APR_ARRAY_IDX(dom->policy.key_specs, i, acme_keyspec_t)) };
    }
    return a;
}

/* The slot of dom: from the start-up's table, or found by name for one approved since. */
static int acme_serve_hot_slot_of(process_rec *process, const acme_hot_t *hot,
                                  const acme_domain_t *dom)
{
    const int *slot = apr_hash_get(acme_serve_hot_slots(process->pconf), dom->name,
                                   APR_HASH_KEY_STRING);

    return slot ? *slot : dom->ondemand ? acme_hot_find(hot, dom->name) : -1;
}

const acme_active_t *acme_serve_hot_active(apr_pool_t *p, process_rec *process,
                                           const acme_domain_t *dom, const acme_active_t *loaded)
{
    acme_serve_hot_child_t *ch = NULL;
    const acme_hot_t *hot = acme_serve_hot_segment(process);
    const acme_serve_hot_entry_t *e;
    acme_active_t *active = NULL;
    apr_uint32_t gen;
    int slot;

    apr_pool_userdata_get((void **)&ch, ACME_SERVE_HOT_CHILD_KEY, process->pool);
    if (!hot || !ch || (slot = acme_serve_hot_slot_of(process, hot, dom)) < 0
        || (apr_uint32_t)slot >= ch->nslots || (gen = acme_hot_gen(hot, slot)) == 0) {
        return loaded;                  /* the parent, or nothing published since the start */
    }
    loaded = loaded ? loaded : acme_serve_hot_unloaded(p, dom);
    __atomic_add_fetch(&ch->users, 1, __ATOMIC_SEQ_CST);    /* see acme_serve_hot_retire */
    e = acme_serve_hot_entry(ch, hot, slot, dom->name, gen);
    if (e) {
        active = acme_serve_hot_active_of(p, e, loaded, acme_hot_published(hot, slot));
    }
    __atomic_sub_fetch(&ch->users, 1, __ATOMIC_SEQ_CST);
    return active ? active : loaded;
}

apr_array_header_t *acme_serve_hot_ondemand_domains(apr_pool_t *p, process_rec *process)
{
    const acme_hot_t *hot = acme_serve_hot_segment(process);
    const acme_config_ondemand_t *od = acme_config_ondemand_get(process->pconf);
    const acme_conf_t *conf = acme_config_get(process->pconf);
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(acme_domain_t *));
    char name[ACME_HOT_NAME_MAX];
    apr_uint32_t i, n = hot ? acme_hot_nslots(hot) : 0;

    for (i = 0; od->worker && i < n; ++i) {
        const acme_domain_t *known;
        acme_domain_t *dom;
        if (!acme_hot_published_name(hot, (int)i, name, sizeof(name))) {
            continue;
        }
        known = acme_config_domain_for(conf, name);
        if ((!known || strcasecmp(known->name, name))
            && (dom = acme_config_ondemand_domain(p, od, name))) {
            APR_ARRAY_PUSH(out, acme_domain_t *) = dom;
        }
    }
    return out;
}
