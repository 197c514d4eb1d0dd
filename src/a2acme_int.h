/*
 * Internal to a2acme (a2acme*.c): options, the opened store and the helpers its commands share.
 * a2acme.c parses the command line, opens the store, lists and renews; a2acme_account.c shows,
 * rolls over and changes the ACME accounts; a2acme_revoke.c revokes; a2acme_persist.c prints
 * dns-persist-01 records.
 */
#ifndef A2ACME_INT_H
#define A2ACME_INT_H

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
    const char *cluster;        /* list --cluster: etcd endpoints (ACMECluster's) */
    const char *cluster_prefix; /* --cluster-prefix; NULL: /mod_acme */
    const char *cluster_tls;    /* --cluster-tls CERT,KEY,CA */
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

/* a2acme.c */
void a2_err(const char *msg);
int a2_usage_error(const char *msg);
/* a2acme_cluster.c */
int a2_cmd_cluster_list(a2_t *a);
/* a2acme_ondemand.c */
int a2_cmd_forget(a2_t *a);
int a2_failed(apr_pool_t *p, const acme_result_t *res);
const char *a2_time(apr_pool_t *p, apr_time_t t);
void a2_print_json(json_t *doc);
const char *a2_reason_name(int code);
int a2_exists(apr_pool_t *p, const char *path);
apr_array_header_t *a2_dir_names(apr_pool_t *p, const char *dir, int dirs_only);
acme_domain_t *a2_domain_find(a2_t *a, const char *name);
int a2_unknown_domain(a2_t *a, const char *name);
apr_status_t a2_active_load(a2_t *a, const acme_domain_t *dom, acme_active_t **active,
                            acme_result_t *res);
apr_status_t a2_request_renewal(a2_t *a, const char *name, acme_result_t *res);

/* a2acme_account.c */
apr_status_t a2_account_open(a2_t *a, const char *ca_url, a2_account_t **pacct,
                             acme_result_t *res);
void a2_push_unique(apr_array_header_t *list, const char *s);
int a2_cmd_account(a2_t *a);
int a2_cmd_rollover(a2_t *a);
int a2_check_ca_option(apr_pool_t *p, const a2_args_t *args);
int a2_account_arity(const a2_args_t *args, apr_pool_t *p);

/* a2acme_revoke.c */
int a2_cmd_revoke(a2_t *a);

/* a2acme_persist.c */
int a2_cmd_dns_persist(a2_t *a);

#endif
