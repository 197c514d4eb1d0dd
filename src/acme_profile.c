#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "acme_domain.h"
#include "acme_order.h"
#include "acme_profile.h"
#include "acme_seal.h"

#define ACME_PROFILE_CACHE_CONTEXT "mod_acme directory cache v1"

static const acme_client_profile_t *acme_profile_find(const acme_client_meta_t *meta,
                                                      const char *name)
{
    for (int i = 0; meta->profiles && i < meta->profiles->nelts; ++i) {
        const acme_client_profile_t *prof = &APR_ARRAY_IDX(meta->profiles, i,
                                                           acme_client_profile_t);
        if (!strcmp(prof->name, name)) {
            return prof;
        }
    }
    return NULL;
}

const char *acme_profile_offered_text(apr_pool_t *p, const acme_client_meta_t *meta)
{
    const char *text = NULL;

    for (int i = 0; meta->profiles && i < meta->profiles->nelts; ++i) {
        text = apr_pstrcat(p, text ? text : "", text ? ", " : "",
                           APR_ARRAY_IDX(meta->profiles, i, acme_client_profile_t).name, NULL);
    }
    return text ? text : "none";
}

/* 1 when the comma-separated list has the type's name as one of its items. */
static int acme_profile_type_listed(const char *list, acme_ident_type_t type)
{
    const char *name = acme_order_ident_type_name(type);
    apr_size_t len = strlen(name);

    for (const char *s = list; s && *s; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL) {
        if (!strncmp(s, name, len) && (s[len] == ',' || s[len] == '\0')) {
            return 1;
        }
    }
    return 0;
}

/* The limits the CA published for the profile, against the domain's identifiers. */
static apr_status_t acme_profile_limits(apr_pool_t *p, const acme_profile_request_t *req,
                                        const acme_client_profile_t *prof, acme_result_t *res)
{
    if (prof->max_names > 0 && req->n_idents > prof->max_names) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p,
            "the profile \"%s\" of the CA %s allows at most %d names per certificate and this "
            "domain has %d: split it into several ACMEDomain, or choose another profile with "
            "ACMEProfile", prof->name, req->ca_url, prof->max_names, req->n_idents));
    }
    for (int i = 0; prof->identifier_types && i < req->n_idents; ++i) {
        if (!acme_profile_type_listed(prof->identifier_types, req->idents[i].type)) {
            return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p,
                "the profile \"%s\" of the CA %s issues for identifiers of type %s only, not "
                "for %s (%s): choose another profile with ACMEProfile", prof->name, req->ca_url,
                prof->identifier_types, req->idents[i].value,
                acme_order_ident_type_name(req->idents[i].type)));
        }
    }
    return APR_SUCCESS;
}

static int acme_profile_has_ip(const acme_profile_request_t *req)
{
    for (int i = 0; i < req->n_idents; ++i) {
        if (req->idents[i].type == ACME_IDENT_IP) {
            return 1;
        }
    }
    return 0;
}

/* Without ACMEProfile: shortlived for IP identifiers when offered, else the CA's default. */
static apr_status_t acme_profile_auto(apr_pool_t *p, const acme_profile_request_t *req,
                                      const acme_client_meta_t *meta, const char **chosen,
                                      const char **note, acme_result_t *res)
{
    const acme_client_profile_t *prof = acme_profile_find(meta, ACME_PROFILE_AUTO_IP);

    if (!acme_profile_has_ip(req) || !prof) {
        return APR_SUCCESS;
    }
    *chosen = prof->name;
    *note = apr_psprintf(p, "the profile \"%s\" is requested from %s because the domain has an "
                         "IP address (Let's Encrypt issues IP certificates only in it); "
                         "ACMEProfile chooses another", prof->name, req->ca_url);
    return acme_profile_limits(p, req, prof, res);
}

apr_status_t acme_profile_choose(apr_pool_t *p, const acme_profile_request_t *req,
                                 const acme_client_meta_t *meta, const char **chosen,
                                 const char **note, acme_result_t *res)
{
    const acme_client_profile_t *prof;
    const char *ignored;
    int offers = meta->profiles && meta->profiles->nelts > 0;

    *chosen = NULL;
    note = note ? note : &ignored;
    *note = NULL;
    if (!req->wanted) {
        return acme_profile_auto(p, req, meta, chosen, note, res);
    }
    if ((prof = acme_profile_find(meta, req->wanted)) != NULL) {
        *chosen = prof->name;
        return acme_profile_limits(p, req, prof, res);
    }
    if (offers) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p,
            "ACMEProfile %s: the CA %s does not know this profile; it offers: %s",
            req->wanted, req->ca_url, acme_profile_offered_text(p, meta)));
    }
    if (req->mandatory) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN, apr_psprintf(p,
            "ACMEProfile %s mandatory: the CA %s offers no profiles (its directory has no "
            "meta.profiles); use a CA that offers it, or drop 'mandatory' to take the CA's "
            "default", req->wanted, req->ca_url));
    }
    *note = apr_psprintf(p, "ACMEProfile %s: the CA %s offers no profiles; ordering without "
                         "one (the CA's default)", req->wanted, req->ca_url);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ cached directory */

const char *acme_profile_cache_file(apr_pool_t *p, const char *ca_url)
{
    return apr_pstrcat(p, "directory.", acme_domain_ca_id(p, ca_url), ".json", NULL);
}

/* The parts of the directory configtest needs, as the directory's own JSON form. */
static char *acme_profile_dir_text(const acme_client_meta_t *meta)
{
    json_t *profiles = json_object(), *dir;
    char *text;

    for (int i = 0; meta->profiles && i < meta->profiles->nelts; ++i) {
        const acme_client_profile_t *prof = &APR_ARRAY_IDX(meta->profiles, i,
                                                           acme_client_profile_t);
        json_t *obj = json_pack("{s:s?}", "description", prof->description);
        if (prof->max_names > 0) {
            json_object_set_new(obj, "maxNames", json_integer(prof->max_names));
        }
        if (prof->identifier_types) {
            json_t *types = json_array();
            char *list = strdup(prof->identifier_types), *last = NULL;
            for (char *t = list ? strtok_r(list, ",", &last) : NULL; t;
                 t = strtok_r(NULL, ",", &last)) {
                json_array_append_new(types, json_string(t));
            }
            free(list);
            json_object_set_new(obj, "identifierTypes", types);
        }
        json_object_set_new(profiles, prof->name, obj);
    }
    dir = json_pack("{s:s?, s:{s:o}}", "renewalInfo", meta->renewal_info, "meta", "profiles",
                    profiles);
    text = dir ? json_dumps(dir, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(dir);
    return text;
}

static const char *acme_profile_cache_proof(apr_pool_t *p, const unsigned char *key,
                                            const char *ca_url, const char *dir_text,
                                            const char *fetched)
{
    acme_seal_part_t parts[] = {
        { ca_url, strlen(ca_url) }, { dir_text, strlen(dir_text) }, { fetched, strlen(fetched) },
    };

    return acme_seal_proof(p, key, ACME_PROFILE_CACHE_CONTEXT, parts, 3);
}

json_t *acme_profile_cache_make(apr_pool_t *p, const unsigned char *proof_key, const char *ca_url,
                                const acme_client_meta_t *meta, apr_time_t fetched)
{
    char *text = acme_profile_dir_text(meta);
    const char *when = apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)apr_time_sec(fetched));
    const char *proof = text && proof_key ? acme_profile_cache_proof(p, proof_key, ca_url, text,
                                                                     when) : NULL;
    json_t *json = proof ? json_pack("{s:s, s:s, s:s, s:s}", "ca_url", ca_url, "directory", text,
                                     "fetched", when, "proof", proof) : NULL;

    free(text);
    return json;
}

apr_status_t acme_profile_cache_read(apr_pool_t *p, const unsigned char *proof_key,
                                     const char *ca_url, json_t *json, acme_client_meta_t *meta,
                                     apr_time_t *fetched, acme_result_t *res)
{
    const char *url = json_string_value(json_object_get(json, "ca_url"));
    const char *text = json_string_value(json_object_get(json, "directory"));
    const char *when = json_string_value(json_object_get(json, "fetched"));
    const char *proof = json_string_value(json_object_get(json, "proof"));

    if (!url || !text || !when || !proof || strcmp(url, ca_url) || !proof_key
        || !acme_seal_proof_equal(proof, acme_profile_cache_proof(p, proof_key, ca_url, text,
                                                                  when))) {
        return acme_result_fail(res, APR_EINVAL, ACME_CLASS_ADMIN,
                                apr_psprintf(p, "the cached directory of %s is not the renewal "
                                             "worker's", ca_url));
    }
    *fetched = apr_time_from_sec(apr_atoi64(when));
    return acme_client_meta_parse(p, text, strlen(text), meta, res);
}
