/*
 * The worker's side of a cluster (ACMECluster, issue 16): etcd is where the nodes meet.
 *
 * - One lease per run: this node's presence key and every order lock of the run are bound to
 *   it; a thread keeps it alive, so a node that dies or stalls loses its locks within the TTL.
 * - Before ordering a domain the node takes its lock (create_revision == 0); a node that finds
 *   it held waits, bounded, for the holder's certificate in etcd instead of ordering.
 * - The holder writes the order URL (fenced) before validation, and after staging publishes
 *   the chain and the key sealed with the cluster key (acme_vault) - fenced, so a holder whose
 *   lock went elsewhere writes nothing - then releases the lock.
 * - Every node stages certificates from etcd that are newer than what it serves exactly as its
 *   own orders: the key sealed to the parent's seal key, the worker's proof, staged.json; the
 *   parent activates them with the usual checks.
 * - etcd trouble never stops serving: nothing is ordered while etcd is unreachable, except at
 *   the emergency floor, where the node orders alone (CRIT) rather than let a certificate lapse.
 * Challenge answers any node gives are acme_worker_share.c's.
 */
#include <openssl/crypto.h>

#include "acme_worker_cluster_int.h"
#include "acme_api_store.h"

#define ACME_WORKER_CLUSTER_TTL 30          /* seconds: the run lease */
#define ACME_WORKER_CLUSTER_KEEP apr_time_from_sec(10)
#define ACME_WORKER_CLUSTER_WAIT apr_time_from_sec(120) /* for another node's certificate */
#define ACME_WORKER_CLUSTER_POLL apr_time_from_msec(300)
#define ACME_WORKER_CLUSTER_TIMEOUT apr_time_from_sec(3)
/* The worker runs at least this often in a cluster: what other nodes published while no run
 * watched (between runs, etcd down) is served here within it. */
#define ACME_WORKER_CLUSTER_SYNC apr_time_from_sec(300)
/* After its work a run stays and watches etcd until its next planned run, at most this long. */
#define ACME_WORKER_CLUSTER_LINGER apr_time_from_sec(3600)
#define ACME_WORKER_CLUSTER_LINGER_MIN apr_time_from_sec(10)
#define ACME_WORKER_CLUSTER_WATCH_WAIT apr_time_from_sec(2)  /* one watch request; the stop check */
#define ACME_WORKER_CLUSTER_SETTLE apr_time_from_sec(2)      /* more of a burst before ending */

apr_status_t acme_worker_cluster_etcd(acme_worker_cluster_t *cl, apr_pool_t *p,
                                      acme_etcd_t **etcd, acme_result_t *res)
{
    return acme_etcd_create(etcd, p, &cl->opts, res);
}

static void *APR_THREAD_FUNC acme_worker_cluster_keeper(apr_thread_t *thread, void *data)
{
    acme_worker_cluster_t *cl = data;
    apr_pool_t *p = NULL;
    acme_etcd_t *etcd = NULL;
    acme_result_t res;
    apr_time_t next = apr_time_now() + ACME_WORKER_CLUSTER_KEEP;
    long ttl = 0;

    apr_pool_create(&p, NULL);
    acme_result_reset(&res);
    if (acme_worker_cluster_etcd(cl, p, &etcd, &res) == APR_SUCCESS) {
        while (!cl->stop) {
            if (apr_time_now() >= next) {
                acme_result_reset(&res);
                acme_etcd_lease_keepalive(etcd, p, cl->lease, &ttl, &res);
                next = apr_time_now() + ACME_WORKER_CLUSTER_KEEP;
            }
            apr_sleep(apr_time_from_msec(100));
        }
    }
    apr_pool_destroy(p);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

static long acme_worker_cluster_presence_ttl(const acme_worker_t *w)
{
    apr_interval_time_t interval = w->cfg->check_interval ? w->cfg->check_interval
                                                           : ACME_WORKER_DEFAULT_INTERVAL;
    long ttl = (long)apr_time_sec(interval) * 2;

    return ttl < 120 ? 120 : ttl > 86400 * 2 ? 86400 * 2 : ttl;
}

/* The presence value: who, when, which cluster key, and the serial served here per domain
 * (a2acme list --cluster shows it). */
static const char *acme_worker_cluster_presence(acme_worker_t *w, acme_worker_cluster_t *cl)
{
    json_t *served = json_object(), *doc;
    const char *out = NULL;
    char *text;
    int i;

    for (i = 0; i < w->items->nelts; ++i) {
        const acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        if (item->active[0].present && item->active[0].serial) {
            json_object_set_new(served, item->dom->name, json_string(item->active[0].serial));
        }
    }
    doc = json_pack("{s:s, s:I, s:s, s:o}", "node", cl->cfg->node, "seen",
                    (json_int_t)apr_time_sec(apr_time_now()), "vault", acme_vault_id(cl->vault),
                    "served", served);
    if (doc && (text = json_dumps(doc, JSON_COMPACT)) != NULL) {
        out = apr_pstrdup(w->pool, text);
        free(text);
    }
    json_decref(doc);
    return out ? out : apr_psprintf(w->pool, "{\"node\":\"%s\"}", cl->cfg->node);
}

static apr_status_t acme_worker_cluster_connect(acme_worker_t *w, acme_worker_cluster_t *cl,
                                                acme_result_t *res)
{
    const char *presence;
    apr_int64_t seen = 0;
    apr_status_t rv;

    if ((rv = acme_worker_cluster_etcd(cl, w->pool, &cl->etcd, res)) != APR_SUCCESS
        || (rv = acme_etcd_lease_grant(cl->etcd, w->pool, ACME_WORKER_CLUSTER_TTL, &cl->lease,
                                       res)) != APR_SUCCESS) {
        return rv;
    }
    /* Presence outlives the run: until two check intervals passed without a run. */
    presence = acme_worker_cluster_presence(w, cl);
    if ((rv = acme_etcd_lease_grant(cl->etcd, w->pool, acme_worker_cluster_presence_ttl(w),
                                    &seen, res)) == APR_SUCCESS) {
        rv = acme_etcd_put(cl->etcd, w->pool, acme_cluster_key_node(w->pool, cl->cfg->node),
                           presence, strlen(presence), seen, res);
    }
    if (rv == APR_SUCCESS
        && apr_thread_create(&cl->keeper, NULL, acme_worker_cluster_keeper, cl, w->pool)
           != APR_SUCCESS) {
        cl->keeper = NULL;
    }
    return rv;
}

/*
 * One account per CA for the cluster: the first node's account key goes to etcd sealed (created
 * only when absent); every other node uses that key (in memory; its own file stays as it is) and
 * finds the account by it at the CA. Before any order thread starts.
 */
static void acme_worker_cluster_account(acme_worker_t *w, apr_pool_t *p, acme_worker_ca_t *ca)
{
    acme_worker_cluster_t *cl = w->cluster;
    const char *where = apr_pstrcat(p, "accounts/", ca->ca_id, "/key", NULL);
    const char *ours = NULL, *sealed = NULL;
    acme_etcd_kv_t *holder = NULL;
    acme_key_t *key = NULL;
    char *pem = NULL;
    apr_size_t len = 0;
    acme_result_t res;
    int acquired = 0;

    acme_result_reset(&res);
    if (!ca->account_key
        || acme_crypto_key_to_pem(p, ca->account_key, &ours, &res) != APR_SUCCESS
        || acme_vault_seal(cl->vault, p, where, ours, strlen(ours), &sealed, &res) != APR_SUCCESS
        || acme_etcd_lock(cl->etcd, p, where, sealed, 0, &acquired, &holder, &res) != APR_SUCCESS
        || acquired
        || acme_vault_open(cl->vault, p, where, holder->value, &pem, &len, &res) != APR_SUCCESS
        || !strcmp(pem, ours)
        || acme_crypto_key_from_pem(w->pool, pem, len, &key, &res) != APR_SUCCESS) {
        if (res.status != APR_SUCCESS) {
            acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME12025: %s: the cluster's "
                            "account cannot be shared (%s); this node uses its own",
                            ca->ca_url, acme_result_describe(&res, p)));
        }
        if (pem) {
            OPENSSL_cleanse(pem, len);
        }
        return;
    }
    OPENSSL_cleanse(pem, len);
    ca->account_key = key;
    ca->account_url = NULL;     /* found by the key at the CA (newAccount answers the existing) */
    ca->key_new = 1;
    acme_worker_log(w, ACME_LOG_INFO, apr_psprintf(p, "ACME12026: %s: this node uses the "
                    "cluster's account key from etcd", ca->ca_url));
}

static void acme_worker_cluster_accounts(acme_worker_t *w)
{
    apr_hash_index_t *hi;
    apr_pool_t *p = NULL;

    apr_pool_create(&p, w->pool);
    for (hi = apr_hash_first(p, w->cas); hi; hi = apr_hash_next(hi)) {
        acme_worker_cluster_account(w, p, apr_hash_this_val(hi));
    }
    apr_pool_destroy(p);
}

/* etcd cannot be used (at a run's start, or while it watches): said once, shown in the status. */
static void acme_worker_cluster_down(acme_worker_t *w, const char *why)
{
    acme_worker_cluster_t *cl = w->cluster;

    cl->up = 0;
    cl->down_reason = apr_pstrdup(w->pool, why);
    acme_worker_log(w, ACME_LOG_ERROR, apr_psprintf(w->pool, "ACME12010: cluster: etcd cannot "
                            "be used (%s); the certificates served stay, nothing is ordered "
                            "until etcd answers (but at the emergency floor)", cl->down_reason));
}

/* A certificate from etcd that this node cannot stage (fetched at a run's start, or watched). */
static void acme_worker_cluster_unstaged(acme_worker_t *w, apr_pool_t *p, const char *domain,
                                         acme_result_t *res)
{
    acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME12014: %s: the certificate in etcd "
                            "cannot be staged here (%s); the domain is handled as if etcd had "
                            "none", domain, acme_result_describe(res, p)));
}

void acme_worker_cluster_open(acme_worker_t *w)
{
    const acme_cluster_config_t *cfg = w->cfg->cluster;
    acme_worker_cluster_t *cl;
    acme_result_t res;

    if (!cfg) {
        return;
    }
    cl = apr_pcalloc(w->pool, sizeof(*cl));
    cl->w = w;
    cl->cfg = cfg;
    cl->opts = (acme_etcd_options_t){
        .endpoints = cfg->endpoints, .prefix = apr_pstrcat(w->pool, cfg->prefix, "/", NULL),
        .client_cert = cfg->client_cert, .client_key = cfg->client_key,
        .client_key_pem = cfg->client_key_pem, .client_key_pem_len = cfg->client_key_pem_len,
        .ca_file = cfg->ca_file,
        .timeout = ACME_WORKER_CLUSTER_TIMEOUT,
    };
    w->cluster = cl;
    acme_result_reset(&res);
    if (acme_vault_create(&cl->vault, w->pool, cfg->secret, cfg->secret_len, &res)
        != APR_SUCCESS || acme_worker_cluster_connect(w, cl, &res) != APR_SUCCESS) {
        acme_worker_cluster_down(w, acme_result_describe(&res, w->pool));
        return;
    }
    cl->up = 1;
    acme_worker_cluster_accounts(w);
    if (apr_thread_create(&cl->acker, NULL, acme_worker_share_acker, cl, w->pool)
        != APR_SUCCESS) {
        cl->acker = NULL;
    }
    acme_worker_log(w, ACME_LOG_DEBUG, apr_psprintf(w->pool, "ACME12011: cluster: node "
                            "%s joined through %s (cluster key %s)", cfg->node,
                            acme_etcd_endpoint(cl->etcd), acme_vault_id(cl->vault)));
}

/* ------------------------------------------------------------------ certificates from etcd */

/* The kv named key in kvs (a read of a prefix), or NULL. */
static const acme_etcd_kv_t *acme_worker_cluster_kv_named(const apr_array_header_t *kvs,
                                                          const char *key)
{
    int i;

    for (i = 0; kvs && i < kvs->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t).key, key)) {
            return &APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t);
        }
    }
    return NULL;
}

/*
 * A spec's chain and key, siblings under certs/<domain>/<spec>/: from known (read with the
 * record, at one revision) when it holds both, else in one read of that prefix now; either
 * missing is an error (a publication cut short).
 */
static apr_status_t acme_worker_cluster_pair(acme_etcd_t *etcd, apr_pool_t *p,
                                             const char *chain_key, const char *key_key,
                                             const apr_array_header_t *known,
                                             const acme_etcd_kv_t **chain,
                                             const acme_etcd_kv_t **key, acme_result_t *res)
{
    const char *slash = strrchr(key_key, '/');
    apr_array_header_t *kvs = NULL;
    apr_status_t rv = APR_SUCCESS;

    *chain = acme_worker_cluster_kv_named(known, chain_key);
    *key = acme_worker_cluster_kv_named(known, key_key);
    if (!*chain || !*key) {
        rv = acme_etcd_list(etcd, p, apr_pstrndup(p, key_key, slash - key_key + 1), &kvs, NULL,
                            res);
        *chain = acme_worker_cluster_kv_named(kvs, chain_key);
        *key = acme_worker_cluster_kv_named(kvs, key_key);
    }
    if (rv == APR_SUCCESS && (!*chain || !*key)) {
        return acme_result_fail(res, APR_ENOENT, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "%s is missing in etcd (a publication cut "
                                             "short?)", *chain ? key_key : chain_key));
    }
    return rv;
}

/* The record kv holds for item, or NULL (absent or not one: a node never trusts it blindly). */
static acme_cluster_record_t *acme_worker_cluster_record_of(acme_worker_t *w, apr_pool_t *p,
                                                            acme_worker_item_t *item,
                                                            const acme_etcd_kv_t *kv)
{
    acme_cluster_record_t *rec;
    const char *err;

    if (!kv) {
        return NULL;
    }
    rec = apr_pcalloc(p, sizeof(*rec));
    if ((err = acme_cluster_record_parse(p, kv->value, kv->value_len, rec))
        || strcmp(rec->domain, item->dom->name)) {
        acme_worker_log(w, ACME_LOG_WARNING, apr_psprintf(p, "ACME12012: %s: the "
                                "certificate record in etcd is unusable (%s); it is ignored",
                                item->dom->name, err ? err : "another domain's"));
        return NULL;
    }
    apr_cpystrn(item->etcd_serial, rec->serial ? rec->serial : "", sizeof(item->etcd_serial));
    return rec;
}

/* The domain's record and, in the same read, its chains and keys (*known). */
static apr_status_t acme_worker_cluster_record(acme_worker_t *w, acme_etcd_t *etcd,
                                               apr_pool_t *p, acme_worker_item_t *item,
                                               acme_cluster_record_t **rec,
                                               apr_array_header_t **known, acme_result_t *res)
{
    apr_status_t rv = acme_etcd_list(etcd, p, acme_cluster_key_certs(p, item->dom->name), known,
                                     NULL, res);

    *rec = rv == APR_SUCCESS ? acme_worker_cluster_record_of(
               w, p, item, acme_worker_cluster_kv_named(*known, acme_cluster_key_record(
                   p, item->dom->name))) : NULL;
    return rv;
}

/*
 * The chain from etcd names every name of ours: during a rolling change of ACMEDomain another
 * node's certificate may not, and the parent would refuse it at every run.
 */
static apr_status_t acme_worker_cluster_covers(apr_pool_t *p, const acme_domain_t *dom,
                                               const acme_etcd_kv_t *chain, acme_result_t *res)
{
    apr_array_header_t *certs = NULL;
    apr_status_t rv = acme_crypto_chain_parse(p, chain->value, chain->value_len, &certs, res);

    if (rv == APR_SUCCESS
        && acme_crypto_cert_covers(p, APR_ARRAY_IDX(certs, 0, acme_cert_t *),
                                   (const acme_ident_t *)dom->idents->elts, dom->idents->nelts,
                                   res) != APR_SUCCESS) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p, "the "
                                "certificate in etcd does not fit this node's ACMEDomain (%s): "
                                "the nodes' configurations differ; this node orders its own",
                                acme_result_describe(res, p)));
    }
    return rv;
}

/* One key spec from etcd into the pending set: chain, key sealed to the parent, public key. */
static apr_status_t acme_worker_cluster_spec_in(acme_worker_t *w, acme_etcd_t *etcd,
                                                apr_pool_t *p, const acme_domain_t *dom,
                                                const acme_keyspec_t *spec, const char *dir,
                                                const apr_array_header_t *known,
                                                acme_result_t *res)
{
    const char *name = acme_crypto_keyspec_name(spec), *where, *sealed = NULL, *pub = NULL;
    const acme_etcd_kv_t *chain = NULL, *kv = NULL;
    acme_key_t *key = NULL;
    char *pem = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    where = acme_cluster_key_cert(p, dom->name, name, "key");
    if ((rv = acme_worker_cluster_pair(etcd, p, acme_cluster_key_cert(p, dom->name, name,
                                                                      "chain"), where, known,
                                       &chain, &kv, res)) != APR_SUCCESS
        || (rv = acme_vault_open(w->cluster->vault, p, where, kv->value, &pem, &len, res))
           != APR_SUCCESS) {
        return rv;
    }
    rv = acme_worker_cluster_covers(p, dom, chain, res);
    if (rv == APR_SUCCESS) {
        rv = acme_crypto_key_from_pem(p, pem, len, &key, res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_worker_seal(w, p, pem, len, &sealed, res);
    }
    OPENSSL_cleanse(pem, len);
    /* Unsynced: acme_worker_stage syncs the set once before it appears in staging/, and a set
     * left half-written here is written anew from etcd. */
    if (rv == APR_SUCCESS && (rv = acme_seal_public_pem(p, key, &pub, res)) == APR_SUCCESS
        && (rv = acme_store_write_file_volatile(p, acme_worker_file(p, dir, "privkey", spec,
                                                                    ".sealed"),
                                                sealed, strlen(sealed), ACME_PERMS_0600, res))
           == APR_SUCCESS
        && (rv = acme_store_write_file_volatile(p, acme_worker_file(p, dir, "pubkey", spec,
                                                                    ".pem"),
                                                pub, strlen(pub), ACME_PERMS_0644, res))
           == APR_SUCCESS) {
        rv = acme_store_write_file_volatile(p, acme_worker_file(p, dir, "pubcert", spec, ".pem"),
                                            chain->value, chain->value_len, ACME_PERMS_0644,
                                            res);
    }
    return rv;
}

/* rec into staging/<name>/ as if this node had ordered it; the parent checks and activates.
 * known (may be NULL): the domain's keys read with rec, at the same revision. */
static apr_status_t acme_worker_cluster_adopt(acme_worker_t *w, acme_etcd_t *etcd,
                                              apr_pool_t *p, acme_worker_item_t *item,
                                              const acme_cluster_record_t *rec,
                                              const apr_array_header_t *known,
                                              acme_result_t *res)
{
    const apr_array_header_t *specs = item->dom->policy.key_specs;
    acme_worker_run_t run = {
        .w = w, .p = p, .item = item,
        .pending_dir = apr_pstrcat(p, acme_store_path(p, w->store, ACME_STORE_STAGING,
                                                      item->dom->name, NULL),
                                   ACME_WORKER_PENDING_SUFFIX, NULL),
    };
    apr_status_t rv;
    int i, j;

    for (j = 0; j < specs->nelts; ++j) {
        const char *name = acme_crypto_keyspec_name(&APR_ARRAY_IDX(specs, j, acme_keyspec_t));
        for (i = 0; i < rec->specs->nelts; ++i) {
            if (!strcmp(APR_ARRAY_IDX(rec->specs, i, const char *), name)) {
                break;
            }
        }
        if (i == rec->specs->nelts) {
            return acme_result_fail(res, APR_ENOENT, ACME_CLASS_ADMIN, apr_psprintf(p, "the "
                                    "certificate in etcd has no %s key: the nodes' "
                                    "ACMEPrivateKeys differ", name));
        }
    }
    acme_store_remove_tree(p, run.pending_dir, res);
    acme_result_reset(res);
    rv = acme_store_mkdirs(p, run.pending_dir, res);
    for (j = 0; rv == APR_SUCCESS && j < specs->nelts; ++j) {
        rv = acme_worker_cluster_spec_in(w, etcd, p, item->dom,
                                         &APR_ARRAY_IDX(specs, j, acme_keyspec_t),
                                         run.pending_dir, known, res);
    }
    if (rv == APR_SUCCESS && (rv = acme_worker_stage(&run, res)) == APR_SUCCESS) {
        item->staged = 1;
        acme_worker_log(w, ACME_LOG_NOTICE, apr_psprintf(p, "ACME12013: %s: certificate "
                                "%s (ordered by node %s) staged from etcd; the server activates "
                                "it (hot, or by a graceful restart)", item->dom->name, rec->serial,
                                rec->node ? rec->node : "?"));
    }
    return rv;
}

/* 1 when etcd holds a certificate for item newer than the one served here. */
static int acme_worker_cluster_newer(const acme_worker_item_t *item,
                                     const acme_cluster_record_t *rec)
{
    const acme_worker_active_t *act = &item->active[0];

    return rec && rec->not_after > apr_time_now()
           && acme_cluster_record_newer(rec, act->present ? act->not_before : 0,
                                        act->present ? act->serial : NULL);
}

/* The domains that have a record in etcd (keys only: no chain or key travels for this). */
static apr_hash_t *acme_worker_cluster_published(acme_worker_cluster_t *cl, apr_pool_t *p,
                                                 acme_result_t *res)
{
    apr_array_header_t *kvs = NULL;
    apr_hash_t *out;
    int i;

    if (acme_etcd_keys(cl->etcd, p, "certs/", &kvs, &cl->revision, res) != APR_SUCCESS) {
        cl->revision = 0;
        return NULL;
    }
    out = apr_hash_make(p);
    for (i = 0; i < kvs->nelts; ++i) {
        const char *key = APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t).key;
        const char *domain = acme_cluster_key_domain(p, key);
        apr_size_t n = strlen(key);
        if (domain && n > 7 && !strcmp(key + n - 7, "/record")) {
            apr_hash_set(out, domain, APR_HASH_KEY_STRING, domain);
        }
    }
    return out;
}

/* At the start of a run: every certificate another node published since is staged here. */
/* The items fetch looks at: published in etcd, not staged by this run. Their record keys. */
static int acme_worker_cluster_fetch_list(acme_worker_t *w, apr_pool_t *p, apr_hash_t *published,
                                          acme_worker_item_t ***items, const char ***keys)
{
    int i, n = 0;

    *items = apr_palloc(p, sizeof(**items) * (apr_size_t)(w->items->nelts + 1));
    *keys = apr_palloc(p, sizeof(**keys) * (apr_size_t)(w->items->nelts + 1));
    for (i = 0; i < w->items->nelts; ++i) {
        acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        if (!item->staged && apr_hash_get(published, item->dom->name, APR_HASH_KEY_STRING)) {
            (*items)[n] = item;
            (*keys)[n++] = acme_cluster_key_record(p, item->dom->name);
        }
    }
    return n;
}

void acme_worker_cluster_fetch(acme_worker_t *w)
{
    acme_worker_cluster_t *cl = w->cluster;
    apr_pool_t *p = NULL, *ip = NULL;
    apr_hash_t *published;
    acme_worker_item_t **items = NULL;
    const char **keys = NULL;
    apr_array_header_t **records;
    acme_result_t res;
    int i, n;

    if (!cl || !cl->up) {
        return;
    }
    apr_pool_create(&p, w->pool);
    apr_pool_create(&ip, p);
    acme_result_reset(&res);
    /* Its revision: what is published from here on reaches the watch (acme_worker_cluster_watch). */
    published = acme_worker_cluster_published(cl, p, &res);
    n = published ? acme_worker_cluster_fetch_list(w, p, published, &items, &keys) : 0;
    records = apr_pcalloc(p, sizeof(*records) * (apr_size_t)(n + 1));
    /* The records 64 to a request, not one request per domain. */
    if (n > 0 && acme_etcd_read_many(cl->etcd, p, keys, n, records, &res) != APR_SUCCESS) {
        n = 0;
    }
    for (i = 0; i < n && !acme_worker_orphaned(w); ++i) {
        acme_cluster_record_t *rec;
        apr_pool_clear(ip);
        acme_result_reset(&res);
        rec = acme_worker_cluster_record_of(w, ip, items[i], acme_etcd_first(records[i]));
        if (!acme_worker_cluster_newer(items[i], rec)
            || acme_worker_cluster_adopt(w, cl->etcd, ip, items[i], rec, NULL, &res)
               == APR_SUCCESS) {
            continue;
        }
        acme_worker_cluster_unstaged(w, ip, items[i]->dom->name, &res);
    }
    apr_pool_destroy(p);
}

/*
 * The due domains in an order of this run's own: nodes started together would otherwise all
 * begin with the same domains, one ordering and the others waiting for it, instead of each
 * ordering different ones.
 */
void acme_worker_cluster_spread(acme_worker_t *w)
{
    int i, j;

    if (!w->cluster || !w->cluster->up) {
        return;
    }
    for (i = w->due->nelts - 1; i > 0; --i) {
        acme_worker_item_t *t = APR_ARRAY_IDX(w->due, i, acme_worker_item_t *);
        j = (int)(acme_worker_random() * (double)(i + 1));
        j = j > i ? i : j;
        APR_ARRAY_IDX(w->due, i, acme_worker_item_t *) = APR_ARRAY_IDX(w->due, j,
                                                                       acme_worker_item_t *);
        APR_ARRAY_IDX(w->due, j, acme_worker_item_t *) = t;
    }
}

/* ------------------------------------------------------------------ one order per certificate */

/* etcd cannot be used: order alone only at the emergency floor (CRIT), else not at all. */
static apr_status_t acme_worker_cluster_alone(acme_worker_run_t *run, const char *why,
                                              acme_result_t *res)
{
    apr_time_t floor = acme_worker_emergency_at(run->item);

    if (floor > 0 && apr_time_now() >= floor) {
        acme_worker_log(run->w, ACME_LOG_CRIT, apr_psprintf(run->p, "ACME12015: %s: etcd "
                                "is unreachable (%s) and the certificate is past its emergency "
                                "floor: this node orders it alone; the cluster is reconciled "
                                "when etcd returns", run->item->dom->name, why));
        acme_result_reset(res);
        return APR_SUCCESS;
    }
    return acme_result_fail(res, APR_EAGAIN, ACME_CLASS_RETRY_SOON, apr_psprintf(run->p, "etcd "
                            "is unreachable (%s): no node orders while it is; the certificate "
                            "served stays", why));
}

static apr_status_t acme_worker_cluster_wait(acme_worker_run_t *run, acme_etcd_t *etcd,
                                             const acme_etcd_kv_t *holder, apr_time_t until,
                                             int *lock_gone, acme_result_t *res)
{
    const char *keys[2] = {
        acme_cluster_key_certs(run->p, run->item->dom->name),
        acme_cluster_key_lock(run->p, run->item->dom->name),
    };
    const char *record_key = acme_cluster_key_record(run->p, run->item->dom->name);
    apr_array_header_t *kvs[2];
    acme_cluster_record_t *rec = NULL;
    const acme_etcd_kv_t *kv;
    apr_status_t rv;

    acme_worker_activity(run, "waiting for another node's certificate");
    acme_worker_log(run->w, ACME_LOG_INFO, apr_psprintf(run->p, "ACME12016: %s: another "
                            "node orders it (%.*s); waiting for its certificate in etcd",
                            run->item->dom->name, (int)holder->value_len, holder->value));
    *lock_gone = 0;
    while (!acme_worker_stop_requested() && apr_time_now() < until) {
        apr_sleep(ACME_WORKER_CLUSTER_POLL);
        /* What is published (record, chains, keys) and the lock in one request. */
        if ((rv = acme_etcd_read_many(etcd, run->p, keys, 2, kvs, res)) != APR_SUCCESS) {
            return rv;
        }
        rec = acme_worker_cluster_record_of(run->w, run->p, run->item,
                                            acme_worker_cluster_kv_named(kvs[0], record_key));
        if (acme_worker_cluster_newer(run->item, rec)) {
            return acme_worker_cluster_adopt(run->w, etcd, run->p, run->item, rec, kvs[0], res)
                   == APR_SUCCESS ? APR_EEXIST : APR_EGENERAL;
        }
        kv = acme_etcd_first(kvs[1]);
        if (!kv || kv->create_revision != holder->create_revision) {
            *lock_gone = 1;     /* the holder failed or died: take over */
            return APR_SUCCESS;
        }
    }
    return acme_result_fail(res, APR_TIMEUP, ACME_CLASS_RETRY_SOON, apr_psprintf(run->p, "another "
                            "node still orders it after %d s; it is looked at again later",
                            (int)apr_time_sec(ACME_WORKER_CLUSTER_WAIT)));
}

/* Lock taken: an order a previous holder left in etcd (kv, read with the lock) is resumed. */
static void acme_worker_cluster_order_adopt(acme_worker_run_t *run, const acme_etcd_kv_t *kv)
{
    acme_order_t *order = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (!kv || (run->job->order_json && !strcmp(run->job->order_json, kv->value))
        || acme_order_from_json(run->p, kv->value, kv->value_len, &order, &res) != APR_SUCCESS
        || !order->url) {
        return;
    }
    run->job->order_json = apr_pstrndup(run->p, kv->value, kv->value_len);
    acme_worker_log(run->w, ACME_LOG_NOTICE, apr_psprintf(run->p, "ACME12027: %s: resuming the "
                    "order %s another node started (it stopped holding the lock)",
                    run->item->dom->name, order->url));
}

/* 1 when record (etcd's, NULL: none) is newer than what is served here and was staged;
 * known (may be NULL): the domain's keys read with it. */
static int acme_worker_cluster_take(acme_worker_run_t *run, const acme_etcd_kv_t *record,
                                    const apr_array_header_t *known, acme_result_t *res)
{
    acme_cluster_record_t *rec = acme_worker_cluster_record_of(run->w, run->p, run->item,
                                                               record);

    if (acme_worker_cluster_newer(run->item, rec)
        && acme_worker_cluster_adopt(run->w, run->etcd, run->p, run->item, rec, known, res)
           == APR_SUCCESS) {
        return 1;
    }
    acme_result_reset(res);
    return 0;
}

/*
 * Another node holds the domain's lock (holder): the domain is deferred once when other domains
 * are due (APR_EBUSY), else the node waits for its certificate (APR_EEXIST when staged) or for
 * the lock to end (APR_SUCCESS with *gone set: take over).
 */
static apr_status_t acme_worker_cluster_yield(acme_worker_run_t *run,
                                              const acme_etcd_kv_t *holder, apr_time_t until,
                                              int *gone, acme_result_t *res)
{
    if (!run->item->deferred && run->w->deferred) {
        /* Ordering other domains meanwhile beats waiting: by the time this one comes round
         * again, its certificate is most likely in etcd. */
        acme_worker_log(run->w, ACME_LOG_DEBUG, apr_psprintf(run->p, "ACME12034: %s: another "
                        "node orders it (%.*s); this node looks again after its other due "
                        "domains", run->item->dom->name, (int)holder->value_len,
                        holder->value));
        return APR_EBUSY;
    }
    return acme_worker_cluster_wait(run, run->etcd, holder, until, gone, res);
}

/*
 * A first look from the member asked (no transaction, no round through the leader): a
 * certificate already published (a domain deferred for another node, a node joining) is staged,
 * a lock held elsewhere is waited for, without writing anything. *holder: that lock, or NULL
 * (also when the look failed: the lock's transaction decides).
 */
static int acme_worker_cluster_look(acme_worker_run_t *run, const char *record_key,
                                    const char *lock_key, const acme_etcd_kv_t **holder,
                                    acme_result_t *res)
{
    const char *keys[2] = { acme_cluster_key_certs(run->p, run->item->dom->name), lock_key };
    apr_array_header_t *kvs[2];

    *holder = NULL;
    if (acme_etcd_read_local(run->etcd, run->p, keys, 2, kvs, res) != APR_SUCCESS) {
        acme_result_reset(res);
        return 0;
    }
    if (acme_worker_cluster_take(run, acme_worker_cluster_kv_named(kvs[0], record_key), kvs[0],
                                 res)) {
        return 1;
    }
    *holder = acme_etcd_first(kvs[1]);
    return 0;
}

/*
 * Before ordering: APR_SUCCESS with the lock held (or alone at the emergency floor), APR_EEXIST
 * when a certificate from etcd was staged instead, APR_EBUSY when another node holds the lock
 * and the domain was not deferred yet (the caller defers it), else a failure in res (nothing
 * ordered). The lock's transaction also reads the record and the order left in etcd.
 */
apr_status_t acme_worker_cluster_claim(acme_worker_run_t *run, acme_result_t *res)
{
    acme_worker_cluster_t *cl = run->w->cluster;
    const char *dom = run->item->dom->name, *lock_key, *value, *also[2];
    apr_time_t until = apr_time_now() + ACME_WORKER_CLUSTER_WAIT;
    const acme_etcd_kv_t *other = NULL;
    acme_etcd_kv_t *holder = NULL, *read[2] = { NULL, NULL };
    apr_status_t rv;
    int acquired = 0, gone = 1;

    if (!cl) {
        return APR_SUCCESS;
    }
    if (!cl->up || acme_worker_cluster_etcd(cl, run->p, &run->etcd, res) != APR_SUCCESS) {
        return acme_worker_cluster_alone(run, cl->up ? res->message : cl->down_reason, res);
    }
    also[0] = acme_cluster_key_record(run->p, dom);
    also[1] = acme_cluster_key_order(run->p, dom);
    lock_key = acme_cluster_key_lock(run->p, dom);
    if (acme_worker_cluster_look(run, also[0], lock_key, &other, res)) {
        return APR_EEXIST;
    }
    value = apr_psprintf(run->p, "node %s", cl->cfg->node);
    while (gone) {
        if (!other) {
            if ((rv = acme_etcd_lock_reading(run->etcd, run->p, lock_key, value, cl->lease, also,
                                             2, &acquired, &holder, read, res)) != APR_SUCCESS) {
                return acme_worker_cluster_alone(run, acme_result_describe(res, run->p), res);
            }
            if (acquired || acme_worker_cluster_take(run, read[0], NULL, res)) {
                break;
            }
            other = holder;
        }
        if ((rv = acme_worker_cluster_yield(run, other, until, &gone, res)) != APR_SUCCESS) {
            return rv;
        }
        other = NULL;
    }
    if (!acquired) {
        return APR_EEXIST;      /* published meanwhile, and staged */
    }
    run->cluster_token = holder->create_revision;
    /* Published between our look and the lock: take it, order nothing. */
    if (acme_worker_cluster_take(run, read[0], NULL, res)) {
        acme_worker_cluster_release(run);
        return APR_EEXIST;
    }
    acme_worker_cluster_order_adopt(run, read[1]);
    return APR_SUCCESS;
}

void acme_worker_cluster_release(acme_worker_run_t *run)
{
    apr_array_header_t *ops;
    const char *lock_key;
    acme_result_t res;
    int fenced = 0;

    if (!run->w->cluster || !run->etcd || !run->cluster_token) {
        return;
    }
    lock_key = acme_cluster_key_lock(run->p, run->item->dom->name);
    ops = run->cluster_withdraw ? run->cluster_withdraw
                                : apr_array_make(run->p, 1, sizeof(acme_etcd_op_t));
    APR_ARRAY_PUSH(ops, acme_etcd_op_t) = (acme_etcd_op_t){ .key = lock_key, .remove = 1 };
    acme_result_reset(&res);
    /* Only our own lock: one taken over after our lease ran out is another node's (and the
     * answers still withdrawn are bound to our lease). */
    acme_etcd_txn_fenced(run->etcd, run->p, lock_key, run->cluster_token,
                         (const acme_etcd_op_t *)ops->elts, ops->nelts, &fenced, &res);
    run->cluster_token = 0;
    run->cluster_withdraw = NULL;
}

/*
 * The order (URL, key type, account, names, as the job file keeps it) in etcd before the CA is
 * asked to validate: a node that takes over after this one died resumes it with the cluster's
 * account instead of ordering again.
 */
void acme_worker_cluster_order_save(acme_worker_run_t *run, const char *order_json)
{
    acme_result_t res;
    int fenced = 0;

    if (!run->w->cluster || !run->etcd || !run->cluster_token || !order_json) {
        return;
    }
    acme_result_reset(&res);
    acme_etcd_put_fenced(run->etcd, run->p, acme_cluster_key_lock(run->p, run->item->dom->name),
                         run->cluster_token, acme_cluster_key_order(run->p, run->item->dom->name),
                         order_json, strlen(order_json), &fenced, &res);
}

/* ------------------------------------------------------------------ publishing */

static const char *acme_worker_cluster_vault_path(acme_worker_run_t *run,
                                                  const acme_keyspec_t *spec)
{
    return acme_store_path(run->p, run->w->store, ACME_STORE_JOBS, "cluster",
                           apr_pstrcat(run->p, run->item->dom->name, ".",
                                       acme_crypto_keyspec_name(spec), ".vault", NULL));
}

/*
 * The fresh certificate key, sealed with the cluster key for its etcd key, kept until the
 * certificate is published: the staged copy is sealed to the parent, which the worker cannot
 * open. Never plaintext on disk.
 */
void acme_worker_cluster_key_keep(acme_worker_run_t *run, const acme_keyspec_t *spec,
                                  const char *pem)
{
    acme_worker_cluster_t *cl = run->w->cluster;
    const char *sealed = NULL, *path;
    acme_result_t res;

    if (!cl || !cl->vault || !(path = acme_worker_cluster_vault_path(run, spec))) {
        return;
    }
    acme_result_reset(&res);
    if (acme_vault_seal(cl->vault, run->p, acme_cluster_key_cert(run->p, run->item->dom->name,
                                                                 acme_crypto_keyspec_name(spec),
                                                                 "key"),
                        pem, strlen(pem), &sealed, &res) != APR_SUCCESS
        || acme_store_write_file(run->p, path, sealed, strlen(sealed), ACME_PERMS_0600, &res)
           != APR_SUCCESS) {
        acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME12017: %s: "
                                "the key cannot be kept for the cluster (%s); the certificate is "
                                "served here but not published", run->item->dom->name,
                                acme_result_describe(&res, run->p)));
    }
}

/* One key spec's chain and sealed key as two puts; the record's figures from the first leaf. */
static apr_status_t acme_worker_cluster_spec_out(acme_worker_run_t *run, const char *dir,
                                                 const acme_keyspec_t *spec,
                                                 acme_cluster_record_t *rec,
                                                 apr_array_header_t *ops, acme_result_t *res)
{
    const char *name = acme_crypto_keyspec_name(spec), *domain = run->item->dom->name;
    apr_array_header_t *chain = NULL;
    acme_cert_info_t info;
    char *pem = NULL, *sealed = NULL;
    apr_size_t len = 0, slen = 0;
    const char *path = acme_worker_file(run->p, dir, "pubcert", spec, ".pem");
    apr_status_t rv;

    if ((rv = acme_activate_chain_read(run->p, path, &chain, &info, res)) != APR_SUCCESS
        || (rv = acme_store_read_file(run->p, path, &pem, &len, 0, res)) != APR_SUCCESS
        || (rv = acme_store_read_file(run->p, acme_worker_cluster_vault_path(run, spec), &sealed,
                                      &slen, 0, res)) != APR_SUCCESS) {
        return rv;
    }
    APR_ARRAY_PUSH(ops, acme_etcd_op_t) = (acme_etcd_op_t){
        .key = acme_cluster_key_cert(run->p, domain, name, "chain"), .value = pem, .len = len };
    APR_ARRAY_PUSH(ops, acme_etcd_op_t) = (acme_etcd_op_t){
        .key = acme_cluster_key_cert(run->p, domain, name, "key"), .value = sealed, .len = slen };
    if (!rec->serial) {
        rec->serial = info.serial_hex;
        rec->not_before = info.not_before;
        rec->not_after = info.not_after;
    }
    APR_ARRAY_PUSH(rec->specs, const char *) = name;
    return APR_SUCCESS;
}

/*
 * The record after the chains and keys, the order and the lock removed: one fenced transaction
 * (one raft entry), so the other nodes see all of it or nothing, and the lock is free the moment
 * the certificate is there to take.
 */
static apr_status_t acme_worker_cluster_commit(acme_worker_run_t *run,
                                               const acme_cluster_record_t *rec,
                                               apr_array_header_t *ops, acme_result_t *res)
{
    const char *domain = run->item->dom->name, *json = acme_cluster_record_to_json(run->p, rec);
    int fenced = 0;
    apr_status_t rv;

    if (!json) {
        return acme_result_fail(res, APR_ENOMEM, ACME_CLASS_RETRY_SOON, "no memory for the "
                                "record");
    }
    APR_ARRAY_PUSH(ops, acme_etcd_op_t) = (acme_etcd_op_t){
        .key = acme_cluster_key_record(run->p, domain), .value = json, .len = strlen(json) };
    APR_ARRAY_PUSH(ops, acme_etcd_op_t) = (acme_etcd_op_t){
        .key = acme_cluster_key_order(run->p, domain), .remove = 1 };
    APR_ARRAY_PUSH(ops, acme_etcd_op_t) = (acme_etcd_op_t){
        .key = acme_cluster_key_lock(run->p, domain), .remove = 1 };
    if (run->cluster_withdraw) {
        apr_array_cat(ops, run->cluster_withdraw);
    }
    rv = acme_etcd_txn_fenced(run->etcd, run->p, acme_cluster_key_lock(run->p, domain),
                              run->cluster_token, (const acme_etcd_op_t *)ops->elts, ops->nelts,
                              &fenced, res);
    if (rv == APR_SUCCESS) {
        run->cluster_token = 0;         /* released with it, the answers withdrawn */
        run->cluster_withdraw = NULL;
    }
    else if (fenced) {
        acme_result_fail(res, APR_EBUSY, ACME_CLASS_RETRY_SOON, "this node's lock expired and "
                         "another node took it: it publishes its own certificate");
    }
    return rv;
}

/*
 * Once this node's order is complete in its pending directory, before it is staged: the set goes
 * to etcd and the lock is released. Should staging then fail, this node takes the set back from
 * etcd like any other.
 */
void acme_worker_cluster_publish(acme_worker_run_t *run)
{
    const acme_domain_t *dom = run->item->dom;
    const apr_array_header_t *specs = dom->policy.key_specs;
    acme_cluster_record_t rec = {
        .domain = dom->name, .node = run->w->cluster ? run->w->cluster->cfg->node : NULL,
        .published = apr_time_now(), .config_digest = acme_worker_config_digest(run->p, dom),
        .specs = apr_array_make(run->p, 2, sizeof(const char *)),
    };
    apr_array_header_t *ops = apr_array_make(run->p, 2 * specs->nelts + 3,
                                             sizeof(acme_etcd_op_t));
    apr_status_t rv = APR_SUCCESS;
    acme_result_t res;
    int j;

    if (!run->w->cluster || !run->etcd || !run->cluster_token) {
        return;     /* off, or ordered alone at the emergency floor: reconciled later */
    }
    acme_result_reset(&res);
    for (j = 0; rv == APR_SUCCESS && j < specs->nelts; ++j) {
        rv = acme_worker_cluster_spec_out(run, run->pending_dir,
                                          &APR_ARRAY_IDX(specs, j, acme_keyspec_t), &rec, ops,
                                          &res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_worker_cluster_commit(run, &rec, ops, &res);
    }
    if (rv != APR_SUCCESS) {
        acme_worker_log(run->w, ACME_LOG_WARNING, apr_psprintf(run->p, "ACME12018: %s: "
                                "the new certificate could not be published in etcd (%s); it is "
                                "served here, the other nodes order when it is due for them",
                                dom->name, acme_result_describe(&res, run->p)));
        return;
    }
    for (j = 0; j < specs->nelts; ++j) {
        apr_file_remove(acme_worker_cluster_vault_path(run, &APR_ARRAY_IDX(specs, j,
                                                                          acme_keyspec_t)),
                        run->p);
    }
    apr_cpystrn(run->item->etcd_serial, rec.serial, sizeof(run->item->etcd_serial));
    acme_worker_log(run->w, ACME_LOG_INFO, apr_psprintf(run->p, "ACME12019: %s: "
                            "certificate %s published in etcd for the other nodes", dom->name,
                            rec.serial));
}

/* ------------------------------------------------------------------ status */

/*
 * Per domain of ours: who holds its lock now (one read of every lock), and the serial etcd had
 * when this run last read or wrote its record.
 */
static json_t *acme_worker_cluster_domains(acme_worker_t *w, apr_pool_t *p, acme_result_t *res)
{
    acme_worker_cluster_t *cl = w->cluster;
    apr_array_header_t *locks = NULL;
    apr_hash_t *holders = apr_hash_make(p);
    json_t *out = json_object();
    int i;

    if (!cl->up) {
        return out;
    }
    if (acme_etcd_list(cl->etcd, p, "locks/", &locks, NULL, res) != APR_SUCCESS) {
        cl->up = 0;
        cl->down_reason = apr_pstrdup(w->pool, acme_result_describe(res, p));
        return out;
    }
    for (i = 0; i < locks->nelts; ++i) {
        const acme_etcd_kv_t *kv = &APR_ARRAY_IDX(locks, i, acme_etcd_kv_t);
        apr_hash_set(holders, kv->key + strlen("locks/"), APR_HASH_KEY_STRING,
                     apr_pstrndup(p, kv->value, kv->value_len));
    }
    for (i = 0; i < w->items->nelts; ++i) {
        const acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        json_object_set_new(out, item->dom->name, json_pack(
            "{s:s?, s:s?}", "holder", apr_hash_get(holders, item->dom->name, APR_HASH_KEY_STRING),
            "serial", item->etcd_serial[0] ? item->etcd_serial : NULL));
    }
    return out;
}

/* The nodes whose presence key is alive. */
static json_t *acme_worker_cluster_nodes(acme_worker_t *w, apr_pool_t *p, acme_result_t *res)
{
    apr_array_header_t *kvs = NULL;
    json_t *out = json_array();
    int i;

    if (w->cluster->up && acme_etcd_list(w->cluster->etcd, p, "nodes/", &kvs, NULL, res)
                          == APR_SUCCESS) {
        for (i = 0; i < kvs->nelts; ++i) {
            json_array_append_new(out, json_string(APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t).key
                                                   + strlen("nodes/")));
        }
    }
    return out;
}

/*
 * jobs/cluster.json for the status page's "cluster" section: this node, the live nodes, etcd's
 * health as this run saw it, per domain the lock holder and the serial in etcd. Shown only.
 */
static void acme_worker_cluster_note(acme_worker_t *w)
{
    acme_worker_cluster_t *cl = w->cluster;
    apr_pool_t *p = NULL;
    acme_result_t res;
    json_t *json, *nodes, *domains;

    apr_pool_create(&p, w->pool);
    acme_result_reset(&res);
    nodes = acme_worker_cluster_nodes(w, p, &res);
    domains = acme_worker_cluster_domains(w, p, &res);
    json = json_pack("{s:s, s:s, s:o, s:o, s:{s:b, s:s?, s:s?, s:I}}", "node", cl->cfg->node,
                     "prefix", cl->cfg->prefix, "nodes", nodes, "domains", domains, "etcd",
                     "healthy", cl->up, "endpoint", cl->etcd ? acme_etcd_endpoint(cl->etcd) : NULL,
                     "error", cl->up ? NULL : cl->down_reason,
                     "checked", (json_int_t)apr_time_sec(apr_time_now()));
    acme_result_reset(&res);
    acme_store_write_json(p, acme_store_path(p, w->store, ACME_STORE_JOBS, "cluster.json", NULL),
                          json, ACME_PERMS_0644, &res);
    json_decref(json);
    apr_pool_destroy(p);
}

void acme_worker_cluster_close(acme_worker_t *w)
{
    acme_worker_cluster_t *cl = w->cluster;
    apr_status_t trv;
    acme_result_t res;

    if (!cl) {
        return;
    }
    acme_worker_cluster_note(w);
    acme_worker_note_next(w, apr_time_now() + ACME_WORKER_CLUSTER_SYNC);
    cl->stop = 1;
    if (cl->keeper) {
        apr_thread_join(&trv, cl->keeper);
        cl->keeper = NULL;
    }
    if (cl->acker) {
        apr_thread_join(&trv, cl->acker);
        cl->acker = NULL;
    }
    /* Every lock of the run goes with the lease: a failed order is free for any node. */
    acme_result_reset(&res);
    if (cl->lease) {
        acme_etcd_lease_revoke(cl->etcd, w->pool, cl->lease, &res);
    }
}

/* ------------------------------------------------------------------ watching between runs */

/*
 * What ends a watching run early: an admin's renewal request (requests/), the certificate API's
 * queue, or a new server generation (the parent rewrites jobs/worker.json when a worker of the
 * previous generation carries on): its configuration may differ. The parent starts the next.
 */
typedef struct {
    const char *force;
    unsigned long queue;
    apr_time_t generation;
} acme_worker_cluster_marks_t;

static void acme_worker_cluster_marks(acme_worker_t *w, apr_pool_t *p,
                                      acme_worker_cluster_marks_t *m)
{
    const char *note = acme_store_path(p, w->store, ACME_STORE_JOBS, "worker.json", NULL);
    apr_finfo_t fi;

    m->force = acme_job_force_stamp(p, w->store);
    m->queue = acme_api_store_queue_stamp(p, w->cfg->store_dir);
    m->generation = note && apr_stat(&fi, note, APR_FINFO_MTIME, p) == APR_SUCCESS ? fi.mtime : 0;
}

static int acme_worker_cluster_marks_differ(const acme_worker_cluster_marks_t *a,
                                            const acme_worker_cluster_marks_t *b)
{
    return a->queue != b->queue || a->generation != b->generation
           || (a->force ? !b->force || strcmp(a->force, b->force) : b->force != NULL);
}

/* Sleeps up to d, waking for the stop flag (no busy loop while etcd refuses at once). */
static void acme_worker_cluster_pause(acme_worker_t *w, apr_interval_time_t d)
{
    apr_time_t until = apr_time_now() + d;

    while (!acme_worker_orphaned(w) && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(100));
    }
}

/* A record another node put while this run watched: staged here when newer. 1: staged. */
static int acme_worker_cluster_seen(acme_worker_t *w, apr_pool_t *p,
                                    const acme_etcd_event_t *ev)
{
    const char *domain = acme_cluster_key_domain(p, ev->kv.key);
    apr_size_t n = strlen(ev->kv.key), tail = strlen("/record");
    acme_worker_item_t *item = NULL;
    acme_cluster_record_t *rec = NULL;
    apr_array_header_t *known = NULL;
    acme_result_t res;
    int i;

    if (ev->deleted || !domain || n <= tail || strcmp(ev->kv.key + n - tail, "/record")) {
        return 0;
    }
    for (i = 0; i < w->items->nelts && !item; ++i) {
        item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        item = strcmp(item->dom->name, domain) ? NULL : item;
    }
    if (!item || item->staged   /* a domain this node does not manage is ignored */
        || acme_worker_staged_present(w, item->dom)) {
        return 0;
    }
    /* Compared with what is installed now, not when the run began: this run's own order,
     * installed meanwhile (hot), comes back here as a record and is no news. */
    acme_worker_active_refresh(w, item);
    acme_result_reset(&res);
    if (acme_worker_cluster_record(w, w->cluster->etcd, p, item, &rec, &known, &res)
           != APR_SUCCESS || !acme_worker_cluster_newer(item, rec)) {
        return 0;
    }
    if (acme_worker_cluster_adopt(w, w->cluster->etcd, p, item, rec, known, &res)
        != APR_SUCCESS) {
        acme_worker_cluster_unstaged(w, p, domain, &res);
        return 0;
    }
    acme_worker_log(w, ACME_LOG_NOTICE, apr_psprintf(p, "ACME12030: %s: node %s published "
                            "certificate %s; staged here while watching, the run ends so that "
                            "it is served now", domain, rec->node ? rec->node : "?",
                            rec->serial));
    return 1;
}

/* One watch request. 0: go on; 1: end the watch (etcd is back, or its history is gone). */
static int acme_worker_cluster_watch_once(acme_worker_t *w, apr_pool_t *p, apr_int64_t *rev,
                                          apr_interval_time_t wait, int *staged)
{
    acme_worker_cluster_t *cl = w->cluster;
    apr_array_header_t *events = NULL;
    apr_int64_t next = 0;
    acme_result_t res;
    int i;

    acme_result_reset(&res);
    if (acme_etcd_watch(cl->etcd, p, "certs/", *rev, wait, &events, &next, &res)
        != APR_SUCCESS) {
        if (!next) {
            return 1;           /* compacted: the next run reads every record again */
        }
        if (cl->up) {
            acme_worker_cluster_down(w, acme_result_describe(&res, p));
            acme_worker_cluster_note(w);
        }
        acme_worker_cluster_pause(w, ACME_WORKER_CLUSTER_WATCH_WAIT);
        return 0;
    }
    if (!cl->up) {
        cl->up = 1;
        acme_worker_log(w, ACME_LOG_NOTICE, apr_psprintf(p, "ACME12029: cluster: etcd answers "
                        "again (%s); the run ends, the next one fetches what was published "
                        "meanwhile and orders what fell due", acme_etcd_endpoint(cl->etcd)));
        return 1;
    }
    *rev = next;
    for (i = 0; i < events->nelts && !acme_worker_orphaned(w); ++i) {
        *staged += acme_worker_cluster_seen(w, p, &APR_ARRAY_IDX(events, i, acme_etcd_event_t));
    }
    return 0;
}

/*
 * After its work, a run in a cluster stays (until its next planned run, at most an hour) and
 * watches etcd's certs/ from the revision read before its first fetch: what another node
 * publishes is staged here within seconds, then the run ends so that its parent activates it
 * (hot: no restart) and starts the next run. Not when this run staged anything itself: the
 * parent activates that when the run ends. Ends on the stop flag, a lost parent, a request or a
 * new generation (acme_worker_cluster_marks).
 */
void acme_worker_cluster_watch(acme_worker_t *w)
{
    acme_worker_cluster_t *cl = w->cluster;
    acme_worker_cluster_marks_t base, now_marks;
    apr_time_t now = apr_time_now(), until = now + ACME_WORKER_CLUSTER_LINGER;
    apr_interval_time_t wait;
    apr_pool_t *lp = NULL, *ip = NULL;
    apr_int64_t rev;
    int i, staged = 0, settling = 0;

    if (!cl || !cl->up || !cl->revision || w->abandoned || w->ondemand_staged
        || acme_worker_orphaned(w) || acme_worker_finish_requested()) {
        return;
    }
    /* item->staged too: the parent may have installed this run's set already (hot), and the
     * run must still end so that the next one plans that certificate's renewal. */
    for (i = 0; i < w->items->nelts; ++i) {
        const acme_worker_item_t *item = &APR_ARRAY_IDX(w->items, i, acme_worker_item_t);
        if (item->staged || acme_worker_staged_present(w, item->dom)) {
            return;
        }
    }
    until = w->next_run > 0 && w->next_run < until ? w->next_run : until;
    if (until - now < ACME_WORKER_CLUSTER_LINGER_MIN || apr_pool_create(&lp, w->pool)
        != APR_SUCCESS || apr_pool_create(&ip, lp) != APR_SUCCESS) {
        return;
    }
    acme_worker_cluster_marks(w, lp, &base);
    acme_worker_cluster_note(w);        /* the status has the cluster section while it watches */
    acme_worker_log(w, ACME_LOG_DEBUG, apr_psprintf(lp, "ACME12028: cluster: node %s watches "
                            "etcd for certificates other nodes publish until %s", cl->cfg->node,
                            acme_worker_time_text(lp, until)));
    rev = cl->revision + 1;
    while (!acme_worker_orphaned(w) && !acme_worker_finish_requested()
           && (now = apr_time_now()) < until) {
        apr_pool_clear(ip);
        acme_worker_cluster_marks(w, ip, &now_marks);
        wait = until - now < ACME_WORKER_CLUSTER_WATCH_WAIT ? until - now
                                                             : ACME_WORKER_CLUSTER_WATCH_WAIT;
        if (acme_worker_cluster_marks_differ(&base, &now_marks)
            || acme_worker_cluster_watch_once(w, ip, &rev, wait < apr_time_from_msec(200)
                                              ? apr_time_from_msec(200) : wait, &staged)) {
            /* a request, a new configuration, etcd back: the next run as soon as may be */
            acme_worker_note_next(w, apr_time_now());
            break;
        }
        if (staged && !settling) {
            settling = 1;
            until = apr_time_now() + ACME_WORKER_CLUSTER_SETTLE;
        }
    }
    apr_pool_destroy(lp);
}
