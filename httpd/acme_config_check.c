/*
 * The whole-configuration check httpd runs after reading every directive (post_config, and
 * `apachectl configtest`): managed names against the virtual hosts that serve them, names
 * declared twice, bindings, profiles, proxies, ACMEMembers, and which challenge types each
 * domain can be answered with. Every problem names the file and line to fix.
 */
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <ap_listen.h>
#include <util_cfgtree.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_fnmatch.h>

#include "acme_config.h"
#include "acme_config_api.h"
#include "acme_crypto.h"
#include "acme_plan.h"
#include "acme_command.h"
#include "acme_dns01.h"
#include "acme_eab.h"
#include "acme_profile.h"
#include "acme_seal.h"
#include "acme_store.h"
#include "acme_proxy.h"
#include "acme_renewal.h"
#include "acme_config_int.h"

APLOG_USE_MODULE(acme);

typedef struct {
    apr_pool_t *p;
    server_rec *s;
    int errors;
} acme_config_checker_t;

/* msg_id: each problem has its own (docs/messages.md). */
static void acme_config_problem(acme_config_checker_t *ck, const acme_domain_t *dom,
                                const char *msg_id, const char *what)
{
    /* msgid: from caller */
    ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, ck->s,
                 "%s: mod_acme: %s (ACMEDomain %s, line %d of %s)", msg_id, what, dom->name,
                 dom->defined_line, dom->defined_in ? dom->defined_in : "?");
    ck->errors++;
}

/* "SSLEngine on" per <VirtualHost> (keyed "file:line"), and the server-wide default. */
static void acme_config_scan_ssl(apr_pool_t *p, const ap_directive_t *node, apr_hash_t *vhosts,
                                 const char *vhost_key, int *global_ssl)
{
    for (; node; node = node->next) {
        if (!strcasecmp(node->directive, "<VirtualHost")) {
            const char *key = apr_psprintf(p, "%s:%d", node->filename, node->line_num);
            acme_config_scan_ssl(p, node->first_child, vhosts, key, global_ssl);
            continue;
        }
        if (!strcasecmp(node->directive, "SSLEngine")) {
            int on = node->args && (!strncasecmp(node->args, "on", 2)
                                    || !strncasecmp(node->args, "optional", 8));
            if (vhost_key) {
                apr_hash_set(vhosts, vhost_key, APR_HASH_KEY_STRING, on ? "on" : "off");
            }
            else {
                *global_ssl = on;
            }
            continue;
        }
        if (node->first_child) {
            acme_config_scan_ssl(p, node->first_child, vhosts, vhost_key, global_ssl);
        }
    }
}

static int acme_config_server_is_ssl(apr_pool_t *p, const server_rec *s, apr_hash_t *vhosts,
                                     int global_ssl)
{
    const char *state;

    if (!s->is_virtual) {
        return global_ssl;
    }
    state = apr_hash_get(vhosts, apr_psprintf(p, "%s:%u", s->defn_name, s->defn_line_number),
                         APR_HASH_KEY_STRING);
    return state ? !strcmp(state, "on") : global_ssl;
}

int acme_config_vhost_is_ssl(apr_pool_t *p, const server_rec *s)
{
    apr_hash_t *vhosts = apr_hash_make(p);
    int global_ssl = 0;

    acme_config_scan_ssl(p, ap_conftree, vhosts, NULL, &global_ssl);
    return acme_config_server_is_ssl(p, s, vhosts, global_ssl);
}

static int acme_config_server_has_name(const server_rec *s, const char *name)
{
    int i;

    if (s->server_hostname && !strcasecmp(s->server_hostname, name)) {
        return 1;
    }
    for (i = 0; s->names && i < s->names->nelts; ++i) {
        if (!strcasecmp(APR_ARRAY_IDX(s->names, i, const char *), name)) {
            return 1;
        }
    }
    for (i = 0; s->wild_names && i < s->wild_names->nelts; ++i) {
        const char *pattern = APR_ARRAY_IDX(s->wild_names, i, const char *);
        if (!strcasecmp(pattern, name)
            || apr_fnmatch(pattern, name, APR_FNM_CASE_BLIND) == APR_SUCCESS) {
            return 1;
        }
    }
    return 0;
}

/*
 * httpd keeps ServerAlias patterns apart (wild_names). "*.example.org" is a name a certificate
 * can hold (validated by dns-01, checked later); other patterns ("www.ex?mple.org", "*") match
 * names no certificate can list, so the admin has to name them.
 */
static void acme_config_vhost_wild_aliases(acme_config_checker_t *ck, server_rec *vs,
                                           acme_domain_t *dom)
{
    const char *reason = NULL;
    int i;

    for (i = 0; vs->wild_names && i < vs->wild_names->nelts; ++i) {
        const char *alias = APR_ARRAY_IDX(vs->wild_names, i, const char *);
        if (acme_domain_add_name(ck->p, dom, alias, &reason) != APR_SUCCESS) {
            acme_config_problem(ck, dom, "ACME00110", apr_psprintf(ck->p, "ServerAlias %s: %s; a "
                                "certificate can only hold a wildcard of the form *.example.org: "
                                "list the names to certify with ACMEDomain instead",
                                alias, reason));
        }
    }
}

static acme_domain_t *acme_config_vhost_domain(acme_config_checker_t *ck, server_rec *vs,
                                               acme_srv_conf_t *sc)
{
    acme_domain_t *dom = acme_domain_make(ck->p, sc->manage_file, sc->manage_line);
    const char *reason = NULL;
    int i;

    dom->from_vhost = 1;
    if (!vs->server_hostname
        || acme_domain_add_name(ck->p, dom, vs->server_hostname, &reason) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, ck->s,
                     "ACME00101: mod_acme: ACMEDomain without names (line %d of %s) needs the "
                     "virtual host's ServerName to be a host name: %s", sc->manage_line,
                     sc->manage_file, reason ? reason : "the virtual host has no ServerName");
        ck->errors++;
        return NULL;
    }
    for (i = 0; vs->names && i < vs->names->nelts; ++i) {
        const char *alias = APR_ARRAY_IDX(vs->names, i, const char *);
        if (acme_domain_add_name(ck->p, dom, alias, &reason) != APR_SUCCESS) {
            acme_config_problem(ck, dom, "ACME00111", apr_psprintf(ck->p, "ServerAlias %s: %s",
                                                                   alias, reason));
        }
    }
    acme_config_vhost_wild_aliases(ck, vs, dom);
    return dom;
}

static void acme_config_collect_vhost_domains(acme_config_checker_t *ck, acme_conf_t *conf)
{
    server_rec *vs;

    for (vs = ck->s->next; vs; vs = vs->next) {
        acme_srv_conf_t *sc = acme_config_srv(vs);
        acme_domain_t *dom;
        if (!sc->manage_vhost) {
            continue;
        }
        dom = acme_config_vhost_domain(ck, vs, sc);
        if (dom) {
            APR_ARRAY_PUSH(conf->domains, acme_domain_t *) = dom;
            APR_ARRAY_PUSH(conf->declarations, acme_config_decl_t) = (acme_config_decl_t){
                .domain = dom, .server = vs,
            };
        }
    }
}

static void acme_config_resolve_policies(acme_config_checker_t *ck, acme_conf_t *conf)
{
    int i;

    for (i = 0; i < conf->declarations->nelts; ++i) {
        acme_config_decl_t *decl = &APR_ARRAY_IDX(conf->declarations, i, acme_config_decl_t);
        if (decl->server->is_virtual) {
            acme_policy_inherit(&decl->domain->policy, &acme_config_srv(decl->server)->policy);
        }
        acme_policy_inherit(&decl->domain->policy, &conf->policy);
        acme_policy_defaults(&decl->domain->policy, ck->p);
    }
}

/*
 * The position of every ACMEDomain directive in reading order ("file:line" -> 1, 2, ...):
 * Includes sit in the tree where they were read, while the domain list holds explicit domains
 * first and <VirtualHost> domains in httpd's (reversed) vhost order.
 */
static void acme_config_decl_order(apr_pool_t *p, const ap_directive_t *node, apr_hash_t *seq,
                                   int *n)
{
    for (; node; node = node->next) {
        if (!strcasecmp(node->directive, "ACMEDomain")
            || !strcasecmp(node->directive, "<ACMEDomain")) {
            int *pos = apr_palloc(p, sizeof(*pos));
            *pos = ++*n;
            apr_hash_set(seq, apr_psprintf(p, "%s:%d", node->filename, node->line_num),
                         APR_HASH_KEY_STRING, pos);
        }
        acme_config_decl_order(p, node->first_child, seq, n);
    }
}

static int acme_config_decl_pos(apr_pool_t *p, apr_hash_t *seq, const acme_domain_t *dom)
{
    const int *pos = apr_hash_get(seq, apr_psprintf(p, "%s:%d", dom->defined_in,
                                                    dom->defined_line), APR_HASH_KEY_STRING);
    return pos ? *pos : 0;
}

/* A name in two domains: the error stands on the later declaration, the one to edit. */
static void acme_config_name_clash(acme_config_checker_t *ck, apr_hash_t *seq, const char *name,
                                   const acme_domain_t *dom, const acme_domain_t *other)
{
    if (acme_config_decl_pos(ck->p, seq, dom) < acme_config_decl_pos(ck->p, seq, other)) {
        const acme_domain_t *swap = dom;
        dom = other;
        other = swap;
    }
    acme_config_problem(ck, dom, "ACME00112", apr_psprintf(ck->p,
        "%s is already managed by ACMEDomain %s (line %d of %s); remove it from this "
        "declaration, since a name can belong to one managed domain only", name, other->name,
        other->defined_line, other->defined_in));
}

static void acme_config_index_names(acme_config_checker_t *ck, acme_conf_t *conf)
{
    apr_hash_t *seq = apr_hash_make(ck->p);
    int i, j, n = 0;

    acme_config_decl_order(ck->p, ap_conftree, seq, &n);
    for (i = 0; i < conf->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, acme_domain_t *);
        for (j = 0; j < dom->idents->nelts; ++j) {
            const char *name = APR_ARRAY_IDX(dom->idents, j, acme_ident_t).value;
            void *other = NULL;
            if (acme_names_index_add(conf->index, name, dom, &other) != APR_SUCCESS) {
                acme_config_name_clash(ck, seq, name, dom, other);
            }
        }
    }
}

/*
 * One account per CA, so one binding per CA: two domains at the same CA with different key ids
 * cannot both be honoured (a domain without a binding shares the bound account).
 */
static void acme_config_check_bindings(acme_config_checker_t *ck, acme_conf_t *conf)
{
    apr_hash_t *by_ca = apr_hash_make(ck->p);
    int i, j;

    for (i = 0; i < conf->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, acme_domain_t *);
        if (!dom->policy.eab_kid || !*dom->policy.eab_kid) {
            continue;
        }
        for (j = 0; j < dom->policy.ca_urls->nelts; ++j) {
            const char *ca = APR_ARRAY_IDX(dom->policy.ca_urls, j, const char *);
            const acme_domain_t *first = apr_hash_get(by_ca, ca, APR_HASH_KEY_STRING);
            if (!first) {
                apr_hash_set(by_ca, ca, APR_HASH_KEY_STRING, dom);
            }
            else if (strcmp(first->policy.eab_kid, dom->policy.eab_kid)) {
                acme_config_problem(ck, dom, "ACME00113", apr_psprintf(ck->p,
                    "ACMEExternalAccountBinding: the account at %s is already bound with key id "
                    "%s for ACMEDomain %s (line %d of %s); one account per CA takes one "
                    "binding: use the same key id, or another CA", ca, first->policy.eab_kid,
                    first->name, first->defined_line, first->defined_in));
            }
        }
    }
}

/* The CA's directory as the worker last saw it (acme_profile_cache_read), or NULL. */
static const acme_client_meta_t *acme_config_cached_meta(acme_config_checker_t *ck,
                                                         const char *store_dir,
                                                         const unsigned char *proof_key,
                                                         const char *ca_url)
{
    acme_client_meta_t *meta = apr_pcalloc(ck->p, sizeof(*meta));
    const char *path = apr_pstrcat(ck->p, store_dir, "/" ACME_STORE_JOBS "/",
                                   acme_profile_cache_file(ck->p, ca_url), NULL);
    apr_time_t fetched = 0;
    json_t *json = NULL;
    acme_result_t res;
    apr_status_t rv;

    acme_result_reset(&res);
    if (acme_store_read_json(ck->p, path, &json, &res) != APR_SUCCESS) {
        return NULL;
    }
    /* json belongs to ck->p (acme_store_read_json registered its release there). */
    rv = acme_profile_cache_read(ck->p, proof_key, ca_url, json, meta, &fetched, &res);
    return rv == APR_SUCCESS ? meta : NULL;
}

/*
 * ACMEProfile against the profiles each CA offered when the worker last fetched its directory:
 * an unknown name or a mandatory profile the CA lacks fails an admin's configtest rather than
 * the next order. Without a cached directory (first start, another CA) the worker checks at the
 * first order. Only in an admin's "httpd -t": a running server (and the configtest it runs
 * before its own restarts) must go on restarting to serve other domains' new certificates when a
 * CA drops a profile - the domain concerned keeps its certificate and its order fails with the
 * same message.
 */
static void acme_config_check_profiles(acme_config_checker_t *ck, acme_conf_t *conf)
{
    const unsigned char *proof_key = NULL;
    acme_result_t res;
    int i, j;

    if (ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_CONFIG_TEST
        || ap_exists_config_define(ACME_CONFIG_RESTART_CHECK)) {
        return;
    }
    acme_result_reset(&res);
    if (acme_seal_proof_key_load(ck->p, conf->store_dir, &proof_key, &res) != APR_SUCCESS) {
        return;     /* not root, or never started: nothing cached can be trusted */
    }
    for (i = 0; i < conf->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, acme_domain_t *);
        for (j = 0; dom->policy.ca_urls && j < dom->policy.ca_urls->nelts; ++j) {
            const char *ca = APR_ARRAY_IDX(dom->policy.ca_urls, j, const char *);
            const acme_client_meta_t *meta = acme_config_cached_meta(ck, conf->store_dir,
                                                                     proof_key, ca);
            acme_profile_request_t req = {
                .ca_url = ca, .wanted = dom->policy.profile,
                .mandatory = dom->policy.profile_mandatory,
                .idents = (const acme_ident_t *)dom->idents->elts,
                .n_idents = dom->idents->nelts,
            };
            const char *chosen = NULL;
            acme_result_reset(&res);
            if (meta && acme_profile_choose(ck->p, &req, meta, &chosen, NULL, &res)
                        != APR_SUCCESS) {
                acme_config_problem(ck, dom, "ACME00114", apr_pstrcat(ck->p, res.message, " (as "
                                    "the CA's directory said at the last order)", NULL));
            }
        }
    }
}

/*
 * A CA is reached one way: its account, nonces and clients are shared by every domain using it
 * (and a2acme looks its proxy up by CA), so two domains must not name two proxies for one CA.
 */
static void acme_config_check_proxies(acme_config_checker_t *ck, acme_conf_t *conf)
{
    apr_hash_t *by_ca = apr_hash_make(ck->p);
    int i, j;

    for (i = 0; i < conf->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, acme_domain_t *);
        for (j = 0; j < dom->policy.ca_urls->nelts; ++j) {
            const char *ca = APR_ARRAY_IDX(dom->policy.ca_urls, j, const char *);
            const char *mine = acme_proxy_for(dom->policy.proxies, ca), *theirs;
            const acme_domain_t *first = apr_hash_get(by_ca, ca, APR_HASH_KEY_STRING);
            if (!first) {
                apr_hash_set(by_ca, ca, APR_HASH_KEY_STRING, dom);
                continue;
            }
            theirs = acme_proxy_for(first->policy.proxies, ca);
            if ((mine || theirs) && (!mine || !theirs || strcmp(mine, theirs))) {
                acme_config_problem(ck, dom, "ACME00115", apr_psprintf(ck->p,
                    "ACMEProxy: %s is reached through %s for ACMEDomain %s (line %d of %s) but "
                    "through %s here; one CA is reached one way: give both the same ACMEProxy, "
                    "e.g. in the server config with the CA as second argument", ca,
                    acme_proxy_redact(ck->p, theirs), first->name, first->defined_line,
                    first->defined_in, acme_proxy_redact(ck->p, mine)));
            }
        }
    }
}

/*
 * An ACMEProxy line naming a CA no domain uses is most likely a typo in the URL (a trailing
 * slash, the wrong path): that CA would then be reached directly. Warned about, once a line.
 */
static void acme_config_warn_unused_proxies(acme_config_checker_t *ck, acme_conf_t *conf)
{
    apr_hash_t *used = apr_hash_make(ck->p), *warned = apr_hash_make(ck->p);
    int i, j;

    for (i = 0; i < conf->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, acme_domain_t *);
        for (j = 0; j < dom->policy.ca_urls->nelts; ++j) {
            apr_hash_set(used, APR_ARRAY_IDX(dom->policy.ca_urls, j, const char *),
                         APR_HASH_KEY_STRING, "");
        }
    }
    for (i = 0; i < conf->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, acme_domain_t *);
        for (j = 0; dom->policy.proxies && j < dom->policy.proxies->nelts; ++j) {
            const acme_proxy_rule_t *r = &APR_ARRAY_IDX(dom->policy.proxies, j,
                                                        acme_proxy_rule_t);
            if (!r->ca_url || apr_hash_get(used, r->ca_url, APR_HASH_KEY_STRING)
                || apr_hash_get(warned, &r, sizeof(r))) {
                continue;
            }
            apr_hash_set(warned, apr_pmemdup(ck->p, &r, sizeof(r)), sizeof(r), "");
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ck->s, "ACME00102: mod_acme: ACMEProxy %s "
                         "%s: no domain uses that CA (check the URL against "
                         "ACMECertificateAuthority)",
                         acme_proxy_redact(ck->p, r->url), r->ca_url);
        }
    }
}

/*
 * The domains whose <ACMEDomain> section sets ACMEMembers itself, taken before the server-wide
 * settings are inherited: for that certificate the section's word is the last.
 */
static apr_hash_t *acme_config_members_own(apr_pool_t *p, const acme_conf_t *conf)
{
    apr_hash_t *own = apr_hash_make(p);
    int i;

    for (i = 0; i < conf->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, acme_domain_t *);
        if (dom->policy.members_auto >= 0) {
            apr_hash_set(own, dom->name, APR_HASH_KEY_STRING, dom);
        }
    }
    return own;
}

/* ACMEMembers of a vhost's aliases: its own setting, unless the domain's section has one. */
static int acme_config_members_auto(const acme_domain_t *dom, const server_rec *vs,
                                    apr_hash_t *own)
{
    int here = vs->is_virtual ? acme_config_srv(vs)->policy.members_auto : -1;

    if (here < 0 || apr_hash_get(own, dom->name, APR_HASH_KEY_STRING) == dom) {
        return dom->policy.members_auto;
    }
    return here;
}

/* ACMEMembers auto: a vhost whose ServerName is managed brings its aliases along. */
static void acme_config_add_members(acme_config_checker_t *ck, acme_conf_t *conf,
                                    apr_hash_t *own)
{
    server_rec *vs;
    int i;

    for (vs = ck->s; vs; vs = vs->next) {
        acme_domain_t *dom = vs->server_hostname
            ? acme_names_index_get(conf->index, vs->server_hostname) : NULL;
        if (!dom || !acme_config_members_auto(dom, vs, own)) {
            continue;
        }
        for (i = 0; vs->names && i < vs->names->nelts; ++i) {
            const char *alias = APR_ARRAY_IDX(vs->names, i, const char *);
            const char *reason = NULL;
            void *other = NULL;
            acme_ident_t ident;
            if (acme_names_index_get(conf->index, alias)
                || acme_names_parse(ck->p, alias, &ident, &reason) != APR_SUCCESS
                || acme_names_index_add(conf->index, ident.value, dom, &other) != APR_SUCCESS) {
                continue;
            }
            APR_ARRAY_PUSH(dom->idents, acme_ident_t) = ident;
        }
    }
}

static void acme_config_check_served(acme_config_checker_t *ck, acme_conf_t *conf)
{
    apr_hash_t *ssl_vhosts = apr_hash_make(ck->p);
    int global_ssl = 0, i, j;
    server_rec *vs;

    acme_config_scan_ssl(ck->p, ap_conftree, ssl_vhosts, NULL, &global_ssl);
    for (i = 0; i < conf->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, acme_domain_t *);
        for (j = 0; j < dom->idents->nelts; ++j) {
            const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, j, acme_ident_t);
            int served = 0;
            for (vs = ck->s; vs && !served; vs = vs->next) {
                served = acme_config_server_has_name(vs, id->value)
                         && acme_config_server_is_ssl(ck->p, vs, ssl_vhosts, global_ssl);
            }
            if (!served && id->type == ACME_IDENT_DNS) {
                acme_config_problem(ck, dom, "ACME00116", apr_psprintf(ck->p,
                    "no SSL virtual host (SSLEngine on) has ServerName or ServerAlias %s, so its "
                    "certificate would never be served; add the name to an SSL <VirtualHost> or "
                    "remove it from the ACMEDomain", id->value));
            }
        }
    }
}

/* ------------------------------------------------------------------ challenge choice */

#define ACME_CONFIG_ACME_TLS "acme-tls/1"

/*
 * The SSL server that answers a handshake for this identifier: the first SSL virtual host with
 * the name (mod_ssl's SNI choice). An IP address arrives with a reverse-DNS SNI no virtual host
 * has, so the first SSL virtual host (the default of its address) answers it.
 */
static server_rec *acme_config_ssl_server_for(acme_config_checker_t *ck, const acme_ident_t *id,
                                              apr_hash_t *ssl_vhosts, int global_ssl)
{
    server_rec *vs, *first_ssl = NULL;

    for (vs = ck->s; vs; vs = vs->next) {
        if (!acme_config_server_is_ssl(ck->p, vs, ssl_vhosts, global_ssl)) {
            continue;
        }
        if (acme_config_server_has_name(vs, id->value)) {
            return vs;
        }
        if (!first_ssl && vs->is_virtual) {
            first_ssl = vs;
        }
    }
    return id->type == ACME_IDENT_IP ? first_ssl : NULL;
}

/* The first identifier whose SSL server does not negotiate acme-tls/1, or NULL when all do. */
static const char *acme_config_without_acme_tls(acme_config_checker_t *ck,
                                                const acme_domain_t *dom, apr_hash_t *ssl_vhosts,
                                                int global_ssl)
{
    int j;

    for (j = 0; j < dom->idents->nelts; ++j) {
        const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, j, acme_ident_t);
        server_rec *vs;
        if (acme_names_is_wildcard(id->value)) {
            continue;   /* validated by dns-01 only, whatever the server allows */
        }
        vs = acme_config_ssl_server_for(ck, id, ssl_vhosts, global_ssl);
        /* mod_ssl asks for the certificate only when Protocols lets it select acme-tls/1. */
        if (!vs || !ap_is_allowed_protocol(NULL, NULL, vs, ACME_CONFIG_ACME_TLS)) {
            return id->value;
        }
    }
    return NULL;
}

/* A port httpd listens on for plain HTTP (where http-01 is answered), or 0. */
static apr_port_t acme_config_plain_http_port(acme_config_checker_t *ck, apr_hash_t *ssl_vhosts,
                                              int global_ssl)
{
    apr_hash_t *ports = apr_hash_make(ck->p);     /* port -> "ssl" / "plain" (a vhost on it) */
    const ap_listen_rec *lr;
    server_rec *vs;

    for (vs = ck->s->next; vs; vs = vs->next) {
        const char *kind = acme_config_server_is_ssl(ck->p, vs, ssl_vhosts, global_ssl)
                           ? "ssl" : "plain";
        const server_addr_rec *a;
        for (a = vs->addrs; a; a = a->next) {
            const char *key = apr_psprintf(ck->p, "%u", (unsigned)a->host_port);
            const char *had = apr_hash_get(ports, key, APR_HASH_KEY_STRING);
            if (!had || strcmp(had, "ssl") != 0) {
                apr_hash_set(ports, key, APR_HASH_KEY_STRING, kind);
            }
        }
    }
    for (lr = ap_listeners; lr; lr = lr->next) {
        apr_port_t port = lr->bind_addr ? lr->bind_addr->port : 0;
        const char *kind = apr_hash_get(ports, apr_psprintf(ck->p, "%u", (unsigned)port),
                                        APR_HASH_KEY_STRING);
        if ((lr->protocol && !strcasecmp(lr->protocol, "https")) || (kind && !strcmp(kind, "ssl"))
            || (global_ssl && !kind)) {
            continue;
        }
        return port;
    }
    return 0;
}

static int acme_config_lists(const apr_array_header_t *list, const char *type)
{
    int i;

    for (i = 0; list && i < list->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(list, i, const char *), type)) {
            return 1;
        }
    }
    return 0;
}

static void acme_config_check_explicit(acme_config_checker_t *ck, acme_domain_t *dom,
                                       const char *no_acme_tls, apr_port_t http_port)
{
    const apr_array_header_t *list = dom->policy.challenges;
    /* Another listed type may still work: then a missing acme-tls/1 is worth a warning only. */
    int other = (acme_config_lists(list, "http-01") && http_port)
                || acme_config_lists(list, "tls-sni-01");

    if (acme_config_lists(list, "tls-alpn-01") && no_acme_tls) {
        acme_ident_t id;
        if (!other && acme_names_parse(ck->p, no_acme_tls, &id, NULL) == APR_SUCCESS
            && id.type == ACME_IDENT_DNS) {
            acme_config_problem(ck, dom, "ACME00117", apr_psprintf(ck->p,
                "ACMEChallenges lists tls-alpn-01, but the SSL virtual host serving %s does not "
                "allow the acme-tls/1 protocol, so mod_ssl never asks for the challenge "
                "certificate; add 'Protocols h2 http/1.1 acme-tls/1' to that virtual host (or "
                "server-wide)", no_acme_tls));
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ck->s, "ACME00103: mod_acme: %s: "
                         "ACMEChallenges lists tls-alpn-01, but the SSL virtual host answering %s "
                         "does not allow acme-tls/1, so tls-alpn-01 cannot succeed for it; add "
                         "'Protocols h2 http/1.1 acme-tls/1' to it", dom->name, no_acme_tls);
        }
    }
    if (acme_config_lists(list, "http-01") && !http_port) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ck->s, "ACME00104: mod_acme: %s: ACMEChallenges "
                     "lists http-01, but httpd listens for plain HTTP on no port; the CA's request "
                     "on port 80 must reach it some other way (e.g. a proxy in front of it)",
                     dom->name);
    }
}

/* The first wildcard name of the domain, or NULL. */
static const char *acme_config_wildcard_of(const acme_domain_t *dom)
{
    int j;

    for (j = 0; j < dom->idents->nelts; ++j) {
        const char *name = APR_ARRAY_IDX(dom->idents, j, acme_ident_t).value;
        if (acme_names_is_wildcard(name)) {
            return name;
        }
    }
    return NULL;
}

static int acme_config_only_wildcards(const acme_domain_t *dom)
{
    int j;

    for (j = 0; j < dom->idents->nelts; ++j) {
        if (!acme_names_is_wildcard(APR_ARRAY_IDX(dom->idents, j, acme_ident_t).value)) {
            return 0;
        }
    }
    return 1;
}

/*
 * dns-persist-01 (a standing _validation-persist record the admin creates, see a2acme
 * dns-persist): no program needed, wildcards allowed (the record needs policy=wildcard, which
 * the worker checks), never for an IP address. 1 when the domain lists it.
 */
static int acme_config_check_persist(acme_config_checker_t *ck, acme_domain_t *dom)
{
    const apr_array_header_t *list = dom->policy.challenges;
    int j;

    if (!acme_config_lists(list, "dns-persist-01")) {
        return 0;
    }
    for (j = 0; list->nelts == 1 && j < dom->idents->nelts; ++j) {
        const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, j, acme_ident_t);
        if (id->type == ACME_IDENT_IP) {
            acme_config_problem(ck, dom, "ACME00118", apr_psprintf(ck->p, "%s is an IP address, "
                                "which dns-persist-01 does not validate; list http-01 or "
                                "tls-alpn-01 in ACMEChallenges too", id->value));
        }
    }
    return 1;
}

/*
 * dns-01 needs ACMEDns01Command; a wildcard can only be validated by dns-01; an IP address never
 * by dns-01. Runs after the challenge list of the domain is known.
 */
static void acme_config_check_dns01(acme_config_checker_t *ck, acme_domain_t *dom)
{
    const apr_array_header_t *list = dom->policy.challenges;
    int has_cmd = dom->policy.dns01_command && dom->policy.dns01_command->nelts > 0;
    const char *wild = acme_config_wildcard_of(dom);
    int j;

    if (acme_config_lists(list, "dns-01") && !has_cmd) {
        acme_config_problem(ck, dom, "ACME00119", "ACMEChallenges lists dns-01, but no "
                            "ACMEDns01Command is set for the domain (or server-wide); mod_acme "
                            "needs a program that creates and removes the TXT records");
    }
    if (acme_config_check_persist(ck, dom)) {
        wild = NULL;    /* dns-persist-01 with policy=wildcard covers it; the worker checks */
    }
    if (wild && !has_cmd) {
        acme_config_problem(ck, dom, "ACME00120", apr_psprintf(ck->p, "%s is a wildcard name, "
                            "which the CA validates by dns-01 only, and the domain has no way to "
                            "do dns-01: set ACMEDns01Command (globally or inside <ACMEDomain>) to "
                            "a program that creates the TXT records, e.g. "
                            "docs/examples/acme-dns01-nsupdate",
                            wild));
    }
    else if (wild && list && list->nelts > 0 && !acme_config_lists(list, "dns-01")) {
        acme_config_problem(ck, dom, "ACME00121", apr_psprintf(ck->p, "%s is a wildcard name, "
                            "which the CA validates by dns-01 only, but ACMEChallenges does not "
                            "list dns-01; add it", wild));
    }
    if (list && list->nelts == 1 && acme_config_lists(list, "dns-01")) {
        for (j = 0; j < dom->idents->nelts; ++j) {
            const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, j, acme_ident_t);
            if (id->type == ACME_IDENT_IP) {
                acme_config_problem(ck, dom, "ACME00122", apr_psprintf(ck->p, "%s is an IP "
                                    "address, which cannot be validated by dns-01 (RFC 8738); list "
                                    "http-01 or tls-alpn-01 in ACMEChallenges too", id->value));
            }
        }
    }
}

/*
 * Resolves each domain's challenge list for the worker: ACMEChallenges as given (checked), or,
 * when not set, what this configuration can answer: tls-alpn-01 when the SSL virtual hosts of
 * every name allow acme-tls/1, http-01 when httpd listens for plain HTTP. tls-sni-01 is never
 * chosen automatically.
 */
static void acme_config_choose_challenges(acme_config_checker_t *ck, acme_conf_t *conf)
{
    apr_hash_t *ssl_vhosts = apr_hash_make(ck->p);
    apr_port_t http_port;
    int global_ssl = 0, i;

    acme_config_scan_ssl(ck->p, ap_conftree, ssl_vhosts, NULL, &global_ssl);
    http_port = acme_config_plain_http_port(ck, ssl_vhosts, global_ssl);
    for (i = 0; i < conf->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, acme_domain_t *);
        const char *no_acme_tls = acme_config_without_acme_tls(ck, dom, ssl_vhosts, global_ssl);
        apr_array_header_t *list;
        int has_dns01 = dom->policy.dns01_command && dom->policy.dns01_command->nelts > 0;
        if (dom->policy.challenges && dom->policy.challenges->nelts > 0) {
            acme_config_check_explicit(ck, dom, no_acme_tls, http_port);
            acme_config_check_dns01(ck, dom);
            continue;
        }
        list = apr_array_make(ck->p, 3, sizeof(const char *));
        if (!no_acme_tls) {
            APR_ARRAY_PUSH(list, const char *) = "tls-alpn-01";
        }
        if (http_port) {
            APR_ARRAY_PUSH(list, const char *) = "http-01";
        }
        if (has_dns01) {
            APR_ARRAY_PUSH(list, const char *) = "dns-01";
        }
        if (list->nelts == 0 && !acme_config_only_wildcards(dom)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ck->s, "ACME00105: mod_acme: %s: this "
                         "configuration can answer no challenge: httpd listens for plain HTTP on "
                         "no port (http-01) and the SSL virtual host serving %s does not allow "
                         "acme-tls/1 (tls-alpn-01); add 'Listen 80' or 'Protocols h2 http/1.1 "
                         "acme-tls/1'. Trying http-01 in case port 80 reaches this server "
                         "another way", dom->name, no_acme_tls);
            APR_ARRAY_PUSH(list, const char *) = "http-01";
        }
        dom->policy.challenges = list;
        acme_config_check_dns01(ck, dom);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ck->s, "ACME00106: mod_acme: %s: challenges %s "
                     "(automatic)", dom->name, apr_array_pstrcat(ck->p, list, ' '));
    }
}

int acme_config_check(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *main_server)
{
    acme_conf_t *conf = acme_config_get(pconf);
    acme_config_checker_t ck = { .p = pconf, .s = main_server, .errors = 0 };
    apr_hash_t *members_own;

    if (conf->checked) {
        return OK;
    }
    conf->checked = 1;
    if (!conf->store_dir) {
        conf->store_dir = ap_server_root_relative(pconf, "acme");
    }
    if (conf->activation_interval < 0) {
        conf->activation_interval = ACME_ACTIVATION_INTERVAL_DEFAULT;
    }
    if (conf->activation < 0) {
        conf->activation = ACME_ACTIVATION_HOT;
    }
    acme_config_collect_vhost_domains(&ck, conf);
    members_own = acme_config_members_own(pconf, conf);
    acme_config_resolve_policies(&ck, conf);
    acme_config_index_names(&ck, conf);
    acme_config_check_bindings(&ck, conf);
    acme_config_check_proxies(&ck, conf);
    acme_config_warn_unused_proxies(&ck, conf);
    acme_config_add_members(&ck, conf, members_own);
    acme_config_check_served(&ck, conf);
    acme_config_choose_challenges(&ck, conf);
    acme_config_check_profiles(&ck, conf);
    return ck.errors ? HTTP_INTERNAL_SERVER_ERROR : OK;
}
