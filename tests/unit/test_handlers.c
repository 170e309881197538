/*
 * The handler kinds run on a real loop: command handlers fork real programs
 * (exit codes, signals, timeouts that must kill a whole process group, a
 * scrubbed environment, stdin, bounded stderr, no leaked descriptors), the
 * example module is loaded with its hooks, and the builtins behave.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/common.h"
#include "worker/worker_int.h"

/* What a job ended with, copied out of the borrowed result. */
struct outcome {
	bool done;
	enum pgq_outcome outcome;
	char type[64];
	char message[1024];
	char *traceback;
	char *context;
	uint64_t elapsed_ms;
};

struct run {
	struct ev_loop *loop;
	struct outcome *out;
	uint64_t started_ms;
};

static void
on_done(const struct handler_result *r, void *arg)
{
	struct run *run = arg;
	struct outcome *o = run->out;

	o->done = true;
	o->outcome = r->outcome;
	snprintf(o->type, sizeof(o->type), "%s", r->res.exception_type);
	snprintf(o->message, sizeof(o->message), "%s", r->res.message);
	o->traceback = r->traceback != NULL ? xstrdup(r->traceback) : NULL;
	o->context = r->context_json != NULL ? xstrdup(r->context_json) : NULL;
	o->elapsed_ms = clock_mono_ms() - run->started_ms;
	ev_break(run->loop, EVBREAK_ALL);
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void
abort_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	((struct handler *)w->data)->ops->abort(w->data);
}

static void
outcome_clear(struct outcome *o)
{
	free(o->traceback);
	free(o->context);
	memset(o, 0, sizeof(*o));
}

/*
 * Runs one job through h on a fresh loop; abort_after_ms > 0 aborts it then.
 * Fails the test when it does not end within deadline_s.
 */
static void
run_job_ex(struct handler *h, const char *payload, size_t payload_len,
	   struct outcome *out, double deadline_s, double abort_after_s)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pgq_job job;
	struct run run = {loop, out, clock_mono_ms()};
	ev_timer deadline, aborter;

	cr_assert_not_null(loop);
	memset(out, 0, sizeof(*out));
	memset(&job, 0, sizeof(job));
	job.id = 42;
	job.priority = 7;
	job.attempts = 2;
	job.entrypoint = "test_ep";
	job.payload = payload;
	job.payload_len = payload_len;
	job.headers_json = "{\"k\": \"v\"}";
	job.queue_manager_id = "00000000-0000-4000-8000-000000000001";
	ev_timer_init(&deadline, deadline_cb, deadline_s, 0.);
	ev_timer_start(loop, &deadline);
	ev_timer_init(&aborter, abort_cb, abort_after_s, 0.);
	aborter.data = h;
	if (abort_after_s > 0)
		ev_timer_start(loop, &aborter);
	h->ops->start(h, loop, &job, on_done, &run);
	if (!out->done)
		ev_run(loop, 0);
	ev_timer_stop(loop, &deadline);
	ev_timer_stop(loop, &aborter);
	cr_assert(out->done, "the job did not end within %.1fs", deadline_s);
	ev_loop_destroy(loop);
}

static void
run_job(struct handler *h, const char *payload, struct outcome *out)
{
	run_job_ex(h, payload, payload != NULL ? strlen(payload) : 0, out, 10.,
		   0.);
}

static struct handler *
sh(const char *script, uint64_t timeout_ms, uint64_t grace_ms)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};

	return handler_command_new(argv, timeout_ms, grace_ms);
}

/* Gone, or a zombie nobody has reaped yet: either way not running. */
static bool
pid_gone(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	if (kill(pid, 0) == -1 && errno == ESRCH)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return true;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static bool
wait_pid_gone(pid_t pid, uint64_t deadline_ms)
{
	uint64_t end = clock_mono_ms() + deadline_ms;

	while (clock_mono_ms() < end) {
		if (pid_gone(pid))
			return true;
		usleep(10000);
	}
	return pid_gone(pid);
}

/* ---- command ---- */

Test(command, exit_zero_is_success)
{
	struct handler *h = sh("exit 0", 0, 1000);
	struct outcome o;

	run_job(h, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	cr_expect_str_empty(o.message);
	outcome_clear(&o);
	handler_free(h);
}

Test(command, exit_75_asks_for_a_retry)
{
	struct handler *h = sh("echo later >&2; exit 75", 0, 1000);
	struct outcome o;

	run_job(h, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_RETRY);
	cr_expect_str_eq(o.type, "RetryRequested");
	cr_expect_str_eq(o.message, "exited with status 75 (EX_TEMPFAIL)");
	cr_expect_str_eq(o.traceback, "later\n");
	outcome_clear(&o);
	handler_free(h);
}

Test(command, other_exit_fails_with_the_stderr_tail)
{
	struct handler *h = sh("echo out; echo boom >&2; exit 3", 0, 1000);
	struct outcome o;

	run_job(h, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.type, "CommandFailed");
	cr_expect_str_eq(o.message, "exited with status 3");
	cr_expect_str_eq(o.traceback, "boom\n");
	cr_expect_not_null(strstr(o.context, "\"exit_status\":3"), "%s",
			   o.context);
	outcome_clear(&o);
	handler_free(h);
}

Test(command, killed_by_a_signal_names_it)
{
	struct handler *h = sh("kill -SEGV $$", 0, 1000);
	struct outcome o;

	run_job(h, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.type, "CommandKilled");
	cr_expect_str_eq(o.message, "killed by signal SIGSEGV");
	cr_expect_not_null(strstr(o.context, "\"signal\":\"SIGSEGV\""), "%s",
			   o.context);
	outcome_clear(&o);
	handler_free(h);
}

Test(command, timeout_kills_the_whole_process_group)
{
	/*
	 * The script starts a child that ignores SIGTERM, prints its pid and
	 * waits: SIGTERM ends the script, only SIGKILL after the grace period
	 * ends the child.
	 */
	struct handler *h = sh("(trap '' TERM; exec sleep 60) & echo $!; "
			       "sleep 60",
			       300, 400);
	struct outcome o;
	const char *out;
	long child;

	run_job(h, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_RETRY);
	cr_expect_str_eq(o.type, "Timeout");
	cr_expect_str_eq(o.message, "timeout after 300ms");
	/* It ended only after the grace period had killed the child. */
	cr_expect_geq(o.elapsed_ms, 300 + 400 - 20, "elapsed %llums",
		      (unsigned long long)o.elapsed_ms);
	out = handler_command_stdout(h, NULL);
	child = strtol(out, NULL, 10);
	cr_assert_gt(child, 1, "stdout: %s", out);
	cr_expect(wait_pid_gone((pid_t)child, 2000),
		  "the child that ignores SIGTERM survived");
	cr_expect(wait_pid_gone(handler_command_pid(h), 2000),
		  "the script survived");
	outcome_clear(&o);
	handler_free(h);
}

Test(command, timeout_finishes_early_when_the_group_obeys_sigterm)
{
	struct handler *h = sh("sleep 60", 200, 5000);
	struct outcome o;

	run_job(h, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_RETRY);
	cr_expect_str_eq(o.message, "timeout after 200ms");
	cr_expect_lt(o.elapsed_ms, 2000, "waited for the grace period: %llums",
		     (unsigned long long)o.elapsed_ms);
	outcome_clear(&o);
	handler_free(h);
}

Test(command, environment_is_scrubbed)
{
	const char *argv[] = {"/usr/bin/env", NULL};
	struct handler *h = handler_command_new(argv, 0, 1000);
	struct outcome o;
	const char *out;

	setenv("PGPASSWORD", "secret", 1);
	setenv("PGQ_TEST_DSN", "postgresql://u:secret@h/db", 1);
	setenv("LANG", "C.UTF-8", 1);
	run_job(h, NULL, &o);
	cr_assert_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	out = handler_command_stdout(h, NULL);
	cr_expect_null(strstr(out, "secret"), "env leaked: %s", out);
	cr_expect_null(strstr(out, "PGPASSWORD"), "env leaked: %s", out);
	cr_expect_not_null(strstr(out, "PGQ_JOB_ID=42\n"), "%s", out);
	cr_expect_not_null(strstr(out, "PGQ_ENTRYPOINT=test_ep\n"), "%s", out);
	cr_expect_not_null(strstr(out, "PGQ_PRIORITY=7\n"), "%s", out);
	cr_expect_not_null(strstr(out, "PGQ_ATTEMPTS=2\n"), "%s", out);
	cr_expect_not_null(strstr(out, "PGQ_HEADERS={\"k\": \"v\"}\n"), "%s",
			   out);
	cr_expect_not_null(strstr(out, "PGQ_QUEUE_MANAGER_ID=00000000-"), "%s",
			   out);
	cr_expect_not_null(strstr(out, "LANG=C.UTF-8\n"), "%s", out);
	cr_expect_not_null(strstr(out, "PATH="), "%s", out);
	outcome_clear(&o);
	handler_free(h);
}

Test(command, payload_arrives_on_stdin)
{
	const char *argv[] = {"/bin/cat", NULL};
	struct handler *h = handler_command_new(argv, 0, 1000);
	struct outcome o;
	size_t len;
	const char *out;

	run_job(h, "hello\nworld", &o);
	cr_assert_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	out = handler_command_stdout(h, &len);
	cr_expect_eq(len, 11);
	cr_expect_str_eq(out, "hello\nworld");
	outcome_clear(&o);
	handler_free(h);
}

Test(command, large_payload_is_written_without_blocking)
{
	/* Far beyond a pipe's buffer: written as the child reads. */
	size_t n = 4 * 1024 * 1024;
	char *payload = xmalloc(n);
	struct handler *h = sh("wc -c", 0, 1000);
	struct outcome o;

	memset(payload, 'p', n);
	run_job_ex(h, payload, n, &o, 20., 0.);
	cr_assert_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	cr_expect_eq(strtol(handler_command_stdout(h, NULL), NULL, 10),
		     (long)n);
	outcome_clear(&o);
	handler_free(h);
	free(payload);
}

Test(command, child_that_ignores_stdin_does_not_hurt_the_worker)
{
	size_t n = 1024 * 1024;
	char *payload = xmalloc(n);
	struct handler *h = sh("exit 0", 0, 1000);
	struct outcome o;

	/* Writing to a pipe nobody reads must not raise SIGPIPE here. */
	memset(payload, 'p', n);
	run_job_ex(h, payload, n, &o, 10., 0.);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	outcome_clear(&o);
	handler_free(h);
	free(payload);
}

Test(command, large_stderr_keeps_only_its_tail)
{
	struct handler *h = sh("head -c 1000000 /dev/zero | tr '\\0' x >&2; "
			       "echo END >&2; exit 1",
			       0, 1000);
	struct outcome o;
	size_t len;

	run_job_ex(h, NULL, 0, &o, 20., 0.);
	cr_assert_eq(o.outcome, PGQ_OUTCOME_FAIL);
	len = strlen(o.traceback);
	cr_expect_leq(len, HANDLER_STDERR_KEEP + 64, "traceback of %zu bytes",
		      len);
	cr_expect_gt(len, HANDLER_STDERR_KEEP - 1);
	cr_expect_str_eq(o.traceback + len - 4, "END\n");
	cr_expect_not_null(strstr(o.traceback, "earlier bytes of stderr "
					       "dropped"));
	cr_expect_not_null(strstr(o.context, "\"stderr_bytes\":1000004"), "%s",
			   o.context);
	outcome_clear(&o);
	handler_free(h);
}

Test(command, child_holds_only_stdio)
{
	/* A descriptor without close-on-exec that a careless fork leaks. */
	int leak = open("/dev/null", O_RDONLY);
	struct handler *h = sh("ls /proc/$$/fd", 0, 1000);
	struct outcome o;

	cr_assert_geq(leak, 3);
	run_job(h, NULL, &o);
	cr_assert_eq(o.outcome, PGQ_OUTCOME_SUCCESS, "%s", o.traceback);
	cr_expect_str_eq(handler_command_stdout(h, NULL), "0\n1\n2\n");
	outcome_clear(&o);
	handler_free(h);
	close(leak);
}

Test(command, process_group_is_its_own)
{
	struct handler *h = sh("ps -o pgid= -p $$ 2>/dev/null || "
			       "cut -d' ' -f5 /proc/$$/stat",
			       0, 1000);
	struct outcome o;

	run_job(h, NULL, &o);
	cr_assert_eq(o.outcome, PGQ_OUTCOME_SUCCESS, "%s", o.traceback);
	cr_expect_eq(strtol(handler_command_stdout(h, NULL), NULL, 10),
		     (long)handler_command_pid(h));
	cr_expect_neq(handler_command_pid(h), getpgrp());
	outcome_clear(&o);
	handler_free(h);
}

Test(command, missing_program_fails)
{
	const char *argv[] = {"/nonexistent/prog", "x", NULL};
	const char *argv2[] = {"no-such-program-in-path-pgq", NULL};
	struct handler *h = handler_command_new(argv, 0, 1000);
	struct handler *h2 = handler_command_new(argv2, 0, 1000);
	struct outcome o;

	run_job(h, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.message, "exited with status 127");
	cr_expect_not_null(strstr(o.traceback, "cannot execute"), "%s",
			   o.traceback);
	outcome_clear(&o);
	run_job(h2, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.type, "CommandStartFailed");
	outcome_clear(&o);
	handler_free(h);
	handler_free(h2);
}

Test(command, program_is_found_in_path)
{
	const char *argv[] = {"true", NULL};
	struct handler *h = handler_command_new(argv, 0, 1000);
	struct outcome o;

	run_job(h, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	outcome_clear(&o);
	handler_free(h);
}

Test(command, abort_stops_the_job)
{
	struct handler *h = sh("sleep 60", 0, 2000);
	struct outcome o;

	run_job_ex(h, NULL, 0, &o, 10., 0.1);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.type, "Aborted");
	cr_expect_lt(o.elapsed_ms, 1500);
	cr_expect(wait_pid_gone(handler_command_pid(h), 2000));
	outcome_clear(&o);
	handler_free(h);
}

static void
ignore_signal(int sig)
{
	(void)sig;
}

Test(command, abort_right_after_the_fork_is_not_lost)
{
	/*
	 * SIGTERM may reach the child before it has reset its signal
	 * handlers: it must still end it, not wait for the SIGKILL.
	 */
	struct handler *h = sh("sleep 60", 0, 5000);
	struct sigaction sa;
	struct outcome o;

	/* Like the worker's own SIGTERM watcher. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ignore_signal;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGTERM, &sa, NULL), 0);
	for (int i = 0; i < 10; i++) {
		run_job_ex(h, NULL, 0, &o, 10., 0.0001);
		cr_expect_str_eq(o.type, "Aborted");
		cr_expect_lt(o.elapsed_ms, 2500, "run %d took %llums", i,
			     (unsigned long long)o.elapsed_ms);
		outcome_clear(&o);
	}
	handler_free(h);
}

Test(command, handler_runs_jobs_one_after_another)
{
	struct handler *h = sh("cat; exit 0", 0, 1000);
	struct outcome o;

	for (int i = 0; i < 5; i++) {
		char payload[16];

		snprintf(payload, sizeof(payload), "job %d", i);
		run_job(h, payload, &o);
		cr_expect_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
		cr_expect_str_eq(handler_command_stdout(h, NULL), payload);
		outcome_clear(&o);
	}
	handler_free(h);
}

/* ---- module ---- */

Test(module, init_call_and_fini)
{
	char errbuf[512] = "";
	struct handler *h =
		handler_module_new(EXAMPLE_MODULE, "example_handler", "mod_ep",
				   errbuf, sizeof(errbuf));
	void *dl;
	int *inits, *finis;
	long *calls;
	struct outcome o;

	cr_assert_not_null(h, "%s", errbuf);
	/* Our own reference keeps the counters readable after fini. */
	dl = dlopen(EXAMPLE_MODULE, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
	cr_assert_not_null(dl, "%s", dlerror());
	inits = dlsym(dl, "example_module_inits");
	finis = dlsym(dl, "example_module_finis");
	calls = dlsym(dl, "example_module_calls");
	cr_assert(inits != NULL && finis != NULL && calls != NULL);
	cr_expect_eq(*inits, 1);
	cr_expect_eq(*finis, 0);

	run_job(h, "hello", &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	outcome_clear(&o);
	run_job(h, "fail", &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.type, "ExampleError");
	cr_expect_not_null(strstr(o.message, "call 2 of entrypoint test_ep"),
			   "%s", o.message);
	outcome_clear(&o);
	run_job(h, "retry", &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_RETRY);
	outcome_clear(&o);
	cr_expect_eq(*calls, 3);

	handler_free(h);
	cr_expect_eq(*finis, 1);
	dlclose(dl);
}

Test(module, init_failure_is_reported)
{
	char errbuf[512] = "";
	struct handler *h =
		handler_module_new(EXAMPLE_MODULE, "example_handler",
				   "init_fail_x", errbuf, sizeof(errbuf));

	cr_expect_null(h);
	cr_expect_not_null(strstr(errbuf, "pgq_module_init failed for "
					  "entrypoint init_fail_x"),
			   "%s", errbuf);
	cr_expect_not_null(strstr(errbuf, "asks the example module to fail"),
			   "%s", errbuf);
}

Test(module, missing_function_or_file_is_reported)
{
	char errbuf[512] = "";
	struct handler *h;

	h = handler_module_new(EXAMPLE_MODULE, "no_such_fn", "ep", errbuf,
			       sizeof(errbuf));
	cr_expect_null(h);
	cr_expect_not_null(strstr(errbuf, "function no_such_fn not found"),
			   "%s", errbuf);
	h = handler_module_new("/nonexistent/mod.so", "f", "ep", errbuf,
			       sizeof(errbuf));
	cr_expect_null(h);
	cr_expect_not_null(strstr(errbuf, "cannot load module"), "%s", errbuf);
}

/* ---- function ---- */

static enum pgq_outcome
bad_outcome_fn(const struct pgq_job *job, void *resources,
	       struct pgq_result *res)
{
	(void)job;
	(void)res;
	*(int *)resources += 1;
	return (enum pgq_outcome)17;
}

Test(function, invalid_outcome_is_a_failure)
{
	int calls = 0;
	struct handler *h = handler_fn_new(bad_outcome_fn, &calls);
	struct outcome o;

	run_job(h, NULL, &o);
	cr_expect_eq(calls, 1);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.type, "InvalidOutcome");
	outcome_clear(&o);
	handler_free(h);
}

/* ---- builtin ---- */

Test(builtin, noop_fail_echo)
{
	struct handler *noop = handler_builtin_new("noop", 1000, 0);
	struct handler *fail = handler_builtin_new("fail", 1000, 0);
	struct handler *echo = handler_builtin_new("echo", 1000, 0);
	struct outcome o;

	cr_assert(noop != NULL && fail != NULL && echo != NULL);
	cr_expect_null(handler_builtin_new("nope", 1000, 0));
	run_job(noop, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	outcome_clear(&o);
	run_job(fail, NULL, &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.message, "builtin fail");
	outcome_clear(&o);
	run_job(echo, "hi\x01", &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	outcome_clear(&o);
	handler_free(noop);
	handler_free(fail);
	handler_free(echo);
}

Test(builtin, sleep_waits_on_the_loop)
{
	struct handler *h = handler_builtin_new("sleep", 50, 0);
	struct outcome o;

	run_job(h, " 150ms\n", &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	cr_expect_geq(o.elapsed_ms, 145);
	cr_expect_lt(o.elapsed_ms, 1000);
	outcome_clear(&o);
	/* An empty payload takes the configured duration. */
	run_job(h, "", &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_SUCCESS);
	cr_expect_geq(o.elapsed_ms, 45);
	outcome_clear(&o);
	run_job(h, "soon", &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.type, "ValueError");
	outcome_clear(&o);
	handler_free(h);
}

Test(builtin, sleep_times_out_and_aborts)
{
	struct handler *h = handler_builtin_new("sleep", 1000, 100);
	struct outcome o;

	run_job(h, "10s", &o);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_RETRY);
	cr_expect_str_eq(o.message, "timeout after 100ms");
	cr_expect_lt(o.elapsed_ms, 1000);
	outcome_clear(&o);
	handler_free(h);

	h = handler_builtin_new("sleep", 1000, 0);
	run_job_ex(h, "10s", 3, &o, 5., 0.05);
	cr_expect_eq(o.outcome, PGQ_OUTCOME_FAIL);
	cr_expect_str_eq(o.type, "Aborted");
	cr_expect_lt(o.elapsed_ms, 1000);
	outcome_clear(&o);
	handler_free(h);
}
