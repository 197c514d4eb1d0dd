#include <apr_hash.h>
#include <httpd.h>
#include <http_protocol.h>

#include "acme_config.h"
#include "acme_modstatus.h"
#include "acme_serve.h"
#include "acme_status.h"

int acme_modstatus_hook(request_rec *r, int flags)
{
    acme_conf_t *conf = acme_config_get(r->server->process->pconf);
    acme_status_summary_t sum;

    acme_serve_summary(r->pool, conf, &sum);
    ap_rputs((flags & AP_STATUS_SHORT) ? acme_status_summary_auto(r->pool, &sum)
                                       : acme_status_summary_html(r->pool, &sum), r);
    return OK;
}
