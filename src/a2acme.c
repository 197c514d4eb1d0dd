/*
 * a2acme: the administrator's command for a mod_acme store. It works with the server running
 * or stopped and never needs httpd: it links libacmecore only.
 *
 *   a2acme --store DIR list [--json]
 *   a2acme list --cluster ENDPOINTS [--cluster-prefix P] [--cluster-tls CERT,KEY,CA] [--json]
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
#include "a2acme_int.h"

/* ------------------------------------------------------------------ output helpers */

void a2_err(const char *msg)
{
    fprintf(stderr, A2_PROG ": %s\n", msg);
}

int a2_usage_error(const char *msg)
{
    a2_err(msg);
    fputs("Try '" A2_PROG " --help'.\n", stderr);
    return A2_EXIT_USAGE;
}

int a2_failed(apr_pool_t *p, const acme_result_t *res)
{
    a2_err(acme_result_describe(res, p));
    return A2_EXIT_FAILED;
}

const char *a2_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    if (t == 0) {
        return "-";
    }
    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void a2_print_json(json_t *doc)
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
"  forget NAME           remove the on-demand domain NAME: no longer served or renewed after\n"
"                        the server's next restart\n"
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
"  --cluster ENDPOINTS   list: what etcd says of the cluster (ACMECluster's endpoints): per\n"
"                        domain the serial in etcd, the lock holder, the order in flight,\n"
"                        the serial each node serves; --cluster-prefix P (default\n"
"                        /mod_acme), --cluster-tls CERT,KEY,CA (ACMEClusterTLS's files)\n"
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

const char *a2_reason_name(int code)
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
    else if (!strcmp(opt, "--cluster")) a->cluster = val;
    else if (!strcmp(opt, "--cluster-prefix")) a->cluster_prefix = val;
    else if (!strcmp(opt, "--cluster-tls")) a->cluster_tls = val;
    else return 0;
    return 1;
}

/* The options that take a value. */
static const char *const a2_valued[] = { "--store", "--ca", "--ca-file", "--reason", "--user",
                                         "--issuer", "--proxy", "--cluster", "--cluster-prefix",
                                         "--cluster-tls" };

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
    if ((!a->store_dir || !*a->store_dir) && !a->cluster) {   /* list --cluster reads etcd */
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

int a2_exists(apr_pool_t *p, const char *path)
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
apr_array_header_t *a2_dir_names(apr_pool_t *p, const char *dir, int dirs_only)
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
acme_domain_t *a2_domain_find(a2_t *a, const char *name)
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

int a2_unknown_domain(a2_t *a, const char *name)
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

apr_status_t a2_active_load(a2_t *a, const acme_domain_t *dom, acme_active_t **active,
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

apr_status_t a2_request_renewal(a2_t *a, const char *name, acme_result_t *res)
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

/* ------------------------------------------------------------------ main */

static int a2_check_arity(const a2_args_t *args, apr_pool_t *p)
{
    int wants_name = !strcmp(args->command, "renew") || !strcmp(args->command, "revoke")
                     || !strcmp(args->command, "dns-persist")
                     || !strcmp(args->command, "forget");

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
    if ((args->cluster || args->cluster_prefix || args->cluster_tls)
        && (strcmp(args->command, "list") || !args->cluster)) {
        return a2_usage_error("--cluster ENDPOINTS (with --cluster-prefix, --cluster-tls) is an "
                              "option of list");
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
        && strcmp(args.command, "rollover") && strcmp(args.command, "dns-persist")
        && strcmp(args.command, "forget")) {
        return a2_usage_error(apr_psprintf(p, "unknown command '%s' (list, renew, revoke, "
                                           "account, rollover, dns-persist, forget)",
                                           args.command));
    }
    if ((rc = a2_check_arity(&args, p)) != 0) {
        return rc;
    }
    if (args.ca_url) {
        args.ca_url = acme_domain_ca_url(p, args.ca_url, &reason);
    }
    if (args.cluster) {
        return a2_cmd_cluster_list(&a);      /* etcd only: no store needed */
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
    if (!strcmp(args.command, "forget")) return a2_cmd_forget(&a);
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
