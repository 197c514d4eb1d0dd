#ifndef ACME_STATUS_H
#define ACME_STATUS_H

#include <jansson.h>

#include "acme_activate.h"
#include "acme_domain.h"
#include "acme_job.h"

/*
 * The status of managed domains as JSON, shared by the status handler and the
 * admin command. Holds no secrets: names, certificate facts, job state, errors.
 */
json_t *acme_status_domain(const acme_domain_t *dom, const acme_active_t *active,
                           const acme_job_t *job);

/* The "state" acme_status_domain shows ("valid", "renewing", ...; acme_metrics_states). */
const char *acme_status_state_of(const acme_active_t *active, const acme_job_t *job);

/*
 * One CA account from its record (jobs/account.<ca-id>.json): URL, terms of service (agreed,
 * current, changed, and the terms a userActionRequired demands: orders there stop), contact as
 * last configured, deactivation. No secrets (the EAB key id is not one).
 */
json_t *acme_status_account(const acme_job_account_t *rec);

#endif
