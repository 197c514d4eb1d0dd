#ifndef ACME_SUPERVISE_HOT_H
#define ACME_SUPERVISE_HOT_H

/*
 * Hot activation in the parent (issue 19): the shared segment is made (or kept) at every
 * configuration pass with a slot per managed domain; after the parent installed a checked set
 * into domains/, it publishes the set there instead of restarting.
 */
#include <httpd.h>

#include "acme_config.h"

/* post_config, before mod_ssl's children exist: segment and slots for this generation. */
void acme_supervise_hot_prepare(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                acme_conf_t *conf);

/*
 * Publishes what domains/<name>/ holds for each name in `names` (space-separated) and updates
 * conf->active. APR_SUCCESS when every one was published; otherwise (no segment, no slot, a set
 * too large for its slot) the caller restarts gracefully to serve the rest.
 */
apr_status_t acme_supervise_hot_publish(apr_pool_t *p, server_rec *s, acme_conf_t *conf,
                                        const char *names, const char **why);

/*
 * While the renewal worker runs, staged sets would otherwise be looked at only at the MPM's
 * monitor tick, every 10 seconds: at 1,000 first issuances the first name waited that long
 * after landing. The ticker is a child of the parent that exits when `watch` (staging/)
 * changes, or after 30 s; its exit wakes the MPM's loop (SIGCHLD), which calls tick(baton)
 * through the other-child callback; a nonzero return starts the next tick. One ticker per
 * generation (pconf), started again only when none runs.
 */
typedef int (*acme_supervise_hot_tick_fn)(void *baton);

void acme_supervise_hot_ticker(apr_pool_t *pconf, acme_supervise_hot_tick_fn tick, void *baton,
                               const char *watch);

#endif
