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
#include <apr_strings.h>

#include "acme_version.h"

module AP_MODULE_DECLARE_DATA acme_module;

#define ACME_UNSET (-1)
#define ACME_PARALLEL_MAX 256

typedef struct {
    const char *store_dir;      /* NULL: "acme" under the ServerRoot */
    int auto_restart;           /* ACME_UNSET, 0 or 1 */
    int parallel_orders;        /* ACME_UNSET or 1..ACME_PARALLEL_MAX */
} acme_srv_conf_t;

static void *acme_srv_conf_create(apr_pool_t *p, server_rec *s)
{
    acme_srv_conf_t *conf = apr_palloc(p, sizeof(*conf));

    *conf = (acme_srv_conf_t){
        .store_dir = NULL,
        .auto_restart = ACME_UNSET,
        .parallel_orders = ACME_UNSET,
    };
    return conf;
}

static void *acme_srv_conf_merge(apr_pool_t *p, void *basev, void *addv)
{
    const acme_srv_conf_t *base = basev;
    const acme_srv_conf_t *add = addv;
    acme_srv_conf_t *conf = apr_palloc(p, sizeof(*conf));

    *conf = (acme_srv_conf_t){
        .store_dir = add->store_dir ? add->store_dir : base->store_dir,
        .auto_restart = add->auto_restart != ACME_UNSET ? add->auto_restart : base->auto_restart,
        .parallel_orders = add->parallel_orders != ACME_UNSET ? add->parallel_orders
                                                               : base->parallel_orders,
    };
    return conf;
}

static acme_srv_conf_t *acme_srv_conf_get(server_rec *s)
{
    return ap_get_module_config(s->module_config, &acme_module);
}

static const char *acme_cmd_store_dir(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    if (!*arg) {
        return "ACMEStoreDir needs a directory path (relative paths are under the ServerRoot)";
    }
    acme_srv_conf_get(cmd->server)->store_dir = ap_server_root_relative(cmd->pool, arg);
    return NULL;
}

static const char *acme_cmd_auto_restart(cmd_parms *cmd, void *dc, int flag)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    acme_srv_conf_get(cmd->server)->auto_restart = flag;
    return NULL;
}

static const char *acme_cmd_parallel_orders(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end = NULL;
    apr_int64_t n;

    if (err) {
        return err;
    }
    n = apr_strtoi64(arg, &end, 10);
    if (!*arg || *end || n < 1 || n > ACME_PARALLEL_MAX) {
        return apr_psprintf(cmd->pool,
                            "ACMEParallelOrders '%s' is not a whole number from 1 to %d "
                            "(how many ACME orders the renewal worker runs at once)",
                            arg, ACME_PARALLEL_MAX);
    }
    acme_srv_conf_get(cmd->server)->parallel_orders = (int)n;
    return NULL;
}

static const command_rec acme_cmds[] = {
    AP_INIT_TAKE1("ACMEStoreDir", acme_cmd_store_dir, NULL, RSRC_CONF,
                  "directory of the certificate store (default: acme under the ServerRoot)"),
    AP_INIT_FLAG("ACMEAutoRestart", acme_cmd_auto_restart, NULL, RSRC_CONF,
                 "On: gracefully restart httpd by itself when new certificates are ready"),
    AP_INIT_TAKE1("ACMEParallelOrders", acme_cmd_parallel_orders, NULL, RSRC_CONF,
                  "how many ACME orders run at once (1-256, default 8)"),
    { .name = NULL }
};

static int acme_status_handler(request_rec *r)
{
    if (!r->handler || strcmp(r->handler, "acme-status") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    ap_rputs("{\"version\":\"" ACME_VERSION "\",\"domains\":[]}\n", r);
    return OK;
}

static void acme_register_hooks(apr_pool_t *p)
{
    ap_hook_handler(acme_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(acme) = {
    STANDARD20_MODULE_STUFF,
    NULL,                   /* per-directory config: none */
    NULL,
    acme_srv_conf_create,
    acme_srv_conf_merge,
    acme_cmds,
    acme_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
