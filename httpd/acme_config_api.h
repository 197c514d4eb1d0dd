#ifndef ACME_CONFIG_API_H
#define ACME_CONFIG_API_H

/*
 * The certificate API's directives (issue 17): <ACMEApiClient name> blocks with ACMEApiAuth
 * (ip, hmac, user), ACMEApiAllow and ACMEApiRate, and the server-wide ACMEApiWait and
 * ACMEApiRate. The table entries are in acme_config.c's acme_config_cmds.
 */
#include <httpd.h>
#include <http_config.h>
#include <apr_network_io.h>

#include "acme_api.h"

#define ACME_API_WAIT_DEFAULT apr_time_from_sec(60)
#define ACME_API_WAIT_MAX apr_time_from_sec(600)

typedef struct {
    const char *name;
    const char *file;                   /* where the block was opened */
    int line;
    apr_array_header_t *ips;            /* apr_ipsubnet_t * */
    apr_array_header_t *users;          /* const char *: r->user after httpd's authentication */
    const unsigned char *hmac_key;      /* read as root while parsing; never logged */
    apr_size_t hmac_key_len;
    apr_array_header_t *patterns;       /* ACMEApiAllow, const char * */
    acme_api_rate_t rate;               /* n 0: the server's ACMEApiRate */
} acme_config_api_client_t;

typedef struct {
    apr_array_header_t *clients;        /* acme_config_api_client_t * */
    acme_config_api_client_t *section;  /* the block being read, else NULL */
    apr_interval_time_t wait;           /* ACMEApiWait, -1 unset */
    acme_api_rate_t rate;               /* ACMEApiRate outside blocks; n 0: none */
} acme_config_api_t;

/* This generation's API configuration (created on first use, in pconf's userdata). */
acme_config_api_t *acme_config_api_get(apr_pool_t *pconf);

const char *acme_config_api_cmd_client(cmd_parms *cmd, void *dc, const char *arg);
const char *acme_config_api_cmd_auth(cmd_parms *cmd, void *dc, int argc, char *const argv[]);
const char *acme_config_api_cmd_allow(cmd_parms *cmd, void *dc, int argc, char *const argv[]);
const char *acme_config_api_cmd_wait(cmd_parms *cmd, void *dc, const char *arg);
const char *acme_config_api_cmd_rate(cmd_parms *cmd, void *dc, const char *arg);

/* The whole-configuration check of the blocks (configtest): OK or !OK with every problem
 * logged with its file and line. */
int acme_config_api_check(apr_pool_t *pconf, server_rec *s);

/* Some client block may ask for host: the http-01 answer is ours to give. */
int acme_config_api_covers(const acme_config_api_t *api, const char *host);

#endif
