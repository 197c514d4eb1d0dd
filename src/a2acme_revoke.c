/* a2acme revoke: revoke the certificates a domain is served with, at the issuing CA. */
#include "a2acme_int.h"

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

int a2_cmd_revoke(a2_t *a)
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
