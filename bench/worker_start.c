/*
 * bench: the renewal worker's start-up (reading every domain's certificate and job, then
 * planning) against N domains that each have a certificate in the store. No CA is contacted
 * (ARI off, no domain is due: the certificates are valid for 60 days). Prints seconds per phase;
 * linear growth with N is the target. Built and run by bench/worker_start.sh.
 */
#include <stdio.h>
#include <stdlib.h>

#include "acme_worker.c"
#include "acme_worker_account.c"
#include "acme_worker_persist.c"

static void sh(const char *cmd)
{
    if (system(cmd) != 0) {
        fprintf(stderr, "failed: %s\n", cmd);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    const char *dir = argc > 2 ? argv[2] : "/tmp/acme-bench-worker";
    apr_array_header_t *domains;
    acme_worker_config_t cfg;
    acme_worker_t w;
    acme_result_t res;
    apr_pool_t *p;
    const char *seal = NULL, *spec_name;
    apr_time_t t0, t1, t2;

    apr_initialize();
    apr_pool_create(&p, NULL);
    acme_result_reset(&res);
    sh(apr_psprintf(p, "rm -rf %s && mkdir -p %s && cd %s && openssl req -x509 -newkey ec "
                    "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=bench.example "
                    "-days 60 -keyout key.pem -out cert.pem 2>/dev/null", dir, dir, dir));
    domains = apr_array_make(p, n, sizeof(acme_domain_t *));
    for (int i = 0; i < n; ++i) {
        acme_domain_t *dom = acme_domain_make(p, "bench", i + 1);
        const char *reason = NULL;

        acme_domain_add_name(p, dom, apr_psprintf(p, "d%d.bench.example", i), &reason);
        dom->policy.ca_urls = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(dom->policy.ca_urls, const char *) = "https://ca.bench.example/dir";
        acme_policy_defaults(&dom->policy, p);
        APR_ARRAY_PUSH(domains, acme_domain_t *) = dom;
    }
    spec_name = acme_crypto_keyspec_name(&APR_ARRAY_IDX(
        APR_ARRAY_IDX(domains, 0, acme_domain_t *)->policy.key_specs, 0, acme_keyspec_t));
    sh(apr_psprintf(p, "cd %s && for i in $(seq 0 %d); do d=store/domains/d$i.bench.example; "
                    "mkdir -p $d && cp cert.pem $d/pubcert.%s.pem && cp key.pem $d/privkey.%s.pem;"
                    " done", dir, n - 1, spec_name, spec_name));
    cfg = (acme_worker_config_t){ .store_dir = apr_pstrcat(p, dir, "/store", NULL),
                                  .domains = domains, .parallel_orders = 1, .ari_off = 1 };
    if (acme_seal_keypair_ensure(p, cfg.store_dir, &seal, &res) != APR_SUCCESS) {
        fprintf(stderr, "seal: %s\n", res.message);
        return 1;
    }
    w = (acme_worker_t){ .cfg = &cfg, .pool = p, .cas = apr_hash_make(p),
                         .items = apr_array_make(p, n, sizeof(acme_worker_item_t)),
                         .due = apr_array_make(p, n, sizeof(acme_worker_item_t *)),
                         .metrics = acme_metrics_tally_make(p) };
    apr_thread_mutex_create(&w.lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (acme_store_open(p, cfg.store_dir, &w.store, &res) != APR_SUCCESS) {
        fprintf(stderr, "store: %s\n", res.message);
        return 1;
    }
    t0 = apr_time_now();
    if (acme_worker_prepare(&w, &res) != APR_SUCCESS) {
        fprintf(stderr, "prepare: %s\n", res.message);
        return 1;
    }
    t1 = apr_time_now();
    acme_worker_plan(&w, apr_time_from_sec(3600));
    t2 = apr_time_now();
    printf("domains %6d  prepare %7.2f s  plan %7.2f s  due %d\n", n,
           (double)(t1 - t0) / APR_USEC_PER_SEC, (double)(t2 - t1) / APR_USEC_PER_SEC,
           w.due->nelts);
    return 0;
}
