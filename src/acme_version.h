#ifndef ACME_VERSION_H
#define ACME_VERSION_H

/* Kept in step with AC_INIT in configure.ac; sent as the User-Agent product. */
#define ACME_VERSION "0.1.0"
#define ACME_USER_AGENT_PRODUCT "mod_acme/" ACME_VERSION

#endif
