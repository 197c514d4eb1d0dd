#ifndef ACME_MODSTATUS_H
#define ACME_MODSTATUS_H

/*
 * mod_acme's section of mod_status's server-status page (httpd glue): the counts of
 * acme_serve_summary as HTML, or as "Key: value" lines for server-status?auto.
 */
#include <httpd.h>
#include <mod_status.h>

/* mod_status's optional status_hook (mod_status.h); flags AP_STATUS_SHORT for ?auto. */
int acme_modstatus_hook(request_rec *r, int flags);

#endif
