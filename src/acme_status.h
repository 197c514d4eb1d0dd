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

#endif
