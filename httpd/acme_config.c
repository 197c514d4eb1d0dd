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
#include <strings.h>

#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_fnmatch.h>

#include "acme_config.h"
#include "acme_config_api.h"
#include "acme_config_ondemand.h"
#include "acme_config_cluster.h"
#include "acme_config_int.h"
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

APLOG_USE_MODULE(acme);

#define ACME_CONF_KEY "mod_acme-conf"
#define ACME_CHECK_INTERVAL_MIN apr_time_from_sec(60)
#define ACME_CHECK_INTERVAL_MAX apr_time_from_sec(7 * 24 * 3600)

/* Challenge types mod_acme knows; `implemented` says whether this build answers them. */
typedef struct {
    const char *name;
    int implemented;
} acme_config_challenge_t;

static const acme_config_challenge_t acme_config_challenges[] = {
    { .name = "http-01", .implemented = 1 },
    { .name = "tls-alpn-01", .implemented = 1 },
    { .name = "dns-01", .implemented = 1 },      /* through ACMEDns01Command */
    { .name = "tls-sni-01", .implemented = 1 },   /* legacy, opt-in: never chosen automatically */
    { .name = "dns-persist-01", .implemented = 1 }, /* a standing record; opt-in, see below */
};

/* ------------------------------------------------------------------ config objects */

acme_conf_t *acme_config_get(apr_pool_t *pconf)
{
    acme_conf_t *conf = NULL;

    apr_pool_userdata_get((void **)&conf, ACME_CONF_KEY, pconf);
    if (conf) {
        return conf;
    }
    conf = apr_palloc(pconf, sizeof(*conf));
    *conf = (acme_conf_t){
        .store_dir = NULL,
        .auto_restart = -1,
        .parallel_orders = -1,
        .check_interval = 0,
        .activation_interval = -1,
        .activation = -1,
        .domains = apr_array_make(pconf, 16, sizeof(acme_domain_t *)),
        .declarations = apr_array_make(pconf, 16, sizeof(acme_config_decl_t)),
        .section = NULL,
        .index = acme_names_index_make(pconf),
        .checked = 0,
        .store = NULL,
        .active = apr_hash_make(pconf),
        .seal_cert_pem = NULL,
    };
    acme_policy_init(&conf->policy, pconf);
    apr_pool_userdata_set(conf, ACME_CONF_KEY, apr_pool_cleanup_null, pconf);
    return conf;
}

void *acme_config_srv_create(apr_pool_t *p, server_rec *s)
{
    acme_srv_conf_t *sc = apr_palloc(p, sizeof(*sc));

    *sc = (acme_srv_conf_t){ .manage_vhost = 0, .manage_file = NULL, .manage_line = 0 };
    acme_policy_init(&sc->policy, p);
    return sc;
}

void *acme_config_srv_merge(apr_pool_t *p, void *basev, void *addv)
{
    const acme_srv_conf_t *add = addv;
    acme_srv_conf_t *sc = apr_palloc(p, sizeof(*sc));

    /* A vhost keeps its own overrides; server-wide ones are applied per domain later. */
    *sc = *add;
    return sc;
}

acme_srv_conf_t *acme_config_srv(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &acme_module);
}

/* The policy a directive at this place changes: the <ACMEDomain>, the vhost, or the server. */
static acme_policy_t *acme_config_policy_here(cmd_parms *cmd)
{
    acme_conf_t *conf = acme_config_get(cmd->pool);

    if (conf->section) {
        return &conf->section->policy;
    }
    if (cmd->server->is_virtual) {
        return &acme_config_srv(cmd->server)->policy;
    }
    return &conf->policy;
}

static const char *acme_config_global_only(cmd_parms *cmd)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    if (acme_config_get(cmd->pool)->section) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, " cannot be used inside <ACMEDomain>: "
                           "it applies to the whole server", NULL);
    }
    return NULL;
}

static const char *acme_config_no_dir(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
}

/* ------------------------------------------------------------------ domains */

static const char *acme_config_add_names(cmd_parms *cmd, acme_domain_t *dom, int argc,
                                         char *const argv[])
{
    int i;

    for (i = 0; i < argc; ++i) {
        const char *reason = NULL;
        if (acme_domain_add_name(cmd->pool, dom, argv[i], &reason) != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, reason);
        }
    }
    return NULL;
}

static void acme_config_declare(cmd_parms *cmd, acme_domain_t *dom)
{
    acme_conf_t *conf = acme_config_get(cmd->pool);

    APR_ARRAY_PUSH(conf->domains, acme_domain_t *) = dom;
    APR_ARRAY_PUSH(conf->declarations, acme_config_decl_t) = (acme_config_decl_t){
        .domain = dom,
        .server = cmd->server,
    };
}

static const char *acme_cmd_domain(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_conf_t *conf = acme_config_get(cmd->pool);
    const char *err = acme_config_no_dir(cmd);
    acme_domain_t *dom;

    if (err) {
        return err;
    }
    if (conf->section) {
        return "ACMEDomain cannot be used inside <ACMEDomain>: list the names in the section's "
               "opening line instead";
    }
    if (argc == 0) {
        acme_srv_conf_t *sc = acme_config_srv(cmd->server);
        if (!cmd->server->is_virtual) {
            return "ACMEDomain needs at least one name (outside a <VirtualHost>, there is no "
                   "ServerName to take it from)";
        }
        sc->manage_vhost = 1;
        sc->manage_file = cmd->directive->filename;
        sc->manage_line = cmd->directive->line_num;
        return NULL;
    }
    dom = acme_domain_make(cmd->pool, cmd->directive->filename, cmd->directive->line_num);
    err = acme_config_add_names(cmd, dom, argc, argv);
    if (err) {
        return err;
    }
    acme_config_declare(cmd, dom);
    return NULL;
}

static const char *acme_cmd_domain_section(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_conf_t *conf = acme_config_get(cmd->pool);
    const char *endp = ap_strrchr_c(arg, '>');
    const char *err = acme_config_no_dir(cmd);
    apr_array_header_t *names;
    const char *args, *word;
    acme_domain_t *dom;

    if (err) {
        return err;
    }
    if (conf->section) {
        return "<ACMEDomain> sections cannot be nested";
    }
    if (!endp) {
        return "<ACMEDomain> is missing its closing '>'";
    }
    args = apr_pstrndup(cmd->temp_pool, arg, (apr_size_t)(endp - arg));
    names = apr_array_make(cmd->temp_pool, 4, sizeof(char *));
    while (*(word = ap_getword_conf(cmd->temp_pool, &args))) {
        APR_ARRAY_PUSH(names, char *) = (char *)word;
    }
    if (names->nelts == 0) {
        return "<ACMEDomain> needs at least one name, "
               "e.g. <ACMEDomain example.org www.example.org>";
    }
    dom = acme_domain_make(cmd->pool, cmd->directive->filename, cmd->directive->line_num);
    err = acme_config_add_names(cmd, dom, names->nelts, (char *const *)names->elts);
    if (err) {
        return err;
    }
    acme_config_declare(cmd, dom);
    conf->section = dom;
    err = ap_walk_config(cmd->directive->first_child, cmd, cmd->context);
    conf->section = NULL;
    return err;
}

/* ------------------------------------------------------------------ server-wide settings */

static const char *acme_cmd_store_dir(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_global_only(cmd);

    if (err) {
        return err;
    }
    if (!*arg) {
        return "ACMEStoreDir needs a directory path (relative paths are under the ServerRoot)";
    }
    acme_config_get(cmd->pool)->store_dir = ap_server_root_relative(cmd->pool, arg);
    return NULL;
}

static const char *acme_cmd_auto_restart(cmd_parms *cmd, void *dc, int flag)
{
    const char *err = acme_config_global_only(cmd);

    if (err) {
        return err;
    }
    acme_config_get(cmd->pool)->auto_restart = flag;
    return NULL;
}

static const char *acme_cmd_parallel_orders(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_global_only(cmd);
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
    acme_config_get(cmd->pool)->parallel_orders = (int)n;
    return NULL;
}

static const char *acme_cmd_check_interval(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_global_only(cmd);
    const char *reason = NULL;
    apr_interval_time_t interval;

    if (err) {
        return err;
    }
    if (acme_plan_duration_parse(arg, &interval, &reason, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ACMECheckInterval: %s", reason);
    }
    if (interval < ACME_CHECK_INTERVAL_MIN || interval > ACME_CHECK_INTERVAL_MAX) {
        return apr_psprintf(cmd->pool, "ACMECheckInterval '%s' is out of range: use 1m to 7d "
                            "(default 12h)", arg);
    }
    acme_config_get(cmd->pool)->check_interval = interval;
    return NULL;
}

static const char *acme_cmd_activation_interval(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_global_only(cmd);
    const char *reason = NULL;
    apr_interval_time_t interval = 0;

    if (err) {
        return err;
    }
    if (strcmp(arg, "0") != 0
        && acme_plan_duration_parse(arg, &interval, &reason, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ACMEActivationInterval: %s", reason);
    }
    if (interval > apr_time_from_sec(24 * 3600)) {
        return apr_psprintf(cmd->pool, "ACMEActivationInterval '%s' is too long: at most 24h, "
                            "or 0 to restart for every renewal", arg);
    }
    acme_config_get(cmd->pool)->activation_interval = interval;
    return NULL;
}

static const char *acme_cmd_activation(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_global_only(cmd);

    (void)dc;
    if (err) {
        return err;
    }
    if (strcasecmp(arg, "hot") && strcasecmp(arg, "restart")) {
        return apr_psprintf(cmd->pool, "ACMEActivation '%s': use 'hot' (serve new certificates "
                            "without a restart) or 'restart' (a graceful restart each time)",
                            arg);
    }
    acme_config_get(cmd->pool)->activation = strcasecmp(arg, "hot") ? ACME_ACTIVATION_RESTART
                                                                    : ACME_ACTIVATION_HOT;
    return NULL;
}

/* ------------------------------------------------------------------ per-domain policy */

static const char *acme_cmd_ca(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    const char *err = acme_config_no_dir(cmd);
    acme_policy_t *pol = acme_config_policy_here(cmd);
    int i;

    if (err) {
        return err;
    }
    if (argc == 0) {
        return "ACMECertificateAuthority needs 'letsencrypt', 'letsencrypt-staging' or the "
               "https:// URL of an ACME directory";
    }
    pol->ca_urls = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (i = 0; i < argc; ++i) {
        const char *reason = NULL;
        const char *url = acme_domain_ca_url(cmd->pool, argv[i], &reason);
        if (!url) {
            return apr_psprintf(cmd->pool, "ACMECertificateAuthority: %s", reason);
        }
        APR_ARRAY_PUSH(pol->ca_urls, const char *) = url;
    }
    return NULL;
}

static const char *acme_cmd_ca_certificate(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_no_dir(cmd);
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_file_t *f = NULL;
    apr_status_t rv;
    char buf[120];

    if (err) {
        return err;
    }
    if (!path || !*arg) {
        return apr_psprintf(cmd->pool, "ACMECACertificate: '%s' is not a valid path", arg);
    }
    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, cmd->temp_pool);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ACMECACertificate: cannot read %s (%s); give a PEM file "
                            "with the certificates that issued the CA's HTTPS server certificate",
                            path, apr_strerror(rv, buf, sizeof(buf)));
    }
    apr_file_close(f);
    acme_config_policy_here(cmd)->ca_file = path;
    return NULL;
}

static const char *acme_cmd_agreement(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_no_dir(cmd);

    if (err) {
        return err;
    }
    if (strcasecmp(arg, "accepted") != 0) {
        return apr_psprintf(cmd->pool, "ACMEAgreement '%s': the only value is 'accepted', which "
                            "says you accept the terms of service of the CA", arg);
    }
    acme_config_policy_here(cmd)->agreement = 1;
    return NULL;
}

static const char *acme_cmd_contact(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_no_dir(cmd);
    const char *addr = strncasecmp(arg, "mailto:", 7) ? arg : arg + 7;
    const char *at = strchr(addr, '@');
    const char *reason = NULL;
    acme_ident_t domain;

    if (err) {
        return err;
    }
    if (!at || at == addr || strchr(at + 1, '@') || strpbrk(addr, " \t,;<>\"()[]\\")
        || acme_names_parse(cmd->temp_pool, at + 1, &domain, &reason) != APR_SUCCESS
        || domain.type != ACME_IDENT_DNS) {
        return apr_psprintf(cmd->pool, "ACMEContactEmail '%s' is not a plain e-mail address "
                            "like admin@example.org", arg);
    }
    acme_config_policy_here(cmd)->contact = apr_pstrdup(cmd->pool, addr);
    return NULL;
}

/*
 * ACMEExternalAccountBinding key-id hmac-file | none. The file is checked now (root-only, one
 * base64url key) so that configtest catches a world-readable or mistyped key; the key itself is
 * forgotten at once: server children, which run as the httpd User, inherit the parent's memory.
 */
static const char *acme_cmd_eab(cmd_parms *cmd, void *dc, const char *kid, const char *file)
{
    const char *err = acme_config_no_dir(cmd);
    acme_policy_t *pol = acme_config_policy_here(cmd);
    const char *path;
    char *hmac = NULL;
    acme_result_t res;

    if (err) {
        return err;
    }
    if (!file && !strcasecmp(kid, "none")) {
        pol->eab_kid = "";
        pol->eab_file = NULL;
        return NULL;
    }
    if (!file || !*kid || strpbrk(kid, " \t\"'\\")) {
        return "ACMEExternalAccountBinding needs the key id the CA gave you and the file that "
               "holds its HMAC key, e.g. ACMEExternalAccountBinding kid-1 "
               "/etc/apache2/acme-eab.key (or 'none')";
    }
    path = ap_server_root_relative(cmd->pool, file);
    acme_result_reset(&res);
    if (!path || acme_eab_read(cmd->temp_pool, path, &hmac, &res) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ACMEExternalAccountBinding: %s",
                            path ? res.message : "the file name is not valid");
    }
    acme_eab_wipe(hmac);
    pol->eab_kid = apr_pstrdup(cmd->pool, kid);
    pol->eab_file = path;
    return NULL;
}

/* ACMEPreferredChain issuer-cn: matched as a part of the topmost issuer's common name. */
static const char *acme_cmd_preferred_chain(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_no_dir(cmd);
    const char *c;

    if (err) {
        return err;
    }
    for (c = arg; *c && (unsigned char)*c >= 0x20 && *c != 0x7f; ++c) {
    }
    if (!*arg || *c || strlen(arg) > 64) {
        return "ACMEPreferredChain needs (part of) the common name of the root or topmost issuer "
               "of the chain to prefer, at most 64 characters, e.g. ACMEPreferredChain "
               "\"ISRG Root X1\"";
    }
    acme_config_policy_here(cmd)->preferred_chain = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

/* ACMEProfile name [mandatory]: the certificate profile newOrder asks for (acme_profile.h). */
static const char *acme_cmd_profile(cmd_parms *cmd, void *dc, const char *name, const char *flag)
{
    const char *err = acme_config_no_dir(cmd);
    acme_policy_t *pol;
    apr_size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789._-");

    if (err) {
        return err;
    }
    if (!*name || name[len] || len > 64) {
        return apr_psprintf(cmd->pool, "ACMEProfile needs the name of a profile the CA offers "
                            "(letters, digits, '.', '_', '-'; at most 64), e.g. ACMEProfile "
                            "tlsserver or ACMEProfile shortlived mandatory; '%s' is not one",
                            name);
    }
    if (flag && strcasecmp(flag, "mandatory")) {
        return apr_psprintf(cmd->pool, "ACMEProfile %s %s: the second word can only be "
                            "'mandatory' (refuse a CA that does not offer the profile)",
                            name, flag);
    }
    pol = acme_config_policy_here(cmd);
    pol->profile = apr_pstrdup(cmd->pool, name);
    pol->profile_mandatory = flag != NULL;
    return NULL;
}

/*
 * ACMEProxy url|none [ca]: how this context's domains reach a CA (every CA without the second
 * argument, else the one named as in ACMECertificateAuthority). The lines of a <VirtualHost> or
 * <ACMEDomain> replace the server config's for its domains, as httpd's directives do. The URL
 * may hold credentials: every error shows it redacted.
 */
static const char *acme_cmd_proxy(cmd_parms *cmd, void *dc, const char *text, const char *ca)
{
    const char *err = acme_config_no_dir(cmd);
    acme_policy_t *pol = acme_config_policy_here(cmd);
    const char *url = NULL, *ca_url = NULL, *reason = NULL;

    if (err) {
        return err;
    }
    if (acme_proxy_parse(cmd->pool, text, &url, &reason) != 0) {
        return apr_psprintf(cmd->pool, "ACMEProxy: %s", reason);
    }
    if (ca && !(ca_url = acme_domain_ca_url(cmd->pool, ca, &reason))) {
        return apr_psprintf(cmd->pool, "ACMEProxy: the second argument names the CA the proxy "
                            "is for, as in ACMECertificateAuthority: %s", reason);
    }
    if (!pol->proxies) {
        pol->proxies = apr_array_make(cmd->pool, 2, sizeof(acme_proxy_rule_t));
    }
    APR_ARRAY_PUSH(pol->proxies, acme_proxy_rule_t) = (acme_proxy_rule_t){
        .ca_url = ca_url,
        .url = url,
    };
    return NULL;
}

static const acme_config_challenge_t *acme_config_challenge_find(const char *name)
{
    apr_size_t i;

    for (i = 0; i < sizeof(acme_config_challenges) / sizeof(acme_config_challenges[0]); ++i) {
        if (!strcasecmp(acme_config_challenges[i].name, name)) {
            return &acme_config_challenges[i];
        }
    }
    return NULL;
}

static int acme_config_list_has(const apr_array_header_t *list, const char *s)
{
    int i;

    for (i = 0; i < list->nelts; ++i) {
        if (!strcasecmp(APR_ARRAY_IDX(list, i, const char *), s)) {
            return 1;
        }
    }
    return 0;
}

static const char *acme_cmd_challenges(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    const char *err = acme_config_no_dir(cmd);
    apr_array_header_t *list;
    int i;

    if (err) {
        return err;
    }
    if (argc == 0) {
        return "ACMEChallenges needs at least one challenge type: http-01, tls-alpn-01, dns-01";
    }
    list = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (i = 0; i < argc; ++i) {
        const acme_config_challenge_t *ch = acme_config_challenge_find(argv[i]);
        if (!ch) {
            return apr_psprintf(cmd->pool, "ACMEChallenges: unknown challenge type '%s' "
                                "(known: http-01, tls-alpn-01, dns-01, tls-sni-01, "
                                "dns-persist-01)", argv[i]);
        }
        if (!ch->implemented) {
            return apr_psprintf(cmd->pool, "ACMEChallenges: %s is not supported by this version "
                                "of mod_acme; use http-01 or tls-alpn-01", ch->name);
        }
        if (acme_config_list_has(list, ch->name)) {
            return apr_psprintf(cmd->pool, "ACMEChallenges: %s is listed twice", ch->name);
        }
        APR_ARRAY_PUSH(list, const char *) = ch->name;
    }
    acme_config_policy_here(cmd)->challenges = list;
    return NULL;
}

static int acme_config_spec_listed(const apr_array_header_t *specs, const acme_keyspec_t *spec)
{
    int i;

    for (i = 0; i < specs->nelts; ++i) {
        const acme_keyspec_t *have = &APR_ARRAY_IDX(specs, i, acme_keyspec_t);
        if (have->kind == spec->kind) {
            return 1;
        }
    }
    return 0;
}

static const char *acme_cmd_private_keys(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    const char *err = acme_config_no_dir(cmd);
    apr_array_header_t *specs;
    int i;

    if (err) {
        return err;
    }
    if (argc == 0 || argc > ACME_KEY_SPECS_MAX) {
        return "ACMEPrivateKeys takes one or two key types, e.g. 'secp256r1' or "
               "'secp256r1 rsa2048'";
    }
    specs = apr_array_make(cmd->pool, argc, sizeof(acme_keyspec_t));
    for (i = 0; i < argc; ++i) {
        acme_keyspec_t spec;
        const char *reason = NULL;
        if (acme_crypto_keyspec_parse(argv[i], &spec, &reason, cmd->pool) != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, "ACMEPrivateKeys: %s", reason);
        }
        if (acme_config_spec_listed(specs, &spec)) {
            return apr_psprintf(cmd->pool, "ACMEPrivateKeys: '%s' is a second %s key; mod_ssl "
                                "serves one certificate per key algorithm (one EC, one RSA)",
                                argv[i], spec.kind == ACME_KEY_RSA ? "RSA" : "EC");
        }
        APR_ARRAY_PUSH(specs, acme_keyspec_t) = spec;
    }
    acme_config_policy_here(cmd)->key_specs = specs;
    return NULL;
}

static const char *acme_cmd_renew_window(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_no_dir(cmd);
    acme_plan_window_t window;
    const char *reason = NULL;

    if (err) {
        return err;
    }
    if (acme_plan_window_parse(arg, &window, &reason, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ACMERenewWindow: %s", reason);
    }
    acme_config_policy_here(cmd)->renew_window = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *acme_cmd_members(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_no_dir(cmd);

    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "auto")) {
        acme_config_policy_here(cmd)->members_auto = 1;
    }
    else if (!strcasecmp(arg, "manual")) {
        acme_config_policy_here(cmd)->members_auto = 0;
    }
    else {
        return apr_psprintf(cmd->pool, "ACMEMembers '%s': use 'auto' (a managed virtual host's "
                            "ServerAlias names join its domain) or 'manual'", arg);
    }
    return NULL;
}

static const char *acme_cmd_renewal_info(cmd_parms *cmd, void *dc, int on)
{
    const char *err = acme_config_global_only(cmd);

    if (err) {
        return err;
    }
    acme_config_get(cmd->pool)->ari_off = !on;
    return NULL;
}

static const char *acme_cmd_warn_window(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_global_only(cmd);
    acme_plan_window_t w;
    const char *reason = NULL;

    if (err) {
        return err;
    }
    if (acme_renewal_warn_parse(arg, &w, &reason, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ACMEWarnWindow: %s", reason);
    }
    acme_config_get(cmd->pool)->warn_window = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *acme_cmd_notify_command(cmd_parms *cmd, void *dc, int argc,
                                           char *const argv[])
{
    const char *err = acme_config_global_only(cmd);
    apr_array_header_t *list;
    int i;

    if (err) {
        return err;
    }
    if (argc < 1) {
        return "ACMENotifyCommand needs a program (an absolute path) and optional arguments";
    }
    if ((err = acme_command_check_program(cmd->pool, argv[0])) != NULL) {
        return apr_psprintf(cmd->pool, "ACMENotifyCommand '%s': %s", argv[0], err);
    }
    list = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (i = 0; i < argc; ++i) {
        APR_ARRAY_PUSH(list, const char *) = apr_pstrdup(cmd->pool, argv[i]);
    }
    acme_config_get(cmd->pool)->notify_argv = list;
    return NULL;
}

/* ------------------------------------------------------------------ ACMEExport (issue 17) */

/* owner=user:group (both must exist now; the parent chowns to their ids). */
static const char *acme_config_export_owner(cmd_parms *cmd, const char *value,
                                            acme_export_spec_t *spec)
{
    const char *colon = strchr(value, ':');
    const char *user = colon ? apr_pstrndup(cmd->pool, value, (apr_size_t)(colon - value)) : "";
    struct passwd *pw;
    struct group *gr;

    if (!colon || !*user || !colon[1]) {
        return apr_psprintf(cmd->pool, "ACMEExport: owner='%s' needs user:group, e.g. "
                            "owner=root:haproxy", value);
    }
    if (!(pw = getpwnam(user))) {
        return apr_psprintf(cmd->pool, "ACMEExport: owner='%s': there is no user '%s'; create "
                            "it first or name an existing one", value, user);
    }
    spec->uid = pw->pw_uid;
    if (!(gr = getgrnam(colon + 1))) {
        return apr_psprintf(cmd->pool, "ACMEExport: owner='%s': there is no group '%s'; create "
                            "it first or name an existing one", value, colon + 1);
    }
    spec->gid = gr->gr_gid;
    spec->has_owner = 1;
    return NULL;
}

static const char *acme_config_export_dir(cmd_parms *cmd, const char *dir)
{
    struct stat st;

    if (dir[0] != '/' || strstr(dir, "/../") || strstr(dir, "/./")) {
        return apr_psprintf(cmd->pool, "ACMEExport: the directory '%s' must be an absolute "
                            "path (e.g. /etc/haproxy/certs)", dir);
    }
    if (lstat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        return apr_psprintf(cmd->pool, "ACMEExport: '%s' is not a directory (a symlink is "
                            "not followed either); name the real directory", dir);
    }
    return NULL;
}

/* Two lines naming one directory must agree: it has one layout and one manifest. */
static const char *acme_config_export_same(cmd_parms *cmd, const acme_conf_t *conf,
                                           const acme_export_spec_t *spec)
{
    int i;

    for (i = 0; conf->exports && i < conf->exports->nelts; ++i) {
        const acme_export_spec_t *o = &APR_ARRAY_IDX(conf->exports, i,
                                                     acme_config_export_t).spec;
        if (strcmp(o->dir, spec->dir) == 0
            && (o->format != spec->format || o->has_owner != spec->has_owner
                || o->uid != spec->uid || o->gid != spec->gid || o->mode != spec->mode)) {
            return apr_psprintf(cmd->pool, "ACMEExport: '%s' is already an export directory "
                                "with another format, owner or mode; use one directory per "
                                "format and the same settings on every line naming it",
                                spec->dir);
        }
    }
    return NULL;
}

static const char *acme_cmd_export(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_conf_t *conf = acme_config_get(cmd->pool);
    acme_export_spec_t spec = { .mode = ACME_EXPORT_MODE_DEFAULT };
    const char *err = conf->section ? acme_config_no_dir(cmd) : acme_config_global_only(cmd);
    int i;

    if (err) {
        return err;
    }
    if (argc < 2 || argc > 4) {
        return "ACMEExport needs a directory and a format (txsni, haproxy or split), then "
               "optionally owner=user:group and mode=0640";
    }
    if ((err = acme_config_export_dir(cmd, argv[0])) != NULL) {
        return err;
    }
    spec.dir = apr_pstrdup(cmd->pool, argv[0]);
    if (acme_export_format_parse(argv[1], &spec.format) != 0) {
        return apr_psprintf(cmd->pool, "ACMEExport: unknown format '%s'; use txsni, haproxy "
                            "or split", argv[1]);
    }
    for (i = 2; i < argc; ++i) {
        if (!strncmp(argv[i], "owner=", 6)) {
            err = acme_config_export_owner(cmd, argv[i] + 6, &spec);
        }
        else if (!strncmp(argv[i], "mode=", 5)) {
            err = acme_export_mode_parse(cmd->pool, argv[i] + 5, &spec.mode);
            err = err ? apr_pstrcat(cmd->pool, "ACMEExport: ", err, NULL) : NULL;
        }
        else {
            err = apr_psprintf(cmd->pool, "ACMEExport: unknown option '%s'; use "
                               "owner=user:group or mode=0640", argv[i]);
        }
        if (err) {
            return err;
        }
    }
    if ((err = acme_config_export_same(cmd, conf, &spec)) != NULL) {
        return err;
    }
    if (!conf->exports) {
        conf->exports = apr_array_make(cmd->pool, 2, sizeof(acme_config_export_t));
    }
    APR_ARRAY_PUSH(conf->exports, acme_config_export_t) = (acme_config_export_t){
        .spec = spec, .domain = conf->section,
    };
    return NULL;
}

/* ------------------------------------------------------------------ dns-01 (ACMEDns01*) */

static const char *acme_cmd_dns01_command(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    const char *err = acme_config_no_dir(cmd);
    apr_array_header_t *list;
    int i;

    if (err) {
        return err;
    }
    if (argc < 1) {
        return "ACMEDns01Command needs a program (an absolute path) and optional arguments; it "
               "is run as 'program [args] setup|teardown _acme-challenge.<name> <value>'";
    }
    if ((err = acme_command_check_program(cmd->pool, argv[0])) != NULL) {
        return apr_psprintf(cmd->pool, "ACMEDns01Command '%s': %s", argv[0], err);
    }
    list = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (i = 0; i < argc; ++i) {
        APR_ARRAY_PUSH(list, const char *) = apr_pstrdup(cmd->pool, argv[i]);
    }
    acme_config_policy_here(cmd)->dns01_command = list;
    return NULL;
}

static const char *acme_cmd_dns01_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = acme_config_no_dir(cmd);
    const char *reason = NULL;
    apr_interval_time_t t = 0;

    if (err) {
        return err;
    }
    if (acme_plan_duration_parse(arg, &t, &reason, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ACMEDns01Timeout: %s", reason);
    }
    if (t < apr_time_from_sec(1) || t > apr_time_from_sec(3600)) {
        return apr_psprintf(cmd->pool, "ACMEDns01Timeout '%s' is out of range: use 1s to 1h "
                            "(default 60s)", arg);
    }
    acme_config_policy_here(cmd)->dns01_timeout = t;
    return NULL;
}

static const char *acme_cmd_dns01_propagation(cmd_parms *cmd, void *dc, int argc,
                                              char *const argv[])
{
    const char *err = acme_config_no_dir(cmd);
    const char *text = "", *reason = NULL;
    acme_dns01_propagation_t prop;
    int i;

    if (err) {
        return err;
    }
    for (i = 0; i < argc; ++i) {
        text = apr_pstrcat(cmd->pool, text, i ? " " : "", argv[i], NULL);
    }
    if (argc < 1 || acme_dns01_propagation_parse(cmd->pool, text, &prop, &reason) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ACMEDns01Propagation: %s", reason ? reason :
                            "use 'none', a delay like '30s', or 'check <resolver-ip>[:port] "
                            "[max]'");
    }
    acme_config_policy_here(cmd)->dns01_propagation = text;
    return NULL;
}

const command_rec acme_config_cmds[] = {
    AP_INIT_TAKE_ARGV("ACMEDomain", acme_cmd_domain, NULL, RSRC_CONF,
                      "names of one managed certificate; none inside a <VirtualHost>: its "
                      "ServerName and ServerAlias names"),
    AP_INIT_RAW_ARGS("<ACMEDomain", acme_cmd_domain_section, NULL, RSRC_CONF,
                     "a managed certificate with its own settings"),
    AP_INIT_TAKE1("ACMEStoreDir", acme_cmd_store_dir, NULL, RSRC_CONF,
                  "directory of the certificate store (default: acme under the ServerRoot)"),
    AP_INIT_FLAG("ACMEAutoRestart", acme_cmd_auto_restart, NULL, RSRC_CONF,
                 "On: gracefully restart httpd by itself when new certificates are ready"),
    AP_INIT_TAKE1("ACMEParallelOrders", acme_cmd_parallel_orders, NULL, RSRC_CONF,
                  "how many ACME orders run at once (1-256, default 8)"),
    AP_INIT_TAKE1("ACMECheckInterval", acme_cmd_check_interval, NULL, RSRC_CONF,
                  "how often certificates are checked (default 12h, with jitter)"),
    AP_INIT_TAKE1("ACMEActivation", acme_cmd_activation, NULL, RSRC_CONF,
                  "hot (default): serve new certificates without a restart; restart: a graceful "
                  "restart each time"),
    AP_INIT_TAKE1("ACMEActivationInterval", acme_cmd_activation_interval, NULL, RSRC_CONF,
                  "least time between graceful restarts that only activate renewals (default 10m)"),
    AP_INIT_TAKE_ARGV("ACMECertificateAuthority", acme_cmd_ca, NULL, RSRC_CONF,
                      "ACME directory URL, 'letsencrypt' or 'letsencrypt-staging'"),
    AP_INIT_TAKE1("ACMECACertificate", acme_cmd_ca_certificate, NULL, RSRC_CONF,
                  "PEM file trusted for the CA's HTTPS server"),
    AP_INIT_TAKE1("ACMEAgreement", acme_cmd_agreement, NULL, RSRC_CONF,
                  "'accepted': you accept the CA's terms of service"),
    AP_INIT_TAKE1("ACMEContactEmail", acme_cmd_contact, NULL, RSRC_CONF,
                  "e-mail address given to the CA"),
    AP_INIT_TAKE1("ACMEPreferredChain", acme_cmd_preferred_chain, NULL, RSRC_CONF,
                  "the common name (or part) of the topmost issuer of the chain to prefer"),
    AP_INIT_TAKE12("ACMEProfile", acme_cmd_profile, NULL, RSRC_CONF,
                   "certificate profile to ask the CA for, optionally 'mandatory'"),
    AP_INIT_TAKE12("ACMEExternalAccountBinding", acme_cmd_eab, NULL, RSRC_CONF,
                   "key id and root-only file with the HMAC key the CA gave you, or 'none'"),
    AP_INIT_TAKE12("ACMEProxy", acme_cmd_proxy, NULL, RSRC_CONF,
                   "proxy URL for the traffic to the CA (or 'none'), optionally the CA it is for"),
    AP_INIT_TAKE_ARGV("ACMEChallenges", acme_cmd_challenges, NULL, RSRC_CONF,
                      "challenge types to use, in order of preference"),
    AP_INIT_TAKE_ARGV("ACMEPrivateKeys", acme_cmd_private_keys, NULL, RSRC_CONF,
                      "certificate key types, e.g. secp256r1 rsa2048"),
    AP_INIT_TAKE1("ACMERenewWindow", acme_cmd_renew_window, NULL, RSRC_CONF,
                  "when to renew: auto, a percentage of the lifetime left, or a duration"),
    AP_INIT_FLAG("ACMERenewalInfo", acme_cmd_renewal_info, NULL, RSRC_CONF,
                 "On (default): renew when the CA's renewalInfo (ARI, RFC 9773) suggests"),
    AP_INIT_TAKE1("ACMEWarnWindow", acme_cmd_warn_window, NULL, RSRC_CONF,
                  "log at crit when renewal fails this close to expiry: a percentage of the "
                  "lifetime (default 10%) or a duration"),
    AP_INIT_TAKE_ARGV("ACMENotifyCommand", acme_cmd_notify_command, NULL, RSRC_CONF,
                      "program [args] run for renewed, installed, expiring, errored, revoked, "
                      "exported"),
    AP_INIT_TAKE1("ACMEMembers", acme_cmd_members, NULL, RSRC_CONF,
                  "auto: a managed vhost's ServerAlias names join its domain; manual"),
    AP_INIT_TAKE_ARGV("ACMEDns01Command", acme_cmd_dns01_command, NULL, RSRC_CONF,
                      "program [args] run as '... setup|teardown <fqdn> <value>' for dns-01"),
    AP_INIT_TAKE1("ACMEDns01Timeout", acme_cmd_dns01_timeout, NULL, RSRC_CONF,
                  "longest run of the ACMEDns01Command program (default 60s)"),
    AP_INIT_TAKE_ARGV("ACMEDns01Propagation", acme_cmd_dns01_propagation, NULL, RSRC_CONF,
                      "after dns-01 setups: none, a delay (30s), or check <resolver>[:port] "
                      "[max]"),
    AP_INIT_TAKE_ARGV("ACMEExport", acme_cmd_export, NULL, RSRC_CONF,
                      "directory txsni|haproxy|split [owner=user:group] [mode=0640]: copies "
                      "of the certificates and keys for other daemons"),
    /* the certificate API (issue 17): httpd/acme_config_api.c */
    AP_INIT_RAW_ARGS("<ACMEApiClient", acme_config_api_cmd_client, NULL, RSRC_CONF,
                     "a client of the certificate API (SetHandler acme-api): its "
                     "authentication and the names it may ask for"),
    AP_INIT_TAKE_ARGV("ACMEApiAuth", acme_config_api_cmd_auth, NULL, RSRC_CONF,
                      "ip ADDRESS|NETWORK..., hmac KEY-FILE or user NAME..."),
    AP_INIT_TAKE_ARGV("ACMEApiAllow", acme_config_api_cmd_allow, NULL, RSRC_CONF,
                      "names the client may ask for: name, *.name (one label), **.name"),
    AP_INIT_TAKE1("ACMEApiWait", acme_config_api_cmd_wait, NULL, RSRC_CONF,
                  "how long a POST waits for the certificate before answering 202 "
                  "(default 60s)"),
    AP_INIT_TAKE1("ACMEApiRate", acme_config_api_cmd_rate, NULL, RSRC_CONF,
                  "requests per client and period, e.g. 10/1h"),
    /* on-demand certificates (issue 19): httpd/acme_config_ondemand.c */
    AP_INIT_FLAG("ACMEOnDemand", acme_config_ondemand_cmd_on, NULL, RSRC_CONF,
                 "on: names this SSL virtual host catches get a certificate of their own when "
                 "ACMEOnDemandAsk approves them"),
    AP_INIT_TAKE1("ACMEOnDemandAsk", acme_config_ondemand_cmd_ask, NULL, RSRC_CONF,
                  "the URL asked GET ?domain=NAME before a name is ordered (200: yes)"),
    AP_INIT_TAKE1("ACMEOnDemandWait", acme_config_ondemand_cmd_wait, NULL, RSRC_CONF,
                  "how long the first handshake of a new name waits for its certificate (10s)"),
    AP_INIT_TAKE1("ACMEOnDemandRate", acme_config_ondemand_cmd_rate, NULL, RSRC_CONF,
                  "new on-demand names asked and ordered per period, e.g. 10/1m"),
    AP_INIT_TAKE1("ACMEOnDemandMax", acme_config_ondemand_cmd_max, NULL, RSRC_CONF,
                  "the most on-demand domains the server keeps (0: no cap; 1000)"),
    /* clustering through etcd (issue 16): httpd/acme_config_cluster.c */
    AP_INIT_TAKE_ARGV("ACMECluster", acme_config_cluster_cmd_cluster, NULL, RSRC_CONF,
                      "etcd endpoint[,endpoint...] [prefix=/mod_acme]: share certificates "
                      "and orders with the other nodes"),
    AP_INIT_TAKE3("ACMEClusterTLS", acme_config_cluster_cmd_tls, NULL, RSRC_CONF,
                  "client-cert client-key ca-file: TLS client authentication to etcd"),
    AP_INIT_TAKE1("ACMEClusterKey", acme_config_cluster_cmd_key, NULL, RSRC_CONF,
                  "root-only file of at least 32 bytes: seals private keys before etcd"),
    AP_INIT_TAKE1("ACMEClusterNode", acme_config_cluster_cmd_node, NULL, RSRC_CONF,
                  "this node's name in etcd, the status and logs (default: host name)"),
    { .name = NULL },
};

const acme_domain_t *acme_config_domain_for(const acme_conf_t *conf, const char *host)
{
    return host ? acme_names_index_get(conf->index, host) : NULL;
}

const acme_domain_t *acme_config_domain_of_server(const acme_conf_t *conf, const server_rec *s)
{
    const acme_domain_t *dom = acme_config_domain_for(conf, s->server_hostname);
    int i;

    for (i = 0; !dom && s->names && i < s->names->nelts; ++i) {
        dom = acme_config_domain_for(conf, APR_ARRAY_IDX(s->names, i, const char *));
    }
    /* "ServerAlias *.example.org" (httpd keeps it in wild_names): the managed wildcard itself. */
    for (i = 0; !dom && s->wild_names && i < s->wild_names->nelts; ++i) {
        const char *pattern = APR_ARRAY_IDX(s->wild_names, i, const char *);
        acme_ident_t id;
        if (acme_names_is_wildcard(pattern)
            && acme_names_parse(conf->domains->pool, pattern, &id, NULL) == APR_SUCCESS) {
            dom = acme_config_domain_for(conf, id.value);
        }
    }
    return dom;
}
