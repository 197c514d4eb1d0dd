#ifndef ACME_DOMAIN_H
#define ACME_DOMAIN_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

#include "acme_crypto.h"
#include "acme_ident.h"
#include "acme_proxy.h"
#include "acme_result.h"

/*
 * The managed-domain set: what httpd.conf declares, in a form the parent, the
 * renewal worker and the admin command share. The parent writes it to the store
 * as JSON; the worker reads it from there.
 */

#define ACME_CA_LETSENCRYPT "https://acme-v02.api.letsencrypt.org/directory"
#define ACME_CA_LETSENCRYPT_STAGING "https://acme-staging-v02.api.letsencrypt.org/directory"

/* Settings a domain may override; NULL / -1 mean "not set here". */
typedef struct {
    apr_array_header_t *ca_urls;    /* const char *: first in use, the rest for failover */
    const char *ca_file;            /* trust for the CA's HTTPS server */
    int agreement;                  /* 1: the CA's terms of service are accepted */
    const char *contact;            /* e-mail address, without "mailto:" */
    apr_array_header_t *challenges; /* const char *: "http-01", ...; unset: automatic */
    apr_array_header_t *key_specs;  /* acme_keyspec_t: one certificate per spec */
    const char *renew_window;       /* "auto", "33%", "21d" */
    int members_auto;               /* 1: a managed vhost's aliases join the domain */
    apr_array_header_t *dns01_command; /* const char *: ACMEDns01Command program and arguments */
    apr_interval_time_t dns01_timeout; /* ACMEDns01Timeout; -1 unset */
    const char *dns01_propagation;  /* ACMEDns01Propagation text; NULL unset */
    const char *eab_kid;            /* ACMEExternalAccountBinding key id; "" none; NULL unset */
    const char *eab_file;           /* the root-only file holding its HMAC key (never the key) */
    const char *preferred_chain;    /* ACMEPreferredChain: topmost issuer's CN, or a part of it */
    const char *profile;            /* ACMEProfile name; NULL unset (automatic) */
    int profile_mandatory;          /* ACMEProfile ... mandatory: the CA must offer it */
    apr_array_header_t *proxies;    /* acme_proxy_rule_t: the ACMEProxy lines of the innermost
                                     * context with any (they replace the outer ones); NULL unset */
} acme_policy_t;

typedef struct {
    const char *name;               /* the first name: identifies the domain in the store */
    apr_array_header_t *idents;     /* acme_ident_t, the first name included */
    acme_policy_t policy;
    const char *defined_in;         /* config file and line, for messages */
    int defined_line;
    int from_vhost;                 /* ACMEDomain without names inside a <VirtualHost> */
    int ondemand;                   /* approved on demand (issue 19), not declared */
} acme_domain_t;

/* A policy with nothing set. */
void acme_policy_init(acme_policy_t *policy, apr_pool_t *p);

/* Fills what `dst` leaves unset from `src`. */
void acme_policy_inherit(acme_policy_t *dst, const acme_policy_t *src);

/* Fills what is still unset with mod_acme's defaults. */
void acme_policy_defaults(acme_policy_t *policy, apr_pool_t *p);

/* "letsencrypt", "letsencrypt-staging" or an https URL → the directory URL, or NULL + reason. */
const char *acme_domain_ca_url(apr_pool_t *p, const char *text, const char **reason);

/* A short, stable, file-name-safe id of a CA directory URL (host plus a hash). */
const char *acme_domain_ca_id(apr_pool_t *p, const char *ca_url);

acme_domain_t *acme_domain_make(apr_pool_t *p, const char *defined_in, int defined_line);

/*
 * Adds a name (validated by acme_names_parse). A name the domain already has is
 * accepted once and ignored afterwards.
 */
apr_status_t acme_domain_add_name(apr_pool_t *p, acme_domain_t *dom, const char *text,
                                  const char **reason);

/* 1 when the domain lists this identifier (type and value). */
int acme_domain_has_ident(const acme_domain_t *dom, const acme_ident_t *ident);

/* JSON for the store (the worker's input); no secrets are part of a domain. */
json_t *acme_domain_to_json(const acme_domain_t *dom);
apr_status_t acme_domain_from_json(apr_pool_t *p, json_t *json, acme_domain_t **dom,
                                   acme_result_t *res);

/* The whole set, as {"domains": [...]} */
json_t *acme_domain_set_to_json(const apr_array_header_t *domains);
apr_status_t acme_domain_set_from_json(apr_pool_t *p, json_t *json,
                                       apr_array_header_t **domains, acme_result_t *res);

#endif
