/*
 * Challenge answers shared through etcd (ACMECluster, issue 16), so that the CA's validation
 * may land on any node behind the balancer:
 *
 * - The node that orders puts each http-01 and tls-alpn-01 key authorization under
 *   challenges/<type>/<what> (http-01: <name>/<token>; tls-alpn-01: <name>), bound to its run's
 *   lease. A key authorization is public (the CA fetches it in clear), and a tls-alpn-01
 *   certificate is made from it by the node answering: no key travels.
 * - A thread of every other node's run watches challenges/, writes each answer into that node's
 *   challenge area, where its children answer it exactly as their own, and acknowledges it
 *   (acks/<type>/<what>/<node>, bound to its own lease).
 * - The holder asks the CA to validate once every live node acknowledged (bounded).
 * - After validation the answers leave etcd with the holder's next fenced write (the
 *   certificate's publication, or the lock's release), and the mirrors leave every node with the
 *   delete events. A child that finds no local answer still asks etcd
 *   (httpd/acme_serve_cluster.c): a node whose worker is late answers all the same.
 */
#include <apr_file_info.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include "acme_worker_cluster_int.h"
#include "acme_challenge.h"
#include "acme_names.h"

#define ACME_WORKER_SHARE_STEP apr_time_from_sec(1)     /* one watch request; the stop check */
#define ACME_WORKER_SHARE_WAIT apr_time_from_sec(10)    /* for every live node's acknowledgement */
/* The first look at the acknowledgements: the other nodes' watches see an answer and put their
 * acknowledgement within tens of milliseconds, and an earlier look mostly finds none. */
#define ACME_WORKER_SHARE_FIRST apr_time_from_msec(100)
#define ACME_WORKER_SHARE_POLL apr_time_from_msec(200)
#define ACME_WORKER_SHARE_AUTHZ_MAX 512

/* An answer mirrored here, and the file as written: a later file at that path is not ours. */
typedef struct {
    const char *type;
    const char *ident;
    const char *token;                  /* http-01; NULL for tls-alpn-01 */
    apr_ino_t inode;
} acme_worker_share_mirror_t;

typedef struct {
    acme_worker_cluster_t *cl;
    apr_pool_t *p;                      /* the thread's: the mirrors live as long as it */
    apr_hash_t *mirrors;                /* etcd key -> acme_worker_share_mirror_t */
} acme_worker_share_t;

/* ------------------------------------------------------------------ mirroring */

/* challenges/<type>/<what> into m (ident: the name, checked as any name of a domain); 0 when it
 * is no answer this node can give. */
static int acme_worker_share_parse(apr_pool_t *p, const char *key,
                                   acme_worker_share_mirror_t *m, acme_ident_t *ident)
{
    const char *rest = key + strlen("challenges/"), *slash, *what, *tok;

    if (strncmp(key, "challenges/", strlen("challenges/")) || !(slash = strchr(rest, '/'))) {
        return 0;
    }
    *m = (acme_worker_share_mirror_t){ .type = apr_pstrndup(p, rest, (apr_size_t)(slash
                                                                                   - rest)) };
    what = slash + 1;
    if (!strcmp(m->type, "http-01")) {
        if (!(tok = strrchr(what, '/')) || !acme_challenge_token_valid(tok + 1)) {
            return 0;
        }
        m->token = tok + 1;
        what = apr_pstrndup(p, what, (apr_size_t)(tok - what));
    }
    else if (strcmp(m->type, "tls-alpn-01")) {
        return 0;
    }
    if (acme_names_is_wildcard(what) || acme_names_parse(p, what, ident, NULL) != APR_SUCCESS
        || strcmp(ident->value, what)) {
        return 0;
    }
    m->ident = ident->value;
    return 1;
}

/* A key authorization is "<token>.<thumbprint>", nothing else: no NUL, bounded. */
static int acme_worker_share_authz_ok(const acme_etcd_kv_t *kv, const char *token)
{
    apr_size_t n = token ? strlen(token) : 0;

    return kv->value_len <= ACME_WORKER_SHARE_AUTHZ_MAX && strlen(kv->value) == kv->value_len
           && strchr(kv->value, '.') && (!token || (!strncmp(kv->value, token, n)
                                                    && kv->value[n] == '.'));
}

static const char *acme_worker_share_path(apr_pool_t *p, const char *store_dir,
                                          const acme_worker_share_mirror_t *m)
{
    return m->token ? acme_challenge_http01_path(p, store_dir, m->ident, m->token)
                    : acme_challenge_tlsalpn01_path(p, store_dir, m->ident);
}

/* The answer at kv into this node's challenge area, remembered for its removal. */
static apr_status_t acme_worker_share_mirror(acme_worker_share_t *sh, apr_pool_t *p,
                                             const acme_etcd_kv_t *kv, acme_result_t *res)
{
    const char *store_dir = sh->cl->w->cfg->store_dir;
    acme_worker_share_mirror_t m, *keep;
    acme_ident_t ident;
    apr_finfo_t fi;
    apr_status_t rv;

    if (!acme_worker_share_parse(p, kv->key, &m, &ident) || !acme_worker_share_authz_ok(kv,
                                                                                    m.token)) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p, "%s is no "
                                "answer this node can give", kv->key));
    }
    rv = m.token ? acme_challenge_http01_put(p, store_dir, m.ident, m.token, kv->value, res)
                 : acme_challenge_tlsalpn01_put(p, store_dir, &ident, kv->value, res);
    if (rv == APR_SUCCESS && (rv = apr_stat(&fi, acme_worker_share_path(p, store_dir, &m),
                                            APR_FINFO_INODE | APR_FINFO_LINK, p))
                             != APR_SUCCESS) {
        return acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON, "the answer just written is "
                                "gone");
    }
    if (rv == APR_SUCCESS) {
        keep = apr_palloc(sh->p, sizeof(*keep));
        *keep = (acme_worker_share_mirror_t){
            .type = apr_pstrdup(sh->p, m.type), .ident = apr_pstrdup(sh->p, m.ident),
            .token = m.token ? apr_pstrdup(sh->p, m.token) : NULL, .inode = fi.inode };
        apr_hash_set(sh->mirrors, apr_pstrdup(sh->p, kv->key), APR_HASH_KEY_STRING, keep);
    }
    return rv;
}

/* The mirror of key goes, when the file is still the one written for it. */
static void acme_worker_share_unmirror(acme_worker_share_t *sh, apr_pool_t *p, const char *key)
{
    const char *store_dir = sh->cl->w->cfg->store_dir;
    acme_worker_share_mirror_t *m = apr_hash_get(sh->mirrors, key, APR_HASH_KEY_STRING);
    apr_finfo_t fi;

    if (!m) {
        return;
    }
    apr_hash_set(sh->mirrors, key, APR_HASH_KEY_STRING, NULL);
    if (apr_stat(&fi, acme_worker_share_path(p, store_dir, m), APR_FINFO_INODE | APR_FINFO_LINK,
                 p) != APR_SUCCESS || fi.inode != m->inode) {
        return;         /* gone, or this node's own answer written there since */
    }
    if (m->token) {
        acme_challenge_http01_remove(p, store_dir, m->ident, m->token);
    }
    else {
        acme_challenge_tlsalpn01_remove(p, store_dir, m->ident);
    }
}

/* ------------------------------------------------------------------ acknowledging */

/* Another node's answer: mirrored here, then acknowledged. This node's own answers (bound to
 * its lease) need neither: the holder waits for the other nodes only. */
static void acme_worker_share_seen(acme_worker_share_t *sh, acme_etcd_t *etcd, apr_pool_t *p,
                                   const acme_etcd_kv_t *kv)
{
    acme_worker_cluster_t *cl = sh->cl;
    const char *what = kv->key + strlen("challenges/"), *slash = strchr(what, '/');
    acme_result_t res;

    if ((kv->lease && kv->lease == cl->lease) || !slash
        || strncmp(kv->key, "challenges/", strlen("challenges/"))) {
        return;
    }
    acme_result_reset(&res);
    if (acme_worker_share_mirror(sh, p, kv, &res) != APR_SUCCESS) {
        acme_worker_log(cl->w, ACME_LOG_WARNING, apr_psprintf(p, "ACME12035: %s: another "
                        "node's challenge answer cannot be written here (%s); this node's "
                        "children ask etcd for it instead", what, acme_result_describe(&res, p)));
        if (res.err_class == ACME_CLASS_ADMIN) {
            return;     /* no answer at all: nothing to acknowledge */
        }
    }
    else {
        acme_worker_log(cl->w, ACME_LOG_DEBUG, apr_psprintf(p, "ACME12036: %s: another node's "
                        "challenge answer written here; acknowledged", what));
    }
    acme_result_reset(&res);
    acme_etcd_put(etcd, p, acme_cluster_key_ack(p, apr_pstrndup(p, what, (apr_size_t)(slash
                                                                                    - what)),
                                                slash + 1, cl->cfg->node),
                  cl->cfg->node, strlen(cl->cfg->node), cl->lease, &res);
}

/* Sleeps up to d, waking for the run's end. */
static void acme_worker_share_nap(acme_worker_cluster_t *cl, apr_interval_time_t d)
{
    apr_time_t until = apr_time_now() + d;

    while (!cl->stop && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(100));
    }
}

/* One step: *rev 0 reads what is there (and starts the watch after it), else one watch. */
static void acme_worker_share_step(acme_worker_share_t *sh, acme_etcd_t *etcd, apr_pool_t *p,
                                   apr_int64_t *rev)
{
    apr_array_header_t *kvs = NULL;
    apr_int64_t next = 0;
    acme_result_t res;
    int i;

    acme_result_reset(&res);
    if (!*rev) {
        if (acme_etcd_list(etcd, p, "challenges/", &kvs, rev, &res) != APR_SUCCESS) {
            *rev = 0;
            acme_worker_share_nap(sh->cl, ACME_WORKER_SHARE_STEP);
            return;
        }
        for (i = 0; i < kvs->nelts; ++i) {
            acme_worker_share_seen(sh, etcd, p, &APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t));
        }
        *rev += 1;
        return;
    }
    if (acme_etcd_watch(etcd, p, "challenges/", *rev, ACME_WORKER_SHARE_STEP, &kvs, &next, &res)
        != APR_SUCCESS) {
        *rev = next;            /* 0 (history compacted): read again */
        acme_worker_share_nap(sh->cl, ACME_WORKER_SHARE_STEP);
        return;
    }
    *rev = next;
    for (i = 0; i < kvs->nelts; ++i) {
        const acme_etcd_event_t *ev = &APR_ARRAY_IDX(kvs, i, acme_etcd_event_t);
        if (ev->deleted) {
            acme_worker_share_unmirror(sh, p, ev->kv.key);
        }
        else {
            acme_worker_share_seen(sh, etcd, p, &ev->kv);
        }
    }
}

void *APR_THREAD_FUNC acme_worker_share_acker(apr_thread_t *thread, void *data)
{
    acme_worker_share_t sh = { .cl = data };
    apr_pool_t *ip = NULL;
    acme_etcd_t *etcd = NULL;
    apr_hash_index_t *hi;
    apr_int64_t rev = 0;
    acme_result_t res;

    apr_pool_create(&sh.p, NULL);
    apr_pool_create(&ip, sh.p);
    sh.mirrors = apr_hash_make(sh.p);
    acme_result_reset(&res);
    if (acme_worker_cluster_etcd(sh.cl, sh.p, &etcd, &res) == APR_SUCCESS) {
        while (!sh.cl->stop) {
            apr_pool_clear(ip);
            acme_worker_share_step(&sh, etcd, ip, &rev);
        }
    }
    /* The run ends: what it mirrored goes (the children ask etcd meanwhile, the next run's
     * thread mirrors what is still there). */
    for (hi = apr_hash_first(sh.p, sh.mirrors); hi; hi = apr_hash_first(sh.p, sh.mirrors)) {
        acme_worker_share_unmirror(&sh, ip, apr_hash_this_key(hi));
    }
    apr_pool_destroy(sh.p);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* ------------------------------------------------------------------ the holder's side */

/* The live nodes but this one that have not acknowledged every answer of the run: "" when
 * none; NULL when etcd cannot say. */
static const char *acme_worker_share_unacked(acme_worker_run_t *run, apr_pool_t *p, int *live,
                                               acme_result_t *res)
{
    const char *self = run->w->cluster->cfg->node, *missing = "";
    int n = run->cluster_answers->nelts + 1, i, j;
    const char **keys = apr_palloc(p, sizeof(*keys) * (apr_size_t)n);
    apr_array_header_t **kvs = apr_palloc(p, sizeof(*kvs) * (apr_size_t)n), *nodes, *acks;
    apr_hash_t *seen = apr_hash_make(p);

    /* The nodes and every answer's acknowledgements in one request. */
    keys[0] = "nodes/";
    for (j = 1; j < n; ++j) {
        keys[j] = apr_pstrcat(p, "acks/", APR_ARRAY_IDX(run->cluster_answers, j - 1,
                                                        const char *), "/", NULL);
    }
    if (acme_etcd_read_many(run->etcd, p, keys, n, kvs, res) != APR_SUCCESS) {
        return NULL;
    }
    nodes = kvs[0];
    for (j = 1; j < n; ++j) {
        const char *prefix = keys[j];
        acks = kvs[j];
        for (i = 0; i < acks->nelts; ++i) {
            const char *node = APR_ARRAY_IDX(acks, i, acme_etcd_kv_t).key + strlen(prefix);
            int count = (int)(apr_uintptr_t)apr_hash_get(seen, node, APR_HASH_KEY_STRING);
            apr_hash_set(seen, node, APR_HASH_KEY_STRING, (void *)(apr_uintptr_t)(count + 1));
        }
    }
    for (*live = 0, i = 0; i < nodes->nelts; ++i) {
        const char *node = APR_ARRAY_IDX(nodes, i, acme_etcd_kv_t).key + strlen("nodes/");
        if (!strcmp(node, self)) {
            continue;
        }
        ++*live;
        if ((int)(apr_uintptr_t)apr_hash_get(seen, node, APR_HASH_KEY_STRING)
            < run->cluster_answers->nelts) {
            missing = apr_pstrcat(p, missing, *missing ? ", " : "", node, NULL);
        }
    }
    return missing;
}

void acme_worker_share_acks(acme_worker_run_t *run)
{
    const char *dom = run->item->dom->name, *missing;
    apr_time_t until = apr_time_now() + ACME_WORKER_SHARE_WAIT;
    apr_pool_t *p = NULL;
    acme_result_t res;
    int live = 0;

    if (!run->w->cluster || !run->etcd || !run->cluster_token || !run->cluster_answers
        || apr_pool_create(&p, run->p) != APR_SUCCESS) {
        return;
    }
    acme_worker_activity(run, "waiting for the other nodes to acknowledge the answers");
    apr_sleep(ACME_WORKER_SHARE_FIRST);
    for (;;) {
        apr_pool_clear(p);
        acme_result_reset(&res);
        if (!(missing = acme_worker_share_unacked(run, p, &live, &res))) {
            acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(p, "ACME12033: %s: which "
                            "nodes acknowledged the challenge answers cannot be read from etcd "
                            "(%s); the CA is asked to validate now", dom,
                            acme_result_describe(&res, p)));
            break;
        }
        if (!*missing) {
            acme_worker_log(run->w, ACME_LOG_DEBUG, apr_psprintf(p, "ACME12031: %s: every "
                            "other live node (%d) acknowledged the challenge answers; the CA is "
                            "asked to validate", dom, live));
            break;
        }
        if (apr_time_now() >= until || acme_worker_orphaned(run->w)) {
            acme_worker_log(run->w, ACME_LOG_NOTICE, apr_psprintf(p, "ACME12032: %s: node(s) "
                            "%s did not acknowledge the challenge answers within %d s (not "
                            "running now, or etcd slow); the CA is asked to validate anyway",
                            dom, missing, (int)apr_time_sec(ACME_WORKER_SHARE_WAIT)));
            break;
        }
        apr_sleep(ACME_WORKER_SHARE_POLL);
    }
    apr_pool_destroy(p);
    run->cluster_answers = NULL;        /* the next round of answers (another order) anew */
}

/*
 * Puts (key_authz) or withdraws (NULL) the answer of type for ident (and token, http-01), only
 * while this node holds the domain's lock. A withdrawal goes with the run's next fenced write
 * (acme_worker_cluster_commit or _release): one transaction fewer per order.
 */
void acme_worker_share_answer(acme_worker_run_t *run, const char *type, const char *ident,
                              const char *token, const char *key_authz)
{
    acme_worker_cluster_t *cl = run->w->cluster;
    const char *key, *what;
    acme_result_t res;

    if (!cl || !run->etcd || !run->cluster_token || !ident) {
        return;
    }
    what = token ? apr_pstrcat(run->p, ident, "/", token, NULL) : ident;
    key = acme_cluster_key_answer(run->p, type, what);
    acme_result_reset(&res);
    if (key_authz && acme_etcd_put(run->etcd, run->p, key, key_authz, strlen(key_authz),
                                   cl->lease, &res) != APR_SUCCESS) {
        acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME12020: %s: the "
                        "%s answer cannot be shared through etcd (%s); only this node answers "
                        "it", run->item->dom->name, type, acme_result_describe(&res, run->p)));
    }
    else if (key_authz) {
        if (!run->cluster_answers) {
            run->cluster_answers = apr_array_make(run->p, 4, sizeof(const char *));
        }
        APR_ARRAY_PUSH(run->cluster_answers, const char *) = apr_pstrcat(run->p, type, "/",
                                                                         what, NULL);
    }
    else {
        if (!run->cluster_withdraw) {
            run->cluster_withdraw = apr_array_make(run->p, 4, sizeof(acme_etcd_op_t));
        }
        APR_ARRAY_PUSH(run->cluster_withdraw, acme_etcd_op_t) = (acme_etcd_op_t){
            .key = key, .remove = 1 };
        APR_ARRAY_PUSH(run->cluster_withdraw, acme_etcd_op_t) = (acme_etcd_op_t){
            .key = acme_cluster_key_ack(run->p, type, what, ""), .remove = 1, .prefix = 1 };
    }
}
