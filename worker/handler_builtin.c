/*
 * Builtin handlers for demos, tests and benchmarks: noop succeeds, fail
 * fails, echo logs the payload, sleep waits on a loop timer (never sleep(3):
 * the worker must keep reading its channel while a job "runs").
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/worker_int.h"

enum builtin_kind {
	BUILTIN_NOOP = 0, /* succeed at once */
	BUILTIN_SLEEP,	  /* succeed after a delay */
	BUILTIN_FAIL,	  /* fail at once */
	BUILTIN_ECHO,	  /* log the payload, succeed */
};

struct handler_builtin {
	struct handler h; /* first: the common head */
	enum builtin_kind kind;
	uint64_t default_sleep_ms;
	/* the running sleep */
	struct ev_loop *loop;
	ev_timer timer;
	bool running;
	bool timed_out;
	handler_done_fn done;
	void *done_arg;
};

static void
builtin_result(handler_done_fn done, void *arg, enum pgq_outcome outcome,
	       const char *type, const char *message)
{
	struct handler_result r;

	memset(&r, 0, sizeof(r));
	r.outcome = outcome;
	if (type != NULL)
		snprintf(r.res.exception_type, sizeof(r.res.exception_type),
			 "%s", type);
	if (message != NULL)
		snprintf(r.res.message, sizeof(r.res.message), "%s", message);
	done(&r, arg);
}

/* The payload as printable text: control bytes and non-ASCII as \xNN. */
static void
builtin_printable(const struct pgq_job *job, char *buf, size_t len)
{
	const unsigned char *p = job->payload;
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; p != NULL && i < job->payload_len; i++) {
		if (o + 5 >= len) {
			snprintf(buf + o, len - o, "...");
			return;
		}
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			buf[o++] = (char)p[i];
		else
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x",
					      p[i]);
		buf[o] = '\0';
	}
}

/* The sleep duration a payload names; false when it names none. */
static bool
builtin_sleep_ms(const struct handler_builtin *b, const struct pgq_job *job,
		 uint64_t *ms)
{
	char text[64];
	size_t n = job->payload_len, start = 0;
	const char *p = job->payload;

	while (p != NULL && start < n && isspace((unsigned char)p[start]))
		start++;
	while (p != NULL && n > start && isspace((unsigned char)p[n - 1]))
		n--;
	if (p == NULL || n == start) {
		*ms = b->default_sleep_ms;
		return true;
	}
	if (n - start >= sizeof(text))
		return false;
	memcpy(text, p + start, n - start);
	text[n - start] = '\0';
	return parse_duration_ms(text, ms);
}

static void
builtin_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct handler_builtin *b = w->data;
	char msg[128], dur[32];

	(void)loop;
	(void)revents;
	b->running = false;
	if (b->timed_out) {
		format_duration_ms(b->h.timeout_ms, dur, sizeof(dur));
		snprintf(msg, sizeof(msg), "timeout after %s", dur);
		builtin_result(b->done, b->done_arg, PGQ_OUTCOME_RETRY,
			       "Timeout", msg);
		return;
	}
	builtin_result(b->done, b->done_arg, PGQ_OUTCOME_SUCCESS, NULL, NULL);
}

static void
builtin_start(struct handler *h, struct ev_loop *loop,
	      const struct pgq_job *job, handler_done_fn done, void *arg)
{
	struct handler_builtin *b = (struct handler_builtin *)h;
	char text[1024], msg[600];
	uint64_t ms;

	switch (b->kind) {
	case BUILTIN_NOOP:
		builtin_result(done, arg, PGQ_OUTCOME_SUCCESS, NULL, NULL);
		return;
	case BUILTIN_FAIL:
		builtin_result(done, arg, PGQ_OUTCOME_FAIL, "BuiltinFail",
			       "builtin fail");
		return;
	case BUILTIN_ECHO:
		builtin_printable(job, text, sizeof(text));
		log_info("echo job=%lld entrypoint=%s payload=\"%s\"",
			 (long long)job->id, job->entrypoint, text);
		builtin_result(done, arg, PGQ_OUTCOME_SUCCESS, NULL, NULL);
		return;
	case BUILTIN_SLEEP:
		break;
	}
	if (!builtin_sleep_ms(b, job, &ms)) {
		/* Short enough for the message with its words around it. */
		builtin_printable(job, text, 512);
		snprintf(msg, sizeof(msg),
			 "builtin sleep: payload is not a duration: \"%.512s\"",
			 text);
		builtin_result(done, arg, PGQ_OUTCOME_FAIL, "ValueError", msg);
		return;
	}
	b->timed_out = b->h.timeout_ms > 0 && ms > b->h.timeout_ms;
	if (b->timed_out)
		ms = b->h.timeout_ms;
	b->loop = loop;
	b->done = done;
	b->done_arg = arg;
	b->running = true;
	ev_timer_init(&b->timer, builtin_timer_cb, (double)ms / 1000.0, 0.);
	b->timer.data = b;
	ev_timer_start(loop, &b->timer);
}

static void
builtin_abort(struct handler *h)
{
	struct handler_builtin *b = (struct handler_builtin *)h;

	if (!b->running)
		return;
	ev_timer_stop(b->loop, &b->timer);
	b->running = false;
	builtin_result(b->done, b->done_arg, PGQ_OUTCOME_FAIL, "Aborted",
		       "builtin sleep aborted");
}

static void
builtin_free(struct handler *h)
{
	struct handler_builtin *b = (struct handler_builtin *)h;

	if (b->running)
		ev_timer_stop(b->loop, &b->timer);
	free(b);
}

static const struct handler_ops builtin_ops = {
	.kind = "builtin",
	.start = builtin_start,
	.abort = builtin_abort,
	.free = builtin_free,
};

struct handler *
handler_builtin_new(const char *name, uint64_t default_sleep_ms,
		    uint64_t timeout_ms)
{
	static const struct {
		const char *name;
		enum builtin_kind kind;
	} names[] = {
		{"noop", BUILTIN_NOOP},
		{"sleep", BUILTIN_SLEEP},
		{"fail", BUILTIN_FAIL},
		{"echo", BUILTIN_ECHO},
	};
	struct handler_builtin *b;

	for (size_t i = 0; i < PGQ_NELEM(names); i++) {
		if (strcmp(name, names[i].name) != 0)
			continue;
		b = xcalloc(1, sizeof(*b));
		b->h.ops = &builtin_ops;
		b->h.timeout_ms = timeout_ms;
		b->kind = names[i].kind;
		b->default_sleep_ms = default_sleep_ms;
		return &b->h;
	}
	return NULL;
}
