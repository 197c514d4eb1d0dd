#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <unixd.h>
#include <apr_strings.h>

#include "acme_activate.h"
#include "acme_challenge.h"
#include "acme_domain.h"
#include "acme_names.h"
#include "acme_job.h"
#include "acme_perms.h"
#include "acme_renewal.h"
#include "acme_seal.h"
#include "acme_selfcheck.h"
#include "acme_serve.h"
#include "acme_config_api.h"
#include "acme_config_ondemand.h"
#include "acme_config_cluster.h"
#include "acme_serve_cluster.h"
#include "acme_supervise_hot.h"
#include "acme_serve_hot.h"
#include "acme_status.h"
#include "acme_serve_metrics.h"
#include "acme_supervise.h"
#include "acme_version.h"

APLOG_USE_MODULE(acme);

#define ACME_HTTP01_PREFIX "/.well-known/acme-challenge/"

/* ------------------------------------------------------------------ post_config */

static void acme_serve_tls_prepare(apr_pool_t *pconf, const acme_conf_t *conf);

/* The worker runs as the User: it owns what it writes, and nothing else. */
static void acme_serve_grant_worker(apr_pool_t *p, server_rec *s, const acme_store_t *st)
{
    static const char *const groups[] = { ACME_STORE_JOBS, ACME_STORE_STAGING,
                                          ACME_STORE_CHALLENGES, ACME_STORE_API,
                                          ACME_STORE_API_QUEUE };
    apr_size_t i;

    if (geteuid() != 0) {
        return;
    }
    for (i = 0; i < sizeof(groups) / sizeof(groups[0]); ++i) {
        const char *dir = acme_store_path(p, st, groups[i], NULL, NULL);
        if (chown(dir, ap_unixd_config.user_id, ap_unixd_config.group_id) != 0) {
            ap_log_error(APLOG_MARK, APLOG_ERR, APR_FROM_OS_ERROR(errno), s,
                         "ACME00201: mod_acme: cannot hand %s to the httpd User; renewals will "
                         "fail", dir);
        }
    }
}

static void acme_serve_activate(apr_pool_t *ptemp, server_rec *s, acme_conf_t *conf,
                                apr_hash_t *errors, apr_hash_t *activated)
{
    acme_activate_seal_t seal = { .key = NULL, .cert = NULL };
    acme_result_t res;
    int i;

    for (i = 0; i < conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        if (!acme_activate_staged(ptemp, conf->store, dom)) {
            continue;
        }
        acme_result_reset(&res);
        if (!seal.key && acme_activate_seal_open(ptemp, conf->store_dir,
                                                 acme_supervise_worker_uid(), &seal, &res)
                         != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "ACME00202: mod_acme: staged certificates "
                         "cannot be activated: %s", acme_result_describe(&res, ptemp));
            return;
        }
        if (acme_activate_install(ptemp, conf->store, &seal, dom, &res) == APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "ACME00203: mod_acme: %s: new certificate "
                         "activated", dom->name);
            acme_job_force_clear(ptemp, conf->store, dom->name);
            apr_hash_set(activated, dom->name, APR_HASH_KEY_STRING, dom);
            acme_serve_metrics_activation(ptemp, s, conf->store, "success", 1);
            continue;
        }
        acme_serve_metrics_activation(ptemp, s, conf->store, "failure", 1);
        apr_hash_set(errors, dom->name, APR_HASH_KEY_STRING,
                     apr_pstrdup(conf->active ? apr_hash_pool_get(conf->active) : ptemp,
                                 acme_result_describe(&res, ptemp)));
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "ACME00204: mod_acme: %s: %s; the previous "
                     "certificate stays in use", dom->name, acme_result_describe(&res, ptemp));
    }
}

/*
 * The fallback files checked in the last configuration pass, kept in the process pool: the
 * second pass at start-up and every restart then only look at the files' stamps.
 */
typedef struct {
    apr_pool_t *pool;
    apr_hash_t *known;
} acme_serve_fallback_memory_t;

static acme_serve_fallback_memory_t *acme_serve_fallback_memory(process_rec *process)
{
    char key[64];
    acme_serve_fallback_memory_t *mem = NULL;

    apr_snprintf(key, sizeof(key), "mod_acme-fallbacks-%s-%lu", ACME_VERSION,
                 (unsigned long)sizeof(*mem));
    apr_pool_userdata_get((void **)&mem, key, process->pool);
    if (!mem) {
        mem = apr_pcalloc(process->pool, sizeof(*mem));
        apr_pool_userdata_set(mem, key, apr_pool_cleanup_null, process->pool);
    }
    return mem;
}

/* Replaces what is remembered with what this pass checked (memory stays bounded). */
static void acme_serve_fallback_remember(process_rec *process, const apr_array_header_t *checked)
{
    acme_serve_fallback_memory_t *mem = acme_serve_fallback_memory(process);
    apr_pool_t *pool = NULL;
    apr_hash_t *known;
    int i;

    if (apr_pool_create(&pool, process->pool) != APR_SUCCESS) {
        return;
    }
    known = apr_hash_make(pool);
    for (i = 0; i < checked->nelts; ++i) {
        const acme_activate_known_t *e = &APR_ARRAY_IDX(checked, i, acme_activate_known_t);
        apr_hash_set(known, apr_pstrdup(pool, e->path), APR_HASH_KEY_STRING,
                     apr_pstrdup(pool, e->stamp));
    }
    if (mem->pool) {
        apr_pool_destroy(mem->pool);
    }
    mem->pool = pool;
    mem->known = known;
}

static apr_status_t acme_serve_memfd_close(void *data)
{
    close((int)(intptr_t)data);
    return APR_SUCCESS;
}

/* PEM text in an anonymous memory file that mod_ssl reads through /proc/self/fd/N. */
static const char *acme_serve_memfd(apr_pool_t *pconf, const char *name, const char *pem)
{
    int fd = (int)syscall(SYS_memfd_create, name, 1u /* MFD_CLOEXEC */);
    apr_size_t len = strlen(pem), done = 0;

    if (fd < 0) {
        return NULL;
    }
    while (done < len) {
        ssize_t n = write(fd, pem + done, len - done);
        if (n <= 0) {
            close(fd);
            return NULL;
        }
        done += (apr_size_t)n;
    }
    apr_pool_cleanup_register(pconf, (void *)(intptr_t)fd, acme_serve_memfd_close,
                              apr_pool_cleanup_null);
    return apr_psprintf(pconf, "/proc/self/fd/%d", fd);
}

/*
 * The last resort when not even a fallback file can be written (disk full, read-only store):
 * a throw-away self-signed certificate in memory, so that mod_ssl still starts the vhost (and
 * answers 503) instead of refusing to start httpd. Nothing of it reaches the disk.
 */
static int acme_serve_fallback_in_memory(apr_pool_t *pconf, const acme_domain_t *dom,
                                         acme_active_t *active)
{
    acme_keyspec_t spec = { .kind = ACME_KEY_EC, .bits = 256 };
    const char *cert_pem = NULL, *key_pem = NULL;
    acme_key_t *key = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_crypto_key_generate(pconf, &spec, &key, &res) != APR_SUCCESS
        || acme_crypto_selfsigned_create_names(pconf, key, (const acme_ident_t *)dom->idents->elts,
                                               dom->idents->nelts, apr_time_from_sec(86400),
                                               NULL, &cert_pem, &res) != APR_SUCCESS
        || acme_crypto_key_to_pem(pconf, key, &key_pem, &res) != APR_SUCCESS) {
        return 0;
    }
    active->fallback_cert = acme_serve_memfd(pconf, "mod_acme-fallback-cert", cert_pem);
    active->fallback_key = acme_serve_memfd(pconf, "mod_acme-fallback-key", key_pem);
    return active->fallback_cert && active->fallback_key;
}

static void acme_serve_load_active(apr_pool_t *pconf, server_rec *s, acme_conf_t *conf,
                                   apr_hash_t *errors)
{
    acme_activate_fallback_t fallback = {
        .known = acme_serve_fallback_memory(s->process)->known,
        .checked = apr_array_make(pconf, 64, sizeof(acme_activate_known_t)),
    };
    apr_time_t now = apr_time_now();
    acme_result_t res;
    int i;

    apr_array_header_t *without = apr_array_make(pconf, 16, sizeof(const acme_domain_t *));

    for (i = 0; i < conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        if (!acme_activate_has_set(pconf, conf->store, dom)) {
            APR_ARRAY_PUSH(without, const acme_domain_t *) = dom;
        }
    }
    acme_result_reset(&res);
    if (without->nelts > ACME_ACTIVATE_FALLBACK_GROUP_FROM
        && acme_activate_fallback_prepare(pconf, conf->store, &fallback, &res) == APR_SUCCESS
        && acme_activate_fallback_groups(pconf, conf->store, without, &fallback, &res)
           != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "ACME00205: mod_acme: shared fallback "
                     "certificates: %s; domains without a certificate get one of their own",
                     acme_result_describe(&res, pconf));
    }
    for (i = 0; i < conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        acme_active_t *active = NULL;
        acme_result_reset(&res);
        if (acme_activate_load(pconf, conf->store, dom, now, &fallback, &active, &res)
            != APR_SUCCESS) {
            int held = acme_serve_fallback_in_memory(pconf, dom, active);
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "ACME00206: mod_acme: %s: no certificate and "
                         "no fallback certificate file could be prepared: %s; %s", dom->name,
                         acme_result_describe(&res, pconf),
                         held ? "a fallback held in memory is served until this is fixed"
                              : "mod_ssl will refuse this virtual host");
        }
        if (active->load_error) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "ACME00207: mod_acme: %s: %s; %s, and the "
                         "renewal worker orders a new certificate", dom->name, active->load_error,
                         active->certs->nelts ? "the other certificates are served"
                                              : "a fallback certificate is served");
        }
        active->last_activation_error = apr_hash_get(errors, dom->name, APR_HASH_KEY_STRING);
        apr_hash_set(conf->active, dom->name, APR_HASH_KEY_STRING, active);
    }
    acme_serve_fallback_remember(s->process, fallback.checked);
}

/* Where a TLS client reaches the virtual host serving dom: its first address, loopback for "*". */
static int acme_serve_address_of(apr_pool_t *p, server_rec *main_s, const acme_conf_t *conf,
                                 const acme_domain_t *dom, const char **host, int *port)
{
    server_rec *vs;

    for (vs = main_s; vs; vs = vs->next) {
        char *ip = NULL;
        if (acme_config_domain_of_server(conf, vs) != dom || !vs->addrs) {
            continue;
        }
        apr_sockaddr_ip_get(&ip, vs->addrs->host_addr);
        *port = vs->addrs->host_port ? vs->addrs->host_port : 443;
        *host = (!ip || !strcmp(ip, "0.0.0.0")) ? "127.0.0.1" : !strcmp(ip, "::") ? "::1" : ip;
        *host = apr_pstrdup(p, *host);
        return 1;
    }
    return 0;
}

/* What this generation activated, for the worker to verify by handshakes (acme_selfcheck.h). */
void acme_serve_selfcheck_list(apr_pool_t *ptemp, server_rec *s, acme_conf_t *conf,
                                      apr_hash_t *activated)
{
    json_t *list = json_array();
    apr_hash_index_t *hi;
    acme_result_t res;

    for (hi = apr_hash_first(ptemp, activated); hi; hi = apr_hash_next(hi)) {
        const acme_domain_t *dom = apr_hash_this_val(hi);
        const acme_active_t *active = apr_hash_get(conf->active, dom->name, APR_HASH_KEY_STRING);
        json_t *serials = json_array();
        const char *host = NULL;
        int port = 0, i;
        if (!active || !acme_serve_address_of(ptemp, s, conf, dom, &host, &port)) {
            json_decref(serials);
            continue;
        }
        for (i = 0; i < active->certs->nelts; ++i) {
            json_array_append_new(serials, json_string(
                APR_ARRAY_IDX(active->certs, i, acme_active_cert_t).info.serial_hex));
        }
        json_array_append_new(list, json_pack("{s:s, s:o, s:s, s:i}", "name", dom->name,
                                              "serials", serials, "host", host, "port", port));
    }
    acme_result_reset(&res);
    if (json_array_size(list) > 0) {
        acme_store_write_json(ptemp, acme_store_path(ptemp, conf->store, ACME_STORE_JOBS,
                                                     ACME_SELFCHECK_FILE, NULL),
                              list, ACME_PERMS_0644, &res);
    }
    json_decref(list);
}

/*
 * Who the renewal worker, and so ACMENotifyCommand, runs as: a2acme runs the hook for `revoke`
 * and must not give the admin's program more rights than the server gives it.
 */
static json_t *acme_serve_hook_user(void)
{
    if (geteuid() != 0) {
        return json_pack("{s:I, s:I}", "uid", (json_int_t)geteuid(), "gid", (json_int_t)getegid());
    }
    return json_pack("{s:s?, s:I, s:I}", "name", ap_unixd_config.user_name,
                     "uid", (json_int_t)ap_unixd_config.user_id,
                     "gid", (json_int_t)ap_unixd_config.group_id);
}

/*
 * <store>/domains.json: the configured set and the notification hook, for the admin command.
 * The dns-01 and notification command lines may carry arguments an admin considers private
 * (API endpoints, account names): 0640, readable by root and the User's group (the worker and
 * a2acme run by an admin in that group), never by everyone.
 */
static void acme_serve_write_domains(apr_pool_t *ptemp, server_rec *s, acme_conf_t *conf)
{
    const char *path = apr_pstrcat(ptemp, conf->store_dir, "/domains.json", NULL);
    json_t *json = acme_domain_set_to_json(conf->domains);
    acme_result_t res;
    int i;

    /* a2acme revoke runs the notification command itself (event `revoked`). */
    if (conf->notify_argv && conf->notify_argv->nelts > 0) {
        json_t *argv = json_array();
        for (i = 0; i < conf->notify_argv->nelts; ++i) {
            json_array_append_new(argv, json_string(APR_ARRAY_IDX(conf->notify_argv, i,
                                                                  const char *)));
        }
        json_object_set_new(json, "notify_command", argv);
    }
    json_object_set_new(json, "hook_user", acme_serve_hook_user());
    acme_result_reset(&res);
    if (acme_store_write_json(ptemp, path, json, ACME_PERMS_0640, &res) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "ACME00208: mod_acme: %s; the admin command "
                     "will not see the configured domains", acme_result_describe(&res, ptemp));
    }
    else if (geteuid() == 0 && chown(path, 0, ap_unixd_config.group_id) != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, APR_FROM_OS_ERROR(errno), s, "ACME00209: mod_acme: "
                     "cannot give %s to the User's group; only root can read it, a2acme run by "
                     "others falls back to scanning the store", path);
    }
    json_decref(json);
}

int acme_serve_prepare(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s, acme_conf_t *conf)
{
    apr_hash_t *activated = apr_hash_make(ptemp);
    apr_hash_t *errors = apr_hash_make(pconf);
    acme_store_t *st = NULL;
    acme_result_t res;
    const char *note = NULL;

    if (conf->domains->nelts == 0 && !acme_config_ondemand_get(pconf)->worker) {
        return OK;
    }
    acme_serve_metrics_prepare(pconf);
    acme_result_reset(&res);
    if (acme_store_open(pconf, conf->store_dir, &st, &res) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "ACME00210: mod_acme: the store %s is "
                     "unusable: %s; no certificate can be obtained until this is fixed",
                     conf->store_dir,
                     acme_result_describe(&res, ptemp));
        return OK;
    }
    /* Nothing found in the store may keep httpd from starting with what it has. */
    if (acme_store_recover(ptemp, st, &res) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "ACME00211: mod_acme: recovering an interrupted "
                     "replacement in %s: %s; the certificates found are served, fix or remove "
                     "the marker named", conf->store_dir, acme_result_describe(&res, ptemp));
    }
    acme_result_reset(&res);
    if (acme_seal_repair(ptemp, conf->store_dir, &note, &res) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "ACME00212: mod_acme: a damaged seal key in %s: "
                     "%s", conf->store_dir, acme_result_describe(&res, ptemp));
    }
    else if (note) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "ACME00213: mod_acme: %s; certificates "
                     "staged under the old key are ordered again", note);
    }
    acme_result_reset(&res);
    if (acme_seal_keypair_ensure(pconf, conf->store_dir, &conf->seal_cert_pem, &res)
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "ACME00214: mod_acme: the store's seal keys in "
                     "%s: %s; certificates are served but no new one can be obtained until this is "
                     "fixed", conf->store_dir, acme_result_describe(&res, ptemp));
    }
    conf->store = st;
    acme_config_ondemand_domains(pconf, ptemp, s, conf);
    acme_serve_grant_worker(ptemp, s, st);
    acme_serve_activate(ptemp, s, conf, errors, activated);
    acme_serve_load_active(pconf, s, conf, errors);
    acme_supervise_hot_prepare(pconf, ptemp, s, conf);
    acme_serve_selfcheck_list(ptemp, s, conf, activated);
    acme_serve_write_domains(ptemp, s, conf);
    acme_serve_tls_prepare(pconf, conf);
    return OK;
}

/* ------------------------------------------------------------------ mod_ssl */

static const acme_active_t *acme_serve_active_of(server_rec *s)
{
    acme_conf_t *conf = acme_config_get(s->process->pconf);
    const acme_domain_t *dom = acme_config_domain_of_server(conf, s);

    return dom ? apr_hash_get(conf->active, dom->name, APR_HASH_KEY_STRING) : NULL;
}

int acme_serve_add_cert_files(server_rec *s, apr_pool_t *p, apr_array_header_t *cert_files,
                              apr_array_header_t *key_files)
{
    const acme_active_t *active = acme_serve_active_of(s);
    int i;

    if (!active || active->certs->nelts == 0) {
        return DECLINED;
    }
    for (i = 0; i < active->certs->nelts; ++i) {
        const acme_active_cert_t *cert = &APR_ARRAY_IDX(active->certs, i, acme_active_cert_t);
        APR_ARRAY_PUSH(cert_files, const char *) = cert->cert_file;
        APR_ARRAY_PUSH(key_files, const char *) = cert->key_file;
    }
    return OK;
}

int acme_serve_add_fallback_cert_files(server_rec *s, apr_pool_t *p,
                                       apr_array_header_t *cert_files,
                                       apr_array_header_t *key_files)
{
    const acme_active_t *active = acme_serve_active_of(s);

    if (!active || active->certs->nelts > 0 || !active->fallback_cert) {
        return DECLINED;
    }
    APR_ARRAY_PUSH(cert_files, const char *) = active->fallback_cert;
    APR_ARRAY_PUSH(key_files, const char *) = active->fallback_key;
    return OK;
}

/* ------------------------------------------------------------------ http-01 */

int acme_serve_http01(request_rec *r)
{
    const char *path = r->parsed_uri.path;
    acme_conf_t *conf;
    const char *token, *key_authz = NULL;
    apr_size_t len = 0;

    if (!path || strncmp(path, ACME_HTTP01_PREFIX, sizeof(ACME_HTTP01_PREFIX) - 1) != 0) {
        return DECLINED;
    }
    conf = acme_config_get(r->server->process->pconf);
    if (!conf->store || !r->hostname) {
        return DECLINED;
    }
    token = path + sizeof(ACME_HTTP01_PREFIX) - 1;
    if (!acme_config_domain_for(conf, r->hostname)
        && !acme_config_api_covers(acme_config_api_get(r->server->process->pconf), r->hostname)
        && (!acme_config_ondemand_get(r->server->process->pconf)->worker
            || !acme_challenge_token_valid(token)
            || acme_challenge_http01_get(r->pool, conf->store_dir, r->hostname, token,
                                         &key_authz, &len) != APR_SUCCESS)) {
        /* Not ours (an on-demand name is ours while the worker has an answer for it):
         * another ACME client may answer. */
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!key_authz
        && (!acme_challenge_token_valid(token)
            || (acme_challenge_http01_get(r->pool, conf->store_dir, r->hostname, token,
                                          &key_authz, &len) != APR_SUCCESS
                && acme_serve_cluster_http01(r, token, &key_authz, &len) != APR_SUCCESS))) {
        return HTTP_NOT_FOUND;
    }
    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, (apr_off_t)len);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only) {
        ap_rwrite(key_authz, (int)len, r);
    }
    return DONE;
}

/* ------------------------------------------------------------------ status */

acme_job_t *acme_serve_job(apr_pool_t *p, const acme_conf_t *conf, const acme_domain_t *dom)
{
    acme_job_t *job = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (acme_job_load(p, conf->store, dom->name, &job, &res) != APR_SUCCESS) {
        job = NULL;
    }
    return job;
}

/* What every status view shows of a domain: the set loaded at post_config and its job file. */
static const acme_active_t *acme_serve_status_read(apr_pool_t *p, acme_conf_t *conf,
                                                   const acme_domain_t *dom, acme_job_t **job)
{
    *job = acme_serve_job(p, conf, dom);
    return conf->active ? acme_serve_hot_active(p, ap_server_conf->process, dom,
                                                apr_hash_get(conf->active, dom->name,
                                                             APR_HASH_KEY_STRING))
                        : NULL;
}

/* Every domain the status shows: the configured ones, then those approved on demand since the
 * start (served hot already; configured from the next generation on). */
static const apr_array_header_t *acme_serve_status_domains(apr_pool_t *p, const acme_conf_t *conf)
{
    apr_array_header_t *extra = acme_serve_hot_ondemand_domains(p, ap_server_conf->process);

    return extra->nelts ? apr_array_append(p, conf->domains, extra) : conf->domains;
}

/* The domain whose first name is name, configured or approved on demand since; NULL: none. */
static const acme_domain_t *acme_serve_status_named(apr_pool_t *p, const acme_conf_t *conf,
                                                    const char *name)
{
    const apr_array_header_t *all;
    const acme_domain_t *dom = acme_config_domain_for(conf, name);
    int i;

    if (dom && !strcasecmp(dom->name, name)) {
        return dom;
    }
    all = acme_serve_hot_ondemand_domains(p, ap_server_conf->process);
    for (i = 0; i < all->nelts; ++i) {
        dom = APR_ARRAY_IDX(all, i, const acme_domain_t *);
        if (!strcasecmp(dom->name, name)) {
            return dom;
        }
    }
    return NULL;
}

/* p: a pool the caller may clear right after; the JSON holds copies of everything it shows. */
static json_t *acme_serve_status_of(apr_pool_t *p, acme_conf_t *conf, const acme_domain_t *dom)
{
    acme_job_t *job = NULL;
    const acme_active_t *active = acme_serve_status_read(p, conf, dom, &job);

    return acme_status_domain(dom, active, job);
}

json_t *acme_serve_status_domain(apr_pool_t *p, acme_conf_t *conf, const acme_domain_t *dom)
{
    return acme_serve_status_of(p, conf, dom);
}

/* jobs/worker.json as the parent wrote it, the state checked; {"state": "unknown"} without. */
static json_t *acme_serve_worker_state(apr_pool_t *p, acme_conf_t *conf)
{
    const char *path = acme_store_path(p, conf->store, ACME_STORE_JOBS, "worker.json", NULL);
    json_t *json = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (!path || acme_store_read_json(p, path, &json, &res) != APR_SUCCESS
        || !json_is_object(json)) {
        return json_pack("{s:s}", "state", "unknown");
    }
    json = json_deep_copy(json);
    json_object_set_new(json, "state", json_string(acme_status_worker_state(json)));
    return json;
}

void acme_serve_summary(apr_pool_t *p, acme_conf_t *conf, acme_status_summary_t *sum)
{
    acme_plan_window_t warn, *w = NULL;
    const apr_array_header_t *all;
    apr_time_t now = apr_time_now();
    const char *reason = NULL;
    apr_pool_t *each;
    json_t *worker;
    int i;

    *sum = (acme_status_summary_t){ .worker = "unknown" };
    if (!conf->store) {
        return;
    }
    if (conf->warn_window
        && acme_renewal_warn_parse(conf->warn_window, &warn, &reason, p) == APR_SUCCESS) {
        w = &warn;
    }
    apr_pool_create(&each, p);
    all = acme_serve_status_domains(p, conf);
    /* One job file at a time: with 10,000 domains the request's pool would otherwise hold them
     * all until the response is sent. */
    for (i = 0; i < all->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(all, i, const acme_domain_t *);
        acme_job_t *job = NULL;
        const acme_active_t *active = acme_serve_status_read(each, conf, dom, &job);
        acme_status_summary_add(sum, active, job, w, now);
        apr_pool_clear(each);
    }
    apr_pool_destroy(each);
    worker = acme_serve_worker_state(p, conf);
    sum->worker = apr_pstrdup(p, acme_status_worker_state(worker));
    json_decref(worker);
}

/* Why staged certificates wait, as the parent wrote it; {"waiting": null} when nothing does. */
static json_t *acme_serve_activation_state(request_rec *r, acme_conf_t *conf)
{
    const char *path = acme_store_path(r->pool, conf->store, ACME_STORE_JOBS, "activation.json",
                                       NULL);
    json_t *json = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (!path || acme_store_read_json(r->pool, path, &json, &res) != APR_SUCCESS) {
        return json_pack("{s:n}", "waiting");
    }
    return json_incref(json);
}

/* The account records of the CAs `dom` names (every domain's when NULL), each CA once. */
static json_t *acme_serve_status_accounts(request_rec *r, acme_conf_t *conf,
                                          const acme_domain_t *dom)
{
    apr_hash_t *seen = apr_hash_make(r->pool);
    json_t *list = json_array();
    int i, j;

    for (i = 0; i < conf->domains->nelts; ++i) {
        const acme_domain_t *d = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        for (j = 0; (!dom || d == dom) && d->policy.ca_urls && j < d->policy.ca_urls->nelts;
             ++j) {
            const char *ca = APR_ARRAY_IDX(d->policy.ca_urls, j, const char *);
            const char *file = apr_pstrcat(r->pool, "account.", acme_domain_ca_id(r->pool, ca),
                                           ".json", NULL);
            acme_job_account_t *rec = NULL;
            acme_result_t res;

            if (apr_hash_get(seen, ca, APR_HASH_KEY_STRING)) {
                continue;
            }
            apr_hash_set(seen, ca, APR_HASH_KEY_STRING, ca);
            acme_result_reset(&res);
            if (acme_job_account_load(r->pool, acme_store_path(r->pool, conf->store,
                                                               ACME_STORE_JOBS, file, NULL),
                                      ca, &rec, &res) == APR_SUCCESS) {
                json_array_append_new(list, acme_status_account(rec));
            }
        }
    }
    return list;
}

static json_t *acme_serve_status_all(request_rec *r, acme_conf_t *conf)
{
    const apr_array_header_t *all = acme_serve_status_domains(r->pool, conf);
    json_t *list = json_array();
    apr_pool_t *each;
    int i;

    apr_pool_create(&each, r->pool);
    for (i = 0; i < all->nelts; ++i) {    /* one job file in memory at a time */
        json_array_append_new(list, acme_serve_status_of(each, conf,
                              APR_ARRAY_IDX(all, i, const acme_domain_t *)));
        apr_pool_clear(each);
    }
    apr_pool_destroy(each);
    json_t *out = json_pack("{s:s, s:o, s:o, s:o}", "version", ACME_VERSION,
                            "activation", acme_serve_activation_state(r, conf), "domains", list,
                            "accounts", acme_serve_status_accounts(r, conf, NULL));

    json_object_set_new(out, "worker", acme_serve_worker_state(r->pool, conf));
    acme_config_cluster_status(r->server->process->pconf, r->pool, conf->store, out);
    return out;
}

int acme_serve_status(request_rec *r)
{
    acme_conf_t *conf;
    const char *last;
    const acme_domain_t *one = NULL;
    json_t *json;
    char *text;

    if (!r->handler || strcmp(r->handler, "acme-status") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    conf = acme_config_get(r->server->process->pconf);
    last = strrchr(r->uri, '/');
    if (last && last[1]) {
        one = acme_serve_status_named(r->pool, conf, last + 1);
    }
    json = !conf->store ? json_pack("{s:s, s:[]}", "version", ACME_VERSION, "domains")
           : one ? acme_serve_status_of(r->pool, conf, one) : acme_serve_status_all(r, conf);
    if (one && conf->store && json) {
        json_object_set_new(json, "accounts", acme_serve_status_accounts(r, conf, one));
    }
    text = json_dumps(json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(json);
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (text && !r->header_only) {
        ap_rputs(text, r);
        ap_rputs("\n", r);
    }
    free(text);
    return OK;
}

/* ------------------------------------------------------------------ TLS challenges */

#define ACME_SERVE_ACME_TLS "acme-tls/1"
#define ACME_SERVE_TLS_KEY "mod_acme-tls-challenges"

/* Which TLS challenges this generation may answer: decided once, at post_config. */
typedef struct {
    int alpn;                           /* some domain may be validated by tls-alpn-01 */
    int sni;                            /* some domain lists tls-sni-01 */
} acme_serve_tls_t;

/* Per connection, allocated only on connections that take part in a challenge. */
typedef struct {
    int acme_tls;                       /* acme-tls/1 was negotiated */
    const char *type;                   /* the challenge answered, or NULL */
    const char *cert_pem;               /* its certificate and key */
    const char *key_pem;
} acme_serve_conn_t;

static int acme_serve_lists(const apr_array_header_t *list, const char *type)
{
    int i;

    for (i = 0; list && i < list->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(list, i, const char *), type)) {
            return 1;
        }
    }
    return 0;
}

static void acme_serve_tls_prepare(apr_pool_t *pconf, const acme_conf_t *conf)
{
    acme_serve_tls_t *tls = apr_pcalloc(pconf, sizeof(*tls));
    const acme_worker_ondemand_t *od = acme_config_ondemand_get(pconf)->worker;
    int i;

    for (i = 0; conf->store && i < conf->domains->nelts; ++i) {
        const acme_domain_t *dom = APR_ARRAY_IDX(conf->domains, i, const acme_domain_t *);
        tls->alpn |= acme_serve_lists(dom->policy.challenges, "tls-alpn-01");
        tls->sni |= acme_serve_lists(dom->policy.challenges, "tls-sni-01");
    }
    /* A name first seen on an on-demand vhost is ordered with that vhost's challenges. */
    for (i = 0; od && conf->store && i < od->sites->nelts; ++i) {
        const acme_worker_ondemand_site_t *site =
            &APR_ARRAY_IDX(od->sites, i, acme_worker_ondemand_site_t);
        tls->alpn |= acme_serve_lists(site->policy->challenges, "tls-alpn-01");
    }
    apr_pool_userdata_set(tls, ACME_SERVE_TLS_KEY, apr_pool_cleanup_null, pconf);
}

static acme_serve_tls_t acme_serve_tls(apr_pool_t *pconf)
{
    acme_serve_tls_t *tls = NULL;

    apr_pool_userdata_get((void **)&tls, ACME_SERVE_TLS_KEY, pconf);
    return tls ? *tls : (acme_serve_tls_t){ .alpn = 0, .sni = 0 };
}

static acme_serve_conn_t *acme_serve_conn(conn_rec *c, int create)
{
    acme_serve_conn_t *cc = ap_get_module_config(c->conn_config, &acme_module);

    if (!cc && create) {
        cc = apr_pcalloc(c->pool, sizeof(*cc));
        ap_set_module_config(c->conn_config, &acme_module, cc);
    }
    return cc;
}

int acme_serve_protocol_propose(conn_rec *c, request_rec *r, server_rec *s,
                                const apr_array_header_t *offers,
                                apr_array_header_t *proposals)
{
    /* Only a TLS handshake that offers acme-tls/1 itself: no client does but a validator. */
    if (r || !offers || !ap_array_str_contains(offers, ACME_SERVE_ACME_TLS)
        || !acme_serve_tls(c->base_server->process->pconf).alpn || !ap_ssl_conn_is_ssl(c)) {
        return DECLINED;
    }
    APR_ARRAY_PUSH(proposals, const char *) = ACME_SERVE_ACME_TLS;
    return OK;
}

int acme_serve_protocol_switch(conn_rec *c, request_rec *r, server_rec *s,
                               const char *protocol)
{
    if (r || strcmp(protocol, ACME_SERVE_ACME_TLS) != 0) {
        return DECLINED;
    }
    acme_serve_conn(c, 1)->acme_tls = 1;
    c->keepalive = AP_CONN_CLOSE;
    return OK;
}

const char *acme_serve_protocol_get(const conn_rec *c)
{
    const acme_serve_conn_t *cc = ap_get_module_config(c->conn_config, &acme_module);

    return cc && cc->acme_tls ? ACME_SERVE_ACME_TLS : NULL;
}

/* The tls-alpn-01 answer for an SNI name: a managed identifier whose domain may use it. */
static const char *acme_serve_tlsalpn01_answer(conn_rec *c, const acme_conf_t *conf,
                                               const char *sni)
{
    const acme_domain_t *dom = NULL;
    const char *pem = NULL;
    acme_ident_t id;

    if (!acme_serve_tls(c->base_server->process->pconf).alpn) {
        return NULL;
    }
    if (acme_names_parse(c->pool, sni, &id, NULL) == APR_SUCCESS) {
        dom = acme_config_domain_for(conf, id.value);
    }
    /* An IP identifier arrives as its reverse-DNS name (RFC 8738 section 6). */
    if ((!dom || !acme_domain_has_ident(dom, &id))
        && acme_challenge_ip_from_reverse(c->pool, sni, &id) == APR_SUCCESS) {
        dom = acme_config_domain_for(conf, id.value);
    }
    if (!dom && id.type == ACME_IDENT_DNS
        && (acme_config_api_covers(acme_config_api_get(c->base_server->process->pconf),
                                   id.value)
            || acme_config_ondemand_get(c->base_server->process->pconf)->worker)) {
        /* A certificate API order (issue 17) or an on-demand name's first order (issue 19):
         * the worker wrote the answer if it chose this challenge. */
        return acme_challenge_tlsalpn01_get(c->pool, conf->store_dir, id.value, &pem)
               == APR_SUCCESS ? pem : NULL;
    }
    if (!dom || !acme_domain_has_ident(dom, &id)
        || !acme_serve_lists(dom->policy.challenges, "tls-alpn-01")
        || (acme_challenge_tlsalpn01_get(c->pool, conf->store_dir, id.value, &pem)
            != APR_SUCCESS && acme_serve_cluster_tlsalpn01(c, &id, &pem) != APR_SUCCESS)) {
        return NULL;
    }
    return pem;
}

static const char *acme_serve_tlssni01_answer(conn_rec *c, const acme_conf_t *conf,
                                              const char *sni)
{
    const char *pem = NULL;

    if (!conf->store || !acme_serve_tls(c->base_server->process->pconf).sni
        || acme_challenge_tlssni01_get(c->pool, conf->store_dir, sni, &pem) != APR_SUCCESS) {
        return NULL;
    }
    return pem;
}

/* Remembers the answer on the connection; 0 when the answer file is unusable. */
static int acme_serve_conn_answer(conn_rec *c, const char *type, const char *sni,
                                  const char *pem)
{
    acme_serve_conn_t *cc;
    const char *cert_pem = NULL, *key_pem = NULL;

    if (acme_challenge_tls_answer_split(c->pool, pem, &cert_pem, &key_pem) != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_WARNING, 0, c, "ACME00215: mod_acme: the %s answer for %s "
                      "is damaged; the CA's validation fails and the order is retried", type, sni);
        return 0;
    }
    cc = acme_serve_conn(c, 1);
    *cc = (acme_serve_conn_t){ .acme_tls = cc->acme_tls, .type = type, .cert_pem = cert_pem,
                               .key_pem = key_pem };
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, "ACME00216: mod_acme: answering the %s challenge "
                  "for %s", type, sni);
    return 1;
}

int acme_serve_answer_challenge(conn_rec *c, const char *server_name, const char **pcert_pem,
                                const char **pkey_pem)
{
    acme_conf_t *conf = acme_config_get(c->base_server->process->pconf);
    const acme_serve_conn_t *cc = ap_get_module_config(c->conn_config, &acme_module);
    const char *type = NULL, *pem = NULL;

    if (!server_name || !conf->store) {
        return DECLINED;
    }
    if (acme_challenge_tlssni01_name_valid(server_name)) {
        type = "tls-sni-01";
        pem = acme_serve_tlssni01_answer(c, conf, server_name);
    }
    else if (cc && cc->acme_tls) {
        type = "tls-alpn-01";
        pem = acme_serve_tlsalpn01_answer(c, conf, server_name);
    }
    if (!pem || !acme_serve_conn_answer(c, type, server_name, pem)) {
        return DECLINED;
    }
    cc = ap_get_module_config(c->conn_config, &acme_module);
    *pcert_pem = cc->cert_pem;
    *pkey_pem = cc->key_pem;
    return OK;
}

/* The answer becomes the only certificate of the handshake (not one next to an RSA one). */
static void acme_serve_use_answer(SSL *ssl, conn_rec *c, const acme_serve_conn_t *cc)
{
    BIO *cert_bio = BIO_new_mem_buf(cc->cert_pem, -1);
    BIO *key_bio = BIO_new_mem_buf(cc->key_pem, -1);
    X509 *x = cert_bio ? PEM_read_bio_X509(cert_bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = key_bio ? PEM_read_bio_PrivateKey(key_bio, NULL, NULL, NULL) : NULL;

    BIO_free(cert_bio);
    BIO_free(key_bio);
    if (!x || !key) {
        ap_log_cerror(APLOG_MARK, APLOG_WARNING, 0, c, "ACME00217: mod_acme: the %s certificate "
                      "cannot be read", cc->type);
    }
    else {
        SSL_certs_clear(ssl);
        if (SSL_use_certificate(ssl, x) != 1 || SSL_use_PrivateKey(ssl, key) != 1) {
            ap_log_cerror(APLOG_MARK, APLOG_WARNING, 0, c, "ACME00218: mod_acme: the %s "
                          "certificate cannot be used", cc->type);
        }
    }
    X509_free(x);
    EVP_PKEY_free(key);
}

/*
 * OpenSSL's certificate callback, after SNI and (TLS 1.3) ALPN. A tls-alpn-01 answer given
 * through the hook is made the only certificate; a tls-sni-01 name is answered here because
 * mod_ssl does not ask the hook for it. Any other handshake: one pointer test and, when the
 * SNI is not of the *.acme.invalid shape, one length comparison.
 */
static int acme_serve_cert_cb(SSL *ssl, void *arg)
{
    server_rec *s = arg;
    acme_conf_t *conf = acme_config_get(s->process->pconf);
    conn_rec *c = SSL_get_app_data(ssl);
    const acme_serve_conn_t *cc;
    const char *sni, *pem;

    if (!c) {
        return 1;
    }
    cc = ap_get_module_config(c->conn_config, &acme_module);
    if (!cc || !cc->cert_pem) {
        sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        if (!acme_challenge_tlssni01_name_valid(sni)
            || !(pem = acme_serve_tlssni01_answer(c, conf, sni))
            || !acme_serve_conn_answer(c, "tls-sni-01", sni, pem)) {
            return acme_serve_hot_cert(ssl, s);     /* not a challenge: the served set */
        }
        cc = ap_get_module_config(c->conn_config, &acme_module);
    }
    acme_serve_use_answer(ssl, c, cc);
    return 1;
}

int acme_serve_ssl_init_server(server_rec *s, apr_pool_t *p, int is_proxy, SSL_CTX *ctx)
{
    acme_conf_t *conf = acme_config_get(s->process->pconf);
    acme_serve_tls_t tls = acme_serve_tls(s->process->pconf);

    (void)p;
    if (!is_proxy && ctx && conf->store && (tls.alpn || tls.sni || acme_serve_hot_wanted(s))) {
        SSL_CTX_set_cert_cb(ctx, acme_serve_cert_cb, s);
    }
    return OK;
}

int acme_serve_challenge_request(request_rec *r)
{
    const acme_serve_conn_t *cc = ap_get_module_config(r->connection->conn_config, &acme_module);

    if (!cc || !(cc->acme_tls || cc->type)) {
        return DECLINED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "ACME00219: mod_acme: a request on a %s "
                  "connection gets no response", cc->type ? cc->type : ACME_SERVE_ACME_TLS);
    r->connection->keepalive = AP_CONN_CLOSE;
    r->connection->aborted = 1;
    return DONE;
}
