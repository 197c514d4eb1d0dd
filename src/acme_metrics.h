#ifndef ACME_METRICS_H
#define ACME_METRICS_H

/*
 * Prometheus metrics (text exposition format 0.0.4) for the acme-metrics handler, httpd-free.
 *
 * Two halves: the counters (orders, CA requests, challenges, badNonce retries, activations),
 * counted where the events happen and kept in the store so that they survive graceful restarts
 * and worker runs; and the formatting of the exposition text from plain structs, which the
 * handler fills from what the status handler reads (the domains' job files, the certificates the
 * server loaded) plus the counter files.
 *
 * Counter files are JSON objects of integer leaves, e.g.
 *   {"orders": {"success": 3, "failure": 1},
 *    "ca_requests": {"https://ca/dir": {"ok": 40, "error": 2}},
 *    "challenges": {"http-01": {"valid": 3}}, "badnonce_retries": {"": 1}}
 * jobs/metrics.json is written by the worker (the httpd User): the handler only shows it.
 * <store>/activations.json is written by the parent (root) and read back only by it and the
 * handler. Neither holds secrets.
 */
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "acme_result.h"
#include "acme_store.h"

#define ACME_METRICS_WORKER_FILE "metrics.json"         /* in jobs/ */
#define ACME_METRICS_PARENT_FILE "activations.json"     /* in the store's base directory */

/* Counter families as kept in the files. */
#define ACME_METRICS_ORDERS      "orders"               /* result */
#define ACME_METRICS_CA_REQUESTS "ca_requests"          /* ca, result */
#define ACME_METRICS_CHALLENGES  "challenges"           /* type, result */
#define ACME_METRICS_BADNONCE    "badnonce_retries"     /* (no label) */
#define ACME_METRICS_ACTIVATIONS "activations"          /* result */

/* The worker's schedule overdue by more than this: acme_worker_up 0. */
#define ACME_METRICS_WORKER_GRACE apr_time_from_sec(900)

/* Counts of one process, thread-safe; n added to family/key1[/key2] ("" for no label). */
typedef struct acme_metrics_tally_t acme_metrics_tally_t;

acme_metrics_tally_t *acme_metrics_tally_make(apr_pool_t *p);
void acme_metrics_count(acme_metrics_tally_t *t, const char *family, const char *key1,
                        const char *key2, apr_int64_t n);

/* Adds every integer leaf of from into into (objects merged, other values ignored). */
void acme_metrics_add(json_t *into, const json_t *from);

/*
 * Adds the tally to the counter file at path (read, add, atomic rename; 0644). An unreadable
 * or damaged file starts from zero (the counters reset, which Prometheus handles).
 */
apr_status_t acme_metrics_tally_save(apr_pool_t *p, const char *path, acme_metrics_tally_t *t,
                                     acme_result_t *res);

/* The parent's counter file, <base>/activations.json. */
const char *acme_metrics_parent_path(apr_pool_t *p, const acme_store_t *st);

/*
 * Parent (root): n activations of staged sets with result "success", "failure" (kept staged,
 * tried again) or "rejected" (moved to rejected/), added to <base>/activations.json (one write
 * for a whole batch).
 */
apr_status_t acme_metrics_activation_note(apr_pool_t *p, const acme_store_t *st,
                                          const char *result, int n, acme_result_t *res);

/* One certificate served for a domain. Times are 0 when unknown. */
typedef struct {
    const char *domain;
    const char *key_type;
    apr_time_t not_before;
    apr_time_t not_after;
} acme_metrics_cert_t;

/* One managed domain. state is one of acme_metrics_states (the status's "state"). */
typedef struct {
    const char *domain;
    const char *state;
    apr_time_t renew_at;                /* 0: not known (no job yet) */
    int failures;                       /* consecutive */
} acme_metrics_domain_t;

typedef struct {
    apr_array_header_t *domains;        /* of acme_metrics_domain_t */
    apr_array_header_t *certs;          /* of acme_metrics_cert_t */
    const json_t *worker_counts;        /* jobs/metrics.json, or NULL */
    const json_t *parent_counts;        /* activations.json, or NULL */
    int worker_up;
    int store_problems;                 /* files the scrape could not read */
} acme_metrics_t;

/* The states acme_domain_state has a series for, NULL-terminated. */
extern const char *const acme_metrics_states[];

/* Where the text goes, in pieces. */
typedef void acme_metrics_sink_fn(void *ctx, const char *data, apr_size_t len);

/* Writes the exposition text (HELP and TYPE for every family, label values escaped). */
void acme_metrics_write(apr_pool_t *p, const acme_metrics_t *m, acme_metrics_sink_fn *sink,
                        void *ctx);

/* The same into one NUL-terminated string in p (tests, a2acme). */
char *acme_metrics_text(apr_pool_t *p, const acme_metrics_t *m);

/* A label value escaped per the format (\\, \" and \n). */
const char *acme_metrics_escape(apr_pool_t *p, const char *value);

/* 1 when the worker's next run (0: unknown) is not overdue by more than the grace at now. */
int acme_metrics_worker_up(apr_time_t next_run, apr_time_t now);

#endif
