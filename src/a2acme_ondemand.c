/*
 * a2acme forget NAME: removes an on-demand domain (issue 19) from the registry the worker keeps
 * (jobs/ondemand.json), so the server neither serves nor renews it after its next restart and
 * asks the endpoint again should a client name it. The registry is rewritten with the proof
 * key's MAC and handed back to the owner of jobs/ (the worker must read it).
 */
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>

#include <apr_strings.h>

#include "a2acme_int.h"
#include "acme_ondemand.h"
#include "acme_perms.h"
#include "acme_seal.h"

static apr_status_t a2_ondemand_load(a2_t *a, const unsigned char **key,
                                     acme_ondemand_registry_t **reg, acme_result_t *res)
{
    const char *path = acme_store_path(a->p, a->store, ACME_STORE_JOBS, ACME_ONDEMAND_FILE,
                                       NULL);
    json_t *doc = NULL;
    apr_status_t rv = acme_seal_proof_key_load(a->p, a->args->store_dir, key, res);

    if (rv == APR_SUCCESS) {
        rv = acme_store_read_json(a->p, path, &doc, res);
    }
    if (APR_STATUS_IS_ENOENT(rv)) {
        *reg = acme_ondemand_registry_make(a->p);
        return APR_SUCCESS;
    }
    return rv == APR_SUCCESS ? acme_ondemand_registry_read(a->p, doc, *key, reg, res) : rv;
}

static apr_status_t a2_ondemand_save(a2_t *a, const unsigned char *key,
                                     const acme_ondemand_registry_t *reg, acme_result_t *res)
{
    const char *dir = acme_store_path(a->p, a->store, ACME_STORE_JOBS, NULL, NULL);
    const char *path = acme_store_path(a->p, a->store, ACME_STORE_JOBS, ACME_ONDEMAND_FILE,
                                       NULL);
    struct stat sb;
    apr_status_t rv = acme_store_write_json(a->p, path,
                                            acme_ondemand_registry_json(reg, a->p, key,
                                                                        apr_time_now()),
                                            ACME_PERMS_0600, res);

    if (rv == APR_SUCCESS && lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)
        && lchown(path, sb.st_uid, sb.st_gid) != 0) {
        return acme_result_fail(res, APR_FROM_OS_ERROR(errno), ACME_CLASS_ADMIN,
                                apr_psprintf(a->p, "%s cannot be handed to the owner of %s",
                                             path, dir));
    }
    return rv;
}

int a2_cmd_forget(a2_t *a)
{
    const unsigned char *key = NULL;
    acme_ondemand_registry_t *reg = NULL;
    acme_result_t res;

    acme_result_reset(&res);
    if (a2_ondemand_load(a, &key, &reg, &res) != APR_SUCCESS) {
        return a2_failed(a->p, &res);
    }
    if (!acme_ondemand_forget(reg, a->args->name)) {
        fprintf(stderr, "a2acme: %s is not an on-demand domain of this store (a2acme list shows "
                "them); declared domains are removed from httpd.conf instead\n", a->args->name);
        return A2_EXIT_FAILED;
    }
    if (a2_ondemand_save(a, key, reg, &res) != APR_SUCCESS) {
        return a2_failed(a->p, &res);
    }
    printf("%s: forgotten; the server stops serving and renewing it at its next restart "
           "(apachectl graceful), and asks the endpoint again if a client names it\n",
           a->args->name);
    return A2_EXIT_OK;
}
