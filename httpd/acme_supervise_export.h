#ifndef ACME_SUPERVISE_EXPORT_H
#define ACME_SUPERVISE_EXPORT_H

#include <httpd.h>

#include "acme_config.h"

/*
 * ACMEExport in the parent (root), at the start of every configuration generation: the first
 * start, and the graceful restart that follows each activation, so the export always holds
 * what mod_ssl serves now. Unchanged files are not rewritten; for every domain whose files
 * changed (written or removed) the `exported` event goes to ACMENotifyCommand, run as the User
 * in a process of its own so that a slow hook never holds up the server's start.
 */
void acme_supervise_export(apr_pool_t *pconf, server_rec *s, const acme_conf_t *conf);

#endif
