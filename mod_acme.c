/*
 * mod_acme: httpd glue only. Directive table, hook registration and thin hook
 * bodies; everything else lives in src/.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <mpm_common.h>

#include "acme_config.h"
#include "acme_config_api.h"
#include "acme_config_ondemand.h"
#include "acme_config_cluster.h"
#include "acme_api_serve.h"
#include "acme_http.h"
#include "acme_modstatus.h"
#include "acme_serve.h"
#include "acme_serve_ondemand.h"
#include "acme_serve_hot.h"
#include "acme_serve_metrics.h"
#include "acme_supervise.h"

static int acme_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    int rv = acme_config_check(pconf, ptemp, s);
    int api = acme_config_api_check(pconf, s);
    int ondemand = acme_config_ondemand_check(pconf, s);
    int cluster = acme_config_cluster_check(pconf, s);

    return rv != OK ? rv : api != OK ? api : ondemand != OK ? ondemand : cluster;
}

static int acme_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s)
{
    return acme_serve_prepare(pconf, ptemp, s, acme_config_get(pconf));
}

/*
 * Last of all post_config hooks: the worker starts once mod_ssl has loaded every
 * certificate, so it does not compete with start-up. httpd reads its configuration
 * twice at start-up; the worker starts after the real pass only.
 */
static int acme_post_config_last(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                 server_rec *s)
{
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        acme_http_global_init();
        acme_supervise_start(pconf, s, acme_config_get(pconf));
    }
    return OK;
}

static void acme_child_init(apr_pool_t *p, server_rec *s)
{
    acme_supervise_child();
    acme_serve_ondemand_child_init(p, s);
    acme_serve_hot_child_init(p, s);
}

static void acme_register_hooks(apr_pool_t *p)
{
    /* Before mod_ssl (and mod_tls) load certificates: they ask for ours during their
     * post_config. */
    static const char *const before_tls[] = { "mod_ssl.c", "mod_tls.c", NULL };

    ap_hook_check_config(acme_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(acme_post_config, NULL, before_tls, APR_HOOK_MIDDLE);
    ap_hook_post_config(acme_post_config_last, NULL, NULL, APR_HOOK_REALLY_LAST);
    ap_hook_monitor(acme_supervise_monitor, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(acme_child_init, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_ssl_add_cert_files(acme_serve_add_cert_files, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_ssl_add_fallback_cert_files(acme_serve_add_fallback_cert_files, NULL, NULL,
                                        APR_HOOK_MIDDLE);
    /* Early: before rewrites, redirects and authentication can get in the CA's way. */
    ap_hook_post_read_request(acme_serve_http01, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(acme_serve_status, NULL, NULL, APR_HOOK_MIDDLE);
    /* mod_status's server-status page, when mod_status is loaded. */
    APR_OPTIONAL_HOOK(ap, status_hook, acme_modstatus_hook, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(acme_serve_metrics, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(acme_api_serve_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* TLS challenges: acme-tls/1 through ALPN, the certificate from the store. */
    ap_hook_protocol_propose(acme_serve_protocol_propose, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_protocol_switch(acme_serve_protocol_switch, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_protocol_get(acme_serve_protocol_get, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_ssl_answer_challenge(acme_serve_answer_challenge, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ssl, init_server, acme_serve_ssl_init_server, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_read_request(acme_serve_challenge_request, NULL, NULL, APR_HOOK_REALLY_FIRST);
}

AP_DECLARE_MODULE(acme) = {
    STANDARD20_MODULE_STUFF,
    NULL,                   /* per-directory config: none */
    NULL,
    acme_config_srv_create,
    acme_config_srv_merge,
    acme_config_cmds,
    acme_register_hooks,
    AP_MODULE_FLAG_ALWAYS_MERGE
};
