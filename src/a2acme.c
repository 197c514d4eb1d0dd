/*
 * a2acme: the administrator's command for a mod_acme store. It works with the server running
 * or stopped and never needs httpd: it links libacmecore only.
 *
 *   a2acme --store DIR list [--json]
 *   a2acme --store DIR renew NAME
 *   a2acme --store DIR revoke NAME [--reason R] [--ca URL] [--ca-file F] [--no-renew]
 *   a2acme --store DIR account [--ca URL] [--ca-file F] [--json]
 *   a2acme --store DIR rollover [--ca URL] [--ca-file F] [--force]
 *   a2acme --store DIR account deactivate|contact [MAILTO]...|bind KID HMAC-FILE|agree [--ca URL]
 *
 * Exit status: 0 done, 1 the operation failed (CA error, unreadable store, ...), 2 usage error
 * or unknown domain/store. Results go to stdout, errors to stderr; no private key, HMAC key or
 * key authorization is ever printed.
 *
 * The server never sees a2acme directly: a forced renewal is a marker file the server's monitor
 * picks up, and the account key is replaced atomically under the store lock "account-<ca-id>",
 * so a worker reading it sees the old or the new key, never a torn file.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <apr_general.h>
#include <apr_escape.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "acme_account.h"
#include "acme_activate.h"
#include "acme_client.h"
#include "acme_crypto.h"
#include "acme_domain.h"
#include "acme_eab.h"
#include "acme_http.h"
#include "acme_job.h"
#include "acme_jose.h"
#include "acme_notify.h"
#include "acme_persist.h"
#include "acme_perms.h"
#include "acme_status.h"
#include "acme_store.h"
#include "acme_version.h"
#include "acme_worker.h"

#define A2_EXIT_OK      0
#define A2_EXIT_FAILED  1
#define A2_EXIT_USAGE   2

#define A2_PROG "a2acme"
/* Written by the parent at each start: the configured domain set (acme_domain_set_to_json). */
#define A2_DOMAIN_SET_FILE "domains.json"
/* requests/<name>.force: the server renews <name> at its next look (within a minute). */
#define A2_FORCE_SUFFIX ".force"
#define A2_ACCOUNT_KEY "account.key"
/* The new key between generating it and the CA accepting it: recovers a rollover cut short. */
#define A2_ACCOUNT_KEY_NEXT "account.key.next"
/* An "ordering" job updated this recently means a worker may hold the old account key. */
#define A2_BUSY_WINDOW apr_time_from_sec(600)
#define A2_LOCK_WAIT apr_time_from_sec(60)
/* A directory swap (acme_store_replace_dir) takes milliseconds; wait at most this long. */
#define A2_SWAP_WAIT apr_time_from_msec(2000)

typedef struct {
    const char *store_dir;
    const char *command;
    const char *name;
    const char *ca_url;
    const char *ca_file;
    const char *reason_text;
    int reason;                 /* < 0: not given */
    int json;
    int force;
    int no_renew;
    const char *user;           /* --user: who ACMENotifyCommand runs as */
    apr_array_header_t *rest;   /* account: the subcommand's arguments after NAME */
    const char *issuer;         /* dns-persist: --issuer, one of the CA's issuer domain names */
    const char *proxy;          /* --proxy: URL or "none"; NULL: the server's ACMEProxy */
} a2_args_t;

/* Who the server runs ACMENotifyCommand as (its User), so that a2acme runs it the same. */
typedef struct {
    int known;
    uid_t uid;
    gid_t gid;
} a2_hook_user_t;

typedef struct {
    apr_pool_t *p;
    const a2_args_t *args;
    acme_store_t *store;
    apr_array_header_t *domains;    /* acme_domain_t * */
    const char *source;             /* "domains.json" or "store" */
    apr_array_header_t *notify_argv;/* ACMENotifyCommand from domains.json, or NULL */
    a2_hook_user_t hook_user;       /* as domains.json records it */
    apr_hash_t *accounts;           /* ca_url -> a2_account_t * */
} a2_t;

/* One CA account as the store holds it, with a client signing for it. */
typedef struct {
    const char *ca_url;
    const char *ca_id;
    const char *key_path;
    acme_key_t *key;
    const char *url;
    acme_client_t *client;
} a2_account_t;

/* What `list` shows of one domain. */
typedef struct {
    const acme_domain_t *dom;
    acme_active_t *active;
    acme_job_t *job;
    int staged;
    int rejected;               /* refused sets kept in rejected/ */
    apr_time_t force_at;        /* 0: no renewal requested */
    int ca_known;
} a2_entry_t;

/* ------------------------------------------------------------------ output helpers */

static void a2_err(const char *msg)
{
    fprintf(stderr, A2_PROG ": %s\n", msg);
}

static int a2_usage_error(const char *msg)
{
    a2_err(msg);
    fputs("Try '" A2_PROG " --help'.\n", stderr);
    return A2_EXIT_USAGE;
}

static int a2_failed(apr_pool_t *p, const acme_result_t *res)
{
    a2_err(acme_result_describe(res, p));
    return A2_EXIT_FAILED;
}

static const char *a2_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    if (t == 0) {
        return "-";
    }
    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void a2_print_json(json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);

    if (text) {
        puts(text);
        free(text);
    }
}

static void a2_help(void)
{
    fputs(
"Usage: " A2_PROG " --store DIR COMMAND [options]\n"
"Administers the certificates and ACME accounts in a mod_acme store (ACMEStoreDir),\n"
"with httpd running or stopped. Run as root.\n"
"\n"
"Commands:\n"
"  list                  every managed domain: state, certificates (serial, issuer, expiry)\n"
"                        per key type, next renewal, last error, staged certificates\n"
"  renew NAME            renew NAME now: the running server starts within a minute,\n"
"                        a stopped one at its next start\n"
"  revoke NAME           revoke the certificates NAME is served with, at the issuing CA,\n"
"                        signed by the store's account; then renew NAME\n"
"  account               show the store's ACME account(s): URL, status, contact\n"
"  rollover              replace the account key at the CA (keyChange) and in the store\n"
"  account deactivate    deactivate the account at the CA (irreversible); the server then\n"
"                        orders no more with it (see docs/a2acme.md for a new account)\n"
"  account contact [MAILTO]...  set the account's contact at the CA (none: remove it)\n"
"  account bind KID HMAC-FILE   replace the store's account by a new one bound with the\n"
"                        CA's external account binding (HMAC key from a root-only file)\n"
"  account agree         after reading new terms of service: record them as agreed and\n"
"                        let orders at that CA go on\n"
"  dns-persist NAME      the _validation-persist TXT record(s) to create for NAME's domain\n"
"                        (dns-persist-01), for the store's account at the domain's CA\n"
"\n"
"Options:\n"
"  --store DIR           the store (default: $ACME_STORE)\n"
"  --json                list, account: JSON on stdout\n"
"  --reason R            revoke: keyCompromise, superseded, cessationOfOperation,\n"
"                        affiliationChanged, unspecified or a number 0..10 (not 7)\n"
"  --no-renew            revoke: do not renew afterwards (cessationOfOperation never does)\n"
"  --ca URL              account, rollover, revoke: the CA's directory URL\n"
"  --ca-file FILE        trust for the CA's HTTPS server (default: the domain's\n"
"                        ACMECACertificate, else the system store)\n"
"  --proxy URL|none      the proxy to the CA (default: the server's ACMEProxy for it;\n"
"                        give it here when its URL holds a password)\n"
"  --force               rollover: even while a renewal seems to be running\n"
"  --issuer NAME         dns-persist: which of the CA's issuer domain names (default: first)\n"
"  --user NAME           revoke: run ACMENotifyCommand as NAME (default: the httpd User\n"
"                        the server recorded in the store)\n"
"  --help, --version\n"
"\n"
"Exit status: 0 done, 1 the operation failed, 2 usage error or unknown domain.\n",
        stdout);
}

/* ------------------------------------------------------------------ arguments */

static const struct {
    const char *name;
    int code;
} a2_reasons[] = {
    { "unspecified", 0 }, { "keyCompromise", 1 }, { "cACompromise", 2 },
    { "affiliationChanged", 3 }, { "superseded", 4 }, { "cessationOfOperation", 5 },
    { "certificateHold", 6 }, { "removeFromCRL", 8 }, { "privilegeWithdrawn", 9 },
    { "aACompromise", 10 },
};

static const char *a2_reason_name(int code)
{
    size_t i;

    for (i = 0; i < sizeof(a2_reasons) / sizeof(a2_reasons[0]); ++i) {
        if (a2_reasons[i].code == code) {
            return a2_reasons[i].name;
        }
    }
    return "none";
}

static int a2_reason_parse(const char *text)
{
    char *end = NULL;
    long n;
    size_t i;

    for (i = 0; i < sizeof(a2_reasons) / sizeof(a2_reasons[0]); ++i) {
        if (!strcasecmp(a2_reasons[i].name, text)) {
            return a2_reasons[i].code;
        }
    }
    n = strtol(text, &end, 10);
    if (end == text || *end || n < 0 || n > 10 || n == 7) {
        return -1;
    }
    return (int)n;
}

/* NAME, then (account only) the subcommand's arguments; 0 for one argument too many. */
static int a2_positional(apr_pool_t *p, a2_args_t *a, const char *arg)
{
    if (!a->name) {
        a->name = arg;
        return 1;
    }
    if (strcmp(a->command, "account")) {
        return 0;
    }
    a->rest = a->rest ? a->rest : apr_array_make(p, 2, sizeof(const char *));
    APR_ARRAY_PUSH(a->rest, const char *) = arg;
    return 1;
}

/* One option into a; 0 for an unknown one. */
static int a2_set_option(a2_args_t *a, const char *opt, const char *val)
{
    if (!strcmp(opt, "--store")) a->store_dir = val;
    else if (!strcmp(opt, "--ca")) a->ca_url = val;
    else if (!strcmp(opt, "--ca-file")) a->ca_file = val;
    else if (!strcmp(opt, "--reason")) a->reason_text = val;
    else if (!strcmp(opt, "--json")) a->json = 1;
    else if (!strcmp(opt, "--force")) a->force = 1;
    else if (!strcmp(opt, "--no-renew")) a->no_renew = 1;
    else if (!strcmp(opt, "--user")) a->user = val;
    else if (!strcmp(opt, "--issuer")) a->issuer = val;
    else if (!strcmp(opt, "--proxy")) a->proxy = val;
    else return 0;
    return 1;
}

/* The options that take a value. */
static const char *const a2_valued[] = { "--store", "--ca", "--ca-file", "--reason", "--user",
                                         "--issuer", "--proxy" };

static int a2_parse_args(apr_pool_t *p, int argc, const char *const *argv, a2_args_t *a)
{
    int i;

    *a = (a2_args_t){ .reason = -1 };
    for (i = 1; i < argc; ++i) {
        const char *opt = argv[i], *val = NULL, *eq;
        size_t k;
        int takes = 0;

        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            a2_help();
            return -1;
        }
        if (!strcmp(opt, "--version")) {
            puts(A2_PROG " (" ACME_USER_AGENT_PRODUCT ")");
            return -1;
        }
        if (strncmp(opt, "--", 2) != 0) {
            if (!a->command) {
                a->command = opt;
            }
            else if (!a2_positional(p, a, opt)) {
                return a2_usage_error(apr_psprintf(p, "unexpected argument '%s'", opt));
            }
            continue;
        }
        eq = strchr(opt, '=');
        if (eq) {
            val = eq + 1;
            opt = apr_pstrmemdup(p, opt, (apr_size_t)(eq - opt));
        }
        for (k = 0; k < sizeof(a2_valued) / sizeof(a2_valued[0]); ++k) {
            takes |= !strcmp(opt, a2_valued[k]);
        }
        if (takes && !val) {
            if (i + 1 >= argc) {
                return a2_usage_error(apr_psprintf(p, "%s needs a value", opt));
            }
            val = argv[++i];
        }
        else if (!takes && val) {
            return a2_usage_error(apr_psprintf(p, "%s takes no value", opt));
        }
        if (!a2_set_option(a, opt, val)) {
            return a2_usage_error(apr_psprintf(p, "unknown option %s", opt));
        }
    }
    if (!a->store_dir) {
        a->store_dir = getenv("ACME_STORE");
    }
    if (!a->store_dir || !*a->store_dir) {
        return a2_usage_error("--store DIR is required (the server's ACMEStoreDir; "
                              "default <ServerRoot>/acme), or set ACME_STORE");
    }
    if (!a->command) {
        return a2_usage_error("no command given (list, renew, revoke, account, rollover)");
    }
    if (a->reason_text) {
        if (strcmp(a->command, "revoke") != 0) {
            return a2_usage_error("--reason is an option of revoke");
        }
        if ((a->reason = a2_reason_parse(a->reason_text)) < 0) {
            return a2_usage_error(apr_psprintf(p, "unknown revocation reason '%s' (use "
                                               "keyCompromise, superseded, cessationOfOperation, "
                                               "affiliationChanged, unspecified or 0..10 but 7)",
                                               a->reason_text));
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ the store */

static int a2_is_dir(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;

    return apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS && fi.filetype == APR_DIR;
}

static int a2_exists(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;

    return path && apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS;
}

/* Opens an existing store only: acme_store_open would create one at a mistyped path. */
static int a2_store_open(a2_t *a)
{
    const char *dir = a->args->store_dir;
    acme_result_t res;
    apr_dir_t *probe;
    apr_status_t rv;

    if (!a2_is_dir(a->p, dir)) {
        a2_err(apr_psprintf(a->p, "no store at %s: --store must name the server's ACMEStoreDir",
                            dir));
        return A2_EXIT_USAGE;
    }
    if (!a2_is_dir(a->p, apr_pstrcat(a->p, dir, "/" ACME_STORE_DOMAINS, NULL))
        || !a2_is_dir(a->p, apr_pstrcat(a->p, dir, "/" ACME_STORE_JOBS, NULL))) {
        a2_err(apr_psprintf(a->p, "%s is not a mod_acme store (it has no domains/ and jobs/ "
                            "directories)", dir));
        return A2_EXIT_USAGE;
    }
    rv = apr_dir_open(&probe, apr_pstrcat(a->p, dir, "/" ACME_STORE_DOMAINS, NULL), a->p);
    if (rv != APR_SUCCESS) {
        char buf[256];
        a2_err(apr_psprintf(a->p, "cannot read %s/" ACME_STORE_DOMAINS ": %s (run a2acme as "
                            "root)", dir, apr_strerror(rv, buf, sizeof(buf))));
        return A2_EXIT_FAILED;
    }
    apr_dir_close(probe);
    acme_result_reset(&res);
    if (acme_store_open(a->p, dir, &a->store, &res) != APR_SUCCESS) {
        return a2_failed(a->p, &res);
    }
    return A2_EXIT_OK;
}

/* Names of the entries of dir (no hidden ones), sorted. */
static apr_array_header_t *a2_dir_names(apr_pool_t *p, const char *dir, int dirs_only)
{
    apr_array_header_t *names = apr_array_make(p, 16, sizeof(const char *));
    apr_finfo_t fi;
    apr_dir_t *d;

    if (!dir || apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return names;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) == APR_SUCCESS) {
        if (fi.name[0] == '.' || (dirs_only && fi.filetype != APR_DIR)) {
            continue;
        }
        APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, fi.name);
    }
    apr_dir_close(d);
    return names;
}

static int a2_name_cmp(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The key specs of domains/<name>/pubcert.<spec>.pem files. */
static apr_array_header_t *a2_store_specs(apr_pool_t *p, const char *dir)
{
    apr_array_header_t *files = a2_dir_names(p, dir, 0);
    apr_array_header_t *specs = apr_array_make(p, 2, sizeof(acme_keyspec_t));
    int i;

    for (i = 0; i < files->nelts; ++i) {
        const char *f = APR_ARRAY_IDX(files, i, const char *);
        apr_size_t len = strlen(f);
        const char *reason = NULL;
        acme_keyspec_t spec;

        if (strncmp(f, "pubcert.", 8) != 0 || len <= 12 || strcmp(f + len - 4, ".pem") != 0) {
            continue;
        }
        if (acme_crypto_keyspec_parse(apr_pstrmemdup(p, f + 8, len - 12), &spec, &reason, p)
            == APR_SUCCESS) {
            APR_ARRAY_PUSH(specs, acme_keyspec_t) = spec;
        }
    }
    return specs;
}

/* The names of the certificate in domains/<name>/, the domain's own name first. */
static void a2_store_idents(apr_pool_t *p, acme_domain_t *dom, const char *dir)
{
    const apr_array_header_t *specs = dom->policy.key_specs;
    apr_array_header_t *chain = NULL;
    acme_cert_info_t info;
    acme_result_t res;
    char *pem = NULL;
    apr_size_t len = 0;
    const char *reason = NULL;
    int i;

    if (acme_domain_add_name(p, dom, dom->name, &reason) != APR_SUCCESS) {
        APR_ARRAY_PUSH(dom->idents, acme_ident_t) =
            (acme_ident_t){ .type = ACME_IDENT_DNS, .value = dom->name };
    }
    if (specs->nelts == 0) {
        return;
    }
    acme_result_reset(&res);
    if (acme_store_read_file(p, apr_psprintf(p, "%s/pubcert.%s.pem", dir,
                                             acme_crypto_keyspec_name(&APR_ARRAY_IDX(
                                                 specs, 0, acme_keyspec_t))),
                             &pem, &len, 0, &res) != APR_SUCCESS
        || acme_crypto_chain_parse(p, pem, len, &chain, &res) != APR_SUCCESS
        || acme_crypto_cert_info(p, APR_ARRAY_IDX(chain, 0, acme_cert_t *), &info, &res)
           != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < info.sans->nelts; ++i) {
        const acme_ident_t *id = &APR_ARRAY_IDX(info.sans, i, acme_ident_t);
        if (!acme_domain_has_ident(dom, id)) {
            APR_ARRAY_PUSH(dom->idents, acme_ident_t) = *id;
        }
    }
}

/*
 * A domain as the store shows it when the server wrote no domains.json: the domain the worker
 * staged last if a set waits, else names and key types of the served certificate, the CA of
 * its job.
 */
static acme_domain_t *a2_store_domain(a2_t *a, const char *name)
{
    apr_pool_t *p = a->p;
    const char *staged = acme_store_path(p, a->store, ACME_STORE_STAGING, name,
                                         ACME_WORKER_STAGED_FILE);
    const char *dir = acme_store_path(p, a->store, ACME_STORE_DOMAINS, name, NULL);
    acme_domain_t *dom = NULL;
    acme_job_t *job = NULL;
    acme_result_t res;
    json_t *json = NULL;

    acme_result_reset(&res);
    if (staged && acme_store_read_json(p, staged, &json, &res) == APR_SUCCESS
        && acme_domain_from_json(p, json_object_get(json, "domain"), &dom, &res) == APR_SUCCESS
        && !strcmp(dom->name, name)) {
        return dom;
    }
    dom = acme_domain_make(p, NULL, 0);
    dom->name = name;
    dom->policy.key_specs = a2_store_specs(p, dir);
    a2_store_idents(p, dom, dir);
    dom->policy.ca_urls = apr_array_make(p, 1, sizeof(const char *));
    dom->policy.challenges = apr_array_make(p, 1, sizeof(const char *));
    dom->policy.renew_window = "auto";
    acme_result_reset(&res);
    if (acme_job_load(p, a->store, name, &job, &res) == APR_SUCCESS && job->ca_url) {
        APR_ARRAY_PUSH(dom->policy.ca_urls, const char *) = job->ca_url;
    }
    return dom;
}

static void a2_scan_add(apr_hash_t *seen, apr_pool_t *p, const char *name)
{
    if (name && *name && name[0] != '.' && name[0] != '_' && !strchr(name, '~')) {
        apr_hash_set(seen, apr_pstrdup(p, name), APR_HASH_KEY_STRING, "");
    }
}

/* jobs/ also holds next-run, activation.json, account.<ca-id>.json: a job file names itself. */
static int a2_is_job_file(a2_t *a, const char *file, const char **name)
{
    apr_size_t len = strlen(file);
    acme_result_t res;
    json_t *json = NULL;
    const char *self;

    if (len <= 5 || strcmp(file + len - 5, ".json") != 0) {
        return 0;
    }
    *name = apr_pstrmemdup(a->p, file, len - 5);
    acme_result_reset(&res);
    if (acme_store_read_json(a->p, acme_store_path(a->p, a->store, ACME_STORE_JOBS, file, NULL),
                             &json, &res) != APR_SUCCESS) {
        return 0;
    }
    self = json_string_value(json_object_get(json, "name"));
    return self && !strcmp(self, *name);
}

static void a2_domains_scan(a2_t *a)
{
    apr_hash_t *seen = apr_hash_make(a->p);
    apr_array_header_t *list, *names = apr_array_make(a->p, 16, sizeof(const char *));
    apr_hash_index_t *hi;
    int i;

    list = a2_dir_names(a->p, acme_store_path(a->p, a->store, ACME_STORE_DOMAINS, NULL, NULL), 1);
    for (i = 0; i < list->nelts; ++i) {
        a2_scan_add(seen, a->p, APR_ARRAY_IDX(list, i, const char *));
    }
    list = a2_dir_names(a->p, acme_store_path(a->p, a->store, ACME_STORE_STAGING, NULL, NULL), 1);
    for (i = 0; i < list->nelts; ++i) {
        a2_scan_add(seen, a->p, APR_ARRAY_IDX(list, i, const char *));
    }
    list = a2_dir_names(a->p, acme_store_path(a->p, a->store, ACME_STORE_JOBS, NULL, NULL), 0);
    for (i = 0; i < list->nelts; ++i) {
        const char *name = NULL;
        if (a2_is_job_file(a, APR_ARRAY_IDX(list, i, const char *), &name)) {
            a2_scan_add(seen, a->p, name);
        }
    }
    for (hi = apr_hash_first(a->p, seen); hi; hi = apr_hash_next(hi)) {
        APR_ARRAY_PUSH(names, const char *) = apr_hash_this_key(hi);
    }
    qsort(names->elts, (size_t)names->nelts, sizeof(const char *), a2_name_cmp);
    a->domains = apr_array_make(a->p, names->nelts + 1, sizeof(acme_domain_t *));
    for (i = 0; i < names->nelts; ++i) {
        APR_ARRAY_PUSH(a->domains, acme_domain_t *) =
            a2_store_domain(a, APR_ARRAY_IDX(names, i, const char *));
    }
    a->source = "store";
}

/* The server's ACMENotifyCommand as domains.json records it; NULL when there is none. */
static apr_array_header_t *a2_notify_argv(apr_pool_t *p, json_t *list)
{
    apr_array_header_t *argv;
    json_t *v;
    size_t i;

    if (!json_is_array(list) || json_array_size(list) == 0) {
        return NULL;
    }
    argv = apr_array_make(p, (int)json_array_size(list), sizeof(const char *));
    json_array_foreach(list, i, v) {
        if (!json_is_string(v)) {
            return NULL;
        }
        APR_ARRAY_PUSH(argv, const char *) = apr_pstrdup(p, json_string_value(v));
    }
    return argv;
}

/* The identity the server records for its hooks; known = 0 when it recorded none. */
static a2_hook_user_t a2_hook_user_of(json_t *user)
{
    json_t *uid = json_object_get(user, "uid"), *gid = json_object_get(user, "gid");

    if (!json_is_integer(uid) || !json_is_integer(gid) || json_integer_value(uid) < 0
        || json_integer_value(gid) < 0) {
        return (a2_hook_user_t){ .known = 0 };
    }
    return (a2_hook_user_t){ .known = 1, .uid = (uid_t)json_integer_value(uid),
                             .gid = (gid_t)json_integer_value(gid) };
}

/* The configured set from <store>/domains.json when the server wrote one, else the scan. */
static void a2_domains_load(a2_t *a)
{
    const char *path = acme_store_path(a->p, a->store, A2_DOMAIN_SET_FILE, NULL, NULL);
    acme_result_t res;
    json_t *json = NULL;
    apr_status_t rv;

    acme_result_reset(&res);
    rv = acme_store_read_json(a->p, path, &json, &res);
    if (rv == APR_SUCCESS
        && (rv = acme_domain_set_from_json(a->p, json, &a->domains, &res)) == APR_SUCCESS) {
        a->source = A2_DOMAIN_SET_FILE;
        a->notify_argv = a2_notify_argv(a->p, json_object_get(json, "notify_command"));
        a->hook_user = a2_hook_user_of(json_object_get(json, "hook_user"));
        return;
    }
    if (!APR_STATUS_IS_ENOENT(rv)) {
        a2_err(apr_psprintf(a->p, "warning: %s is unusable (%s); using what the store holds",
                            path, acme_result_describe(&res, a->p)));
    }
    a2_domains_scan(a);
}

/* The domain called name, or the only domain listing name among its names. */
static acme_domain_t *a2_domain_find(a2_t *a, const char *name)
{
    acme_domain_t *alias = NULL;
    int i, j, n_alias = 0;

    for (i = 0; i < a->domains->nelts; ++i) {
        acme_domain_t *dom = APR_ARRAY_IDX(a->domains, i, acme_domain_t *);
        if (!strcasecmp(dom->name, name)) {
            return dom;
        }
        for (j = 0; j < dom->idents->nelts; ++j) {
            if (!strcasecmp(APR_ARRAY_IDX(dom->idents, j, acme_ident_t).value, name)) {
                alias = dom;
                ++n_alias;
                break;
            }
        }
    }
    return n_alias == 1 ? alias : NULL;
}

static int a2_unknown_domain(a2_t *a, const char *name)
{
    a2_err(apr_psprintf(a->p, "unknown domain '%s': the store %s manages no such domain (see "
                        "'" A2_PROG " --store %s list')", name, a->args->store_dir,
                        a->args->store_dir));
    return A2_EXIT_USAGE;
}

/* domains/.<name>.replacing exists while activation swaps the directory (two renames). */
static void a2_wait_for_swap(a2_t *a, const acme_domain_t *dom)
{
    const char *marker = apr_pstrcat(a->p, acme_store_base(a->store), "/" ACME_STORE_DOMAINS "/.",
                                     dom->name, ".replacing", NULL);
    apr_time_t until = apr_time_now() + A2_SWAP_WAIT;

    while (a2_exists(a->p, marker) && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(50));
    }
}

static apr_status_t a2_active_load(a2_t *a, const acme_domain_t *dom, acme_active_t **active,
                                   acme_result_t *res)
{
    apr_status_t rv;

    a2_wait_for_swap(a, dom);
    /* No fallback: a read-only look must not write one into the store. */
    rv = acme_activate_load(a->p, a->store, dom, apr_time_now(), NULL, active, res);
    if (rv == APR_SUCCESS && (*active)->certs->nelts == 0) {
        (*active)->complete = 0;
    }
    return rv;
}

static const char *a2_force_path(a2_t *a, const char *name)
{
    /* requests/ is root's: the httpd User cannot forge a request. */
    return acme_store_path(a->p, a->store, ACME_STORE_REQUESTS,
                           apr_pstrcat(a->p, name, A2_FORCE_SUFFIX, NULL), NULL);
}

static apr_time_t a2_force_time(a2_t *a, const char *name)
{
    const char *path = a2_force_path(a, name);
    acme_result_t res;
    char *text = NULL;
    apr_size_t len = 0;
    apr_int64_t sec;

    acme_result_reset(&res);
    if (!path || acme_store_read_file(a->p, path, &text, &len, 64, &res) != APR_SUCCESS) {
        return 0;
    }
    sec = apr_strtoi64(text, NULL, 10);
    return sec > 0 ? apr_time_from_sec(sec) : apr_time_now();
}

/* ------------------------------------------------------------------ list */

static json_t *a2_entry_json(const a2_entry_t *e)
{
    json_t *out = acme_status_domain(e->dom, e->active, e->job);

    if (!out) {
        return json_pack("{s:s, s:s}", "name", e->dom->name, "state", "unknown");
    }
    if (!e->ca_known) {
        json_object_set_new(out, "ca", json_null());
    }
    json_object_set_new(out, "staged", json_boolean(e->staged));
    json_object_set_new(out, "rejected_sets", json_integer(e->rejected));
    json_object_set_new(out, "renewal_requested",
                        e->force_at ? json_integer(apr_time_sec(e->force_at)) : json_null());
    return out;
}

typedef struct {
    const char *cols[10];
} a2_row_t;

#define A2_COLS 10

/* PROFILE and LIFETIME of certificate i, from its status entry (acme_status_domain). */
static void a2_list_profile(apr_pool_t *p, json_t *status, int i, const void *cert,
                            const char **cols)
{
    json_t *entry = json_array_get(json_object_get(status, "certificates"), (size_t)i);
    const char *profile = json_string_value(json_object_get(entry, "profile"));
    const char *life = json_string_value(json_object_get(entry, "lifetime"));

    cols[0] = !cert ? "-" : profile ? apr_pstrdup(p, profile) : "default";
    cols[1] = cert && life ? apr_pstrdup(p, life) : "-";
}

static void a2_list_rows(apr_pool_t *p, const a2_entry_t *e, json_t *status,
                         apr_array_header_t *rows)
{
    const char *state = json_string_value(json_object_get(status, "state"));
    const char *names = "";
    int i, n = e->active ? e->active->certs->nelts : 0;

    for (i = 0; i < e->dom->idents->nelts; ++i) {
        names = apr_pstrcat(p, names, i ? "," : "", APR_ARRAY_IDX(e->dom->idents, i,
                                                                   acme_ident_t).value, NULL);
    }
    for (i = 0; i < (n ? n : 1); ++i) {
        a2_row_t *row = apr_array_push(rows);
        const acme_active_cert_t *c = n ? &APR_ARRAY_IDX(e->active->certs, i,
                                                         acme_active_cert_t) : NULL;
        row->cols[0] = i ? "" : e->dom->name;
        row->cols[1] = i ? "" : apr_pstrdup(p, state ? state : "unknown");
        row->cols[2] = c ? c->spec : "-";
        row->cols[3] = c && c->info.serial_hex ? c->info.serial_hex : "-";
        row->cols[4] = c ? (c->info.issuer_cn ? c->info.issuer_cn
                                              : c->info.issuer ? c->info.issuer : "-") : "-";
        row->cols[5] = c ? a2_time(p, c->info.not_after) : "-";
        a2_list_profile(p, status, i, c, row->cols + 6);
        row->cols[8] = i ? "" : a2_time(p, e->job ? e->job->renew_at : 0);
        row->cols[9] = i ? "" : names;
    }
}

/* Lines under a domain's rows: what needs a human's eye. */
static void a2_list_notes(apr_pool_t *p, const a2_entry_t *e, apr_array_header_t *rows)
{
    const acme_job_t *job = e->job;
    a2_row_t *row;
    const char *note[8];
    int n = 0, i;

    if (e->ca_known) {
        note[n++] = apr_pstrcat(p, "CA: ", APR_ARRAY_IDX(e->dom->policy.ca_urls, 0,
                                                          const char *), NULL);
    }
    if (job && job->last_error.status != APR_SUCCESS) {
        note[n++] = apr_psprintf(p, "last error (%d failure%s, %s, %s): %s", job->failures,
                                 job->failures == 1 ? "" : "s", a2_time(p, job->last_error_at),
                                 acme_class_name(job->last_error.err_class),
                                 acme_result_describe(&job->last_error, p));
        if (job->state == ACME_JOB_FAILED && job->next_run) {
            note[n++] = apr_pstrcat(p, "next attempt: ", a2_time(p, job->next_run), NULL);
        }
    }
    if (e->staged) {
        note[n++] = "a new certificate is staged and waits for activation";
    }
    if (e->rejected) {
        note[n++] = apr_psprintf(p, "%d refused staged set%s kept in rejected/ for a look",
                                 e->rejected, e->rejected == 1 ? "" : "s");
    }
    if (e->force_at) {
        note[n++] = apr_pstrcat(p, "renewal requested at ", a2_time(p, e->force_at),
                                ", not picked up by the server yet", NULL);
    }
    if (e->active && e->active->last_activation_error) {
        note[n++] = apr_pstrcat(p, "activation refused: ", e->active->last_activation_error,
                                NULL);
    }
    for (i = 0; i < n; ++i) {
        row = apr_array_push(rows);
        *row = (a2_row_t){ .cols = { NULL } };
        row->cols[0] = apr_pstrcat(p, "  ", note[i], NULL);
    }
}

static void a2_print_table(apr_pool_t *p, const apr_array_header_t *rows)
{
    int width[A2_COLS] = { 0 };
    const char *line, *end;
    int i, c;

    for (i = 0; i < rows->nelts; ++i) {
        const a2_row_t *row = &APR_ARRAY_IDX(rows, i, a2_row_t);
        for (c = 0; c < A2_COLS && row->cols[1]; ++c) {
            int len = (int)strlen(row->cols[c]);
            width[c] = len > width[c] ? len : width[c];
        }
    }
    for (i = 0; i < rows->nelts; ++i) {
        const a2_row_t *row = &APR_ARRAY_IDX(rows, i, a2_row_t);
        if (!row->cols[1]) {            /* a note: one free-form line */
            puts(row->cols[0]);
            continue;
        }
        line = "";
        for (c = 0; c < A2_COLS; ++c) {
            line = apr_psprintf(p, "%s%s%-*s", line, c ? "  " : "", c + 1 < A2_COLS ? width[c] : 0,
                                row->cols[c]);
        }
        end = line + strlen(line);
        while (end > line && end[-1] == ' ') {
            --end;
        }
        printf("%.*s\n", (int)(end - line), line);
    }
}

static int a2_cmd_list(a2_t *a)
{
    static const char *const header[A2_COLS] = {
        "DOMAIN", "STATE", "KEY", "SERIAL", "ISSUER", "NOT AFTER", "PROFILE", "LIFETIME",
        "RENEW AT", "NAMES"
    };
    apr_array_header_t *rows = apr_array_make(a->p, 16, sizeof(a2_row_t));
    json_t *list = json_array(), *doc;
    int i, c, rc = A2_EXIT_OK;
    a2_row_t *head = apr_array_push(rows);

    for (c = 0; c < A2_COLS; ++c) {
        head->cols[c] = header[c];
    }
    for (i = 0; i < a->domains->nelts; ++i) {
        a2_entry_t e = { .dom = APR_ARRAY_IDX(a->domains, i, const acme_domain_t *) };
        acme_result_t res;
        json_t *status;

        acme_result_reset(&res);
        e.ca_known = e.dom->policy.ca_urls && e.dom->policy.ca_urls->nelts > 0;
        if (!e.ca_known) {
            /* acme_status_domain names the first CA; "ca" becomes null in the output. */
            acme_domain_t *copy = apr_pmemdup(a->p, e.dom, sizeof(*copy));
            copy->policy.ca_urls = apr_array_make(a->p, 1, sizeof(const char *));
            APR_ARRAY_PUSH(copy->policy.ca_urls, const char *) = "";
            e.dom = copy;
        }
        if (a2_active_load(a, e.dom, &e.active, &res) != APR_SUCCESS) {
            a2_err(apr_psprintf(a->p, "%s: %s", e.dom->name, acme_result_describe(&res, a->p)));
            e.active = NULL;
            rc = A2_EXIT_FAILED;
        }
        acme_result_reset(&res);
        if (acme_job_load(a->p, a->store, e.dom->name, &e.job, &res) != APR_SUCCESS) {
            a2_err(apr_psprintf(a->p, "%s: job file: %s", e.dom->name,
                                acme_result_describe(&res, a->p)));
            e.job = NULL;
        }
        e.staged = acme_activate_staged(a->p, a->store, e.dom);
        e.rejected = acme_activate_rejected_count(a->p, a->store, e.dom);
        e.force_at = a2_force_time(a, e.dom->name);
        status = a2_entry_json(&e);
        if (a->args->json) {
            json_array_append(list, status);
        }
        else {
            a2_list_rows(a->p, &e, status, rows);
            a2_list_notes(a->p, &e, rows);
        }
        json_decref(status);
    }
    if (a->args->json) {
        doc = json_pack("{s:s, s:s, s:o}", "store", acme_store_base(a->store),
                        "source", a->source, "domains", list);
        a2_print_json(doc);
        json_decref(doc);
        return rc;
    }
    json_decref(list);
    if (a->domains->nelts == 0) {
        printf("no managed domains in %s\n", acme_store_base(a->store));
        return rc;
    }
    a2_print_table(a->p, rows);
    return rc;
}

/* ------------------------------------------------------------------ renew */

static apr_status_t a2_request_renewal(a2_t *a, const char *name, acme_result_t *res)
{
    const char *path = a2_force_path(a, name);
    const char *text = apr_psprintf(a->p, "%" APR_TIME_T_FMT "\n", apr_time_sec(apr_time_now()));

    if (!path) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_PERMANENT,
                                apr_psprintf(a->p, "no marker file name for '%s'", name));
    }
    return acme_store_write_file(a->p, path, text, strlen(text), ACME_PERMS_0644, res);
}

static int a2_cmd_renew(a2_t *a)
{
    const acme_domain_t *dom = a2_domain_find(a, a->args->name);
    acme_result_t res;

    if (!dom) {
        return a2_unknown_domain(a, a->args->name);
    }
    acme_result_reset(&res);
    if (a2_request_renewal(a, dom->name, &res) != APR_SUCCESS) {
        return a2_failed(a->p, &res);
    }
    printf("%s: renewal requested; a running server starts it within a minute, a stopped one "
           "at its next start\n", dom->name);
    return A2_EXIT_OK;
}

/* ------------------------------------------------------------------ accounts */

static const char *a2_account_url_path(a2_t *a, const char *ca_id)
{
    return acme_store_path(a->p, a->store, ACME_STORE_JOBS,
                           apr_pstrcat(a->p, "account.", ca_id, ".json", NULL), NULL);
}

/* The CA URL the worker recorded for ca_id, or NULL. */
static const char *a2_account_ca_url(a2_t *a, const char *ca_id, const char **url)
{
    acme_result_t res;
    json_t *json = NULL;
    const char *ca;

    acme_result_reset(&res);
    if (acme_store_read_json(a->p, a2_account_url_path(a, ca_id), &json, &res) != APR_SUCCESS) {
        return NULL;
    }
    ca = json_string_value(json_object_get(json, "ca_url"));
    if (url) {
        *url = json_string_value(json_object_get(json, "url"));
        *url = *url ? apr_pstrdup(a->p, *url) : NULL;
    }
    return ca ? apr_pstrdup(a->p, ca) : NULL;
}

/* --ca-file, else the ACMECACertificate of a domain using this CA. */
static const char *a2_ca_file(a2_t *a, const char *ca_url)
{
    int i, j;

    if (a->args->ca_file) {
        return a->args->ca_file;
    }
    for (i = 0; i < a->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(a->domains, i, const acme_domain_t *);
        for (j = 0; dom->policy.ca_urls && j < dom->policy.ca_urls->nelts; ++j) {
            if (dom->policy.ca_file
                && !strcmp(APR_ARRAY_IDX(dom->policy.ca_urls, j, const char *), ca_url)) {
                return dom->policy.ca_file;
            }
        }
    }
    return NULL;
}

/*
 * --proxy, else the server's ACMEProxy for this CA as domains.json records it; the store keeps
 * no proxy credentials, so a proxy that needs them must be given with --proxy.
 */
static apr_status_t a2_proxy(a2_t *a, const char *ca_url, const char **proxy, acme_result_t *res)
{
    const char *reason = NULL;
    int i;

    *proxy = NULL;
    if (a->args->proxy) {
        if (acme_proxy_parse(a->p, a->args->proxy, proxy, &reason) != 0) {
            return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                    apr_psprintf(a->p, "--proxy: %s", reason));
        }
        return APR_SUCCESS;
    }
    for (i = 0; a->domains && i < a->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(a->domains, i, const acme_domain_t *);
        const acme_proxy_rule_t *r = acme_proxy_find(dom->policy.proxies, ca_url);
        if (r && r->withheld) {
            return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(a->p,
                "the server reaches %s through the proxy %s with a user and password the store "
                "does not keep: pass --proxy with the URL from ACMEProxy", ca_url,
                acme_proxy_redact(a->p, r->url)));
        }
        if (r) {
            *proxy = r->url;
            return APR_SUCCESS;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t a2_key_load(apr_pool_t *p, const char *path, acme_key_t **key,
                                acme_result_t *res)
{
    char *pem = NULL;
    apr_size_t len = 0;
    apr_status_t rv = acme_store_read_file(p, path, &pem, &len, 0, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    return acme_crypto_key_from_pem(p, pem, len, key, res);
}

/* A client signing for the store's account at ca_url (key read as root, URL from jobs/). */
static apr_status_t a2_account_open(a2_t *a, const char *ca_url, a2_account_t **pacct,
                                    acme_result_t *res)
{
    a2_account_t *acct = apr_hash_get(a->accounts, ca_url, APR_HASH_KEY_STRING);
    acme_client_options_t opts = { .ca_file = NULL };
    acme_client_account_t *found = NULL;
    const char *recorded_ca, *url = NULL;
    apr_status_t rv;

    if (acct) {
        *pacct = acct;
        return APR_SUCCESS;
    }
    acct = apr_pcalloc(a->p, sizeof(*acct));
    acct->ca_url = ca_url;
    acct->ca_id = acme_domain_ca_id(a->p, ca_url);
    acct->key_path = acme_store_path(a->p, a->store, ACME_STORE_ACCOUNTS, acct->ca_id,
                                     A2_ACCOUNT_KEY);
    rv = a2_key_load(a->p, acct->key_path, &acct->key, res);
    if (APR_STATUS_IS_ENOENT(rv)) {
        return acme_result_fail(res, rv, ACME_CLASS_ADMIN,
                                apr_psprintf(a->p, "the store has no account at %s (no %s; the "
                                             "server creates it with its first order there)",
                                             ca_url, acct->key_path));
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    opts.ca_file = a2_ca_file(a, ca_url);
    if ((rv = a2_proxy(a, ca_url, &opts.proxy, res)) != APR_SUCCESS
        || (rv = acme_client_create(&acct->client, a->p, ca_url, &opts, res)) != APR_SUCCESS) {
        return rv;
    }
    recorded_ca = a2_account_ca_url(a, acct->ca_id, &url);
    if (recorded_ca && !strcmp(recorded_ca, ca_url) && url) {
        acct->url = url;
    }
    acme_client_account_use(acct->client, acct->key, acct->url);
    if (!acct->url) {
        /* The worker had no time to record it: ask the CA which account the key has. */
        rv = acme_client_account_find(acct->client, a->p, &found, res);
        if (APR_STATUS_IS_ENOENT(rv)) {
            return acme_result_fail(res, rv, ACME_CLASS_ADMIN,
                                    apr_psprintf(a->p, "%s has no account for the key in %s",
                                                 ca_url, acct->key_path));
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        acct->url = apr_pstrdup(a->p, found->url);
        acme_client_account_use(acct->client, acct->key, acct->url);
    }
    apr_hash_set(a->accounts, ca_url, APR_HASH_KEY_STRING, acct);
    *pacct = acct;
    return APR_SUCCESS;
}

static void a2_push_unique(apr_array_header_t *list, const char *s)
{
    int i;

    if (!s || !*s) {
        return;
    }
    for (i = 0; i < list->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(list, i, const char *), s)) {
            return;
        }
    }
    APR_ARRAY_PUSH(list, const char *) = s;
}

/*
 * The CAs the store has an account at: --ca, else every accounts/<ca-id>/ whose URL the worker
 * recorded or a configured domain names. ca-ids nobody can map to a URL go to *unmapped.
 */
static apr_array_header_t *a2_account_cas(a2_t *a, apr_array_header_t **unmapped)
{
    apr_array_header_t *cas = apr_array_make(a->p, 2, sizeof(const char *));
    apr_array_header_t *ids;
    int i, j, k;

    *unmapped = apr_array_make(a->p, 1, sizeof(const char *));
    if (a->args->ca_url) {
        APR_ARRAY_PUSH(cas, const char *) = a->args->ca_url;
        return cas;
    }
    ids = a2_dir_names(a->p, acme_store_path(a->p, a->store, ACME_STORE_ACCOUNTS, NULL, NULL), 1);
    for (k = 0; k < ids->nelts; ++k) {
        const char *id = APR_ARRAY_IDX(ids, k, const char *);
        const char *ca = a2_account_ca_url(a, id, NULL);
        for (i = 0; !ca && i < a->domains->nelts; ++i) {
            const acme_domain_t *dom = APR_ARRAY_IDX(a->domains, i, const acme_domain_t *);
            for (j = 0; !ca && dom->policy.ca_urls && j < dom->policy.ca_urls->nelts; ++j) {
                const char *u = APR_ARRAY_IDX(dom->policy.ca_urls, j, const char *);
                ca = !strcmp(acme_domain_ca_id(a->p, u), id) ? u : NULL;
            }
        }
        if (ca && strcmp(acme_domain_ca_id(a->p, ca), id) == 0) {
            a2_push_unique(cas, ca);
        }
        else if (a2_exists(a->p, acme_store_path(a->p, a->store, ACME_STORE_ACCOUNTS, id,
                                                 A2_ACCOUNT_KEY))) {
            APR_ARRAY_PUSH(*unmapped, const char *) = id;
        }
    }
    return cas;
}

static json_t *a2_contact_json(const char *contact)
{
    json_t *arr = contact ? json_loads(contact, 0, NULL) : NULL;

    return arr ? arr : json_array();
}

static const char *a2_contact_text(apr_pool_t *p, const char *contact)
{
    json_t *arr = a2_contact_json(contact), *v;
    const char *text = "";
    size_t i;

    json_array_foreach(arr, i, v) {
        if (json_is_string(v)) {
            text = apr_pstrcat(p, text, *text ? ", " : "", json_string_value(v), NULL);
        }
    }
    json_decref(arr);
    return *text ? text : "-";
}

static const char *a2_key_type(const acme_key_t *key)
{
    acme_keyspec_t spec;

    acme_crypto_key_spec(key, &spec);
    return acme_crypto_keyspec_name(&spec);
}

/* The worker's record of the account at ca_url: URL history and last re-registration. */
static acme_job_account_t *a2_account_record(a2_t *a, const a2_account_t *acct)
{
    acme_job_account_t *rec = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    acme_job_account_load(a->p, a2_account_url_path(a, acct->ca_id), acct->ca_url, &rec, &res);
    return rec;
}

/* "history:" lines, oldest first: when, which URL, why. */
static void a2_account_history_print(a2_t *a, const acme_job_account_t *rec)
{
    int i;

    for (i = 0; i < rec->history->nelts; ++i) {
        const acme_job_account_event_t *ev = &APR_ARRAY_IDX(rec->history, i,
                                                            acme_job_account_event_t);
        printf("%s%s  %s  %s\n", i ? "          " : "history:  ", a2_time(a->p, ev->at),
               ev->url, ev->reason ? ev->reason : "-");
    }
    if (rec->reregistered_at) {
        printf("re-registered: %s (at most once an hour per CA)\n",
               a2_time(a->p, rec->reregistered_at));
    }
}

static int a2_cmd_account_sub(a2_t *a);
static void a2_account_life_print(a2_t *a, const acme_job_account_t *rec);

/* The account as the CA shows it; one deactivated with a2acme (the CA refuses to show it) as
 * the record has it. */
static apr_status_t a2_account_info(a2_t *a, a2_account_t *acct, acme_client_account_t **info,
                                    acme_result_t *res)
{
    acme_job_account_t *rec;

    if (acme_client_account_get(acct->client, a->p, info, res) == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    rec = a2_account_record(a, acct);
    if (!rec->deactivated_at || !rec->url || strcmp(rec->url, acct->url)) {
        return res->status;
    }
    *info = apr_pcalloc(a->p, sizeof(**info));
    (*info)->url = acct->url;
    (*info)->status = "deactivated";
    acme_result_reset(res);
    return APR_SUCCESS;
}

/* The record's account-life fields (as the status shows them) added to an --json entry. */
static void a2_json_add_life(json_t *entry, const acme_job_account_t *rec)
{
    json_t *life = acme_status_account(rec);

    json_object_update_missing(entry, life);
    json_decref(life);
}

static int a2_cmd_account(a2_t *a)
{
    apr_array_header_t *unmapped = NULL;
    apr_array_header_t *cas;
    json_t *list, *doc;
    int i, rc = A2_EXIT_OK;

    if (a->args->name) {
        return a2_cmd_account_sub(a);
    }
    cas = a2_account_cas(a, &unmapped);
    list = json_array();

    for (i = 0; i < unmapped->nelts; ++i) {
        a2_err(apr_psprintf(a->p, "accounts/%s: the CA it belongs to is not recorded; pass "
                            "--ca URL", APR_ARRAY_IDX(unmapped, i, const char *)));
        rc = A2_EXIT_FAILED;
    }
    if (cas->nelts == 0 && unmapped->nelts == 0) {
        a2_err(apr_psprintf(a->p, "the store %s has no ACME account yet (the server creates "
                            "one with its first order)", acme_store_base(a->store)));
        json_decref(list);
        return A2_EXIT_FAILED;
    }
    for (i = 0; i < cas->nelts; ++i) {
        const char *ca_url = APR_ARRAY_IDX(cas, i, const char *);
        acme_client_account_t *info = NULL;
        acme_job_account_t *rec;
        a2_account_t *acct = NULL;
        acme_result_t res;

        acme_result_reset(&res);
        if (a2_account_open(a, ca_url, &acct, &res) != APR_SUCCESS
            || a2_account_info(a, acct, &info, &res) != APR_SUCCESS) {
            a2_err(apr_psprintf(a->p, "%s: %s", ca_url, acme_result_describe(&res, a->p)));
            rc = A2_EXIT_FAILED;
            continue;
        }
        rec = a2_account_record(a, acct);
        if (a->args->json) {
            json_t *hist = acme_job_account_to_json(rec);
            json_array_append_new(list, json_pack("{s:s, s:s, s:s?, s:o, s:s, s:s, s:s?, s:O, "
                                                  "s:O}",
                                                  "ca", ca_url, "url", acct->url,
                                                  "status", info->status,
                                                  "contact", a2_contact_json(info->contact),
                                                  "key_type", a2_key_type(acct->key),
                                                  "key_file", acct->key_path,
                                                  "orders", info->orders,
                                                  "history", json_object_get(hist, "history"),
                                                  "reregistered_at",
                                                  json_object_get(hist, "reregistered_at")));
            json_decref(hist);
            a2_json_add_life(json_array_get(list, json_array_size(list) - 1), rec);
            continue;
        }
        printf("%sCA:       %s\naccount:  %s\nstatus:   %s\ncontact:  %s\nkey:      %s (%s)\n",
               i ? "\n" : "", ca_url, acct->url, info->status ? info->status : "-",
               a2_contact_text(a->p, info->contact), a2_key_type(acct->key), acct->key_path);
        a2_account_history_print(a, rec);
        a2_account_life_print(a, rec);
    }
    if (a->args->json) {
        doc = json_pack("{s:s, s:o}", "store", acme_store_base(a->store), "accounts", list);
        a2_print_json(doc);
        json_decref(doc);
    }
    else {
        json_decref(list);
    }
    return rc;
}

/* ------------------------------------------------------------------ rollover */

/* A worker that is ordering at this CA now signs with the old key; its order would fail. */
static const char *a2_busy_domain(a2_t *a, const char *ca_url)
{
    apr_time_t now = apr_time_now();
    int i;

    for (i = 0; i < a->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(a->domains, i, const acme_domain_t *);
        acme_job_t *job = NULL;
        acme_result_t res;

        acme_result_reset(&res);
        if (acme_job_load(a->p, a->store, dom->name, &job, &res) == APR_SUCCESS
            && job->state == ACME_JOB_ORDERING && job->updated > now - A2_BUSY_WINDOW
            && (!job->ca_url || !strcmp(job->ca_url, ca_url))) {
            return dom->name;
        }
    }
    return NULL;
}

static apr_status_t a2_lock_account(a2_t *a, const char *ca_id, acme_store_lock_t **lock,
                                    acme_result_t *res)
{
    const char *name = apr_pstrcat(a->p, "account-", ca_id, NULL);
    apr_time_t until = apr_time_now() + A2_LOCK_WAIT;
    apr_status_t rv;

    for (;;) {
        acme_result_reset(res);
        rv = acme_store_lock(a->p, a->store, name, 0, lock, res);
        if (rv != APR_EAGAIN || apr_time_now() >= until) {
            return rv;
        }
        apr_sleep(apr_time_from_msec(200));
    }
}

/*
 * A rollover that stopped between the CA's keyChange and the store's write left the new key in
 * account.key.next: if the CA knows it, it is the account key now.
 */
static apr_status_t a2_rollover_recover(a2_t *a, a2_account_t *acct, const char *next_path,
                                        acme_result_t *res)
{
    acme_client_options_t opts = { .ca_file = a2_ca_file(a, acct->ca_url) };
    acme_client_account_t *found = NULL;
    acme_client_t *probe = NULL;
    acme_key_t *next = NULL;
    char *pem = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    if (!a2_exists(a->p, next_path)) {
        return APR_SUCCESS;
    }
    if (a2_key_load(a->p, next_path, &next, res) != APR_SUCCESS) {
        acme_result_reset(res);
        return acme_store_remove_tree(a->p, next_path, res);
    }
    if ((rv = a2_proxy(a, acct->ca_url, &opts.proxy, res)) != APR_SUCCESS
        || (rv = acme_client_create(&probe, a->p, acct->ca_url, &opts, res)) != APR_SUCCESS) {
        return rv;
    }
    acme_client_account_use(probe, next, NULL);
    rv = acme_client_account_find(probe, a->p, &found, res);
    if (APR_STATUS_IS_ENOENT(rv)) {
        acme_result_reset(res);
        return acme_store_remove_tree(a->p, next_path, res);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    printf("%s: a previous rollover had finished at the CA; installing its key\n", acct->ca_url);
    if ((rv = acme_store_read_file(a->p, next_path, &pem, &len, 0, res)) != APR_SUCCESS
        || (rv = acme_store_write_file(a->p, acct->key_path, pem, len, ACME_PERMS_0600, res))
           != APR_SUCCESS) {
        return rv;
    }
    acct->key = next;
    acme_client_account_use(acct->client, next, acct->url);
    return acme_store_remove_tree(a->p, next_path, res);
}

static const char *a2_single_ca(a2_t *a, int *rc)
{
    apr_array_header_t *unmapped = NULL;
    apr_array_header_t *cas = a2_account_cas(a, &unmapped);

    if (cas->nelts == 1) {
        return APR_ARRAY_IDX(cas, 0, const char *);
    }
    if (cas->nelts == 0 && unmapped->nelts == 0) {
        a2_err("the store has no ACME account yet (the server creates one with its first "
               "order)");
        *rc = A2_EXIT_FAILED;
        return NULL;
    }
    *rc = a2_usage_error("the store has accounts at several CAs (or one not recorded): name "
                         "one with --ca URL");
    return NULL;
}

static int a2_cmd_rollover(a2_t *a)
{
    acme_keyspec_t spec = { .kind = ACME_KEY_EC, .bits = 256 };
    const char *ca_url, *busy, *next_path, *pem = NULL, *ca_id;
    acme_store_lock_t *lock = NULL;
    a2_account_t *acct = NULL;
    acme_key_t *new_key = NULL;
    acme_result_t res, ignored;
    int rc = A2_EXIT_OK;

    if (!(ca_url = a2_single_ca(a, &rc))) {
        return rc;
    }
    if (!a->args->force && (busy = a2_busy_domain(a, ca_url))) {
        a2_err(apr_psprintf(a->p, "a renewal of %s at %s is running; roll over when it is done "
                            "(or with --force)", busy, ca_url));
        return A2_EXIT_FAILED;
    }
    ca_id = acme_domain_ca_id(a->p, ca_url);
    next_path = acme_store_path(a->p, a->store, ACME_STORE_ACCOUNTS, ca_id, A2_ACCOUNT_KEY_NEXT);
    acme_result_reset(&res);
    acme_result_reset(&ignored);
    if (a2_lock_account(a, ca_id, &lock, &res) != APR_SUCCESS) {
        return a2_failed(a->p, &res);
    }
    if (a2_account_open(a, ca_url, &acct, &res) != APR_SUCCESS
        || a2_rollover_recover(a, acct, next_path, &res) != APR_SUCCESS
        || acme_crypto_key_generate(a->p, &spec, &new_key, &res) != APR_SUCCESS
        || acme_crypto_key_to_pem(a->p, new_key, &pem, &res) != APR_SUCCESS
        /* Kept before the CA switches, so that an interruption loses no key. */
        || acme_store_write_file(a->p, next_path, pem, strlen(pem), ACME_PERMS_0600, &res)
           != APR_SUCCESS) {
        acme_store_unlock(lock);
        return a2_failed(a->p, &res);
    }
    if (acme_client_account_key_change(acct->client, a->p, new_key, &res) != APR_SUCCESS) {
        acme_store_remove_tree(a->p, next_path, &ignored);
        acme_store_unlock(lock);
        return a2_failed(a->p, &res);
    }
    if (acme_store_write_file(a->p, acct->key_path, pem, strlen(pem), ACME_PERMS_0600, &res)
        != APR_SUCCESS) {
        acme_store_unlock(lock);
        a2_err(apr_psprintf(a->p, "the CA switched %s to the new key, but it could not be "
                            "stored: %s; the next '" A2_PROG " rollover' installs it from %s",
                            acct->url, acme_result_describe(&res, a->p), next_path));
        return A2_EXIT_FAILED;
    }
    acme_store_remove_tree(a->p, next_path, &ignored);
    acme_store_unlock(lock);
    printf("%s: account %s now uses a new %s key (%s)\n", ca_url, acct->url,
           acme_crypto_keyspec_name(&spec), acct->key_path);
    return A2_EXIT_OK;
}

/* ------------------------------------------------------------------ account life */

/* 1 when a configured domain at ca_url has ACMEAgreement accepted. */
static int a2_agreement(a2_t *a, const char *ca_url)
{
    int i, j;

    for (i = 0; i < a->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(a->domains, i, const acme_domain_t *);
        for (j = 0; dom->policy.ca_urls && j < dom->policy.ca_urls->nelts; ++j) {
            if (!strcmp(APR_ARRAY_IDX(dom->policy.ca_urls, j, const char *), ca_url)
                && dom->policy.agreement > 0) {
                return 1;
            }
        }
    }
    return 0;
}

static apr_status_t a2_record_save(a2_t *a, const a2_account_t *acct,
                                   const acme_job_account_t *rec, acme_result_t *res)
{
    return acme_job_account_save(a->p, a2_account_url_path(a, acct->ca_id), rec, res);
}

/* The single CA of the command, locked, with its account open; NULL after an error (*rc). */
static a2_account_t *a2_account_locked(a2_t *a, acme_store_lock_t **lock, int *rc)
{
    const char *ca_url = a2_single_ca(a, rc);
    a2_account_t *acct = NULL;
    acme_result_t res;

    *lock = NULL;
    if (!ca_url) {
        return NULL;
    }
    acme_result_reset(&res);
    if (a2_lock_account(a, acme_domain_ca_id(a->p, ca_url), lock, &res) != APR_SUCCESS) {
        *rc = a2_failed(a->p, &res);
        return NULL;
    }
    if (a2_account_open(a, ca_url, &acct, &res) != APR_SUCCESS) {
        acme_store_unlock(*lock);
        *lock = NULL;
        *rc = a2_failed(a->p, &res);
        return NULL;
    }
    return acct;
}

static int a2_cmd_account_deactivate(a2_t *a)
{
    acme_store_lock_t *lock = NULL;
    acme_job_account_t *rec;
    a2_account_t *acct;
    acme_result_t res;
    int rc = A2_EXIT_OK;

    if (!(acct = a2_account_locked(a, &lock, &rc))) {
        return rc;
    }
    acme_result_reset(&res);
    if (acme_client_account_deactivate(acct->client, a->p, &res) != APR_SUCCESS) {
        acme_store_unlock(lock);
        return a2_failed(a->p, &res);
    }
    rec = a2_account_record(a, acct);
    acme_job_account_note(rec, a->p, acct->url, "deactivated by a2acme account deactivate",
                          apr_time_now());
    rec->deactivated_at = apr_time_now();
    if (a2_record_save(a, acct, rec, &res) != APR_SUCCESS) {
        a2_err(apr_psprintf(a->p, "the account is deactivated, but the store could not record "
                            "it: %s", acme_result_describe(&res, a->p)));
        rc = A2_EXIT_FAILED;
    }
    acme_store_unlock(lock);
    printf("%s: account %s is deactivated (irreversible).\n"
           "The server makes no more orders with it and does not register its key again: "
           "domains with another CA in ACMECertificateAuthority renew there, the others keep "
           "serving their certificates until they expire.\n"
           "For a new account at this CA remove %s: the server then makes a new key and "
           "registers it at its next order ('" A2_PROG " renew NAME' orders now).\n",
           acct->ca_url, acct->url, acct->key_path);
    return rc;
}

static int a2_cmd_account_contact(a2_t *a)
{
    const apr_array_header_t *rest = a->args->rest;
    int n = rest ? rest->nelts : 0, i, rc = A2_EXIT_OK;
    const char **list = apr_pcalloc(a->p, sizeof(*list) * (apr_size_t)(n + 1));
    acme_client_account_t *info = NULL;
    acme_store_lock_t *lock = NULL;
    a2_account_t *acct;
    acme_result_t res;

    for (i = 0; i < n; ++i) {
        const char *why = NULL;
        if (!(list[i] = acme_account_contact_parse(a->p, APR_ARRAY_IDX(rest, i, const char *),
                                                   &why))) {
            return a2_usage_error(why);
        }
    }
    if (!(acct = a2_account_locked(a, &lock, &rc))) {
        return rc;
    }
    acme_result_reset(&res);
    rc = acme_client_account_update(acct->client, a->p, list, n, &info, &res) == APR_SUCCESS
         ? A2_EXIT_OK : a2_failed(a->p, &res);
    acme_store_unlock(lock);
    if (rc == A2_EXIT_OK) {
        printf("%s: account %s contact: %s\n(the server sends ACMEContactEmail again only "
               "when httpd.conf changes it)\n", acct->ca_url, acct->url,
               a2_contact_text(a->p, info ? info->contact : NULL));
    }
    return rc;
}

/* The new account's contact: the old account's, else the configuration's. */
static void a2_bind_contact(a2_t *a, a2_account_t *acct, acme_client_account_params_t *params)
{
    acme_client_account_t *info = NULL;
    json_t *arr, *v;
    const char **list;
    acme_result_t res;
    size_t i;

    acme_result_reset(&res);
    if (acme_client_account_get(acct->client, a->p, &info, &res) != APR_SUCCESS || !info) {
        return;     /* e.g. deactivated: a binding is how to get a new account */
    }
    arr = a2_contact_json(info->contact);
    list = apr_pcalloc(a->p, sizeof(*list) * (json_array_size(arr) + 1));
    json_array_foreach(arr, i, v) {
        if (json_is_string(v)) {
            list[params->n_contact++] = apr_pstrdup(a->p, json_string_value(v));
        }
    }
    json_decref(arr);
    params->contact = list;
}

/*
 * A new account made with the binding and a new key (kept in account.key.next until the CA
 * has it, so that an interruption loses nothing: rollover and bind install it next time).
 */
static apr_status_t a2_bind_register(a2_t *a, a2_account_t *acct, const char *next_path,
                                     acme_client_account_params_t *params,
                                     acme_client_account_t **nacct, const char **pem,
                                     acme_result_t *res)
{
    acme_keyspec_t spec = { .kind = ACME_KEY_EC, .bits = 256 };
    acme_client_options_t opts = { .ca_file = a2_ca_file(a, acct->ca_url) };
    acme_client_t *nc = NULL;
    acme_key_t *key = NULL;
    apr_status_t rv;

    if ((rv = a2_proxy(a, acct->ca_url, &opts.proxy, res)) != APR_SUCCESS
        || (rv = acme_crypto_key_generate(a->p, &spec, &key, res)) != APR_SUCCESS
        || (rv = acme_crypto_key_to_pem(a->p, key, pem, res)) != APR_SUCCESS
        || (rv = acme_store_write_file(a->p, next_path, *pem, strlen(*pem), ACME_PERMS_0600,
                                       res)) != APR_SUCCESS
        || (rv = acme_client_create(&nc, a->p, acct->ca_url, &opts, res)) != APR_SUCCESS) {
        return rv;
    }
    acme_client_account_use(nc, key, NULL);
    return acme_client_account_register(nc, a->p, params, nacct, res);
}

/* Installs the bound account: key first, then the record naming its URL. */
static apr_status_t a2_bind_install(a2_t *a, a2_account_t *acct, const char *next_path,
                                    const char *pem, const acme_client_account_t *nacct,
                                    const char *kid, acme_result_t *res)
{
    acme_job_account_t *rec = a2_account_record(a, acct);
    acme_result_t ignored;
    apr_status_t rv;

    rv = acme_store_write_file(a->p, acct->key_path, pem, strlen(pem), ACME_PERMS_0600, res);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    acme_result_reset(&ignored);
    acme_store_remove_tree(a->p, next_path, &ignored);
    acme_job_account_note(rec, a->p, nacct->url,
                          apr_psprintf(a->p, "bound with EAB key id %s by a2acme account bind "
                                       "(was %s)", kid, acct->url), apr_time_now());
    rec->eab_kid = kid;
    return a2_record_save(a, acct, rec, res);
}

static int a2_cmd_account_bind(a2_t *a)
{
    const char *kid = APR_ARRAY_IDX(a->args->rest, 0, const char *);
    const char *file = APR_ARRAY_IDX(a->args->rest, 1, const char *), *next_path, *pem = NULL;
    acme_client_account_params_t params = { .eab_kid = kid };
    acme_client_account_t *nacct = NULL;
    acme_store_lock_t *lock = NULL;
    a2_account_t *acct;
    acme_result_t res, ignored;
    char *hmac = NULL;
    int rc = A2_EXIT_OK;

    acme_result_reset(&res);
    acme_result_reset(&ignored);
    if (acme_eab_read(a->p, file, &hmac, &res) != APR_SUCCESS) {
        return a2_failed(a->p, &res);
    }
    if (!(acct = a2_account_locked(a, &lock, &rc))) {
        acme_eab_wipe(hmac);
        return rc;
    }
    next_path = acme_store_path(a->p, a->store, ACME_STORE_ACCOUNTS, acct->ca_id,
                                A2_ACCOUNT_KEY_NEXT);
    params.eab_hmac = hmac;
    params.agree_tos = a2_agreement(a, acct->ca_url);
    a2_bind_contact(a, acct, &params);
    if (a2_rollover_recover(a, acct, next_path, &res) != APR_SUCCESS
        || a2_bind_register(a, acct, next_path, &params, &nacct, &pem, &res) != APR_SUCCESS) {
        acme_eab_wipe(hmac);
        acme_store_remove_tree(a->p, next_path, &ignored);
        acme_store_unlock(lock);
        return a2_failed(a->p, &res);
    }
    acme_eab_wipe(hmac);
    if (a2_bind_install(a, acct, next_path, pem, nacct, kid, &res) != APR_SUCCESS) {
        acme_store_unlock(lock);
        a2_err(apr_psprintf(a->p, "the CA made the bound account %s, but it could not be "
                            "stored: %s; '" A2_PROG " rollover' installs it from %s", nacct->url,
                            acme_result_describe(&res, a->p), next_path));
        return A2_EXIT_FAILED;
    }
    acme_store_unlock(lock);
    printf("%s: new account %s, bound with key id %s, replaces %s in the store (new key in "
           "%s); the server orders with it from its next run. The old account stays at the CA "
           "as it was; its certificates stay valid.\n", acct->ca_url, nacct->url, kid, acct->url,
           acct->key_path);
    return A2_EXIT_OK;
}

static int a2_cmd_account_agree(a2_t *a)
{
    acme_client_account_params_t params = { .agree_tos = 1 };
    const acme_client_meta_t *meta = NULL;
    acme_client_account_t *info = NULL;
    acme_store_lock_t *lock = NULL;
    acme_job_account_t *rec;
    const char *terms;
    a2_account_t *acct;
    acme_result_t res;
    int rc = A2_EXIT_OK;

    if (!(acct = a2_account_locked(a, &lock, &rc))) {
        return rc;
    }
    acme_result_reset(&res);
    rec = a2_account_record(a, acct);
    /* newAccount with the account's key and termsOfServiceAgreed returns the account; a CA that
     * still wants the human at its instance URL says userActionRequired again. */
    if (acme_client_meta(acct->client, &meta, &res) != APR_SUCCESS
        || (meta->external_account_required
            /* newAccount would need the binding again: the account's own state must do */
            ? acme_client_account_get(acct->client, a->p, &info, &res)
            : acme_client_account_register(acct->client, a->p, &params, &info, &res))
           != APR_SUCCESS) {
        acme_store_unlock(lock);
        return a2_failed(a->p, &res);
    }
    acme_client_account_use(acct->client, acct->key, acct->url);
    terms = meta->terms_of_service ? meta->terms_of_service : rec->tos_blocked;
    acme_account_tos_agree(rec, a->p, terms);
    if (a2_record_save(a, acct, rec, &res) != APR_SUCCESS) {
        acme_store_unlock(lock);
        return a2_failed(a->p, &res);
    }
    acme_store_unlock(lock);
    printf("%s: the terms of service %s are recorded as agreed for account %s; orders at this "
           "CA go on from the server's next run ('" A2_PROG " renew NAME' orders now)\n",
           acct->ca_url, terms ? terms : "(the CA names none)", acct->url);
    return A2_EXIT_OK;
}

/* a2acme account deactivate | contact [mailto:...]... | bind KID HMAC-FILE | agree */
static int a2_cmd_account_sub(a2_t *a)
{
    const char *sub = a->args->name;

    if (!strcmp(sub, "deactivate")) return a2_cmd_account_deactivate(a);
    if (!strcmp(sub, "contact")) return a2_cmd_account_contact(a);
    if (!strcmp(sub, "bind")) return a2_cmd_account_bind(a);
    return a2_cmd_account_agree(a);
}

/* --ca names a CA as ACMECertificateAuthority does (letsencrypt, a URL): 0, or a usage error. */
static int a2_check_ca_option(apr_pool_t *p, const a2_args_t *args)
{
    const char *reason = NULL;

    if (args->ca_url && !acme_domain_ca_url(p, args->ca_url, &reason)) {
        return a2_usage_error(reason);
    }
    return 0;
}

/* The account subcommands' arguments, checked before the store is opened. */
static int a2_account_arity(const a2_args_t *args, apr_pool_t *p)
{
    static const char *const subs[] = { "deactivate", "contact", "bind", "agree" };
    int n = args->rest ? args->rest->nelts : 0, wants = -1;
    size_t k;

    for (k = 0; k < sizeof(subs) / sizeof(subs[0]); ++k) {
        wants = !strcmp(args->name, subs[k]) ? (k == 2 ? 2 : k == 1 ? n : 0) : wants;
    }
    if (wants < 0) {
        return a2_usage_error(apr_psprintf(p, "unknown account command '%s' (deactivate, "
                                           "contact, bind, agree)", args->name));
    }
    if (n != wants) {
        return a2_usage_error(!strcmp(args->name, "bind") ? "account bind needs KID HMAC-FILE"
                              : apr_psprintf(p, "account %s takes no arguments", args->name));
    }
    if (args->json) {
        return a2_usage_error("--json is an option of list and account");
    }
    return a2_check_ca_option(p, args);
}

/* "terms:" and "deactivated:" lines of `account` from the worker's record. */
static void a2_account_life_print(a2_t *a, const acme_job_account_t *rec)
{
    if (rec->tos_agreed || rec->tos_current) {
        printf("terms:    %s%s\n", rec->tos_agreed ? rec->tos_agreed : "-",
               rec->tos_current && rec->tos_agreed && strcmp(rec->tos_current, rec->tos_agreed)
               ? apr_psprintf(a->p, " (the CA now names %s)", rec->tos_current) : "");
    }
    if (rec->tos_blocked_at) {
        printf("blocked:  since %s the CA asks for agreement to %s: no orders there until "
               "'" A2_PROG " account agree'\n", a2_time(a->p, rec->tos_blocked_at),
               rec->tos_blocked ? rec->tos_blocked : "new terms");
    }
    if (rec->deactivated_at) {
        printf("deactivated: %s (a2acme account deactivate)\n",
               a2_time(a->p, rec->deactivated_at));
    }
    if (rec->eab_kid) {
        printf("bound:    EAB key id %s (a2acme account bind)\n", rec->eab_kid);
    }
}

/* ------------------------------------------------------------------ revoke */

/* Where the certificate came from: --ca, else the CA of the domain's job, then its CAs. */
static apr_array_header_t *a2_revoke_cas(a2_t *a, const acme_domain_t *dom)
{
    apr_array_header_t *cas = apr_array_make(a->p, 2, sizeof(const char *));
    acme_job_t *job = NULL;
    acme_result_t res;
    int i;

    if (a->args->ca_url) {
        APR_ARRAY_PUSH(cas, const char *) = a->args->ca_url;
        return cas;
    }
    acme_result_reset(&res);
    if (acme_job_load(a->p, a->store, dom->name, &job, &res) == APR_SUCCESS) {
        a2_push_unique(cas, job->ca_url);
    }
    for (i = 0; dom->policy.ca_urls && i < dom->policy.ca_urls->nelts; ++i) {
        a2_push_unique(cas, APR_ARRAY_IDX(dom->policy.ca_urls, i, const char *));
    }
    return cas;
}

static apr_status_t a2_revoke_one(a2_t *a, const acme_domain_t *dom,
                                  const acme_active_cert_t *cert,
                                  const apr_array_header_t *cas, acme_result_t *res)
{
    char *pem = NULL;
    apr_size_t len = 0;
    apr_status_t rv = acme_store_read_file(a->p, cert->cert_file, &pem, &len, 0, res);
    int i;

    for (i = 0; rv == APR_SUCCESS && i < cas->nelts; ++i) {
        const char *ca_url = APR_ARRAY_IDX(cas, i, const char *);
        a2_account_t *acct = NULL;

        acme_result_reset(res);
        rv = a2_account_open(a, ca_url, &acct, res);
        if (rv == APR_SUCCESS) {
            rv = acme_client_cert_revoke(acct->client, a->p, pem, len, a->args->reason, NULL,
                                         res);
        }
        if (rv == APR_SUCCESS) {
            printf("%s: %s certificate %s revoked at %s (reason: %s)\n", dom->name, cert->spec,
                   cert->info.serial_hex, ca_url, a2_reason_name(a->args->reason < 0
                                                                 ? 0 : a->args->reason));
            return APR_SUCCESS;
        }
        if (i + 1 < cas->nelts) {
            a2_err(apr_psprintf(a->p, "%s: %s certificate %s: %s; trying %s", dom->name,
                                cert->spec, cert->info.serial_hex,
                                acme_result_describe(res, a->p),
                                APR_ARRAY_IDX(cas, i + 1, const char *)));
            rv = APR_SUCCESS;
        }
    }
    return rv;
}

/* Who runs the hook: --user, else what the server recorded; NULL, or why it cannot be decided. */
static const char *a2_hook_user(a2_t *a, a2_hook_user_t *who)
{
    const struct passwd *pw;

    if (!a->args->user) {
        *who = a->hook_user;
        return who->known ? NULL : "the server recorded no httpd User in domains.json; pass "
                                   "--user NAME";
    }
    pw = getpwnam(a->args->user);
    if (!pw) {
        return apr_psprintf(a->p, "--user %s: no such user", a->args->user);
    }
    *who = (a2_hook_user_t){ .known = 1, .uid = pw->pw_uid, .gid = pw->pw_gid };
    return NULL;
}

static void a2_notify_exec(a2_t *a, const acme_domain_t *dom, json_t *doc)
{
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_notify_run(a->p, a->notify_argv, "revoked", dom->name, doc, &res) != APR_SUCCESS) {
        a2_err(apr_psprintf(a->p, "%s: warning: %s", dom->name, acme_result_describe(&res, a->p)));
    }
}

/*
 * Run as root, a2acme would hand the admin's program root rights the server never gives it: the
 * hook runs in a child that has become the server's User first (groups, group, then user, the
 * order in which each step is still allowed), as the renewal worker does.
 */
static void a2_notify_as_user(a2_t *a, const acme_domain_t *dom, json_t *doc,
                              const a2_hook_user_t *who)
{
    pid_t pid;
    int status = 0;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        a2_err(apr_psprintf(a->p, "%s: warning: ACMENotifyCommand not run: fork: %s", dom->name,
                            strerror(errno)));
        return;
    }
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(who->gid) != 0 || setuid(who->uid) != 0
            || getuid() != who->uid || geteuid() != who->uid) {
            a2_err(apr_psprintf(a->p, "%s: warning: ACMENotifyCommand not run: cannot become "
                                "uid %ld gid %ld: %s", dom->name, (long)who->uid,
                                (long)who->gid, strerror(errno)));
            _exit(1);
        }
        a2_notify_exec(a, dom, doc);
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

/* The `revoked` event for ACMENotifyCommand, as the server would send it: as its User. */
static void a2_notify_revoked(a2_t *a, const acme_domain_t *dom, const apr_array_header_t *certs)
{
    acme_notify_event_t ev = {
        .event = "revoked", .domain = dom->name, .idents = dom->idents, .certs = certs,
        .now = apr_time_now(),
    };
    a2_hook_user_t who = { .known = 0 };
    const char *why;
    json_t *doc;

    if (!a->notify_argv || certs->nelts == 0) {
        return;
    }
    why = a2_hook_user(a, &who);
    if (why && geteuid() == 0) {
        a2_err(apr_psprintf(a->p, "%s: warning: ACMENotifyCommand not run: %s", dom->name, why));
        return;
    }
    doc = acme_notify_document(&ev);
    if (geteuid() == 0 && who.uid != 0) {
        a2_notify_as_user(a, dom, doc, &who);
    }
    else {
        a2_notify_exec(a, dom, doc);    /* not root: the hook runs as whoever runs a2acme */
    }
    json_decref(doc);
}

static int a2_cmd_revoke(a2_t *a)
{
    const acme_domain_t *dom = a2_domain_find(a, a->args->name);
    apr_array_header_t *cas;
    acme_active_t *active = NULL;
    acme_result_t res;
    apr_array_header_t *revoked_certs = apr_array_make(a->p, 2, sizeof(acme_notify_cert_t));
    int i, revoked = 0, rc = A2_EXIT_OK;

    if (!dom) {
        return a2_unknown_domain(a, a->args->name);
    }
    cas = a2_revoke_cas(a, dom);
    if (cas->nelts == 0) {
        a2_err(apr_psprintf(a->p, "%s: the CA that issued its certificate is not recorded; "
                            "pass --ca URL", dom->name));
        return A2_EXIT_USAGE;
    }
    acme_result_reset(&res);
    if (a2_active_load(a, dom, &active, &res) != APR_SUCCESS) {
        return a2_failed(a->p, &res);
    }
    if (active->certs->nelts == 0) {
        a2_err(apr_psprintf(a->p, "%s has no certificate to revoke (nothing in %s)", dom->name,
                            acme_store_path(a->p, a->store, ACME_STORE_DOMAINS, dom->name, NULL)));
        return A2_EXIT_FAILED;
    }
    for (i = 0; i < active->certs->nelts; ++i) {
        const acme_active_cert_t *cert = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t);
        acme_result_reset(&res);
        if (a2_revoke_one(a, dom, cert, cas, &res) != APR_SUCCESS) {
            a2_err(apr_psprintf(a->p, "%s: %s certificate %s: %s", dom->name, cert->spec,
                                cert->info.serial_hex ? cert->info.serial_hex : "?",
                                acme_result_describe(&res, a->p)));
            rc = A2_EXIT_FAILED;
            continue;
        }
        APR_ARRAY_PUSH(revoked_certs, acme_notify_cert_t) = (acme_notify_cert_t){
            .key_type = cert->spec, .serial = cert->info.serial_hex,
            .not_after = cert->info.not_after,
        };
        ++revoked;
    }
    a2_notify_revoked(a, dom, revoked_certs);
    /* A revoked certificate still served breaks clients that check: replace it. */
    if (revoked && !a->args->no_renew && a->args->reason != 5) {
        acme_result_reset(&res);
        if (a2_request_renewal(a, dom->name, &res) != APR_SUCCESS) {
            a2_err(apr_psprintf(a->p, "%s: renewal could not be requested: %s", dom->name,
                                acme_result_describe(&res, a->p)));
            return A2_EXIT_FAILED;
        }
        printf("%s: renewal requested; the server replaces the revoked certificate within a "
               "minute\n", dom->name);
    }
    return rc;
}

/* ------------------------------------------------------------------ dns-persist */

/* A zone-file TXT line: strings of at most 255 octets (RFC 1035), quotes escaped. */
static void a2_persist_print(apr_pool_t *p, const char *fqdn, const char *value)
{
    apr_size_t n = strlen(value), off = 0;

    printf("%s. IN TXT", fqdn);
    while (off < n) {
        apr_size_t len = n - off > 255 ? 255 : n - off;
        printf(" \"%s\"", apr_pescape_echo(p, apr_pstrmemdup(p, value + off, len), 1));
        off += len;
    }
    printf("\n");
}

/* The issuer name to publish: --issuer (one the CA names), else the CA's first. */
static const char *a2_persist_issuer(a2_t *a, const acme_client_meta_t *meta)
{
    const apr_array_header_t *list = meta->issuer_domain_names;
    const char *want = a->args->issuer ? acme_persist_issuer_norm(a->p, a->args->issuer) : NULL;
    int i;

    for (i = 0; list && i < list->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(list, i, const char *);
        if (!a->args->issuer || (want && !strcmp(want, name))) {
            return name;
        }
    }
    return NULL;
}

/* The record of each DNS name (one per _validation-persist name; a wildcard's has the policy). */
static void a2_persist_records(a2_t *a, const acme_domain_t *dom, const char *issuer,
                               const char *prefix, const char *thumb, const char *acct_url)
{
    apr_hash_t *wild = apr_hash_make(a->p);
    apr_array_header_t *order = apr_array_make(a->p, 4, sizeof(const char *));
    int i;

    for (i = 0; i < dom->idents->nelts; ++i) {
        const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, i, acme_ident_t);
        const char *base = strncmp(id->value, "*.", 2) ? id->value : id->value + 2;
        if (id->type != ACME_IDENT_DNS) {
            continue;
        }
        if (!apr_hash_get(wild, base, APR_HASH_KEY_STRING)) {
            APR_ARRAY_PUSH(order, const char *) = base;
            apr_hash_set(wild, base, APR_HASH_KEY_STRING, "");
        }
        if (base != id->value) {
            apr_hash_set(wild, base, APR_HASH_KEY_STRING, "wildcard");
        }
    }
    for (i = 0; i < order->nelts; ++i) {
        const char *base = APR_ARRAY_IDX(order, i, const char *);
        const char *uri = acme_persist_account_uri(a->p, prefix, base, thumb, acct_url);
        int is_wild = *(const char *)apr_hash_get(wild, base, APR_HASH_KEY_STRING) != '\0';
        a2_persist_print(a->p, acme_persist_fqdn(a->p, base),
                         acme_persist_value(a->p, issuer, uri, is_wild, 0));
    }
}

/*
 * dns-persist NAME: the records for NAME's domain at its CA (issuerDomainNames and
 * accountHashPrefix from the CA's directory, the account URL and key from the store).
 */
static int a2_cmd_dns_persist(a2_t *a)
{
    const acme_domain_t *dom = a2_domain_find(a, a->args->name);
    const char *ca = a->args->ca_url, *issuer, *thumb = NULL;
    const acme_client_meta_t *meta = NULL;
    a2_account_t *acct = NULL;
    acme_result_t res;

    if (!dom) {
        return a2_unknown_domain(a, a->args->name);
    }
    if (!ca && dom->policy.ca_urls && dom->policy.ca_urls->nelts > 0) {
        ca = APR_ARRAY_IDX(dom->policy.ca_urls, 0, const char *);
    }
    if (!ca) {
        a2_err(apr_psprintf(a->p, "%s: its CA is not recorded yet; pass --ca URL", dom->name));
        return A2_EXIT_USAGE;
    }
    acme_result_reset(&res);
    if (a2_account_open(a, ca, &acct, &res) != APR_SUCCESS
        || acme_client_meta(acct->client, &meta, &res) != APR_SUCCESS
        || acme_jose_thumbprint(a->p, acct->key, &thumb, &res) != APR_SUCCESS) {
        return a2_failed(a->p, &res);
    }
    if (!meta->account_hash_prefix || !*meta->account_hash_prefix
        || !meta->issuer_domain_names || meta->issuer_domain_names->nelts == 0) {
        a2_err(apr_psprintf(a->p, "%s does not advertise dns-persist-01 (no accountHashPrefix "
                            "or issuerDomainNames in its directory's meta)", ca));
        return A2_EXIT_FAILED;
    }
    if (!(issuer = a2_persist_issuer(a, meta))) {
        a2_err(apr_psprintf(a->p, "--issuer %s is not one of the CA's issuer domain names (%s)",
                            a->args->issuer, apr_array_pstrcat(a->p, meta->issuer_domain_names,
                                                               ',')));
        return A2_EXIT_USAGE;
    }
    printf("; dns-persist-01 (draft-ietf-acme-dns-persist-02) for %s at %s, account %s\n",
           dom->name, ca, acct->url);
    a2_persist_records(a, dom, issuer, meta->account_hash_prefix, thumb, acct->url);
    return A2_EXIT_OK;
}

/* ------------------------------------------------------------------ main */

static int a2_account_arity(const a2_args_t *args, apr_pool_t *p);

static int a2_check_arity(const a2_args_t *args, apr_pool_t *p)
{
    int wants_name = !strcmp(args->command, "renew") || !strcmp(args->command, "revoke")
                     || !strcmp(args->command, "dns-persist");

    if (!strcmp(args->command, "account") && args->name) {
        return a2_account_arity(args, p);
    }
    if (wants_name && !args->name) {
        return a2_usage_error(apr_psprintf(p, "%s needs a domain NAME", args->command));
    }
    if (!wants_name && args->name) {
        return a2_usage_error(apr_psprintf(p, "unexpected argument '%s' after %s", args->name,
                                           args->command));
    }
    if (args->json && strcmp(args->command, "list") && strcmp(args->command, "account")) {
        return a2_usage_error("--json is an option of list and account");
    }
    if (args->ca_url && !strcmp(args->command, "list")) {
        return a2_usage_error("--ca is an option of account, rollover and revoke");
    }
    return a2_check_ca_option(p, args);
}

static int a2_run(apr_pool_t *p, int argc, const char *const *argv)
{
    a2_args_t args;
    a2_t a = { .p = p, .args = &args, .accounts = apr_hash_make(p) };
    int rc = a2_parse_args(p, argc, argv, &args);
    const char *reason = NULL;

    if (rc != 0) {
        return rc < 0 ? A2_EXIT_OK : rc;
    }
    if (strcmp(args.command, "list") && strcmp(args.command, "renew")
        && strcmp(args.command, "revoke") && strcmp(args.command, "account")
        && strcmp(args.command, "rollover") && strcmp(args.command, "dns-persist")) {
        return a2_usage_error(apr_psprintf(p, "unknown command '%s' (list, renew, revoke, "
                                           "account, rollover, dns-persist)", args.command));
    }
    if ((rc = a2_check_arity(&args, p)) != 0) {
        return rc;
    }
    if (args.ca_url) {
        args.ca_url = acme_domain_ca_url(p, args.ca_url, &reason);
    }
    if ((rc = a2_store_open(&a)) != A2_EXIT_OK) {
        return rc;
    }
    a2_domains_load(&a);
    if (!strcmp(args.command, "list")) return a2_cmd_list(&a);
    if (!strcmp(args.command, "renew")) return a2_cmd_renew(&a);
    if (!strcmp(args.command, "revoke")) return a2_cmd_revoke(&a);
    if (!strcmp(args.command, "account")) return a2_cmd_account(&a);
    if (!strcmp(args.command, "dns-persist")) return a2_cmd_dns_persist(&a);
    return a2_cmd_rollover(&a);
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    int rc;

    apr_app_initialize(&argc, &argv, NULL);
    if (acme_http_global_init() != APR_SUCCESS) {
        a2_err("libcurl initialisation failed");
        return A2_EXIT_FAILED;
    }
    /* Keys and markers are written with explicit modes; nothing else should widen them. */
    umask(022);
    /* A notification program that exits without reading its input must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    apr_pool_create(&p, NULL);
    rc = a2_run(p, argc, argv);
    apr_pool_destroy(p);
    curl_global_cleanup();
    apr_terminate();
    return rc;
}
