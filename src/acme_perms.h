#ifndef ACME_PERMS_H
#define ACME_PERMS_H

#include <apr_file_info.h>

/* File modes in APR's own bits (apr_fileperms_t is not a Unix mode). */
#define ACME_PERMS_0600 (APR_FPROT_UREAD | APR_FPROT_UWRITE)
#define ACME_PERMS_0644 (ACME_PERMS_0600 | APR_FPROT_GREAD | APR_FPROT_WREAD)
#define ACME_PERMS_0700 (ACME_PERMS_0600 | APR_FPROT_UEXECUTE)
#define ACME_PERMS_0755 (ACME_PERMS_0700 | APR_FPROT_GREAD | APR_FPROT_GEXECUTE \
                         | APR_FPROT_WREAD | APR_FPROT_WEXECUTE)

#endif
