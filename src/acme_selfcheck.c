#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <apr_network_io.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "acme_selfcheck.h"

static apr_status_t acme_selfcheck_connect(apr_pool_t *p, const char *host, int port,
                                           apr_interval_time_t timeout, apr_socket_t **sock,
                                           acme_result_t *res)
{
    apr_sockaddr_t *sa = NULL;
    apr_status_t rv = apr_sockaddr_info_get(&sa, host, APR_UNSPEC, (apr_port_t)port, 0, p);

    if (rv == APR_SUCCESS) {
        rv = apr_socket_create(sock, sa->family, SOCK_STREAM, APR_PROTO_TCP, p);
    }
    if (rv == APR_SUCCESS) {
        apr_socket_timeout_set(*sock, timeout);
        rv = apr_socket_connect(*sock, sa);
    }
    if (rv != APR_SUCCESS) {
        char buf[120];
        return acme_result_fail(res, rv, ACME_CLASS_RETRY_SOON,
                                apr_psprintf(p, "self-check: cannot connect to %s:%d: %s", host,
                                             port, apr_strerror(rv, buf, sizeof(buf))));
    }
    return APR_SUCCESS;
}

static const char *acme_selfcheck_serial_of(apr_pool_t *p, X509 *cert)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    const char *out = hex ? apr_pstrdup(p, hex) : NULL;

    OPENSSL_free(hex);
    BN_free(bn);
    return out;
}

apr_status_t acme_selfcheck_serial(apr_pool_t *p, const char *host, int port, const char *sni,
                                   apr_interval_time_t timeout, const char **serial_hex,
                                   acme_result_t *res)
{
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    X509 *peer = NULL;
    apr_socket_t *sock = NULL;
    apr_os_sock_t fd;
    struct timeval tv;
    apr_status_t rv = acme_selfcheck_connect(p, host, port, timeout, &sock, res);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    /*
     * OpenSSL wants a blocking descriptor (APR's timeouts make it non-blocking); kernel
     * timeouts keep a hung server from holding the worker.
     */
    apr_socket_timeout_set(sock, -1);
    apr_os_sock_get(&fd, sock);
    tv.tv_sec = (time_t)apr_time_sec(timeout);
    tv.tv_usec = (suseconds_t)(timeout % APR_USEC_PER_SEC);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ctx = SSL_CTX_new(TLS_client_method());
    ssl = ctx ? SSL_new(ctx) : NULL;
    if (!ssl || !SSL_set_fd(ssl, fd) || !SSL_set_tlsext_host_name(ssl, sni)
        || SSL_connect(ssl) != 1 || !(peer = SSL_get1_peer_certificate(ssl))
        || !(*serial_hex = acme_selfcheck_serial_of(p, peer))) {
        rv = acme_result_fail(res, APR_EGENERAL, ACME_CLASS_RETRY_SOON,
                              apr_psprintf(p, "self-check: no TLS handshake with %s:%d for %s",
                                           host, port, sni));
    }
    X509_free(peer);
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
    apr_socket_close(sock);
    return rv;
}
