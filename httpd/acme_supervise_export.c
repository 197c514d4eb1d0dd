#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httpd.h>
#include <http_log.h>
#include <ap_listen.h>
#include <unixd.h>
#include <apr_strings.h>

#include "acme_activate.h"
#include "acme_notify.h"
#include "acme_supervise.h"
#include "acme_supervise_export.h"

APLOG_USE_MODULE(acme);

/* One export directory and the domains it holds (several ACMEExport lines may name it). */
typedef struct {
    const acme_export_spec_t *spec;
    int every_domain;           /* a server-wide line names it */
    apr_hash_t *domains;        /* name -> "" from <ACMEDomain> lines */
} acme_supervise_export_dir_t;

/* One `exported` event to send. */
typedef struct {
    const acme_export_spec_t *spec;
    const acme_domain_t *dom;   /* NULL: a domain no longer configured (its files removed) */
    const char *name;
} acme_supervise_export_event_t;

static apr_array_header_t *acme_supervise_export_dirs(apr_pool_t *p, const acme_conf_t *conf)
{
    apr_array_header_t *dirs = apr_array_make(p, 2, sizeof(acme_supervise_export_dir_t));
    int i, j;

    for (i = 0; i < conf->exports->nelts; ++i) {
        const acme_config_export_t *e = &APR_ARRAY_IDX(conf->exports, i, acme_config_export_t);
        acme_supervise_export_dir_t *d = NULL;
        for (j = 0; j < dirs->nelts && !d; ++j) {
            d = &APR_ARRAY_IDX(dirs, j, acme_supervise_export_dir_t);
            d = strcmp(d->spec->dir, e->spec.dir) ? NULL : d;
        }
        if (!d) {
            d = apr_array_push(dirs);
            *d = (acme_supervise_export_dir_t){ .spec = &e->spec, .domains = apr_hash_make(p) };
        }
        if (!e->domain) {
            d->every_domain = 1;
        }
        else {
            apr_hash_set(d->domains, e->domain->name, APR_HASH_KEY_STRING, "");
        }
    }
    return dirs;
}

/* The served certificates of dom, read by root from domains/<name>/; empty when incomplete. */
static apr_array_header_t *acme_supervise_export_certs(apr_pool_t *p, server_rec *s,
                                                       const acme_conf_t *conf,
                                                       const acme_domain_t *dom)
{
    const acme_active_t *active = conf->active ? apr_hash_get(conf->active, dom->name,
                                                              APR_HASH_KEY_STRING) : NULL;
    apr_array_header_t *certs = apr_array_make(p, 2, sizeof(acme_export_cert_t));
    acme_result_t res;
    int i;

    for (i = 0; active && active->complete && i < active->certs->nelts; ++i) {
        const acme_active_cert_t *a = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t);
        acme_export_cert_t cert;
        acme_result_reset(&res);
        if (acme_export_cert_read(p, a->spec, a->key_file, a->cert_file, &cert, &res)
            != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "ACME11502: %s: not exported: %s; "
                         "the files exported before stay", dom->name,
                         acme_result_describe(&res, p));
            return apr_array_make(p, 1, sizeof(acme_export_cert_t));
        }
        APR_ARRAY_PUSH(certs, acme_export_cert_t) = cert;
    }
    return certs;
}

static apr_array_header_t *acme_supervise_export_names(apr_pool_t *p, const acme_domain_t *dom)
{
    apr_array_header_t *names = apr_array_make(p, dom->idents->nelts, sizeof(const char *));
    int i;

    for (i = 0; i < dom->idents->nelts; ++i) {
        const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, i, acme_ident_t);
        if (id->type == ACME_IDENT_DNS) {
            APR_ARRAY_PUSH(names, const char *) = id->value;
        }
    }
    return names;
}

static const acme_domain_t *acme_supervise_export_find(const acme_conf_t *conf,
                                                       const char *name)
{
    int i;

    for (i = 0; i < conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        if (!strcmp(dom->name, name)) {
            return dom;
        }
    }
    return NULL;
}

/* Exports one directory; the domains whose files changed go into events. */
static void acme_supervise_export_one(apr_pool_t *p, server_rec *s, const acme_conf_t *conf,
                                      const acme_supervise_export_dir_t *d,
                                      apr_array_header_t *events)
{
    apr_array_header_t *domains = apr_array_make(p, 8, sizeof(acme_export_domain_t));
    apr_array_header_t *files = NULL, *changed = NULL;
    apr_hash_t *keep = apr_hash_make(p);
    acme_result_t res;
    int i;

    for (i = 0; i < conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        acme_export_domain_t *e;
        if (!d->every_domain && !apr_hash_get(d->domains, dom->name, APR_HASH_KEY_STRING)) {
            continue;
        }
        e = apr_array_push(domains);
        *e = (acme_export_domain_t){
            .name = dom->name, .names = acme_supervise_export_names(p, dom),
            .certs = acme_supervise_export_certs(p, s, conf, dom),
        };
        if (e->certs->nelts == 0) {
            apr_hash_set(keep, dom->name, APR_HASH_KEY_STRING, "");
        }
    }
    acme_result_reset(&res);
    if (acme_export_layout(p, d->spec, domains, &files, &res) != APR_SUCCESS
        || acme_export_write(p, d->spec, files, keep, &changed, &res) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "ACME11500: export to %s (%s) failed: %s; "
                     "fix it and run 'apachectl graceful' to export again", d->spec->dir,
                     acme_export_format_name(d->spec->format), acme_result_describe(&res, p));
    }
    for (i = 0; changed && i < changed->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(changed, i, const char *);
        const acme_domain_t *dom = acme_supervise_export_find(conf, name);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "ACME11501: %s: %s %s (%s)", name,
                     dom ? "exported to" : "no longer managed: its files removed from",
                     d->spec->dir, acme_export_format_name(d->spec->format));
        APR_ARRAY_PUSH(events, acme_supervise_export_event_t) =
            (acme_supervise_export_event_t){ .spec = d->spec, .dom = dom, .name = name };
    }
}

/* The event's JSON: the usual document plus where and how the files were written. */
static json_t *acme_supervise_export_doc(apr_pool_t *p, const acme_conf_t *conf,
                                         const acme_supervise_export_event_t *ev)
{
    const acme_active_t *active = ev->dom && conf->active
                                  ? apr_hash_get(conf->active, ev->name, APR_HASH_KEY_STRING)
                                  : NULL;
    apr_array_header_t *certs = apr_array_make(p, 2, sizeof(acme_notify_cert_t));
    acme_notify_event_t nev = {
        .event = "exported", .domain = ev->name, .idents = ev->dom ? ev->dom->idents : NULL,
        .certs = certs, .now = apr_time_now(),
    };
    json_t *doc;
    int i;

    for (i = 0; active && active->complete && i < active->certs->nelts; ++i) {
        const acme_active_cert_t *a = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t);
        APR_ARRAY_PUSH(certs, acme_notify_cert_t) = (acme_notify_cert_t){
            .key_type = a->spec, .serial = a->info.serial_hex, .not_after = a->info.not_after,
        };
    }
    doc = acme_notify_document(&nev);
    json_object_set_new(doc, "directory", json_string(ev->spec->dir));
    json_object_set_new(doc, "format", json_string(acme_export_format_name(ev->spec->format)));
    json_object_set_new(doc, "removed", json_boolean(ev->dom == NULL));
    return doc;
}

/*
 * The hook process: the User's rights, as every ACMENotifyCommand run (the renewal worker's,
 * a2acme's), never root's; the events one after the other, in the order the files changed.
 */
static void acme_supervise_export_hooks(apr_pool_t *p, server_rec *s, const acme_conf_t *conf,
                                        const apr_array_header_t *events)
{
    acme_result_t res;
    int i;

    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(ap_unixd_config.group_id) != 0
                           || setuid(ap_unixd_config.user_id) != 0 || geteuid() == 0)) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s, "ACME11504: the exported event is not "
                     "sent: cannot become the User");
        return;
    }
    for (i = 0; i < events->nelts; ++i) {
        const acme_supervise_export_event_t *ev = &APR_ARRAY_IDX(events, i,
                                                                 acme_supervise_export_event_t);
        json_t *doc = acme_supervise_export_doc(p, conf, ev);
        acme_result_reset(&res);
        if (acme_notify_run(p, conf->notify_argv, "exported", ev->name, doc, &res)
            != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "ACME11503: %s: %s", ev->name,
                         acme_result_describe(&res, p));
        }
        json_decref(doc);
    }
}

/*
 * Runs the hooks in a grandchild: the parent waits only for the middle process, which exits at
 * once, so the hook process is never a child of httpd's to reap and never holds up start-up.
 */
static void acme_supervise_export_notify(apr_pool_t *p, server_rec *s, const acme_conf_t *conf,
                                         const apr_array_header_t *events)
{
    sigset_t none;
    int status = 0;
    pid_t pid = fork();

    if (pid < 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s, "ACME11505: the exported event is not "
                     "sent: cannot start a process for ACMENotifyCommand");
        return;
    }
    if (pid == 0) {
        if (fork() != 0) {
            _exit(0);
        }
        acme_supervise_child();
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGHUP, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGTERM, SIG_DFL);
        ap_close_listeners();
        acme_supervise_export_hooks(p, s, conf, events);
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

void acme_supervise_export(apr_pool_t *pconf, server_rec *s, const acme_conf_t *conf)
{
    apr_array_header_t *dirs, *events;
    apr_pool_t *p = NULL;
    int i;

    if (!conf->exports || conf->exports->nelts == 0) {
        return;
    }
    /* Without the store nothing is known about what is served: better touch nothing. */
    if (conf->domains->nelts > 0 && (!conf->store || !conf->active)) {
        return;
    }
    apr_pool_create(&p, pconf);
    dirs = acme_supervise_export_dirs(p, conf);
    events = apr_array_make(p, 4, sizeof(acme_supervise_export_event_t));
    for (i = 0; i < dirs->nelts; ++i) {
        acme_supervise_export_one(p, s, conf, &APR_ARRAY_IDX(dirs, i,
                                                             acme_supervise_export_dir_t),
                                  events);
    }
    if (events->nelts > 0 && conf->notify_argv && conf->notify_argv->nelts > 0) {
        acme_supervise_export_notify(p, s, conf, events);
    }
    apr_pool_destroy(p);
}
