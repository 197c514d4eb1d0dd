#ifndef ACME_CONFIG_H
#define ACME_CONFIG_H

/*
 * The directives (httpd glue): parsing, per-directive validation, and the
 * cross-checks that need the whole configuration (duplicate names, names no
 * SSL virtual host serves), run from check_config so that configtest reports
 * them with the file and line of the declaration.
 */
#include <httpd.h>
#include <http_config.h>

#include "acme_domain.h"
#include "acme_export.h"
#include "acme_names.h"

#define ACME_PARALLEL_MAX 256
#define ACME_PARALLEL_DEFAULT 8
#define ACME_KEY_SPECS_MAX 4
#define ACME_ACTIVATION_INTERVAL_DEFAULT apr_time_from_sec(600)

/* ACMEActivation (issue 19) */
#define ACME_ACTIVATION_RESTART 0
#define ACME_ACTIVATION_HOT 1

/* Server-wide settings, one per configuration generation (kept in pconf's userdata). */
/*
 * Defined (-D) in the "httpd -t" the module runs before its own graceful restart. Problems that
 * come from the CA's side (a profile its cached directory no longer offers) fail an admin's
 * configtest, but must not stop a running server from restarting to serve other new
 * certificates: the renewal that needs the fix fails on its own.
 */
#define ACME_CONFIG_RESTART_CHECK "ACME_RESTART_CHECK"

typedef struct {
    const char *store_dir;              /* absolute */
    int auto_restart;                   /* -1 unset */
    int parallel_orders;                /* -1 unset */
    apr_interval_time_t check_interval; /* 0 unset */
    apr_interval_time_t activation_interval; /* -1 unset: least time between renewal restarts */
    int activation;                     /* ACMEActivation: ACME_ACTIVATION_*, -1 unset (hot) */
    acme_policy_t policy;               /* server-wide defaults for every domain */
    apr_array_header_t *domains;        /* acme_domain_t *, in declaration order */
    apr_array_header_t *declarations;   /* acme_config_decl_t, parallel to domains */
    acme_domain_t *section;             /* the <ACMEDomain> being read, else NULL */
    acme_names_index_t *index;          /* name -> acme_domain_t *, after the check */
    int checked;                        /* the whole-config check ran */
    /* Filled at post_config, read by the hooks (and inherited by the children): */
    struct acme_store_t *store;         /* opened store, or NULL when it could not be */
    apr_hash_t *active;                 /* domain name -> acme_active_t * */
    const char *seal_cert_pem;          /* public: the worker seals staged keys to it */
    /* Renewal policy (issue 7) */
    int ari_off;                        /* ACMERenewalInfo off */
    const char *warn_window;            /* ACMEWarnWindow, NULL: 10 % */
    apr_array_header_t *notify_argv;    /* ACMENotifyCommand, const char *; NULL: none */
    apr_array_header_t *exports;        /* ACMEExport, acme_config_export_t; NULL: none */
} acme_conf_t;

/* One ACMEExport line: server-wide (every domain) or inside an <ACMEDomain> (that domain). */
typedef struct {
    acme_export_spec_t spec;
    const acme_domain_t *domain;        /* NULL: every managed domain */
} acme_config_export_t;

/* Per virtual host: overrides and "ACMEDomain" with no names. */
typedef struct {
    acme_policy_t policy;
    int manage_vhost;                   /* ACMEDomain without names in this vhost */
    const char *manage_file;
    int manage_line;
} acme_srv_conf_t;

/* Where a domain was declared, to resolve its policy: section < vhost < server. */
typedef struct {
    acme_domain_t *domain;
    server_rec *server;                 /* the vhost it was declared in, or the main server */
} acme_config_decl_t;

extern const command_rec acme_config_cmds[];

void *acme_config_srv_create(apr_pool_t *p, server_rec *s);
void *acme_config_srv_merge(apr_pool_t *p, void *base, void *add);

/* This generation's server-wide configuration (created on first use). */
acme_conf_t *acme_config_get(apr_pool_t *pconf);

/*
 * The whole-configuration check. Logs every problem with its file and line and
 * returns !OK when there is one, so configtest and start-up both fail.
 */
int acme_config_check(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *main_server);

/* The managed domain serving this host name, or NULL. */
const acme_domain_t *acme_config_domain_for(const acme_conf_t *conf, const char *host);

/* The managed domain whose certificate this virtual host serves: by ServerName, then aliases. */
const acme_domain_t *acme_config_domain_of_server(const acme_conf_t *conf, const server_rec *s);

#endif
