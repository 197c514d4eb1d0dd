/*
 * What the worker's cluster files share (acme_worker_cluster.c: locks, publication, watching;
 * acme_worker_share.c: challenge answers through etcd). Not for other files.
 */
#ifndef ACME_WORKER_CLUSTER_INT_H
#define ACME_WORKER_CLUSTER_INT_H

#include <apr_thread_proc.h>

#include "acme_worker_int.h"
#include "acme_cluster.h"
#include "acme_etcd.h"
#include "acme_vault.h"

struct acme_worker_cluster_t {
    acme_worker_t *w;                   /* the run this belongs to */
    const acme_cluster_config_t *cfg;
    acme_etcd_options_t opts;
    acme_vault_t *vault;
    acme_etcd_t *etcd;                  /* the run's main thread only */
    apr_int64_t lease;
    int up;                             /* etcd answered when the run began */
    const char *down_reason;
    apr_thread_t *keeper;
    apr_thread_t *acker;                /* mirrors and acknowledges other nodes' answers */
    volatile int stop;
    apr_int64_t revision;               /* etcd's revision before the run's first fetch */
};

/* A client of the run's etcd, for one thread (a client is not shared between threads). */
apr_status_t acme_worker_cluster_etcd(acme_worker_cluster_t *cl, apr_pool_t *p,
                                      acme_etcd_t **etcd, acme_result_t *res);

/* The thread (data: the acme_worker_cluster_t) that mirrors and acknowledges the answers other
 * nodes put in etcd, until cl->stop; it removes its mirrors when it ends. */
void *APR_THREAD_FUNC acme_worker_share_acker(apr_thread_t *thread, void *data);

#endif
