#ifndef ACME_CONFIG_ONDEMAND_H
#define ACME_CONFIG_ONDEMAND_H

/*
 * On-demand certificates (issue 19): ACMEOnDemand, ACMEOnDemandAsk and ACMEOnDemandWait per
 * SSL virtual host, ACMEOnDemandRate and ACMEOnDemandMax for the server. The table entries are
 * in acme_config.c's acme_config_cmds; the settings live apart from acme_conf_t, in pconf's
 * userdata, like the certificate API's.
 */
#include <httpd.h>
#include <http_config.h>

#include "acme_config.h"
#include "acme_worker.h"

#define ACME_ONDEMAND_WAIT_DEFAULT apr_time_from_sec(10)
#define ACME_ONDEMAND_WAIT_MAX apr_time_from_sec(60)
#define ACME_ONDEMAND_MAX_DEFAULT 1000
#define ACME_ONDEMAND_ASK_TIMEOUT apr_time_from_sec(5)

/* One virtual host's settings (the main server's hold the defaults). */
typedef struct {
    server_rec *s;
    int on;                             /* ACMEOnDemand: -1 unset */
    const char *file;                   /* where ACMEOnDemand on was read */
    int line;
    const char *ask;                    /* ACMEOnDemandAsk */
    apr_interval_time_t wait;           /* ACMEOnDemandWait, -1 unset */
} acme_config_ondemand_vhost_t;

typedef struct {
    apr_array_header_t *vhosts;         /* acme_config_ondemand_vhost_t *, reading order */
    acme_config_ondemand_vhost_t main;  /* outside any <VirtualHost> */
    acme_ondemand_rate_t rate;          /* count 0: unset */
    int max;                            /* -1 unset */
    /* After the check: */
    acme_worker_ondemand_t *worker;     /* NULL: no vhost has ACMEOnDemand on */
    apr_array_header_t *servers;        /* server_rec *, parallel to worker->sites */
} acme_config_ondemand_t;

acme_config_ondemand_t *acme_config_ondemand_get(apr_pool_t *pconf);

const char *acme_config_ondemand_cmd_on(cmd_parms *cmd, void *dc, int flag);
const char *acme_config_ondemand_cmd_ask(cmd_parms *cmd, void *dc, const char *arg);
const char *acme_config_ondemand_cmd_wait(cmd_parms *cmd, void *dc, const char *arg);
const char *acme_config_ondemand_cmd_rate(cmd_parms *cmd, void *dc, const char *arg);
const char *acme_config_ondemand_cmd_max(cmd_parms *cmd, void *dc, const char *arg);

/* The whole-configuration check (after acme_config_check): OK, or !OK with every problem logged
 * with its file and line. Builds od->worker. */
int acme_config_ondemand_check(apr_pool_t *pconf, server_rec *s);

/* The on-demand settings of virtual host s when it has ACMEOnDemand on, else NULL. */
const acme_config_ondemand_vhost_t *acme_config_ondemand_of(const acme_config_ondemand_t *od,
                                                            const server_rec *s);

/* The wait of an on-demand vhost (its own, the server's, or the default). */
apr_interval_time_t acme_config_ondemand_wait(const acme_config_ondemand_t *od,
                                              const acme_config_ondemand_vhost_t *v);

/* An approved name as a managed domain with its site's policy (NULL: not a valid name). */
acme_domain_t *acme_config_ondemand_domain(apr_pool_t *p, const acme_config_ondemand_t *od,
                                           const char *name);

/*
 * At post_config, as root: the names the ask endpoint approved (jobs/ondemand.json, accepted
 * only with the proof key's MAC) join conf->domains with their site's policy, so they are
 * served, renewed, shown and activated like declared domains. How many were added.
 */
int acme_config_ondemand_domains(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                 acme_conf_t *conf);

#endif
