/* a2acme dns-persist: the _validation-persist TXT records to create for a domain. */
#include "a2acme_int.h"

/* ------------------------------------------------------------------ dns-persist */

/* A zone-file TXT line: strings of at most 255 octets (RFC 1035), quotes escaped. */
static void a2_persist_print(apr_pool_t *p, const char *fqdn, const char *value)
{
    apr_size_t n = strlen(value), off = 0;

    printf("%s. IN TXT", fqdn);
    while (off < n) {
        apr_size_t len = n - off > 255 ? 255 : n - off;
        printf(" \"%s\"", apr_pescape_echo(p, apr_pstrmemdup(p, value + off, len), 1));
        off += len;
    }
    printf("\n");
}

/* The issuer name to publish: --issuer (one the CA names), else the CA's first. */
static const char *a2_persist_issuer(a2_t *a, const acme_client_meta_t *meta)
{
    const apr_array_header_t *list = meta->issuer_domain_names;
    const char *want = a->args->issuer ? acme_persist_issuer_norm(a->p, a->args->issuer) : NULL;
    int i;

    for (i = 0; list && i < list->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(list, i, const char *);
        if (!a->args->issuer || (want && !strcmp(want, name))) {
            return name;
        }
    }
    return NULL;
}

/* The record of each DNS name (one per _validation-persist name; a wildcard's has the policy). */
static void a2_persist_records(a2_t *a, const acme_domain_t *dom, const char *issuer,
                               const char *prefix, const char *thumb, const char *acct_url)
{
    apr_hash_t *wild = apr_hash_make(a->p);
    apr_array_header_t *order = apr_array_make(a->p, 4, sizeof(const char *));
    int i;

    for (i = 0; i < dom->idents->nelts; ++i) {
        const acme_ident_t *id = &APR_ARRAY_IDX(dom->idents, i, acme_ident_t);
        const char *base = strncmp(id->value, "*.", 2) ? id->value : id->value + 2;
        if (id->type != ACME_IDENT_DNS) {
            continue;
        }
        if (!apr_hash_get(wild, base, APR_HASH_KEY_STRING)) {
            APR_ARRAY_PUSH(order, const char *) = base;
            apr_hash_set(wild, base, APR_HASH_KEY_STRING, "");
        }
        if (base != id->value) {
            apr_hash_set(wild, base, APR_HASH_KEY_STRING, "wildcard");
        }
    }
    for (i = 0; i < order->nelts; ++i) {
        const char *base = APR_ARRAY_IDX(order, i, const char *);
        const char *uri = acme_persist_account_uri(a->p, prefix, base, thumb, acct_url);
        int is_wild = *(const char *)apr_hash_get(wild, base, APR_HASH_KEY_STRING) != '\0';
        a2_persist_print(a->p, acme_persist_fqdn(a->p, base),
                         acme_persist_value(a->p, issuer, uri, is_wild, 0));
    }
}

/*
 * dns-persist NAME: the records for NAME's domain at its CA (issuerDomainNames and
 * accountHashPrefix from the CA's directory, the account URL and key from the store).
 */
int a2_cmd_dns_persist(a2_t *a)
{
    const acme_domain_t *dom = a2_domain_find(a, a->args->name);
    const char *ca = a->args->ca_url, *issuer, *thumb = NULL;
    const acme_client_meta_t *meta = NULL;
    a2_account_t *acct = NULL;
    acme_result_t res;

    if (!dom) {
        return a2_unknown_domain(a, a->args->name);
    }
    if (!ca && dom->policy.ca_urls && dom->policy.ca_urls->nelts > 0) {
        ca = APR_ARRAY_IDX(dom->policy.ca_urls, 0, const char *);
    }
    if (!ca) {
        a2_err(apr_psprintf(a->p, "%s: its CA is not recorded yet; pass --ca URL", dom->name));
        return A2_EXIT_USAGE;
    }
    acme_result_reset(&res);
    if (a2_account_open(a, ca, &acct, &res) != APR_SUCCESS
        || acme_client_meta(acct->client, &meta, &res) != APR_SUCCESS
        || acme_jose_thumbprint(a->p, acct->key, &thumb, &res) != APR_SUCCESS) {
        return a2_failed(a->p, &res);
    }
    if (!meta->account_hash_prefix || !*meta->account_hash_prefix
        || !meta->issuer_domain_names || meta->issuer_domain_names->nelts == 0) {
        a2_err(apr_psprintf(a->p, "%s does not advertise dns-persist-01 (no accountHashPrefix "
                            "or issuerDomainNames in its directory's meta)", ca));
        return A2_EXIT_FAILED;
    }
    if (!(issuer = a2_persist_issuer(a, meta))) {
        a2_err(apr_psprintf(a->p, "--issuer %s is not one of the CA's issuer domain names (%s)",
                            a->args->issuer, apr_array_pstrcat(a->p, meta->issuer_domain_names,
                                                               ',')));
        return A2_EXIT_USAGE;
    }
    printf("; dns-persist-01 (draft-ietf-acme-dns-persist-02) for %s at %s, account %s\n",
           dom->name, ca, acct->url);
    a2_persist_records(a, dom, issuer, meta->account_hash_prefix, thumb, acct->url);
    return A2_EXIT_OK;
}
