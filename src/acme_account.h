#ifndef ACME_ACCOUNT_H
#define ACME_ACCOUNT_H

#include <apr_pools.h>

#include "acme_client.h"
#include "acme_job.h"
#include "acme_result.h"

/*
 * Account life (issue 15): what the worker and a2acme decide about an account that exists,
 * from its record (jobs/account.<ca-id>.json, acme_job_account_t) and the configuration. Pure
 * functions: no requests, no files.
 *
 * Message IDs of the log lines about it, so that admins can grep and alert on them:
 */
#define ACME_MSG_CONTACT_PUSHED   "ACME01501"  /* the configured contact was sent to the CA */
#define ACME_MSG_CONTACT_FAILED   "ACME01502"  /* that update failed; retried next run */
#define ACME_MSG_TOS_CHANGED      "ACME01503"  /* the directory names new terms of service */
#define ACME_MSG_TOS_BLOCKED      "ACME01504"  /* userActionRequired: no orders at this CA */
#define ACME_MSG_TOS_STILL        "ACME01505"  /* an order skipped a CA that is still blocked */
#define ACME_MSG_TOS_CLEARED      "ACME01506"  /* a changed ACMEAgreement lifted the block */
#define ACME_MSG_DEACTIVATED      "ACME01507"  /* the admin deactivated the account */

/* The notification event (ACMENotifyCommand) for changed or demanded terms. */
#define ACME_ACCOUNT_TOS_EVENT "tos-changed"

/*
 * A contact list as the record keeps it: a compact JSON array of the URLs, sorted, without
 * duplicates, the scheme in lower case ("MAILTO:a@b" and "mailto:a@b" are one contact), so that
 * two lists compare equal exactly when the CA would hold the same contacts.
 */
const char *acme_account_contact_canon(apr_pool_t *p, const char *const *contact, int n);

typedef enum {
    ACME_ACCOUNT_CONTACT_SAME = 0,  /* nothing to do */
    ACME_ACCOUNT_CONTACT_ADOPT,     /* nothing recorded (older record): record it, no request */
    ACME_ACCOUNT_CONTACT_PUSH       /* the configuration changed: update the account at the CA */
} acme_account_contact_t;

/* What to do about `configured` (canonical) given what the record says was last sent. */
acme_account_contact_t acme_account_contact_check(const acme_job_account_t *rec,
                                                  const char *configured);

typedef enum {
    ACME_ACCOUNT_TOS_SAME = 0,      /* no terms, or the agreed ones */
    ACME_ACCOUNT_TOS_ADOPT,         /* nothing recorded yet: the account agreed to these */
    ACME_ACCOUNT_TOS_CHANGED,       /* new terms, not announced yet: log, notify */
    ACME_ACCOUNT_TOS_ANNOUNCED      /* new terms, announced before: status only */
} acme_account_tos_t;

/* Compares the directory's meta.termsOfService (NULL: none) with the record. */
acme_account_tos_t acme_account_tos_check(const acme_job_account_t *rec,
                                          const char *directory_tos);

/*
 * Whether orders at the record's CA stop for a userActionRequired: 1 while blocked. A block set
 * under another ACMEAgreement than `agreement` (the admin changed it and reloaded) is lifted
 * here (the record changes; the caller saves it) and *cleared is set.
 */
int acme_account_tos_blocked(acme_job_account_t *rec, int agreement, int *cleared);

/* Records a block for `terms` (NULL: the CA named none) at `now`. */
void acme_account_tos_block(acme_job_account_t *rec, apr_pool_t *p, const char *terms,
                            int agreement, apr_time_t now);

/* The admin agreed to `terms` (a2acme account agree, or ACMEAgreement with changed terms). */
void acme_account_tos_agree(acme_job_account_t *rec, apr_pool_t *p, const char *terms);

/* How often the terms are looked at when nothing else needs the CA (one directory GET). */
#define ACME_ACCOUNT_TOS_RECHECK apr_time_from_sec(24 * 3600)

/*
 * Whether a run with no order at the CA should compare the account anyway (a request): the
 * configured contact changed, or the terms were last looked at ACME_ACCOUNT_TOS_RECHECK ago or
 * never (a time ahead means the clock was set back). A restart alone costs no request.
 */
int acme_account_upkeep_due(const acme_job_account_t *rec, const char *contact_cfg,
                            apr_time_t now);

/* What acme_account_sync found and did, for the caller to log, notify and save. */
typedef struct {
    acme_account_tos_t tos;
    const char *terms;              /* the directory's meta.termsOfService, or NULL */
    int tos_agreed_now;             /* changed terms recorded as agreed (ACMEAgreement) */
    acme_account_contact_t contact;
    int contact_pushed;             /* the CA took the configured contact */
    acme_result_t contact_error;    /* why it did not (a temporary failure) */
    int changed;                    /* the record changed: save it */
} acme_account_sync_t;

/*
 * Once per run and CA, with the account known (c signs for it): compares the directory's terms
 * of service and the configured contact (canonical, acme_account_contact_canon) with the
 * record, and updates the account's contact at the CA when the configuration changed. Terms
 * changed under ACMEAgreement accepted (agreement) are recorded as agreed; nothing is sent for
 * them (RFC 8555 §7.3.2: a server ignores termsOfServiceAgreed in an account update; agreeing
 * to changed terms is the userActionRequired flow of §7.3.3). Never fails: a failed contact
 * update is left for the next run. The record's strings go to rec_pool.
 */
void acme_account_sync(acme_client_t *c, apr_pool_t *p, apr_pool_t *rec_pool,
                       acme_job_account_t *rec, const char *contact_cfg, int agreement,
                       acme_account_sync_t *out);

/*
 * One contact as a2acme takes it: "mailto:user@host" or "user@host" (mailto: added). NULL with
 * *why when it is not one e-mail address (RFC 8555 §7.3: no hfields, one addr-spec).
 */
const char *acme_account_contact_parse(apr_pool_t *p, const char *arg, const char **why);

#endif
