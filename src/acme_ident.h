#ifndef ACME_IDENT_H
#define ACME_IDENT_H

/* One ACME identifier (RFC 8555 §9.7.7, RFC 8738): what a certificate names. */
typedef enum {
    ACME_IDENT_DNS = 0,         /* "dns": a host name, maybe a wildcard "*.example.org" */
    ACME_IDENT_IP               /* "ip": an IPv4 dotted quad or canonical IPv6 text */
} acme_ident_type_t;

typedef struct {
    acme_ident_type_t type;
    const char *value;          /* lower case; IPv6 in RFC 5952 canonical form */
} acme_ident_t;

#endif
