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

static acme_srv_conf_t *acme_config_srv(const server_rec *s)
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
    { .name = NULL },
};

/* ------------------------------------------------------------------ whole-config check */

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
