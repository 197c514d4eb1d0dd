#ifndef ACME_CONFIG_CLUSTER_H
#define ACME_CONFIG_CLUSTER_H

/*
 * The cluster's directives (issue 16): ACMECluster, ACMEClusterTLS, ACMEClusterKey and
 * ACMEClusterNode. The table entries are in acme_config.c's acme_config_cmds; the settings go
 * to the worker as acme_cluster_config_t (src/acme_cluster.h). Without ACMECluster nothing
 * changes.
 */
#include <httpd.h>
#include <http_config.h>

#include <jansson.h>

#include "acme_cluster.h"
#include "acme_store.h"

typedef struct {
    int on;                             /* ACMECluster was given */
    const char *file;                   /* where ACMECluster is, for the whole-config check */
    int line;
    acme_cluster_config_t cfg;
} acme_config_cluster_t;

/* This generation's cluster settings (created on first use, in pconf's userdata). */
acme_config_cluster_t *acme_config_cluster_get(apr_pool_t *pconf);

/* What the worker gets: NULL when clustering is off. */
const acme_cluster_config_t *acme_config_cluster_worker(apr_pool_t *pconf);

const char *acme_config_cluster_cmd_cluster(cmd_parms *cmd, void *dc, int argc,
                                            char *const argv[]);
const char *acme_config_cluster_cmd_tls(cmd_parms *cmd, void *dc, const char *cert,
                                        const char *key, const char *ca);
const char *acme_config_cluster_cmd_key(cmd_parms *cmd, void *dc, const char *path);
const char *acme_config_cluster_cmd_node(cmd_parms *cmd, void *dc, const char *name);

/*
 * The status JSON's "cluster" section into out (nothing without ACMECluster): the node's name
 * and what its worker last saw (jobs/cluster.json: live nodes, etcd's health, per domain the
 * lock holder and the serial in etcd). Read only, never trusted: jobs/ is the User's.
 */
void acme_config_cluster_status(apr_pool_t *pconf, apr_pool_t *p, const acme_store_t *st,
                                json_t *out);

/* The whole-configuration check (configtest): OK, or !OK with every problem logged. */
int acme_config_cluster_check(apr_pool_t *pconf, server_rec *s);

#endif
