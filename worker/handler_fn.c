/*
 * Function handlers: a pgq_handler_fn called in the caller's stack, the kind
 * library consumers register and the base of module handlers. Also the small
 * pieces every handler kind shares.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/worker_int.h"

struct handler_fn {
	struct handler h; /* first: the common head */
	pgq_handler_fn fn;
	void *resources;
};

void
handler_free(struct handler *h)
{
	if (h != NULL)
		h->ops->free(h);
}

void
handler_call_fn(pgq_handler_fn fn, void *resources, const struct pgq_job *job,
		handler_done_fn done, void *arg)
{
	struct handler_result r;
	enum pgq_outcome out;

	memset(&r, 0, sizeof(r));
	out = fn(job, resources, &r.res);
	/* The module may not have terminated what it wrote. */
	r.res.exception_type[sizeof(r.res.exception_type) - 1] = '\0';
	r.res.message[sizeof(r.res.message) - 1] = '\0';
	switch (out) {
	case PGQ_OUTCOME_SUCCESS:
	case PGQ_OUTCOME_RETRY:
	case PGQ_OUTCOME_FAIL:
		r.outcome = out;
		break;
	default:
		r.outcome = PGQ_OUTCOME_FAIL;
		snprintf(r.res.exception_type, sizeof(r.res.exception_type),
			 "InvalidOutcome");
		snprintf(r.res.message, sizeof(r.res.message),
			 "handler returned %d, not a pgq_outcome", (int)out);
		break;
	}
	done(&r, arg);
}

static void
fn_start(struct handler *h, struct ev_loop *loop, const struct pgq_job *job,
	 handler_done_fn done, void *arg)
{
	struct handler_fn *f = (struct handler_fn *)h;

	(void)loop;
	handler_call_fn(f->fn, f->resources, job, done, arg);
}

static void
fn_abort(struct handler *h)
{
	/* A function runs to its end in our stack: nothing to interrupt. */
	(void)h;
}

static void
fn_free(struct handler *h)
{
	free(h);
}

static const struct handler_ops fn_ops = {
	.kind = "function",
	.start = fn_start,
	.abort = fn_abort,
	.free = fn_free,
};

struct handler *
handler_fn_new(pgq_handler_fn fn, void *resources)
{
	struct handler_fn *f = xcalloc(1, sizeof(*f));

	f->h.ops = &fn_ops;
	f->fn = fn;
	f->resources = resources;
	return &f->h;
}
