#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <openssl/crypto.h>

#include "acme_config_cluster.h"
#include "acme_store.h"
#include "acme_vault.h"

APLOG_USE_MODULE(acme);

#define ACME_CONFIG_CLUSTER_KEY "mod_acme-cluster-conf"

static apr_status_t acme_config_cluster_wipe(void *data)
{
    acme_config_cluster_t *cl = data;

    if (cl->cfg.secret) {
        OPENSSL_cleanse((void *)cl->cfg.secret, cl->cfg.secret_len);
    }
    if (cl->cfg.client_key_pem) {
        OPENSSL_cleanse((void *)cl->cfg.client_key_pem, cl->cfg.client_key_pem_len);
    }
    return APR_SUCCESS;
}

acme_config_cluster_t *acme_config_cluster_get(apr_pool_t *pconf)
{
    acme_config_cluster_t *cl = NULL;

    apr_pool_userdata_get((void **)&cl, ACME_CONFIG_CLUSTER_KEY, pconf);
    if (!cl) {
        cl = apr_pcalloc(pconf, sizeof(*cl));
        apr_pool_userdata_set(cl, ACME_CONFIG_CLUSTER_KEY, apr_pool_cleanup_null, pconf);
        apr_pool_cleanup_register(pconf, cl, acme_config_cluster_wipe, apr_pool_cleanup_null);
    }
    return cl;
}

const acme_cluster_config_t *acme_config_cluster_worker(apr_pool_t *pconf)
{
    acme_config_cluster_t *cl = acme_config_cluster_get(pconf);

    return cl->on && cl->cfg.secret ? &cl->cfg : NULL;
}

const char *acme_config_cluster_cmd_cluster(cmd_parms *cmd, void *dc, int argc,
                                            char *const argv[])
{
    acme_config_cluster_t *cl = acme_config_cluster_get(cmd->pool);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    int i;

    (void)dc;
    if (err) {
        return err;
    }
    if (cl->on) {
        return "ACMECluster is given twice; keep one line listing every etcd endpoint";
    }
    if (argc < 2 || strcmp(argv[0], "etcd") != 0) {
        return "ACMECluster etcd endpoint[,endpoint...] [prefix=/mod_acme]: etcd is the only "
               "cluster engine, e.g. ACMECluster etcd https://10.0.0.1:2379,https://10.0.0.2:2379";
    }
    if ((err = acme_cluster_endpoints_parse(cmd->pool, argv[1], &cl->cfg.endpoints))) {
        return apr_pstrcat(cmd->pool, "ACMECluster: ", err, NULL);
    }
    cl->cfg.prefix = ACME_CLUSTER_PREFIX_DEFAULT;
    for (i = 2; i < argc; ++i) {
        if (strncmp(argv[i], "prefix=", 7) != 0) {
            return apr_psprintf(cmd->pool, "ACMECluster: unknown option '%s' (only "
                                "prefix=/path is known)", argv[i]);
        }
        if ((err = acme_cluster_prefix_check(cmd->pool, argv[i] + 7))) {
            return apr_pstrcat(cmd->pool, "ACMECluster: ", err, NULL);
        }
        cl->cfg.prefix = apr_pstrdup(cmd->pool, argv[i] + 7);
    }
    cl->on = 1;
    cl->file = cmd->directive->filename;
    cl->line = cmd->directive->line_num;
    return NULL;
}

static const char *acme_config_cluster_file(cmd_parms *cmd, const char *what, const char *path,
                                            const char **out)
{
    const char *full = ap_server_root_relative(cmd->pool, path);
    apr_finfo_t fi;

    if (!full || apr_stat(&fi, full, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS
        || fi.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "ACMEClusterTLS: the %s %s is not a readable file; "
                            "give the PEM file etcd's setup made for this node", what, path);
    }
    *out = full;
    return NULL;
}

/* The client key's content, read now as root: the worker reaches etcd as the User. */
static const char *acme_config_cluster_key_pem(cmd_parms *cmd, acme_config_cluster_t *cl)
{
    apr_file_t *f = NULL;
    apr_finfo_t fi;
    apr_size_t n;
    char *buf;

    if (apr_file_open(&f, cl->cfg.client_key, APR_FOPEN_READ, 0, cmd->temp_pool) != APR_SUCCESS
        || apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS || fi.size <= 0
        || fi.size > 65536) {
        if (f) {
            apr_file_close(f);
        }
        return apr_psprintf(cmd->pool, "ACMEClusterTLS: the client key %s cannot be read or is "
                            "not a PEM key of at most 64 KiB", cl->cfg.client_key);
    }
    n = (apr_size_t)fi.size;
    buf = apr_palloc(cmd->pool, n + 1);
    if (apr_file_read_full(f, buf, n, &n) != APR_SUCCESS) {
        n = 0;
    }
    apr_file_close(f);
    buf[n] = '\0';
    cl->cfg.client_key_pem = buf;
    cl->cfg.client_key_pem_len = n;
    return n ? NULL : "ACMEClusterTLS: the client key cannot be read";
}

const char *acme_config_cluster_cmd_tls(cmd_parms *cmd, void *dc, const char *cert,
                                        const char *key, const char *ca)
{
    acme_config_cluster_t *cl = acme_config_cluster_get(cmd->pool);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (!err && !(err = acme_config_cluster_file(cmd, "client certificate", cert,
                                                 &cl->cfg.client_cert))
        && !(err = acme_config_cluster_file(cmd, "client key", key, &cl->cfg.client_key))
        && !(err = acme_config_cluster_file(cmd, "CA file", ca, &cl->cfg.ca_file))) {
        err = acme_config_cluster_key_pem(cmd, cl);
    }
    return err;
}

/* Read as root while parsing: the worker inherits the bytes, the User never sees the file. */
const char *acme_config_cluster_cmd_key(cmd_parms *cmd, void *dc, const char *path)
{
    acme_config_cluster_t *cl = acme_config_cluster_get(cmd->pool);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *full = ap_server_root_relative(cmd->pool, path);
    char buf[ACME_VAULT_MAX_SECRET + 1];
    struct stat sb;
    ssize_t n;
    int fd;

    (void)dc;
    if (err || !full) {
        return err ? err : "ACMEClusterKey: the path is not valid";
    }
    if ((fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
        return apr_psprintf(cmd->pool, "ACMEClusterKey: %s cannot be opened (%s); create it "
                            "once with: openssl rand -base64 32 > %s; chmod 600 %s, and copy "
                            "the same file to every node", full, strerror(errno), full, full);
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return apr_psprintf(cmd->pool, "ACMEClusterKey: %s is not a regular file", full);
    }
    if ((sb.st_mode & 077) || (geteuid() == 0 && sb.st_uid != 0)) {
        close(fd);
        return apr_psprintf(cmd->pool, "ACMEClusterKey: %s can be read by others than its "
                            "owner (mode %04o, owner uid %ld); it unlocks every private key in "
                            "etcd: chown root:root %s; chmod 600 %s", full,
                            (unsigned)(sb.st_mode & 07777), (long)sb.st_uid, full, full);
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0 || n > ACME_VAULT_MAX_SECRET || acme_cluster_secret_len(buf, (apr_size_t)n) == 0) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return apr_psprintf(cmd->pool, "ACMEClusterKey: %s must hold 32 bytes to 4 KiB (it has "
                            "%ld); make it with: openssl rand -base64 32 > %s", full, (long)n,
                            full);
    }
    cl->cfg.secret_len = acme_cluster_secret_len(buf, (apr_size_t)n);
    cl->cfg.secret = apr_pmemdup(cmd->pool, buf, cl->cfg.secret_len);
    OPENSSL_cleanse(buf, sizeof(buf));
    return NULL;
}

const char *acme_config_cluster_cmd_node(cmd_parms *cmd, void *dc, const char *name)
{
    acme_config_cluster_t *cl = acme_config_cluster_get(cmd->pool);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (!err && (err = acme_cluster_node_check(cmd->pool, name))) {
        return apr_pstrcat(cmd->pool, "ACMEClusterNode: ", err, NULL);
    }
    cl->cfg.node = err ? NULL : apr_pstrdup(cmd->pool, name);
    return err;
}

static void acme_config_cluster_problem(server_rec *s, const acme_config_cluster_t *cl,
                                        const char *what, int *errors)
{
    ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, s,
                 "mod_acme: ACME12000: %s (ACMECluster, line %d of %s)", what, cl->line,
                 cl->file ? cl->file : "?");
    ++*errors;
}

int acme_config_cluster_check(apr_pool_t *pconf, server_rec *s)
{
    acme_config_cluster_t *cl = acme_config_cluster_get(pconf);
    char host[APRMAXHOSTLEN + 1];
    int errors = 0;

    if (!cl->on) {
        if (cl->cfg.secret || cl->cfg.client_cert || cl->cfg.node) {
            ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, s, "mod_acme: ACME12001: "
                         "ACMEClusterKey, ACMEClusterTLS or ACMEClusterNode is given without "
                         "ACMECluster; add 'ACMECluster etcd endpoint...' or remove them");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        return OK;
    }
    if (!cl->cfg.secret) {
        acme_config_cluster_problem(s, cl, "a cluster needs ACMEClusterKey: private keys enter "
                                    "etcd only sealed with it; add 'ACMEClusterKey /path' (the "
                                    "same root-only file on every node)", &errors);
    }
    if (!cl->cfg.client_cert) {
        int i;
        for (i = 0; i < cl->cfg.endpoints->nelts; ++i) {
            if (!strncmp(APR_ARRAY_IDX(cl->cfg.endpoints, i, const char *), "https:", 6)) {
                ap_log_error(APLOG_MARK, APLOG_WARNING | APLOG_STARTUP, 0, s, "mod_acme: "
                             "ACME12002: ACMECluster uses https without ACMEClusterTLS: etcd "
                             "is reached without a client certificate (line %d of %s)",
                             cl->line, cl->file ? cl->file : "?");
                break;
            }
        }
    }
    if (!cl->cfg.node) {
        cl->cfg.node = apr_gethostname(host, sizeof(host), pconf) == APR_SUCCESS
                       && !acme_cluster_node_check(pconf, host) ? apr_pstrdup(pconf, host)
                                                                 : "node";
    }
    return errors ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

void acme_config_cluster_status(apr_pool_t *pconf, apr_pool_t *p, const acme_store_t *st,
                                json_t *out)
{
    const acme_cluster_config_t *cfg = acme_config_cluster_worker(pconf);
    const char *path;
    json_t *json = NULL;
    acme_result_t res;

    if (!cfg || !st) {
        return;
    }
    path = acme_store_path(p, st, ACME_STORE_JOBS, "cluster.json", NULL);
    acme_result_reset(&res);
    if (!path || acme_store_read_json(p, path, &json, &res) != APR_SUCCESS
        || !json_is_object(json)) {
        json = json_pack("{s:s, s:{s:n}}", "node", cfg->node, "etcd", "healthy");
    }
    else {
        json = json_deep_copy(json);
        json_object_set_new(json, "node", json_string(cfg->node));
    }
    json_object_set_new(out, "cluster", json);
}
