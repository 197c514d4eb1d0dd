#ifndef ACME_EAB_H
#define ACME_EAB_H

#include <apr_pools.h>
#include "acme_result.h"

/*
 * External account binding (RFC 8555 §7.3.4): the HMAC key a CA hands out lives in a file only
 * root may read; httpd.conf names the file (ACMEExternalAccountBinding), never the key. The
 * parent checks the file at configtest and forgets the key; the renewal worker reads it again
 * as root, before it drops privileges, when it may have to register an account.
 */

/* Largest file accepted: CAs hand out keys of 32 to 64 bytes (43 to 86 characters). */
#define ACME_EAB_FILE_MAX 4096
/* Shortest key accepted, in bytes: anything shorter is a truncated paste. */
#define ACME_EAB_KEY_MIN 16

/*
 * Reads the base64url HMAC key from path: a regular file (not a symlink), owned by root or by
 * this process's user, readable by its owner only, holding one base64url key (surrounding
 * whitespace ignored). *hmac is the key text in p; wipe it with acme_eab_wipe when done.
 * Errors (ADMIN) name the file and say how to fix it, never showing the file's content.
 */
apr_status_t acme_eab_read(apr_pool_t *p, const char *path, char **hmac, acme_result_t *res);

/* Overwrites a key read by acme_eab_read (NULL is fine). */
void acme_eab_wipe(char *hmac);

#endif
