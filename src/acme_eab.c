#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>
#include <openssl/crypto.h>

#include "acme_b64.h"
#include "acme_eab.h"

static apr_status_t acme_eab_fail(apr_pool_t *p, acme_result_t *res, apr_status_t rv,
                                  const char *path, const char *what)
{
    return acme_result_fail(res, rv, ACME_CLASS_ADMIN, apr_psprintf(p,
        "the external account binding key file %s %s", path, what));
}

/* The file as opened: a regular file only its owner (root or us) can read, of a sane size. */
static apr_status_t acme_eab_check_file(apr_pool_t *p, int fd, const char *path,
                                        acme_result_t *res)
{
    struct stat sb;

    if (fstat(fd, &sb) != 0) {
        return acme_eab_fail(p, res, APR_FROM_OS_ERROR(errno), path, "cannot be examined");
    }
    if (!S_ISREG(sb.st_mode)) {
        return acme_eab_fail(p, res, APR_EINVAL, path, "is not a regular file; put the HMAC "
                             "key the CA gave you into a plain file");
    }
    if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
        return acme_eab_fail(p, res, APR_EINVAL, path, "is not owned by root; the HMAC key is "
                             "a secret: chown root and chmod 600 it");
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        return acme_eab_fail(p, res, APR_EINVAL, path, apr_psprintf(p, "can be read or written "
                             "by others (mode %04o); the HMAC key is a secret: chmod 600 it",
                             (unsigned)(sb.st_mode & 07777)));
    }
    if (sb.st_size <= 0 || sb.st_size > ACME_EAB_FILE_MAX) {
        return acme_eab_fail(p, res, APR_EINVAL, path, "is empty or too large; it should hold "
                             "only the base64url HMAC key the CA gave you");
    }
    return APR_SUCCESS;
}

/* Trims surrounding whitespace in place and checks the text is one usable base64url key. */
static apr_status_t acme_eab_check_key(apr_pool_t *p, char *text, const char *path,
                                       char **hmac, acme_result_t *res)
{
    char *start = text, *end = text + strlen(text);
    unsigned char *raw = NULL;
    apr_size_t raw_len = 0;

    while (*start == ' ' || *start == '\t' || *start == '\r' || *start == '\n') {
        start++;
    }
    while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'
                           || end[-1] == '\n')) {
        *--end = '\0';
    }
    if (acme_b64_decode(p, start, &raw, &raw_len) != APR_SUCCESS
        || raw_len < ACME_EAB_KEY_MIN) {
        if (raw) {
            OPENSSL_cleanse(raw, raw_len);
        }
        return acme_eab_fail(p, res, APR_EINVAL, path, apr_psprintf(p, "does not hold one "
                             "base64url HMAC key of at least %d bytes (as the CA shows it, "
                             "without quotes or padding)", ACME_EAB_KEY_MIN));
    }
    OPENSSL_cleanse(raw, raw_len);
    *hmac = start;
    return APR_SUCCESS;
}

apr_status_t acme_eab_read(apr_pool_t *p, const char *path, char **hmac, acme_result_t *res)
{
    char *text = apr_pcalloc(p, ACME_EAB_FILE_MAX + 1);
    apr_status_t rv;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    *hmac = NULL;
    if (fd < 0) {
        rv = APR_FROM_OS_ERROR(errno);
        return acme_eab_fail(p, res, rv, path, errno == ELOOP
                             ? "is a symbolic link; name the file itself"
                             : apr_psprintf(p, "cannot be read (%s); put the HMAC key the CA "
                                            "gave you into it, readable by root only",
                                            strerror(errno)));
    }
    rv = acme_eab_check_file(p, fd, path, res);
    if (rv == APR_SUCCESS) {
        n = read(fd, text, ACME_EAB_FILE_MAX);
        rv = n < 0 ? acme_eab_fail(p, res, APR_FROM_OS_ERROR(errno), path, "cannot be read")
                   : acme_eab_check_key(p, text, path, hmac, res);
    }
    close(fd);
    if (rv != APR_SUCCESS) {
        OPENSSL_cleanse(text, ACME_EAB_FILE_MAX);
    }
    return rv;
}

void acme_eab_wipe(char *hmac)
{
    if (hmac) {
        OPENSSL_cleanse(hmac, strlen(hmac));
    }
}
