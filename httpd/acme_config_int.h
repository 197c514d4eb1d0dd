#ifndef ACME_CONFIG_INT_H
#define ACME_CONFIG_INT_H

/* Shared by httpd/acme_config.c (directives) and httpd/acme_config_check.c (the whole-config
 * check); nothing else includes it. */

#include <httpd.h>

#include "acme_config.h"

/* The server's mod_acme settings (a virtual host's, or the main server's). */
acme_srv_conf_t *acme_config_srv(const server_rec *s);

/* Whether s has SSLEngine on (or optional), its own or the main server's (configuration tree). */
int acme_config_vhost_is_ssl(apr_pool_t *p, const server_rec *s);

#endif
