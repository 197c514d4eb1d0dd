#ifndef ACME_CONFIG_INT_H
#define ACME_CONFIG_INT_H

/* Shared by httpd/acme_config.c (directives) and httpd/acme_config_check.c (the whole-config
 * check); nothing else includes it. */

#include <httpd.h>

#include "acme_config.h"

/* The server's mod_acme settings (a virtual host's, or the main server's). */
acme_srv_conf_t *acme_config_srv(const server_rec *s);

#endif
