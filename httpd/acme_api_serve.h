#ifndef ACME_API_SERVE_H
#define ACME_API_SERVE_H

#include <httpd.h>

/*
 * SetHandler acme-api (issue 17; requests and answers in docs/api.md). Runs in the children
 * as the User: it checks the client and its CSR, queues the CSR in the store for the worker
 * and waits (bounded) for the chain the worker writes. No ACME and no private key here.
 */
int acme_api_serve_handler(request_rec *r);

#endif
