#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <openssl/crypto.h>

#include "acme_config.h"
#include "acme_config_api.h"
#include "acme_plan.h"

APLOG_USE_MODULE(acme);

#define ACME_CONFIG_API_KEY "mod_acme-api-conf"
#define ACME_CONFIG_API_KEY_FILE_MAX 4096

static apr_status_t acme_config_api_wipe(void *data)
{
    acme_config_api_client_t *c = data;

    if (c->hmac_key) {
        OPENSSL_cleanse((void *)c->hmac_key, c->hmac_key_len);
    }
    return APR_SUCCESS;
}

acme_config_api_t *acme_config_api_get(apr_pool_t *pconf)
{
    acme_config_api_t *api = NULL;

    apr_pool_userdata_get((void **)&api, ACME_CONFIG_API_KEY, pconf);
    if (!api) {
        api = apr_pcalloc(pconf, sizeof(*api));
        api->clients = apr_array_make(pconf, 4, sizeof(acme_config_api_client_t *));
        api->wait = -1;
        apr_pool_userdata_set(api, ACME_CONFIG_API_KEY, apr_pool_cleanup_null, pconf);
    }
    return api;
}

const char *acme_config_api_cmd_client(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_config_api_t *api = acme_config_api_get(cmd->pool);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *endp = ap_strrchr_c(arg, '>');
    acme_config_api_client_t *c;
    const char *args, *name;
    int i;

    (void)dc;
    if (err) {
        return err;
    }
    if (api->section) {
        return "<ACMEApiClient> sections cannot be nested";
    }
    if (!endp) {
        return "<ACMEApiClient> is missing its closing '>'";
    }
    args = apr_pstrndup(cmd->temp_pool, arg, (apr_size_t)(endp - arg));
    name = ap_getword_conf(cmd->pool, &args);
    if (!*name || *ap_getword_conf(cmd->temp_pool, &args)) {
        return "<ACMEApiClient> needs one name, e.g. <ACMEApiClient mail>";
    }
    if ((err = acme_api_client_name_check(cmd->pool, name))) {
        return apr_pstrcat(cmd->pool, "<ACMEApiClient>: ", err, NULL);
    }
    for (i = 0; i < api->clients->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(api->clients, i, acme_config_api_client_t *)->name, name)) {
            return apr_psprintf(cmd->pool, "<ACMEApiClient %s> is declared twice; give each "
                                "client block its own name", name);
        }
    }
    c = apr_pcalloc(cmd->pool, sizeof(*c));
    *c = (acme_config_api_client_t){
        .name = name, .file = cmd->directive->filename, .line = cmd->directive->line_num,
        .ips = apr_array_make(cmd->pool, 2, sizeof(apr_ipsubnet_t *)),
        .users = apr_array_make(cmd->pool, 2, sizeof(const char *)),
        .patterns = apr_array_make(cmd->pool, 4, sizeof(const char *)),
    };
    apr_pool_cleanup_register(cmd->pool, c, acme_config_api_wipe, apr_pool_cleanup_null);
    APR_ARRAY_PUSH(api->clients, acme_config_api_client_t *) = c;
    api->section = c;
    err = ap_walk_config(cmd->directive->first_child, cmd, cmd->context);
    api->section = NULL;
    return err;
}

static const char *acme_config_api_in_block(cmd_parms *cmd, acme_config_api_client_t **c)
{
    *c = acme_config_api_get(cmd->pool)->section;
    return *c ? NULL : apr_pstrcat(cmd->pool, cmd->cmd->name, " belongs inside an "
                                   "<ACMEApiClient name> ... </ACMEApiClient> block", NULL);
}

static const char *acme_config_api_ips(cmd_parms *cmd, acme_config_api_client_t *c, int argc,
                                       char *const argv[])
{
    int i;

    if (argc < 2) {
        return "ACMEApiAuth ip needs at least one address or network, e.g. "
               "ACMEApiAuth ip 192.0.2.10 2001:db8::/64";
    }
    for (i = 1; i < argc; ++i) {
        char *addr = apr_pstrdup(cmd->temp_pool, argv[i]), *mask = strchr(addr, '/');
        apr_ipsubnet_t *sub = NULL;
        if (mask) {
            *mask++ = '\0';
        }
        if (apr_ipsubnet_create(&sub, addr, mask, cmd->pool) != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, "ACMEApiAuth ip: '%s' is not an IP address or "
                                "network (write 192.0.2.10, 192.0.2.0/24 or 2001:db8::/64)",
                                argv[i]);
        }
        APR_ARRAY_PUSH(c->ips, apr_ipsubnet_t *) = sub;
    }
    return NULL;
}

/* The key file: a regular root-owned file nobody else can read, with a long enough key. */
static const char *acme_config_api_key_read(cmd_parms *cmd, acme_config_api_client_t *c,
                                            const char *path)
{
    char buf[ACME_CONFIG_API_KEY_FILE_MAX + 1];
    const char *reason = NULL, *key;
    struct stat sb;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0) {
        return apr_psprintf(cmd->pool, "ACMEApiAuth hmac: %s cannot be opened (%s); create it "
                            "with: openssl rand -hex 32 > %s; chmod 600 %s", path,
                            strerror(errno), path, path);
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return apr_psprintf(cmd->pool, "ACMEApiAuth hmac: %s is not a regular file", path);
    }
    if ((sb.st_mode & 077) || (geteuid() == 0 && sb.st_uid != 0)) {
        close(fd);
        return apr_psprintf(cmd->pool, "ACMEApiAuth hmac: %s can be read by others than root "
                            "(mode %04o, owner uid %ld); the key must stay secret: "
                            "chown root:root %s; chmod 600 %s", path,
                            (unsigned)(sb.st_mode & 07777), (long)sb.st_uid, path, path);
    }
    n = read(fd, buf, ACME_CONFIG_API_KEY_FILE_MAX + 1);
    close(fd);
    if (n < 0 || n > ACME_CONFIG_API_KEY_FILE_MAX) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return apr_psprintf(cmd->pool, "ACMEApiAuth hmac: %s cannot be read or is larger than "
                            "4 KiB", path);
    }
    key = acme_api_hmac_key(cmd->pool, buf, (apr_size_t)n, &c->hmac_key_len, &reason);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (!key) {
        return apr_psprintf(cmd->pool, "ACMEApiAuth hmac: %s: %s", path, reason);
    }
    c->hmac_key = (const unsigned char *)key;
    return NULL;
}

const char *acme_config_api_cmd_auth(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_config_api_client_t *c = NULL;
    const char *err = acme_config_api_in_block(cmd, &c);
    const char *path;
    int i;

    (void)dc;
    if (err) {
        return err;
    }
    if (argc >= 1 && !strcasecmp(argv[0], "ip")) {
        return acme_config_api_ips(cmd, c, argc, argv);
    }
    if (argc == 2 && !strcasecmp(argv[0], "hmac")) {
        if (c->hmac_key) {
            return "ACMEApiAuth hmac is given twice in this block; one key per client";
        }
        path = ap_server_root_relative(cmd->pool, argv[1]);
        return path ? acme_config_api_key_read(cmd, c, path)
                    : "ACMEApiAuth hmac: the file name is not valid";
    }
    if (argc >= 2 && !strcasecmp(argv[0], "user")) {
        for (i = 1; i < argc; ++i) {
            APR_ARRAY_PUSH(c->users, const char *) = apr_pstrdup(cmd->pool, argv[i]);
        }
        return NULL;
    }
    return "ACMEApiAuth takes 'ip ADDRESS|NETWORK...', 'hmac KEY-FILE' or 'user NAME...', "
           "e.g. ACMEApiAuth ip 192.0.2.10";
}

const char *acme_config_api_cmd_allow(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_config_api_client_t *c = NULL;
    const char *err = acme_config_api_in_block(cmd, &c);
    int i;

    (void)dc;
    if (err) {
        return err;
    }
    if (argc == 0) {
        return "ACMEApiAllow needs at least one name pattern, e.g. ACMEApiAllow "
               "mail.example.org *.example.org (one label) **.example.org (any depth)";
    }
    for (i = 0; i < argc; ++i) {
        if ((err = acme_api_pattern_check(cmd->pool, argv[i]))) {
            return apr_pstrcat(cmd->pool, "ACMEApiAllow: ", err, NULL);
        }
        APR_ARRAY_PUSH(c->patterns, const char *) = apr_pstrdup(cmd->pool, argv[i]);
    }
    return NULL;
}

const char *acme_config_api_cmd_wait(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_config_api_t *api = acme_config_api_get(cmd->pool);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY), *reason = NULL;
    apr_interval_time_t t = 0;

    (void)dc;
    if (err) {
        return err;
    }
    if (api->section) {
        return "ACMEApiWait applies to the whole server: put it outside <ACMEApiClient>";
    }
    if (!strcmp(arg, "0")) {
        api->wait = 0;
        return NULL;
    }
    if (acme_plan_duration_parse(arg, &t, &reason, cmd->pool) != APR_SUCCESS
        || t > ACME_API_WAIT_MAX) {
        return apr_psprintf(cmd->pool, "ACMEApiWait: '%s' is not a wait of 0 to 10 minutes "
                            "(e.g. 60s, 2m; 0 answers 202 at once)", arg);
    }
    api->wait = t;
    return NULL;
}

const char *acme_config_api_cmd_rate(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_config_api_t *api = acme_config_api_get(cmd->pool);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY), *reason = NULL;
    acme_api_rate_t rate;

    (void)dc;
    if (err) {
        return err;
    }
    if (acme_api_rate_parse(arg, &rate, &reason, cmd->pool) != APR_SUCCESS) {
        return apr_pstrcat(cmd->pool, "ACMEApiRate: ", reason, NULL);
    }
    if (api->section) {
        api->section->rate = rate;
    }
    else {
        api->rate = rate;
    }
    return NULL;
}

static void acme_config_api_problem(server_rec *s, const acme_config_api_client_t *c,
                                    const char *what, int *errors)
{
    ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, s,
                 "mod_acme: ACME11000: %s (<ACMEApiClient %s>, line %d of %s)", what, c->name,
                 c->line, c->file ? c->file : "?");
    ++*errors;
}

int acme_config_api_check(apr_pool_t *pconf, server_rec *s)
{
    acme_config_api_t *api = acme_config_api_get(pconf);
    int i, errors = 0;

    if (api->wait < 0) {
        api->wait = ACME_API_WAIT_DEFAULT;
    }
    if (api->clients->nelts > 0 && acme_config_get(pconf)->domains->nelts == 0) {
        acme_config_api_problem(s, APR_ARRAY_IDX(api->clients, 0, acme_config_api_client_t *),
                                "the certificate API orders with the CA, account and challenge "
                                "settings of the managed domains, and there is none: add an "
                                "ACMEDomain", &errors);
    }
    for (i = 0; i < api->clients->nelts; ++i) {
        acme_config_api_client_t *c = APR_ARRAY_IDX(api->clients, i, acme_config_api_client_t *);
        if (c->ips->nelts == 0 && c->users->nelts == 0 && !c->hmac_key) {
            acme_config_api_problem(s, c, "the client block has no ACMEApiAuth: add "
                                    "'ACMEApiAuth ip ...', 'ACMEApiAuth hmac FILE' or "
                                    "'ACMEApiAuth user NAME'", &errors);
        }
        if (c->patterns->nelts == 0) {
            acme_config_api_problem(s, c, "the client block allows no names: add "
                                    "'ACMEApiAllow pattern...' (e.g. mail.example.org)",
                                    &errors);
        }
        if (c->rate.n == 0) {
            c->rate = api->rate;
        }
    }
    return errors ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

int acme_config_api_covers(const acme_config_api_t *api, const char *host)
{
    int i;

    for (i = 0; api && host && i < api->clients->nelts; ++i) {
        const acme_config_api_client_t *c = APR_ARRAY_IDX(api->clients, i,
                                                          const acme_config_api_client_t *);
        if (acme_api_patterns_allow(c->patterns, &host, 1)) {
            return 1;
        }
    }
    return 0;
}
