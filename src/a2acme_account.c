/* a2acme account, rollover and the account life commands (deactivate, contact, bind, agree):
 * the store's ACME account at each CA, as the CA knows it. */
#include "a2acme_int.h"

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
apr_status_t a2_account_open(a2_t *a, const char *ca_url, a2_account_t **pacct,
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

void a2_push_unique(apr_array_header_t *list, const char *s)
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

int a2_cmd_account(a2_t *a)
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

int a2_cmd_rollover(a2_t *a)
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
int a2_check_ca_option(apr_pool_t *p, const a2_args_t *args)
{
    const char *reason = NULL;

    if (args->ca_url && !acme_domain_ca_url(p, args->ca_url, &reason)) {
        return a2_usage_error(reason);
    }
    return 0;
}

/* The account subcommands' arguments, checked before the store is opened. */
int a2_account_arity(const a2_args_t *args, apr_pool_t *p)
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
