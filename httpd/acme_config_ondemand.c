/*
 * On-demand certificates (issue 19): the directives, their check, and the registry's approved
 * names turned into managed domains at start-up. See acme_config_ondemand.h.
 */
#include <string.h>
#include <strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_fnmatch.h>
#include <apr_strings.h>

#include "acme_config_int.h"
#include "acme_config_ondemand.h"
#include "acme_plan.h"
#include "acme_seal.h"
#include "acme_store.h"

APLOG_USE_MODULE(acme);

#define ACME_CONFIG_ONDEMAND_KEY "mod_acme-ondemand-conf"

acme_config_ondemand_t *acme_config_ondemand_get(apr_pool_t *pconf)
{
    acme_config_ondemand_t *od = NULL;

    apr_pool_userdata_get((void **)&od, ACME_CONFIG_ONDEMAND_KEY, pconf);
    if (!od) {
        od = apr_pcalloc(pconf, sizeof(*od));
        od->vhosts = apr_array_make(pconf, 2, sizeof(acme_config_ondemand_vhost_t *));
        od->main = (acme_config_ondemand_vhost_t){ .on = -1, .wait = -1 };
        od->max = -1;
        apr_pool_userdata_set(od, ACME_CONFIG_ONDEMAND_KEY, apr_pool_cleanup_null, pconf);
    }
    return od;
}

/* The settings of the context being read: a <VirtualHost>'s own, or the main server's. */
static acme_config_ondemand_vhost_t *acme_config_ondemand_ctx(cmd_parms *cmd)
{
    acme_config_ondemand_t *od = acme_config_ondemand_get(cmd->pool);
    acme_config_ondemand_vhost_t *v;
    int i;

    if (!cmd->server->is_virtual) {
        return &od->main;
    }
    for (i = 0; i < od->vhosts->nelts; ++i) {
        v = APR_ARRAY_IDX(od->vhosts, i, acme_config_ondemand_vhost_t *);
        if (v->s == cmd->server) {
            return v;
        }
    }
    v = apr_pcalloc(cmd->pool, sizeof(*v));
    *v = (acme_config_ondemand_vhost_t){ .s = cmd->server, .on = -1, .wait = -1 };
    APR_ARRAY_PUSH(od->vhosts, acme_config_ondemand_vhost_t *) = v;
    return v;
}

const char *acme_config_ondemand_cmd_on(cmd_parms *cmd, void *dc, int flag)
{
    acme_config_ondemand_vhost_t *v;

    (void)dc;
    if (!cmd->server->is_virtual) {
        return "ACMEOnDemand belongs in the <VirtualHost> that catches the names (a ServerAlias "
               "with a wildcard, or the address's default SSL virtual host)";
    }
    v = acme_config_ondemand_ctx(cmd);
    v->on = flag;
    v->file = cmd->directive->filename;
    v->line = cmd->directive->line_num;
    return NULL;
}

const char *acme_config_ondemand_cmd_ask(cmd_parms *cmd, void *dc, const char *arg)
{
    (void)dc;
    if (strncasecmp(arg, "http://", 7) && strncasecmp(arg, "https://", 8)) {
        return apr_psprintf(cmd->pool, "ACMEOnDemandAsk: '%s' is not an http:// or https:// URL "
                            "(e.g. http://127.0.0.1:9000/allowed; it is asked GET ?domain=NAME "
                            "and answers 200 for yes)", arg);
    }
    acme_config_ondemand_ctx(cmd)->ask = arg;
    return NULL;
}

const char *acme_config_ondemand_cmd_wait(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_interval_time_t t = 0;
    const char *reason = NULL;

    (void)dc;
    if (strcmp(arg, "0") && (acme_plan_duration_parse(arg, &t, &reason, cmd->pool) != APR_SUCCESS
                             || t > ACME_ONDEMAND_WAIT_MAX)) {
        return apr_psprintf(cmd->pool, "ACMEOnDemandWait: '%s' is not a wait of 0 to 60 seconds "
                            "(e.g. 10s; 0 never holds a handshake)", arg);
    }
    acme_config_ondemand_ctx(cmd)->wait = t;
    return NULL;
}

const char *acme_config_ondemand_cmd_rate(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_config_ondemand_t *od = acme_config_ondemand_get(cmd->pool);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY), *why = NULL;

    (void)dc;
    if (err) {
        return err;
    }
    if (acme_ondemand_rate_parse(arg, &od->rate, &why, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ACMEOnDemandRate: '%s': %s", arg, why);
    }
    return NULL;
}

const char *acme_config_ondemand_cmd_max(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_config_ondemand_t *od = acme_config_ondemand_get(cmd->pool);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end = NULL;
    long n = strtol(arg, &end, 10);

    (void)dc;
    if (err) {
        return err;
    }
    if (!*arg || *end || n < 0 || n > 1000000) {
        return apr_psprintf(cmd->pool, "ACMEOnDemandMax: '%s' is not a number of domains from 0 "
                            "(no cap) to 1000000", arg);
    }
    od->max = (int)n;
    return NULL;
}

const acme_config_ondemand_vhost_t *acme_config_ondemand_of(const acme_config_ondemand_t *od,
                                                            const server_rec *s)
{
    int i;

    for (i = 0; od->worker && i < od->vhosts->nelts; ++i) {
        const acme_config_ondemand_vhost_t *v =
            APR_ARRAY_IDX(od->vhosts, i, const acme_config_ondemand_vhost_t *);
        if (v->s == s && v->on == 1) {
            return v;
        }
    }
    return NULL;
}

apr_interval_time_t acme_config_ondemand_wait(const acme_config_ondemand_t *od,
                                              const acme_config_ondemand_vhost_t *v)
{
    return v->wait >= 0 ? v->wait : od->main.wait >= 0 ? od->main.wait
                                                       : ACME_ONDEMAND_WAIT_DEFAULT;
}

/* ServerName and ServerAlias of s, wildcards as written: the names its site is asked for. */
static apr_array_header_t *acme_config_ondemand_patterns(apr_pool_t *p, const server_rec *s)
{
    apr_array_header_t *pats = apr_array_make(p, 4, sizeof(const char *));
    int i;

    if (s->server_hostname) {
        APR_ARRAY_PUSH(pats, const char *) = s->server_hostname;
    }
    for (i = 0; s->names && i < s->names->nelts; ++i) {
        APR_ARRAY_PUSH(pats, const char *) = APR_ARRAY_IDX(s->names, i, const char *);
    }
    for (i = 0; s->wild_names && i < s->wild_names->nelts; ++i) {
        APR_ARRAY_PUSH(pats, const char *) = APR_ARRAY_IDX(s->wild_names, i, const char *);
    }
    return pats;
}

/* The policy of an ACMEDomain declared in s: vhost < server < defaults; http-01 unless set. */
static acme_policy_t *acme_config_ondemand_policy(apr_pool_t *p, const server_rec *s,
                                                  const acme_conf_t *conf)
{
    acme_policy_t *pol = apr_pcalloc(p, sizeof(*pol));

    acme_policy_init(pol, p);
    acme_policy_inherit(pol, &acme_config_srv(s)->policy);
    acme_policy_inherit(pol, &conf->policy);
    acme_policy_defaults(pol, p);
    if (!pol->challenges || pol->challenges->nelts == 0) {
        pol->challenges = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(pol->challenges, const char *) = "http-01";
    }
    return pol;
}

static int acme_config_ondemand_problem(server_rec *s, const acme_config_ondemand_vhost_t *v,
                                        const char *msg_id, const char *what)
{
    /* msgid: from caller */
    ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, s, "%s: mod_acme: ACMEOnDemand on "
                 "(line %d of %s): %s", msg_id, v->line, v->file ? v->file : "?", what);
    return 1;
}

/* Checks one vhost with ACMEOnDemand on; 0 when it is fit, adding its site. */
static int acme_config_ondemand_site(apr_pool_t *pconf, server_rec *s, acme_config_ondemand_t *od,
                                     const acme_config_ondemand_vhost_t *v)
{
    const acme_conf_t *conf = acme_config_get(pconf);
    const char *ask = v->ask ? v->ask : od->main.ask;
    acme_worker_ondemand_site_t *site;

    if (!acme_config_vhost_is_ssl(pconf, v->s)) {
        return acme_config_ondemand_problem(s, v, "ACME09510", "the virtual host does not have "
                                            "SSLEngine on; put ACMEOnDemand in the SSL "
                                            "<VirtualHost> that catches the names");
    }
    if (!ask) {
        return acme_config_ondemand_problem(s, v, "ACME09511", "ACMEOnDemandAsk is missing: "
                                            "without an endpoint that approves each name, any "
                                            "name a client sends would be ordered; add "
                                            "'ACMEOnDemandAsk http://127.0.0.1:PORT/PATH'");
    }
    site = apr_array_push((apr_array_header_t *)od->worker->sites);
    *site = (acme_worker_ondemand_site_t){
        .ask_url = ask, .patterns = acme_config_ondemand_patterns(pconf, v->s),
        .policy = acme_config_ondemand_policy(pconf, v->s, conf),
    };
    APR_ARRAY_PUSH(od->servers, server_rec *) = v->s;
    return 0;
}

int acme_config_ondemand_check(apr_pool_t *pconf, server_rec *s)
{
    acme_config_ondemand_t *od = acme_config_ondemand_get(pconf);
    int i, errors = 0, any = 0;

    for (i = 0; i < od->vhosts->nelts; ++i) {
        any |= APR_ARRAY_IDX(od->vhosts, i, acme_config_ondemand_vhost_t *)->on == 1;
    }
    if (!any || od->worker) {
        return OK;
    }
    if (acme_config_get(pconf)->activation == ACME_ACTIVATION_RESTART) {
        ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, s, "ACME09513: mod_acme: "
                     "ACMEOnDemand needs ACMEActivation hot: no virtual host names an on-demand "
                     "domain, so only the shared memory can serve its certificate; remove "
                     "'ACMEActivation restart' or ACMEOnDemand");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    od->worker = apr_pcalloc(pconf, sizeof(*od->worker));
    od->worker->sites = apr_array_make(pconf, 2, sizeof(acme_worker_ondemand_site_t));
    od->servers = apr_array_make(pconf, 2, sizeof(server_rec *));
    od->worker->policy = (acme_ondemand_policy_t){
        .max_domains = od->max >= 0 ? od->max : ACME_ONDEMAND_MAX_DEFAULT,
        .rate = od->rate.count ? od->rate
                               : (acme_ondemand_rate_t){ 10, apr_time_from_sec(60) },
    };
    od->worker->ask_timeout = ACME_ONDEMAND_ASK_TIMEOUT;
    for (i = 0; i < od->vhosts->nelts; ++i) {
        const acme_config_ondemand_vhost_t *v =
            APR_ARRAY_IDX(od->vhosts, i, const acme_config_ondemand_vhost_t *);
        if (v->on == 1) {
            errors += acme_config_ondemand_site(pconf, s, od, v);
        }
    }
    if (errors) {
        od->worker = NULL;
    }
    return errors ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

static acme_ondemand_registry_t *acme_config_ondemand_registry(apr_pool_t *ptemp, server_rec *s,
                                                               const acme_conf_t *conf)
{
    const unsigned char *proof_key = NULL;
    acme_ondemand_registry_t *reg = NULL;
    json_t *doc = NULL;
    acme_result_t res;
    apr_status_t rv;

    acme_result_reset(&res);
    rv = acme_seal_proof_key_load(ptemp, conf->store_dir, &proof_key, &res);
    if (rv == APR_SUCCESS) {
        rv = acme_store_read_json(ptemp, apr_pstrcat(ptemp, conf->store_dir, "/" ACME_STORE_JOBS
                                                     "/" ACME_ONDEMAND_FILE, NULL), &doc, &res);
    }
    if (rv == APR_SUCCESS) {
        rv = acme_ondemand_registry_read(ptemp, doc, proof_key, &reg, &res);
    }
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "ACME09512: mod_acme: on-demand: the registry "
                     "of approved names cannot be used (%s); names on-demand certified before "
                     "are asked for again at their next handshake",
                     acme_result_describe(&res, ptemp));
    }
    return reg;
}

acme_domain_t *acme_config_ondemand_domain(apr_pool_t *p, const acme_config_ondemand_t *od,
                                           const char *name)
{
    acme_domain_t *dom;
    const char *why = NULL;
    int site;

    if (!od->worker) {
        return NULL;
    }
    dom = acme_domain_make(p, "(on-demand)", 0);
    if (acme_domain_add_name(p, dom, name, &why) != APR_SUCCESS) {
        return NULL;
    }
    site = acme_worker_ondemand_site_find(od->worker, name);
    dom->policy = *APR_ARRAY_IDX(od->worker->sites, site, acme_worker_ondemand_site_t).policy;
    dom->ondemand = 1;
    return dom;
}

int acme_config_ondemand_domains(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                 acme_conf_t *conf)
{
    const acme_config_ondemand_t *od = acme_config_ondemand_get(pconf);
    acme_ondemand_registry_t *reg;
    apr_array_header_t *names;
    int i, added = 0;

    if (!od->worker || !(reg = acme_config_ondemand_registry(ptemp, s, conf))) {
        return 0;
    }
    names = acme_ondemand_approved(reg, ptemp);
    for (i = 0; i < names->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        acme_domain_t *dom;
        if (conf->index && acme_names_index_get(conf->index, name)) {
            continue;           /* declared since: the ACMEDomain wins */
        }
        if (!(dom = acme_config_ondemand_domain(pconf, od, name))) {
            continue;
        }
        APR_ARRAY_PUSH(conf->domains, acme_domain_t *) = dom;
        if (conf->index) {
            acme_names_index_add(conf->index, dom->name, dom, NULL);
        }
        ++added;
    }
    return added;
}
