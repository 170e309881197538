/*
 * conf/: pgq.ini into struct conf. Table-driven: each bad value, line-level
 * problem and section rule has its own case with the FILE:LINE it must
 * report; plus defaults, comments, continuation, long lines, the command
 * splitter and the reload diff. Fixtures are written to a temporary dir.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/conf_int.h"

static char dir[64];
static char path[128];
static char module_path[128];

static void
setup(void)
{
	FILE *fp;

	snprintf(dir, sizeof(dir), "/tmp/test_conf.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pgq.ini", dir);
	/* conf checks only that a module exists; dlopen is the worker's. */
	snprintf(module_path, sizeof(module_path), "%s/handler.so", dir);
	fp = fopen(module_path, "w");
	cr_assert_not_null(fp);
	fputs("not really a shared object\n", fp);
	fclose(fp);
}

static void
teardown(void)
{
	char buf[200];

	snprintf(buf, sizeof(buf), "%s/pgq.ini", dir);
	unlink(buf);
	unlink(module_path);
	snprintf(buf, sizeof(buf), "%s/noexec", dir);
	unlink(buf);
	rmdir(dir);
}

TestSuite(conf, .init = setup, .fini = teardown, .timeout = 30);

static void
write_ini(const char *text)
{
	FILE *fp = fopen(path, "w");

	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(text, 1, strlen(text), fp), strlen(text));
	cr_assert_eq(fclose(fp), 0);
}

static struct conf *
load_ok(const char *text)
{
	struct conf_errors e = {0};
	struct conf *cf = NULL;
	char *all;

	write_ini(text);
	if (conf_load(path, &cf, &e) != 0) {
		all = conf_errors_format(&e);
		cr_assert_fail("expected to load:\n%s\nerrors:\n%s", text, all);
	}
	cr_assert_eq(e.n, 0);
	cr_assert_not_null(cf);
	return cf;
}

/* Loads text, which must fail; the errors are left in e. */
static void
load_bad(const char *text, struct conf_errors *e)
{
	struct conf *cf = (struct conf *)1;

	conf_errors_init(e);
	write_ini(text);
	cr_assert_eq(conf_load(path, &cf, e), -1, "loaded:\n%s", text);
	cr_assert_null(cf);
	cr_assert_gt(e->n, 0);
}

/* True when some error reads "PATH:LINE: want..." (line 0: "PATH: want"). */
static bool
has_error(const struct conf_errors *e, unsigned line, const char *want)
{
	char prefix[512];

	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%u: %s", path, line, want);
	else
		snprintf(prefix, sizeof(prefix), "%s: %s", path, want);
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->v[i].text, prefix, strlen(prefix)) == 0 &&
		    e->v[i].line == line)
			return true;
	return false;
}

/* Loads text, which must fail with exactly one error: at line, reading
 * want. */
static void
expect_only_error(const char *text, unsigned line, const char *want)
{
	struct conf_errors e;
	char *all;

	load_bad(text, &e);
	all = conf_errors_format(&e);
	cr_expect(e.n == 1 && has_error(&e, line, want),
		  "want only line %u \"%s\" for:\n%s\ngot:\n%s", line, want,
		  text, all);
	free(all);
	conf_errors_clear(&e);
}

#define MINIMAL "[entrypoint e]\nbuiltin = noop\n"

Test(conf, minimal_file_loads_with_every_default)
{
	struct conf *cf = load_ok(MINIMAL);
	const struct conf_entrypoint *ep;

	cr_expect_str_eq(cf->path, path);
	cr_expect_eq(cf->workers, 4);
	cr_expect_eq(cf->min_workers, 1);
	cr_expect_eq(cf->max_workers, 64);
	cr_expect_str_eq(cf->channel, "ch_pgqueuer");
	cr_expect_str_eq(cf->prefix, "");
	cr_expect_str_eq(cf->schema, "");
	cr_expect_eq(cf->batch_size, 500);
	cr_expect_eq(cf->batch_window_ms, 50);
	cr_expect_eq(cf->poll_interval_ms, 30000);
	cr_expect_eq(cf->heartbeat_timeout_ms, 30000);
	cr_expect_eq(cf->shutdown_timeout_ms, 30000);
	cr_expect_eq(cf->fast_shutdown_timeout_ms, 10000);
	cr_expect_str_eq(cf->pidfile, "");
	cr_expect_eq(cf->log_level, LOG_LEVEL_INFO);
	cr_expect_eq(cf->log_target, LOG_TARGET_STDERR);
	cr_expect_str_eq(cf->log_file, "");
	cr_expect_eq(cf->respawn_backoff_ms, 100);
	cr_expect_eq(cf->respawn_backoff_max_ms, 30000);
	cr_expect_eq(cf->crash_breaker_count, 10);
	cr_expect_eq(cf->crash_breaker_window_ms, 60000);
	cr_expect_eq(cf->healthy_uptime_ms, 10000);
	cr_expect_str_eq(cf->dsn, "");
	cr_expect_str_eq(cf->listen_dsn, "");
	cr_assert_eq(cf->nentrypoints, 1);
	ep = &cf->entrypoints[0];
	cr_expect_str_eq(ep->name, "e");
	cr_expect_eq(ep->line, 1);
	cr_expect_eq(ep->kind, CONF_HANDLER_BUILTIN);
	cr_expect_eq(ep->builtin, CONF_BUILTIN_NOOP);
	cr_expect_null(ep->argv);
	cr_expect_eq(ep->argc, 0);
	cr_expect_str_eq(ep->command, "");
	cr_expect_str_eq(ep->module, "");
	cr_expect_str_eq(ep->function, "");
	cr_expect_eq(ep->sleep_ms, 1000);
	cr_expect_eq(ep->timeout_ms, 0);
	cr_expect_eq(ep->kill_grace_ms, 5000);
	cr_expect_eq(ep->max_attempts, 5);
	cr_expect_eq(ep->on_failure, CONF_ON_FAILURE_DELETE);
	cr_expect_eq(ep->retry_delay_ms, 1000);
	cr_expect(ep->retry_backoff == 2.0);
	cr_expect_eq(ep->retry_max_delay_ms, 300000);
	cr_expect_eq(ep->batch_size, 0);
	cr_expect_eq(conf_entrypoint_batch_size(cf, ep), 500);
	conf_free(cf);
}

Test(conf, full_file_sets_every_key)
{
	char *text = xasprintf("; a comment\n"
			       "# another comment\n"
			       "[pgq]\n"
			       "workers = 8\n"
			       "min_workers = 2\n"
			       "max_workers = 16\n"
			       "prefix = app_\n"
			       "schema = queue\n"
			       "batch_size = 50\n"
			       "poll_interval = 500ms\n"
			       "heartbeat_timeout = 1m\n"
			       "shutdown_timeout = 2m\n"
			       "fast_shutdown_timeout = 3s\n"
			       "pidfile = /run/pgq/pgq-master.pid\n"
			       "log_level = debug\n"
			       "log_target = file\n"
			       "log_file = /var/log/pgq.log\n"
			       "respawn_backoff = 250ms\n"
			       "respawn_backoff_max = 1h\n"
			       "crash_breaker_count = 0\n"
			       "crash_breaker_window = 2m\n"
			       "healthy_uptime = 0\n"
			       "\n"
			       "[database]\n"
			       "dsn = postgresql:///app?application_name=pgq\n"
			       "listen_dsn = host=/run/postgresql dbname=app\n"
			       "\n"
			       "[entrypoint send_email]\n"
			       "command = /bin/sh -c 'cat >/dev/null'\n"
			       "timeout = 30s\n"
			       "kill_grace = 2s\n"
			       "max_attempts = 0\n"
			       "on_failure = hold\n"
			       "retry_delay = 250ms\n"
			       "retry_backoff = 1.5\n"
			       "retry_max_delay = 10m\n"
			       "batch_size = 1\n"
			       "[entrypoint resize]\n"
			       "module = %s\n"
			       "function = resize_image\n"
			       "[entrypoint nap]\n"
			       "builtin = sleep\n"
			       "sleep = 250ms\n",
			       module_path);
	struct conf *cf = load_ok(text);
	const struct conf_entrypoint *ep;

	cr_expect_eq(cf->workers, 8);
	cr_expect_eq(cf->min_workers, 2);
	cr_expect_eq(cf->max_workers, 16);
	cr_expect_str_eq(cf->prefix, "app_");
	cr_expect_str_eq(cf->channel, "app_ch_pgqueuer");
	cr_expect_str_eq(cf->schema, "queue");
	cr_expect_eq(cf->batch_size, 50);
	cr_expect_eq(cf->poll_interval_ms, 500);
	cr_expect_eq(cf->heartbeat_timeout_ms, 60000);
	cr_expect_eq(cf->shutdown_timeout_ms, 120000);
	cr_expect_eq(cf->fast_shutdown_timeout_ms, 3000);
	cr_expect_str_eq(cf->pidfile, "/run/pgq/pgq-master.pid");
	cr_expect_eq(cf->log_level, LOG_LEVEL_DEBUG);
	cr_expect_eq(cf->log_target, LOG_TARGET_FILE);
	cr_expect_str_eq(cf->log_file, "/var/log/pgq.log");
	cr_expect_eq(cf->respawn_backoff_ms, 250);
	cr_expect_eq(cf->respawn_backoff_max_ms, 3600000);
	cr_expect_eq(cf->crash_breaker_count, 0);
	cr_expect_eq(cf->crash_breaker_window_ms, 120000);
	cr_expect_eq(cf->healthy_uptime_ms, 0);
	cr_expect_str_eq(cf->dsn, "postgresql:///app?application_name=pgq");
	cr_expect_str_eq(cf->listen_dsn, "host=/run/postgresql dbname=app");
	cr_assert_eq(cf->nentrypoints, 3);

	ep = conf_entrypoint_find(cf, "send_email");
	cr_assert_not_null(ep);
	cr_expect_eq(ep, &cf->entrypoints[0]);
	cr_expect_eq(ep->line, 28);
	cr_expect_eq(ep->kind, CONF_HANDLER_COMMAND);
	cr_expect_str_eq(ep->command, "/bin/sh -c 'cat >/dev/null'");
	cr_assert_eq(ep->argc, 3);
	cr_expect_str_eq(ep->argv[0], "/bin/sh");
	cr_expect_str_eq(ep->argv[1], "-c");
	cr_expect_str_eq(ep->argv[2], "cat >/dev/null");
	cr_expect_null(ep->argv[3]);
	cr_expect_eq(ep->timeout_ms, 30000);
	cr_expect_eq(ep->kill_grace_ms, 2000);
	cr_expect_eq(ep->max_attempts, 0);
	cr_expect_eq(ep->on_failure, CONF_ON_FAILURE_HOLD);
	cr_expect_eq(ep->retry_delay_ms, 250);
	cr_expect(ep->retry_backoff == 1.5);
	cr_expect_eq(ep->retry_max_delay_ms, 600000);
	cr_expect_eq(conf_entrypoint_batch_size(cf, ep), 1);

	ep = conf_entrypoint_find(cf, "resize");
	cr_assert_not_null(ep);
	cr_expect_eq(ep->line, 38);
	cr_expect_eq(ep->kind, CONF_HANDLER_MODULE);
	cr_expect_str_eq(ep->module, module_path);
	cr_expect_str_eq(ep->function, "resize_image");
	cr_expect_eq(conf_entrypoint_batch_size(cf, ep), 50);

	ep = conf_entrypoint_find(cf, "nap");
	cr_assert_not_null(ep);
	cr_expect_eq(ep->kind, CONF_HANDLER_BUILTIN);
	cr_expect_eq(ep->builtin, CONF_BUILTIN_SLEEP);
	cr_expect_eq(ep->sleep_ms, 250);
	cr_expect_null(conf_entrypoint_find(cf, "missing"));
	conf_free(cf);
	free(text);
}

/* One bad value per case, at a known line of a file otherwise valid. */
struct bad_value {
	const char *section; /* "pgq", "database" or "entrypoint" */
	const char *line;    /* the key = value line */
	const char *want;    /* "key: message" the error must start with */
};

static const struct bad_value bad_values[] = {
	{"pgq", "workers = 0", "workers: must be 1..1024, got \"0\""},
	{"pgq", "workers = 1025", "workers: must be 1..1024, got \"1025\""},
	{"pgq", "workers = four", "workers: must be 1..1024, got \"four\""},
	{"pgq", "workers = 4.5", "workers: must be 1..1024"},
	{"pgq", "min_workers = -1", "min_workers: must be 0..1024"},
	{"pgq", "max_workers = 0", "max_workers: must be 1..1024"},
	{"pgq", "channel = 9lives", "channel: must be an identifier"},
	{"pgq", "channel =", "channel: must be an identifier"},
	{"pgq", "channel = a-b", "channel: must be an identifier"},
	{"pgq", "prefix = abcdefghijklmnopqrstuvwxy",
	 "prefix: must be empty or an identifier"},
	{"pgq", "prefix = my-app", "prefix: must be empty or an identifier"},
	{"pgq", "schema = a.b", "schema: must be empty or an identifier"},
	{"pgq", "batch_size = 0", "batch_size: must be 1..10000"},
	{"pgq", "batch_size = 10001", "batch_size: must be 1..10000"},
	{"pgq", "batch_window = 2h", "batch_window: must be at most 1h"},
	{"pgq", "batch_window = soon", "batch_window: must be a duration"},
	{"pgq", "poll_interval = 50ms",
	 "poll_interval: must be at least 100ms, got \"50ms\""},
	{"pgq", "poll_interval = fast", "poll_interval: must be a duration"},
	{"pgq", "heartbeat_timeout = 500ms",
	 "heartbeat_timeout: must be at least 1s"},
	{"pgq", "shutdown_timeout = -1s", "shutdown_timeout: must be a dura"},
	{"pgq", "fast_shutdown_timeout = 1e3",
	 "fast_shutdown_timeout: must be a duration"},
	{"pgq", "pidfile = run/pgq.pid", "pidfile: must be an absolute path"},
	{"pgq", "log_level = verbose",
	 "log_level: must be one of error, warn, info, debug, got "
	 "\"verbose\""},
	{"pgq", "log_level = INFO", "log_level: must be one of"},
	{"pgq", "log_target = journal",
	 "log_target: must be one of stderr, file, syslog"},
	{"pgq", "log_file = pgq.log", "log_file: must be an absolute path"},
	{"pgq", "respawn_backoff = 0",
	 "respawn_backoff: must be at least 10ms"},
	{"pgq", "respawn_backoff_max = 400d",
	 "respawn_backoff_max: must be at most 365d"},
	{"pgq", "crash_breaker_count = many",
	 "crash_breaker_count: must be 0..1000000"},
	{"pgq", "crash_breaker_window = 10ms",
	 "crash_breaker_window: must be at least 1s"},
	{"pgq", "healthy_uptime = 0x10", "healthy_uptime: must be a duration"},
	{"pgq", "max_jobs_per_worker = -1",
	 "max_jobs_per_worker: must be 0..1000000000"},
	{"pgq", "max_jobs_jitter = some",
	 "max_jobs_jitter: must be 0..1000000000"},
	{"pgq", "max_worker_rss = 2T", "max_worker_rss: must be a size"},
	{"pgq", "max_worker_rss = -1M", "max_worker_rss: must be a size"},
	{"pgq", "max_worker_rss = 2048G", "max_worker_rss: must be a size"},
	{"database", "dsn = host=x port", "dsn: invalid connection string"},
	{"database", "dsn = nosuchoption=1", "dsn: invalid connection string"},
	{"database", "listen_dsn = postgresql://[::1",
	 "listen_dsn: invalid connection string"},
	{"entrypoint", "timeout = soon", "timeout: must be a duration"},
	{"entrypoint", "timeout = 5 minutes", "timeout: must be a duration"},
	{"entrypoint", "kill_grace = 1y", "kill_grace: must be a duration"},
	{"entrypoint", "max_attempts = 1000001",
	 "max_attempts: must be 0..1000000"},
	{"entrypoint", "max_attempts = -1", "max_attempts: must be 0..1000000"},
	{"entrypoint", "on_failure = retry",
	 "on_failure: must be one of delete, hold, got \"retry\""},
	{"entrypoint", "retry_delay = -1", "retry_delay: must be a duration"},
	{"entrypoint", "retry_backoff = 0.5",
	 "retry_backoff: must be a number from 1 to 100"},
	{"entrypoint", "retry_backoff = 1e2",
	 "retry_backoff: must be a number"},
	{"entrypoint", "retry_backoff = nan",
	 "retry_backoff: must be a number"},
	{"entrypoint", "retry_backoff = 101",
	 "retry_backoff: must be a number"},
	{"entrypoint", "retry_max_delay = later",
	 "retry_max_delay: must be a duration"},
	{"entrypoint", "batch_size = 0", "batch_size: must be 1..10000"},
	{"entrypoint", "sleep = 1s",
	 "sleep: only applies with builtin = sleep"},
	{"entrypoint", "sleep = 1 s",
	 "sleep: only applies with builtin = sleep"},
	{"entrypoint", "retry_jitter = 1.5",
	 "retry_jitter: must be a number from 0 to 1"},
	{"entrypoint", "retry_jitter = -0.1", "retry_jitter: must be a number"},
	{"entrypoint", "cancel = kill",
	 "cancel: must be one of replace, flag, got \"kill\""},
	{"entrypoint", "cancel = flag", "cancel: only applies with module"},
	{"entrypoint", "rlimit_as = lots", "rlimit_as: must be a size"},
	{"entrypoint", "rlimit_as = 1G",
	 "rlimit_as: only applies with command"},
	{"entrypoint", "rlimit_cpu = forever",
	 "rlimit_cpu: must be a duration"},
	{"entrypoint", "rlimit_cpu = 10s",
	 "rlimit_cpu: only applies with command"},
	{"entrypoint", "rlimit_nofile = 2000000",
	 "rlimit_nofile: must be 0..1048576"},
	{"entrypoint", "rlimit_nofile = 64",
	 "rlimit_nofile: only applies with command"},
	{"entrypoint", "user = no_such_user_pgq", "user: no such user"},
	{"entrypoint", "user = 4000000000", "user: no such user"},
	{"entrypoint", "user = nobody", "user: only applies with command"},
	{"entrypoint", "group = no_such_group_pgq", "group: no such group"},
	{"entrypoint", "group = root", "group: only applies with command"},
	{"entrypoint", "pass_env = 1BAD",
	 "pass_env: must be environment variable names"},
	{"entrypoint", "pass_env = LANG A-B",
	 "pass_env: must be environment variable names"},
	{"entrypoint", "pass_env = HOME",
	 "pass_env: only applies with command"},
	{"entrypoint", "concurrency_limit = -1",
	 "concurrency_limit: must be 0..1000000"},
	{"entrypoint", "concurrency_limit = two",
	 "concurrency_limit: must be 0..1000000"},
	{"entrypoint", "requests_per_second = 0",
	 "requests_per_second: must be greater than 0"},
	{"entrypoint", "requests_per_second = -5",
	 "requests_per_second: must be a number"},
	{"entrypoint", "requests_per_second = 10/s",
	 "requests_per_second: must be a number"},
	{"entrypoint", "requests_per_second = 2000000",
	 "requests_per_second: must be a number from 0 to 1000000"},
	{"entrypoint", "burst = 0", "burst: must be 1..1000000"},
	{"entrypoint", "burst = 5",
	 "burst: only applies with requests_per_second"},
	{"pgq", "user = no_such_user_pgq", "user: no such user"},
	{"pgq", "group = root", "group: only applies with user"},
	{"pgq", "allow_root = maybe",
	 "allow_root: must be yes or no, got \"maybe\""},
	{"pgq", "allow_root =", "allow_root: must be yes or no"},
	{"entrypoint", "max_payload = lots", "max_payload: must be a size"},
	{"entrypoint", "max_payload = -1", "max_payload: must be a size"},
	{"entrypoint", "max_payload = 2T", "max_payload: must be a size"},
	{"entrypoint", "max_payload = 1025G", "max_payload: must be a size"},
};

Test(conf, privilege_and_payload_keys_load_with_their_values)
{
	struct conf *cf = load_ok("[pgq]\nuser = nobody\ngroup = 0\n"
				  "allow_root = Yes\n"
				  "[entrypoint e]\nbuiltin = noop\n"
				  "max_payload = 64k\n"
				  "[entrypoint f]\nbuiltin = noop\n");

	cr_expect_str_eq(cf->user, "nobody");
	cr_expect_str_eq(cf->group, "0");
	cr_expect(cf->allow_root);
	cr_expect_eq(cf->entrypoints[0].max_payload, 65536);
	cr_expect_eq(cf->entrypoints[1].max_payload, 0);
	cr_expect_eq(conf_key_apply("pgq", "user"), CONF_APPLY_RESTART);
	cr_expect_eq(conf_key_apply("pgq", "allow_root"), CONF_APPLY_RESTART);
	conf_free(cf);
	cf = load_ok(MINIMAL);
	cr_expect(!cf->allow_root);
	cr_expect_str_eq(cf->user, "");
	conf_free(cf);
}

Test(conf, every_bad_value_is_reported_at_its_line)
{
	for (size_t i = 0; i < PGQ_NELEM(bad_values); i++) {
		const struct bad_value *b = &bad_values[i];
		bool pgq = strcmp(b->section, "pgq") == 0;
		bool db = strcmp(b->section, "database") == 0;
		bool ep = strcmp(b->section, "entrypoint") == 0;
		char *text =
			xasprintf("[pgq]\n"
				  "%s\n"
				  "[database]\n"
				  "%s\n"
				  "[entrypoint e]\n"
				  "builtin = noop\n"
				  "%s\n",
				  pgq ? b->line : "; -", db ? b->line : "; -",
				  ep ? b->line : "; -");

		expect_only_error(text, pgq ? 2 : db ? 4 : 7, b->want);
		free(text);
	}
}

Test(conf, job_control_keys_load_with_their_values)
{
	struct conf *cf = load_ok("[pgq]\n"
				  "max_jobs_per_worker = 500\n"
				  "max_jobs_jitter = 50\n"
				  "max_worker_rss = 256M\n"
				  "[entrypoint run]\n"
				  "command = /bin/cat\n"
				  "retry_jitter = 0\n"
				  "rlimit_as = 1G\n"
				  "rlimit_cpu = 1500ms\n"
				  "rlimit_nofile = 64\n"
				  "user = nobody\n"
				  "group = 0\n"
				  "pass_env = LC_ALL  http_proxy\n"
				  "[entrypoint plain]\n"
				  "command = /bin/cat\n");
	const struct conf_entrypoint *ep = conf_entrypoint_find(cf, "run");

	cr_expect_eq(cf->max_jobs_per_worker, 500);
	cr_expect_eq(cf->max_jobs_jitter, 50);
	cr_expect_eq(cf->max_worker_rss, 256ULL << 20);
	cr_assert_not_null(ep);
	cr_expect_eq(ep->retry_jitter, 0.0);
	cr_expect_eq(ep->rlimit_as, 1ULL << 30);
	cr_expect_eq(ep->rlimit_cpu_ms, 1500);
	cr_expect_eq(ep->rlimit_nofile, 64);
	cr_expect_str_eq(ep->user, "nobody");
	cr_expect_str_eq(ep->group, "0");
	cr_expect_str_eq(ep->pass_env, "LC_ALL  http_proxy");
	ep = conf_entrypoint_find(cf, "plain");
	cr_assert_not_null(ep);
	cr_expect_eq(ep->retry_jitter, 0.1);
	cr_expect_eq(ep->cancel, CONF_CANCEL_REPLACE);
	cr_expect_eq(ep->rlimit_as, 0);
	cr_expect_str_eq(ep->user, "");
	cr_expect_str_eq(ep->pass_env, "");
	conf_free(cf);
}

Test(conf, connection_string_errors_never_echo_the_value)
{
	struct conf_errors e;

	load_bad("[database]\ndsn = host=x password='sec ret\n" MINIMAL, &e);
	cr_assert_eq(e.n, 1);
	cr_expect(has_error(&e, 2, "dsn: invalid connection string"));
	cr_expect_null(strstr(e.v[0].text, "sec"), "%s", e.v[0].text);
	cr_expect_null(strstr(e.v[0].text, "got"), "%s", e.v[0].text);
	conf_errors_clear(&e);
}

Test(conf, durations_take_units)
{
	static const struct {
		const char *text;
		uint64_t ms;
	} cases[] = {
		{"0", 0},	  {"500ms", 500},  {"30s", 30000},
		{"30", 30000},	  {"5m", 300000},  {"2h", 7200000},
		{"1d", 86400000}, {"1.5s", 1500},  {"0.25m", 15000},
		{"750us", 1},	  {"250 ms", 250}, {"365d", 31536000000ULL},
	};

	for (size_t i = 0; i < PGQ_NELEM(cases); i++) {
		char *text = xasprintf(MINIMAL "timeout = %s\n", cases[i].text);
		struct conf *cf = load_ok(text);

		cr_expect_eq(cf->entrypoints[0].timeout_ms, cases[i].ms,
			     "%s: %llu", cases[i].text,
			     (unsigned long long)cf->entrypoints[0].timeout_ms);
		conf_free(cf);
		free(text);
	}
}

Test(conf, several_errors_are_all_reported_in_line_order)
{
	struct conf_errors e;
	char *all;

	load_bad("[pgq]\n"	       /* 1 */
		 "workers = 0\n"       /* 2 */
		 "batch_size = lots\n" /* 3 */
		 "\n"		       /* 4 */
		 "[database]\n"	       /* 5 */
		 "dsn = port=\n"       /* 6 */
		 "[entrypoint a]\n"    /* 7 */
		 "command = bin/run\n" /* 8 */
		 "timeout = 3 days\n"  /* 9 */
		 "[entrypoint b]\n"    /* 10 */
		 "on_failure = keep\n" /* 11 */
		 "[wrong]\n"	       /* 12 */
		 "builtin = noop\n",   /* 13: in the bad section */
		 &e);
	all = conf_errors_format(&e);
	cr_expect_eq(e.n, 7, "%s", all);
	cr_expect(has_error(&e, 2, "workers: must be 1..1024"), "%s", all);
	cr_expect(has_error(&e, 3, "batch_size: must be"), "%s", all);
	cr_expect(has_error(&e, 8, "command: program must be an absolute"),
		  "%s", all);
	cr_expect(has_error(&e, 9, "timeout: must be a duration"), "%s", all);
	cr_expect(has_error(&e, 10, "[entrypoint b]: no handler"), "%s", all);
	cr_expect(has_error(&e, 11, "on_failure: must be one of"), "%s", all);
	cr_expect(has_error(&e, 12, "unknown section [wrong]"), "%s", all);
	for (size_t i = 1; i < e.n; i++)
		cr_expect_leq(e.v[i - 1].line, e.v[i].line, "%s", all);
	free(all);
	conf_errors_clear(&e);
}

Test(conf, dsn_without_value_is_fine_and_port_needs_one)
{
	struct conf *cf = load_ok("[database]\ndsn =\nlisten_dsn =\n" MINIMAL);

	cr_expect_str_eq(cf->dsn, "");
	conf_free(cf);
}

struct bad_file {
	const char *text;
	unsigned line;
	const char *want;
};

static const struct bad_file structure_cases[] = {
	/* unknown keys and sections, with a suggestion when one is near */
	{"[pgq]\nwrokers = 3\n" MINIMAL, 2,
	 "wrokers: unknown key in [pgq]; did you mean \"workers\"?"},
	{"[pgq]\ncolour = blue\n" MINIMAL, 2, "colour: unknown key in [pgq]"},
	{"[pgq]\ndsn = x\n" MINIMAL, 2,
	 "dsn: unknown key in [pgq]; it belongs in [database]"},
	{"[database]\ntimeout = 1s\n" MINIMAL, 2,
	 "timeout: unknown key in [database]; it belongs in [entrypoint "
	 "NAME]"},
	{MINIMAL "Timeout = 1s\n", 3,
	 "Timeout: unknown key in [entrypoint]; did you mean \"timeout\"?"},
	{"[pqg]\n" MINIMAL, 1, "unknown section [pqg]; did you mean [pgq]?"},
	{"[PGQ]\n" MINIMAL, 1, "unknown section [PGQ]; did you mean [pgq]?"},
	{"[entrypoints x]\nbuiltin = noop\n" MINIMAL, 1,
	 "unknown section [entrypoints]; did you mean [entrypoint]?"},
	{"[options]\n" MINIMAL, 1,
	 "unknown section [options]; sections are [pgq], [database], "
	 "[entrypoint NAME] and [schedule NAME]"},
	/* duplicates */
	{"[pgq]\nworkers = 2\nworkers = 3\n" MINIMAL, 3,
	 "workers: duplicate key, first set on line 2"},
	{MINIMAL "timeout = 1s\n\ntimeout = 2s\n", 5,
	 "timeout: duplicate key, first set on line 3"},
	{"[pgq]\n[database]\n[pgq]\n" MINIMAL, 3,
	 "duplicate section [pgq], first on line 1"},
	{MINIMAL "[entrypoint e]\nbuiltin = echo\n", 3,
	 "duplicate section [entrypoint e], first on line 1"},
	/* section headers */
	{"[pgq\n" MINIMAL, 1, "syntax error: section header without \"]\""},
	{"[pgq] workers = 2\n" MINIMAL, 1,
	 "syntax error: text after the section header"},
	{"[pgq main]\n" MINIMAL, 1, "section [pgq] takes no name"},
	{"[entrypoint]\nbuiltin = noop\n" MINIMAL, 1,
	 "[entrypoint NAME]: NAME must be 1..63 bytes"},
	{"[entrypoint a b]\nbuiltin = noop\n" MINIMAL, 1,
	 "[entrypoint NAME]: NAME must be 1..63 bytes without spaces"},
	{"[entrypoint "
	 "a234567890123456789012345678901234567890123456789012345678901234]\n"
	 "builtin = noop\n" MINIMAL,
	 1, "[entrypoint NAME]: NAME must be 1..63 bytes"},
	/* lines that are neither */
	{"workers = 2\n" MINIMAL, 1, "workers: key before the first [section]"},
	{MINIMAL "just words\n", 3,
	 "syntax error: expected \"key = value\" or \"[section]\", got "
	 "\"just words\""},
	{MINIMAL "= 5\n", 3, "syntax error: no key name before \"=\""},
	{MINIMAL "timeout ; = 5\n", 3, "syntax error: expected"},
	/* handlers */
	{"[entrypoint e]\ntimeout = 1s\n", 1,
	 "[entrypoint e]: no handler; set one of command, module or builtin"},
	{"[entrypoint e]\ncommand = /bin/cat\nbuiltin = noop\n", 3,
	 "builtin: one handler per entrypoint: command is already set on "
	 "line 2"},
	{"[entrypoint e]\nbuiltin = nope\n", 2,
	 "builtin: must be one of noop, sleep, fail, echo"},
	{"[entrypoint e]\ncommand = cat -n\n", 2,
	 "command: program must be an absolute path, got \"cat -n\"; did "
	 "you mean /"},
	{"[entrypoint e]\ncommand = ./run.sh\n", 2,
	 "command: program must be an absolute path, got \"./run.sh\""},
	{"[entrypoint e]\ncommand = /nonexistent/prog --x\n", 2,
	 "command: /nonexistent/prog: No such file or directory"},
	{"[entrypoint e]\ncommand = /tmp\n", 2,
	 "command: /tmp: not a regular file"},
	{"[entrypoint e]\ncommand = /bin/sh -c 'oops\n", 2,
	 "command: unterminated single quote"},
	{"[entrypoint e]\ncommand = \"\"\n", 2,
	 "command: program must be an absolute path"},
	{"[entrypoint e]\ncommand =\n", 2, "command: empty command"},
	{"[entrypoint e]\nmodule = /nonexistent/h.so\nfunction = f\n", 2,
	 "module: /nonexistent/h.so: No such file or directory"},
	{"[entrypoint e]\nmodule = h.so\nfunction = f\n", 2,
	 "module: must be an absolute path"},
	{"[entrypoint e]\nbuiltin = noop\nfunction = f\n", 3,
	 "function: only applies with module"},
	/* whole-file */
	{"[pgq]\nworkers = 2\n", 0,
	 "no [entrypoint NAME] section; at least one is required"},
	{"", 0, "no [entrypoint NAME] section"},
	/* cross-key rules */
	{"[pgq]\nworkers = 100\n" MINIMAL, 2,
	 "workers: workers must be between min_workers and max_workers, "
	 "got workers = 100 with 1..64"},
	{"[pgq]\nmin_workers = 8\n" MINIMAL, 2,
	 "min_workers: workers must be between min_workers and "
	 "max_workers, got workers = 4 with 8..64"},
	{"[pgq]\nmax_workers = 2\n" MINIMAL, 2,
	 "max_workers: workers must be between"},
	{"[pgq]\nworkers = 3\nmin_workers = 5\nmax_workers = 4\n" MINIMAL, 3,
	 "min_workers: must not exceed max_workers, got 5 > 4"},
	{"[pgq]\nrespawn_backoff = 1m\nrespawn_backoff_max = 10s\n" MINIMAL, 2,
	 "respawn_backoff: must not exceed respawn_backoff_max, got 1m > "
	 "10s"},
	{"[pgq]\nlog_target = file\n" MINIMAL, 2,
	 "log_target: log_target = file needs log_file"},
	{MINIMAL "retry_delay = 10m\n", 3,
	 "retry_delay: must not exceed retry_max_delay, got 10m > 5m"},
};

Test(conf, structure_errors_name_their_line)
{
	for (size_t i = 0; i < PGQ_NELEM(structure_cases); i++)
		expect_only_error(structure_cases[i].text,
				  structure_cases[i].line,
				  structure_cases[i].want);
}

Test(conf, module_needs_function_and_must_exist)
{
	char *text = xasprintf("[entrypoint e]\nmodule = %s\n", module_path);

	expect_only_error(
		text, 2,
		"module: needs function (the name of the handler function)");
	free(text);
	text = xasprintf("[entrypoint e]\nmodule = %s\nfunction = 2x\n",
			 module_path);
	expect_only_error(text, 3, "function: must be a C identifier");
	free(text);
}

Test(conf, command_must_be_executable)
{
	char noexec[200], *text;
	FILE *fp;

	snprintf(noexec, sizeof(noexec), "%s/noexec", dir);
	fp = fopen(noexec, "w");
	cr_assert_not_null(fp);
	fputs("#!/bin/sh\n", fp);
	fclose(fp);
	cr_assert_eq(chmod(noexec, 0644), 0);
	text = xasprintf("[entrypoint e]\ncommand = %s arg\n", noexec);
	expect_only_error(text, 2, "command: ");
	free(text);
	cr_assert_eq(chmod(noexec, 0755), 0);
	text = xasprintf("[entrypoint e]\ncommand = %s arg\n", noexec);
	conf_free(load_ok(text));
	free(text);
}

/* A key line of exactly n bytes: "dsn = application_name=xxx...". */
static char *
line_of(size_t n)
{
	const char *head = "dsn = application_name=";
	size_t h = strlen(head);
	char *s = xmalloc(n + 1);

	cr_assert_gt(n, h);
	memcpy(s, head, h);
	memset(s + h, 'x', n - h);
	s[n] = '\0';
	return s;
}

Test(conf, value_at_exactly_the_line_limit_loads_whole)
{
	char *l = line_of(CONF_LINE_MAX);
	char *text = xasprintf("[database]\n%s\n" MINIMAL, l);
	struct conf *cf = load_ok(text);

	cr_expect_eq(strlen(cf->dsn), CONF_LINE_MAX - strlen("dsn = "));
	cr_expect_str_eq(cf->dsn, l + strlen("dsn = "));
	conf_free(cf);
	free(text);
	/* The same with CRLF: the CR is part of the line ending. */
	text = xasprintf("[database]\r\n%s\r\n[entrypoint e]\r\nbuiltin = "
			 "noop\r\n",
			 l);
	cf = load_ok(text);
	cr_expect_str_eq(cf->dsn, l + strlen("dsn = "));
	conf_free(cf);
	free(text);
	free(l);
}

Test(conf, line_over_the_limit_is_an_error_at_its_line)
{
	char *l = line_of(CONF_LINE_MAX + 1);
	char *text, *want, *filler = xstrdup("");
	struct conf_errors e;

	/* on line 1, before any section */
	text = xasprintf("%s\n" MINIMAL, l);
	expect_only_error(
		text, 1,
		"line too long: 199 bytes, limit 198; split the value with a "
		"backslash at the end of the line");
	free(text);

	/* on line 57, inside a section */
	for (int i = 0; i < 53; i++) {
		char *f = xasprintf("%s; filler %d\n", filler, i);

		free(filler);
		filler = f;
	}
	text = xasprintf(MINIMAL "%s[database]\n%s\n", filler, l);
	load_bad(text, &e);
	want = conf_errors_format(&e);
	cr_expect_eq(e.n, 1, "%s", want);
	cr_expect(has_error(&e, 57, "line too long: 199 bytes"), "%s", want);
	free(want);
	conf_errors_clear(&e);
	free(text);
	free(l);

	/* far over inih's buffer: still one error, nothing leaks into the
	 * next line */
	l = line_of(1000);
	text = xasprintf(MINIMAL "%s\ntimeout = 1s\n", l);
	expect_only_error(text, 3, "line too long: 1000 bytes");
	free(text);
	free(l);
	free(filler);
}

Test(conf, long_comment_lines_are_fine)
{
	char *text = xasprintf(";%0300d\n" MINIMAL "#%0300d\n", 0, 0);

	conf_free(load_ok(text));
	free(text);
}

Test(conf, inline_comment_needs_whitespace_before_semicolon)
{
	struct conf *cf =
		load_ok("[database]\n"
			"dsn = host=x ; the server\n"
			"listen_dsn = host=a;b\n"
			"[entrypoint e]\n"
			"command = /bin/sh -c 'echo a;echo b' ; two\n");

	cr_expect_str_eq(cf->dsn, "host=x");
	cr_expect_str_eq(cf->listen_dsn, "host=a;b");
	cr_assert_eq(cf->entrypoints[0].argc, 3);
	cr_expect_str_eq(cf->entrypoints[0].argv[2], "echo a;echo b");
	cr_expect_str_eq(cf->entrypoints[0].command,
			 "/bin/sh -c 'echo a;echo b'");
	conf_free(cf);
	/* a semicolon right after the value is part of it */
	expect_only_error(MINIMAL "timeout = 5s;\n", 3,
			  "timeout: must be a duration like 500ms, 30s or 5m "
			  "(units us, ms, "
			  "s, m, h, d; none = seconds), got \"5s;\"");
}

Test(conf, comment_that_cuts_a_quoted_value_is_reported)
{
	expect_only_error(
		"[entrypoint e]\n"
		"command = /bin/sh -c 'echo a ; echo b'\n",
		2,
		"command: unterminated single quote, got \"/bin/sh -c 'echo "
		"a\"; "
		"note: \" ;\" starts a comment, removed from the value");
	expect_only_error(
		"[database]\ndsn = password='a ;b'\n" MINIMAL, 2,
		"dsn: invalid connection string: unterminated quoted string");
}

Test(conf, hash_is_a_comment_only_at_line_start)
{
	struct conf *cf;

	expect_only_error(MINIMAL "timeout = 5s # five seconds\n", 3,
			  "timeout: must be a duration");
	cf = load_ok("  # indented comment\n\t; another\n" MINIMAL);
	conf_free(cf);
}

Test(conf, indented_keys_and_spacing_are_accepted)
{
	struct conf *cf = load_ok("  [pgq]  \n"
				  "\tworkers=2\n"
				  "    batch_size   =   7   \n"
				  "  [ entrypoint   e ]\n"
				  "    builtin : noop\n");

	cr_expect_eq(cf->workers, 2);
	cr_expect_eq(cf->batch_size, 7);
	cr_expect_str_eq(cf->entrypoints[0].name, "e");
	cr_expect_eq(cf->entrypoints[0].line, 4);
	conf_free(cf);
}

Test(conf, empty_values_of_typed_keys_are_errors)
{
	expect_only_error("[pgq]\nworkers =\n" MINIMAL, 2,
			  "workers: must be 1..1024, got \"\"");
	expect_only_error(MINIMAL "timeout =\n", 3,
			  "timeout: must be a duration");
	expect_only_error(MINIMAL "on_failure =\n", 3,
			  "on_failure: must be one of delete, hold");
}

Test(conf, backslash_continues_a_value_on_the_next_line)
{
	struct conf *cf = load_ok("[database]\n"
				  "dsn = host=/run/postgresql \\\n"
				  "      port=5433 \\\n"
				  "\tdbname=app ; comment\n"
				  "listen_dsn = \\\n"
				  "   host=a\n"
				  "[entrypoint e]\n"
				  "command = /bin/echo one\\\n"
				  "  two ; c\n"
				  "timeout = 2s\n");
	const struct conf_entrypoint *ep = &cf->entrypoints[0];

	cr_expect_str_eq(cf->dsn, "host=/run/postgresql port=5433 dbname=app");
	cr_expect_str_eq(cf->listen_dsn, "host=a");
	cr_assert_eq(ep->argc, 3);
	cr_expect_str_eq(ep->argv[1], "one");
	cr_expect_str_eq(ep->argv[2], "two");
	cr_expect_eq(ep->timeout_ms, 2000);
	conf_free(cf);
}

Test(conf, continued_value_longer_than_a_line_loads_whole)
{
	char part[150];
	char *text, *want;
	struct conf *cf;

	memset(part, 'y', sizeof(part) - 1);
	part[sizeof(part) - 1] = '\0';
	text = xasprintf("[database]\n"
			 "dsn = application_name=%s \\\n"
			 "  options=%s \\\n"
			 "  host=%s\n" MINIMAL,
			 part, part, part);
	cf = load_ok(text);
	want = xasprintf("application_name=%s options=%s host=%s", part, part,
			 part);
	cr_expect_str_eq(cf->dsn, want);
	cr_expect_gt(strlen(cf->dsn), 400);
	conf_free(cf);
	free(want);
	free(text);
}

Test(conf, continuation_errors_name_their_line)
{
	char *l = line_of(CONF_LINE_MAX + 1);
	char *text;

	expect_only_error(MINIMAL "timeout = 1 \\\n", 3,
			  "backslash at the end of the last line");
	/* the continued value is not checked again after its line failed */
	text = xasprintf(MINIMAL "timeout = 1 \\\n%s\n", l);
	expect_only_error(text, 4, "line too long: 199 bytes");
	free(text);
	free(l);
	/* a key on the continued line is value text: asked for, and caught */
	expect_only_error(MINIMAL "timeout = 1s \\\nkill_grace = 1s\n", 3,
			  "timeout: must be a duration");
	/* a comment line ends the value */
	expect_only_error(MINIMAL "timeout = 1s \\\n; note\nx\n", 5,
			  "syntax error");
}

Test(conf, nul_bytes_and_bom)
{
	static const char with_nul[] = "[entrypoint e]\nbuiltin = noop\n"
				       "timeout = 1s\0 trailing\n";
	static const char with_bom[] =
		"\xef\xbb\xbf[pgq]\nworkers = 3\n" MINIMAL;
	struct conf_errors e = {0};
	struct conf *cf;

	cr_assert_eq(conf_load_buffer("mem.ini", with_nul, sizeof(with_nul) - 1,
				      &cf, &e),
		     -1);
	cr_assert_eq(e.n, 1);
	cr_expect_str_eq(e.v[0].text, "mem.ini:3: NUL byte in line");
	conf_errors_clear(&e);
	cr_assert_eq(conf_load_buffer("mem.ini", with_bom, sizeof(with_bom) - 1,
				      &cf, &e),
		     0);
	cr_expect_eq(cf->workers, 3);
	conf_free(cf);
}

Test(conf, missing_file_and_error_formatting)
{
	struct conf_errors e = {0};
	struct conf *cf;
	char *all, *buf = NULL;
	size_t len = 0;
	FILE *mem;

	cr_assert_eq(conf_load("/nonexistent/pgq.ini", &cf, &e), -1);
	cr_assert_null(cf);
	cr_assert_eq(e.n, 1);
	cr_expect_str_eq(
		e.v[0].text,
		"/nonexistent/pgq.ini: cannot open: No such file or directory");
	cr_assert_eq(conf_load(dir, &cf, &e), -1);
	cr_assert_eq(e.n, 2);
	cr_expect_not_null(strstr(e.v[1].text, "cannot read: Is a directory"));
	all = conf_errors_format(&e);
	mem = open_memstream(&buf, &len);
	conf_errors_print(&e, mem);
	fclose(mem);
	cr_expect_eq(strlen(buf), strlen(all) + 1);
	cr_expect_eq(strncmp(buf, all, strlen(all)), 0);
	free(buf);
	free(all);
	conf_errors_clear(&e);
	cr_expect_eq(e.n, 0);
	all = conf_errors_format(&e);
	cr_expect_str_eq(all, "");
	free(all);
	/* errs may be NULL: the caller only wants to know */
	write_ini("[pgq]\nworkers = 0\n");
	cr_expect_eq(conf_load(path, &cf, NULL), -1);
	conf_free(NULL);
}

Test(conf, file_over_one_mebibyte_is_refused)
{
	size_t n = (1u << 20) + 1;
	char *text = xmalloc(n + 1);

	memset(text, ';', n);
	text[n] = '\0';
	expect_only_error(text, 0, "file too large: limit 1048576 bytes");
	free(text);
}

Test(conf, quoted_values_in_errors_are_escaped_and_shortened)
{
	struct conf_errors e;
	char *text = xasprintf(MINIMAL "on_failure = \"q\"\\%0100d\n", 7);
	const char *t, *end;

	load_bad(text, &e);
	cr_assert_eq(e.n, 1);
	t = e.v[0].text;
	cr_expect_not_null(strstr(t, "got \"\\\"q\\\"\\\\0000"), "%s", t);
	end = t + strlen(t) - 5;
	cr_expect_str_eq(end, "0\"...", "%s", t);
	conf_errors_clear(&e);
	free(text);
	expect_only_error(
		MINIMAL "on_failure = a\tb\n", 3,
		"on_failure: must be one of delete, hold, got \"a\\x09b\"");
}

/* The command splitter */
struct split_case {
	const char *line;
	const char *argv[6]; /* NULL-terminated; argv[0] NULL = error */
	const char *why;
};

static const struct split_case split_cases[] = {
	{"/bin/echo", {"/bin/echo"}, NULL},
	{"  /bin/echo   a\tb  ", {"/bin/echo", "a", "b"}, NULL},
	{"/bin/echo 'a b' \"c d\"", {"/bin/echo", "a b", "c d"}, NULL},
	{"/bin/echo 'it'\\''s'", {"/bin/echo", "it's"}, NULL},
	{"/bin/echo \"say \\\"hi\\\" \\\\ \\n\"",
	 {"/bin/echo", "say \"hi\" \\ \\n"},
	 NULL},
	{"/bin/echo a\\ b c\\\\d", {"/bin/echo", "a b", "c\\d"}, NULL},
	{"/bin/echo '' \"\"", {"/bin/echo", "", ""}, NULL},
	{"/bin/echo $HOME `x` *", {"/bin/echo", "$HOME", "`x`", "*"}, NULL},
	{"/bin/echo pre'mid'\"post\"", {"/bin/echo", "premidpost"}, NULL},
	{"", {NULL}, "empty command"},
	{"   ", {NULL}, "empty command"},
	{"/bin/echo 'open", {NULL}, "unterminated single quote"},
	{"/bin/echo \"open", {NULL}, "unterminated double quote"},
	{"/bin/echo \"open\\\"", {NULL}, "unterminated double quote"},
	{"/bin/echo end\\", {NULL}, "backslash at the end"},
};

Test(conf, command_splitter_cases)
{
	for (size_t i = 0; i < PGQ_NELEM(split_cases); i++) {
		const struct split_case *c = &split_cases[i];
		char **argv = NULL;
		size_t argc = 0, n = 0;
		const char *why = NULL;
		int rc = conf_split_command(c->line, &argv, &argc, &why);

		if (c->argv[0] == NULL) {
			cr_expect_eq(rc, -1, "%s", c->line);
			cr_expect_str_eq(why ? why : "", c->why, "%s", c->line);
			continue;
		}
		cr_assert_eq(rc, 0, "%s: %s", c->line, why);
		while (c->argv[n] != NULL)
			n++;
		cr_expect_eq(argc, n, "%s", c->line);
		for (size_t j = 0; j < n && j < argc; j++)
			cr_expect_str_eq(argv[j], c->argv[j], "%s [%zu]",
					 c->line, j);
		cr_expect_null(argv[argc]);
		conf_argv_free(argv);
	}
}

/* The reload diff */
static struct conf *
load_text(const char *text)
{
	return load_ok(text);
}

static const struct conf_change *
find_change(const struct conf_diff *d, const char *section, const char *key)
{
	for (size_t i = 0; i < d->nchanges; i++)
		if (strcmp(d->changes[i].section, section) == 0 &&
		    (key == NULL ? d->changes[i].key == NULL
				 : d->changes[i].key != NULL &&
					   strcmp(d->changes[i].key, key) == 0))
			return &d->changes[i];
	return NULL;
}

#define RELOAD_BASE                                                            \
	"[pgq]\nworkers = 2\nprefix = a_\n[database]\ndsn = dbname=x\n"        \
	"[entrypoint keep]\nbuiltin = noop\n"                                  \
	"[entrypoint mail]\ncommand = /bin/cat\ntimeout = 5s\n"                \
	"[entrypoint old]\nbuiltin = echo\n"

Test(conf, identical_files_have_no_differences)
{
	struct conf *a = load_text(RELOAD_BASE), *b = load_text(RELOAD_BASE);
	struct conf_diff d;

	conf_diff(a, b, &d);
	cr_expect_eq(d.nchanges, 0);
	cr_expect_not(d.master_changed || d.workers_changed ||
		      d.restart_changed);
	cr_expect_not(conf_entrypoint_changed(a, b, "mail"));
	conf_diff_clear(&d);
	conf_free(a);
	conf_free(b);
}

Test(conf, reload_diff_reports_restart_keys_and_changed_entrypoints)
{
	struct conf *a = load_text(RELOAD_BASE);
	struct conf *b = load_text(
		"[pgq]\nworkers = 3\nprefix = b_\npoll_interval = 1s\n"
		"[database]\ndsn = dbname=y\n"
		"[entrypoint keep]\nbuiltin = noop\n"
		"[entrypoint mail]\ncommand = /bin/cat  \ntimeout = 6s\n"
		"[entrypoint new]\nbuiltin = fail\n");
	const struct conf_change *c;
	struct conf_diff d;

	conf_diff(a, b, &d);
	cr_expect(d.master_changed);
	cr_expect(d.workers_changed);
	cr_expect(d.restart_changed);

	c = find_change(&d, "pgq", "workers");
	cr_assert_not_null(c);
	cr_expect_eq(c->apply, CONF_APPLY_MASTER);
	cr_expect_str_eq(c->text, "[pgq] workers changed: applied");
	cr_expect_not_null(find_change(&d, "pgq", "poll_interval"));

	c = find_change(&d, "pgq", "prefix");
	cr_assert_not_null(c);
	cr_expect_eq(c->apply, CONF_APPLY_RESTART);
	cr_expect_str_eq(
		c->text,
		"[pgq] prefix changed: needs a restart, keeping old value");
	/* the default channel follows the prefix */
	c = find_change(&d, "pgq", "channel");
	cr_assert_not_null(c);
	cr_expect_eq(c->apply, CONF_APPLY_RESTART);
	c = find_change(&d, "database", "dsn");
	cr_assert_not_null(c);
	cr_expect_eq(c->apply, CONF_APPLY_RESTART);

	c = find_change(&d, "entrypoint mail", "timeout");
	cr_assert_not_null(c);
	cr_expect_eq(c->kind, CONF_CHANGE_VALUE);
	cr_expect_eq(c->apply, CONF_APPLY_WORKERS);
	cr_expect_str_eq(
		c->text,
		"[entrypoint mail] timeout changed: workers will be replaced");
	/* same argv, other spacing: not a change */
	cr_expect_null(find_change(&d, "entrypoint mail", "command"));

	c = find_change(&d, "entrypoint old", NULL);
	cr_assert_not_null(c);
	cr_expect_eq(c->kind, CONF_CHANGE_REMOVED);
	cr_expect_str_eq(c->text,
			 "[entrypoint old] removed: workers will be replaced");
	c = find_change(&d, "entrypoint new", NULL);
	cr_assert_not_null(c);
	cr_expect_eq(c->kind, CONF_CHANGE_ADDED);
	cr_expect_null(find_change(&d, "entrypoint keep", NULL));
	cr_expect_eq(d.nchanges, 8, "%zu changes", d.nchanges);

	cr_expect(conf_entrypoint_changed(a, b, "mail"));
	cr_expect(conf_entrypoint_changed(a, b, "old"));
	cr_expect(conf_entrypoint_changed(a, b, "new"));
	cr_expect_not(conf_entrypoint_changed(a, b, "keep"));
	cr_expect_not(conf_entrypoint_changed(a, b, "never"));
	conf_diff_clear(&d);

	/* After keeping the restart keys only HUP changes remain. */
	conf_keep_restart_keys(b, a);
	cr_expect_str_eq(b->prefix, "a_");
	cr_expect_str_eq(b->channel, "a_ch_pgqueuer");
	cr_expect_str_eq(b->dsn, "dbname=x");
	cr_expect_eq(b->workers, 3);
	conf_diff(a, b, &d);
	cr_expect_not(d.restart_changed);
	cr_expect(d.master_changed);
	cr_expect_eq(d.nchanges, 5);
	conf_diff_clear(&d);
	conf_free(a);
	conf_free(b);
}

Test(conf, worker_keys_and_handler_kind_changes_replace_workers)
{
	char *mod = xasprintf("[pgq]\nbatch_size = 20\n[entrypoint mail]\n"
			      "module = %s\nfunction = send\n",
			      module_path);
	struct conf *a = load_text("[entrypoint mail]\ncommand = /bin/cat\n");
	struct conf *b = load_text(mod);
	struct conf_diff d;

	conf_diff(a, b, &d);
	cr_expect(d.workers_changed);
	cr_expect_not(d.master_changed);
	cr_expect_not(d.restart_changed);
	cr_expect_eq(find_change(&d, "pgq", "batch_size")->apply,
		     CONF_APPLY_WORKERS);
	cr_expect_not_null(find_change(&d, "entrypoint mail", "command"));
	cr_expect_not_null(find_change(&d, "entrypoint mail", "module"));
	cr_expect_not_null(find_change(&d, "entrypoint mail", "function"));
	cr_expect(conf_entrypoint_changed(a, b, "mail"));
	conf_diff_clear(&d);
	conf_free(a);
	conf_free(b);
	free(mod);
}

Test(conf, key_apply_classes)
{
	cr_expect_eq(conf_key_apply("pgq", "workers"), CONF_APPLY_MASTER);
	cr_expect_eq(conf_key_apply("pgq", "prefix"), CONF_APPLY_RESTART);
	cr_expect_eq(conf_key_apply("pgq", "pidfile"), CONF_APPLY_RESTART);
	cr_expect_eq(conf_key_apply("pgq", "log_level"), CONF_APPLY_WORKERS);
	cr_expect_eq(conf_key_apply("database", "dsn"), CONF_APPLY_RESTART);
	cr_expect_eq(conf_key_apply("entrypoint", "timeout"),
		     CONF_APPLY_WORKERS);
	cr_expect_eq(conf_key_apply("pgq", "timeout"), -1);
	cr_expect_eq(conf_key_apply("nosuch", "workers"), -1);
}

static char *
read_all(const char *file)
{
	FILE *fp = fopen(file, "r");
	char *buf;
	long n;

	cr_assert_not_null(fp, "%s", file);
	cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	cr_assert_gt(n, 0, "%s is empty", file);
	rewind(fp);
	buf = xmalloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

Test(conf, example_file_loads)
{
	char *text = read_all(CONF_TOP_SRCDIR "/examples/pgq.ini");
	const char *from = "/usr/local/lib/pgq/handler_module.so";
	char *at = strstr(text, from), *local;
	struct conf *cf;
	const struct conf_entrypoint *ep;

	/* The module is built elsewhere; conf only needs a file there. */
	cr_assert_not_null(at, "examples/pgq.ini: module path changed");
	local = xasprintf("%.*s%s%s", (int)(at - text), text, module_path,
			  at + strlen(from));
	cf = load_ok(local);
	cr_expect_eq(cf->workers, 4);
	cr_assert_eq(cf->nentrypoints, 3);
	ep = conf_entrypoint_find(cf, "resize_image");
	cr_assert_not_null(ep);
	cr_expect_eq(ep->kind, CONF_HANDLER_COMMAND);
	ep = conf_entrypoint_find(cf, "send_email");
	cr_assert_not_null(ep);
	cr_expect_eq(ep->kind, CONF_HANDLER_MODULE);
	cr_expect_str_eq(ep->function, "example_handler");
	ep = conf_entrypoint_find(cf, "nap");
	cr_assert_not_null(ep);
	cr_expect_eq(ep->kind, CONF_HANDLER_BUILTIN);
	conf_free(cf);
	free(local);
	free(text);
}

/* A new key must reach the man page and the sample (STYLE.md). */
Test(conf, every_key_is_documented_and_in_the_sample)
{
	char *man = read_all(CONF_TOP_SRCDIR "/doc/pgq.ini.5");
	char *ini = read_all(CONF_TOP_SRCDIR "/examples/pgq.ini");

	for (size_t i = 0; i < conf_nkeys; i++) {
		const char *name = conf_keys[i].name;
		char *item = xasprintf(".It Ic %s Ns = Ns", name);
		char *line = xasprintf("\n%s =", name);
		char *commented = xasprintf("\n;%s =", name);

		cr_expect_not_null(strstr(man, item), "pgq.ini.5 lacks %s",
				   name);
		cr_expect(strstr(ini, line) || strstr(ini, commented),
			  "examples/pgq.ini lacks %s", name);
		free(item);
		free(line);
		free(commented);
	}
	free(man);
	free(ini);
}

/*
 * The value types (conf_types), one operation at a time: each type's good
 * values with what print gives back, its bad values with their whole
 * message, the round trip print -> parse, and equal and copy.
 */

/* A struct of any section kind: what conf_value_set parses into. */
union type_base {
	struct conf cf;
	struct conf_entrypoint ep;
	struct conf_schedule sc;
};

static const struct conf_key *
key_of(enum conf_section_kind kind, const char *name)
{
	const struct conf_key *k = conf_key_find(kind, name);

	cr_assert_not_null(k, "no key %s", name);
	return k;
}

/* b holds key k at its default (or empty), as before a file is read. */
static void
type_base_init(const struct conf_key *k, union type_base *b)
{
	struct conf_errors e = {0};
	struct conf_value v = {
		.key = k, .text = k->def, .file = "t.ini", .errs = &e};

	memset(b, 0, sizeof(*b));
	conf_types[k->type].init(k, b);
	if (k->def != NULL)
		cr_assert_eq(conf_value_set(&v, b), 0, "default of %s",
			     k->name);
	cr_assert_eq(e.n, 0);
}

/* Sets key k to text in b as line 3 of t.ini would. */
static int
type_set(const struct conf_key *k, const char *text, union type_base *b,
	 struct conf_errors *e)
{
	struct conf_value v = {
		.key = k, .text = text, .file = "t.ini", .line = 3, .errs = e};

	return conf_value_set(&v, b);
}

struct type_case {
	enum conf_type type; /* the type the case is for */
	enum conf_section_kind kind;
	const char *key;
	const char *text;
	/* good: what print gives back; bad: NULL */
	const char *printed;
	/* bad: the message, whole or (where libc or libpq word it) its
	 * start; good: NULL */
	const char *want;
};

#define GOOD(type, kind, key, text, printed)                                   \
	{                                                                      \
		CONF_T_##type, CONF_SECT_##kind, key, text, printed, NULL      \
	}
#define BAD(type, kind, key, text, want)                                       \
	{                                                                      \
		CONF_T_##type, CONF_SECT_##kind, key, text, NULL,              \
			"t.ini:3: " want                                       \
	}

static const struct type_case type_cases[] = {
	GOOD(UINT, PGQ, "workers", "4", "4"),
	GOOD(UINT, PGQ, "workers", " 7 ", "7"),
	GOOD(UINT, PGQ, "workers", "1024", "1024"),
	BAD(UINT, PGQ, "workers", "0", "workers: must be 1..1024, got \"0\""),
	BAD(UINT, PGQ, "workers", "1025",
	    "workers: must be 1..1024, got \"1025\""),
	BAD(UINT, PGQ, "workers", "four",
	    "workers: must be 1..1024, got \"four\""),
	BAD(UINT, PGQ, "workers", "-1", "workers: must be 1..1024, got \"-1\""),
	BAD(UINT, PGQ, "workers", "4294967297",
	    "workers: must be 1..1024, got \"4294967297\""),

	GOOD(INT, ENTRYPOINT, "max_attempts", "0", "0"),
	GOOD(INT, ENTRYPOINT, "max_attempts", "1000000", "1000000"),
	BAD(INT, ENTRYPOINT, "max_attempts", "1000001",
	    "max_attempts: must be 0..1000000, got \"1000001\""),
	BAD(INT, ENTRYPOINT, "max_attempts", "-1",
	    "max_attempts: must be 0..1000000, got \"-1\""),
	BAD(INT, ENTRYPOINT, "max_attempts", "2147483648",
	    "max_attempts: must be 0..1000000, got \"2147483648\""),

	GOOD(DURATION, PGQ, "poll_interval", "30s", "30s"),
	GOOD(DURATION, PGQ, "poll_interval", "100ms", "100ms"),
	GOOD(DURATION, PGQ, "poll_interval", "1.5m", "90s"),
	GOOD(DURATION, PGQ, "poll_interval", "1500ms", "1500ms"),
	GOOD(DURATION, PGQ, "poll_interval", "2h", "2h"),
	GOOD(DURATION, PGQ, "poll_interval", "365d", "365d"),
	GOOD(DURATION, PGQ, "poll_interval", "120", "2m"),
	GOOD(DURATION, ENTRYPOINT, "timeout", "0", "0"),
	BAD(DURATION, PGQ, "poll_interval", "50ms",
	    "poll_interval: must be at least 100ms, got \"50ms\""),
	BAD(DURATION, PGQ, "poll_interval", "366d",
	    "poll_interval: must be at most 365d, got \"366d\""),
	BAD(DURATION, PGQ, "poll_interval", "soon",
	    "poll_interval: must be a duration like 500ms, 30s or 5m (units "
	    "us, ms, s, m, h, d; none = seconds), got \"soon\""),
	BAD(DURATION, PGQ, "poll_interval", "1e3",
	    "poll_interval: must be a duration like 500ms"),
	BAD(DURATION, PGQ, "poll_interval", "-1s",
	    "poll_interval: must be a duration like 500ms"),

	GOOD(REAL, ENTRYPOINT, "retry_backoff", "2.0", "2.0"),
	GOOD(REAL, ENTRYPOINT, "retry_backoff", "1", "1.0"),
	GOOD(REAL, ENTRYPOINT, "retry_backoff", " 1.25 ", "1.25"),
	GOOD(REAL, ENTRYPOINT, "retry_backoff", "100", "100.0"),
	GOOD(REAL, ENTRYPOINT, "retry_jitter", "0.1", "0.1"),
	GOOD(REAL, ENTRYPOINT, "retry_jitter", ".5", "0.5"),
	GOOD(REAL, ENTRYPOINT, "retry_jitter", "0.3333333333333333",
	     "0.3333333333333333"),
	GOOD(REAL, ENTRYPOINT, "requests_per_second", "1000000", "1000000.0"),
	BAD(REAL, ENTRYPOINT, "retry_backoff", "0.5",
	    "retry_backoff: must be a number from 1 to 100, got \"0.5\""),
	BAD(REAL, ENTRYPOINT, "retry_backoff", "101",
	    "retry_backoff: must be a number from 1 to 100, got \"101\""),
	BAD(REAL, ENTRYPOINT, "retry_backoff", "1e2",
	    "retry_backoff: must be a number from 1 to 100, got \"1e2\""),
	BAD(REAL, ENTRYPOINT, "retry_backoff", "nan",
	    "retry_backoff: must be a number from 1 to 100, got \"nan\""),
	BAD(REAL, ENTRYPOINT, "retry_jitter", "-0.1",
	    "retry_jitter: must be a number from 0 to 1, got \"-0.1\""),

	GOOD(IDENT, PGQ, "prefix", "", ""),
	GOOD(IDENT, PGQ, "prefix", "app_", "app_"),
	GOOD(IDENT, PGQ, "channel", "_ch9", "_ch9"),
	BAD(IDENT, PGQ, "channel", "",
	    "channel: must be an identifier (a letter or _, then letters, "
	    "digits or _) of at most 63 bytes, got \"\""),
	BAD(IDENT, PGQ, "prefix", "my-app",
	    "prefix: must be empty or an identifier (a letter or _, then "
	    "letters, digits or _) of at most 24 bytes, got \"my-app\""),
	BAD(IDENT, PGQ, "prefix", "abcdefghijklmnopqrstuvwxy",
	    "prefix: must be empty or an identifier"),

	GOOD(PATH, PGQ, "pidfile", "", ""),
	GOOD(PATH, PGQ, "pidfile", "/run/pgq.pid", "/run/pgq.pid"),
	BAD(PATH, PGQ, "pidfile", "run/pgq.pid",
	    "pidfile: must be an absolute path, got \"run/pgq.pid\""),

	GOOD(DSN, DATABASE, "dsn", "", ""),
	GOOD(DSN, DATABASE, "dsn", "host=x dbname=y password=s",
	     "host=x dbname=y password=s"),
	GOOD(DSN, DATABASE, "listen_dsn", "postgresql://u:p@h/db",
	     "postgresql://u:p@h/db"),
	BAD(DSN, DATABASE, "dsn", "host=x password=s port",
	    "dsn: invalid connection string: "),
	BAD(DSN, DATABASE, "listen_dsn", "postgresql://u:p@[::1",
	    "listen_dsn: invalid connection string: "),

	GOOD(ENUM, PGQ, "log_level", "debug", "debug"),
	GOOD(ENUM, PGQ, "log_target", "syslog", "syslog"),
	GOOD(ENUM, ENTRYPOINT, "on_failure", "hold", "hold"),
	BAD(ENUM, PGQ, "log_level", "INFO",
	    "log_level: must be one of error, warn, info, debug, got \"INFO\""),
	BAD(ENUM, ENTRYPOINT, "builtin", "",
	    "builtin: must be one of noop, sleep, fail, echo, got \"\""),

	GOOD(COMMAND, ENTRYPOINT, "command", "/bin/sh", "/bin/sh"),
	GOOD(COMMAND, ENTRYPOINT, "command", "/bin/sh -c 'echo \"a b\"'",
	     "/bin/sh -c 'echo \"a b\"'"),
	BAD(COMMAND, ENTRYPOINT, "command", "sh -c x",
	    "command: program must be an absolute path, got \"sh -c x\""),
	BAD(COMMAND, ENTRYPOINT, "command", "/bin/sh 'x",
	    "command: unterminated single quote, got \"/bin/sh 'x\""),
	BAD(COMMAND, ENTRYPOINT, "command", "",
	    "command: empty command, got \"\""),
	BAD(COMMAND, ENTRYPOINT, "command", "/etc",
	    "command: /etc: not a regular file, got \"/etc\""),
	BAD(COMMAND, ENTRYPOINT, "command", "/nonexistent/pgq",
	    "command: /nonexistent/pgq: No such file or directory, got "
	    "\"/nonexistent/pgq\""),

	GOOD(MODULE, ENTRYPOINT, "module", "/etc/passwd", "/etc/passwd"),
	BAD(MODULE, ENTRYPOINT, "module", "handler.so",
	    "module: must be an absolute path, got \"handler.so\""),
	BAD(MODULE, ENTRYPOINT, "module", "/etc",
	    "module: /etc: not a regular file, got \"/etc\""),

	GOOD(SYMBOL, ENTRYPOINT, "function", "handle_job", "handle_job"),
	BAD(SYMBOL, ENTRYPOINT, "function", "9x",
	    "function: must be a C identifier, got \"9x\""),
	BAD(SYMBOL, ENTRYPOINT, "function", "a.b",
	    "function: must be a C identifier, got \"a.b\""),

	GOOD(NAME, SCHEDULE, "entrypoint", "send-mail", "send-mail"),
	BAD(NAME, SCHEDULE, "entrypoint", "a b",
	    "entrypoint: must be 1..63 bytes without spaces or control "
	    "characters, got \"a b\""),
	BAD(NAME, SCHEDULE, "entrypoint", "",
	    "entrypoint: must be 1..63 bytes"),

	GOOD(CRON, SCHEDULE, "cron", "@hourly", "@hourly"),
	GOOD(CRON, SCHEDULE, "cron", "0  3 * * MON", "0  3 * * MON"),
	BAD(CRON, SCHEDULE, "cron", "61 * * * *",
	    "cron: minute field: 61 is out of range 0..59, got "
	    "\"61 * * * *\""),
	BAD(CRON, SCHEDULE, "cron", "0 0 30 2 *",
	    "cron: never fires: no chosen month has the chosen day of the "
	    "month, got \"0 0 30 2 *\""),

	GOOD(TEXT, SCHEDULE, "payload", "", ""),
	GOOD(TEXT, SCHEDULE, "payload", "{\"to\": \"x\"}", "{\"to\": \"x\"}"),

	GOOD(SIZE, ENTRYPOINT, "max_payload", "0", "0"),
	GOOD(SIZE, ENTRYPOINT, "max_payload", "64k", "64k"),
	GOOD(SIZE, ENTRYPOINT, "max_payload", "1.5k", "1536"),
	GOOD(SIZE, ENTRYPOINT, "max_payload", "512 MB", "512M"),
	GOOD(SIZE, ENTRYPOINT, "max_payload", "3072M", "3G"),
	GOOD(SIZE, ENTRYPOINT, "max_payload", "1024G", "1024G"),
	GOOD(SIZE, ENTRYPOINT, "max_payload", "7 B", "7"),
	BAD(SIZE, ENTRYPOINT, "max_payload", "1025G",
	    "max_payload: must be a size like 512M or 2G (units B, k, M, G; "
	    "none = bytes) up to 1024G, got \"1025G\""),
	BAD(SIZE, ENTRYPOINT, "max_payload", "2T",
	    "max_payload: must be a size like 512M"),
	BAD(SIZE, ENTRYPOINT, "max_payload", "-1",
	    "max_payload: must be a size like 512M"),

	GOOD(USER, PGQ, "user", "root", "root"),
	GOOD(USER, ENTRYPOINT, "user", "0", "0"),
	BAD(USER, PGQ, "user", "no_such_user_pgq",
	    "user: no such user, got \"no_such_user_pgq\""),
	BAD(USER, PGQ, "user", "", "user: no such user, got \"\""),

	GOOD(GROUP, PGQ, "group", "root", "root"),
	GOOD(GROUP, ENTRYPOINT, "group", "0", "0"),
	BAD(GROUP, PGQ, "group", "no_such_group_pgq",
	    "group: no such group, got \"no_such_group_pgq\""),

	GOOD(ENVNAMES, ENTRYPOINT, "pass_env", "HOME LANG_2", "HOME LANG_2"),
	BAD(ENVNAMES, ENTRYPOINT, "pass_env", "1X",
	    "pass_env: must be environment variable names (letters, digits "
	    "and _, not starting with a digit) separated by blanks, got "
	    "\"1X\""),
	BAD(ENVNAMES, ENTRYPOINT, "pass_env", "A-B",
	    "pass_env: must be environment variable names"),
	BAD(ENVNAMES, ENTRYPOINT, "pass_env", " ",
	    "pass_env: must be environment variable names"),

	GOOD(BOOL, PGQ, "allow_root", "yes", "yes"),
	GOOD(BOOL, PGQ, "allow_root", "No", "no"),
	GOOD(BOOL, PGQ, "allow_root", "on", "yes"),
	GOOD(BOOL, PGQ, "allow_root", "0", "no"),
	GOOD(BOOL, PGQ, "allow_root", "TRUE", "yes"),
	BAD(BOOL, PGQ, "allow_root", "maybe",
	    "allow_root: must be yes or no, got \"maybe\""),
	BAD(BOOL, PGQ, "allow_root", "", "allow_root: must be yes or no"),
};

Test(conf, every_type_has_every_operation_and_cases)
{
	for (size_t t = 0; t < CONF_T_COUNT; t++) {
		const struct conf_type_ops *o = &conf_types[t];
		size_t good = 0, bad = 0;

		cr_assert_not_null(o->name, "type %zu has no entry", t);
		cr_expect(o->init && o->parse && o->validate && o->print &&
				  o->equal && o->copy && o->clear,
			  "%s lacks an operation", o->name);
		for (size_t i = 0; i < PGQ_NELEM(type_cases); i++) {
			if (type_cases[i].type != t)
				continue;
			if (type_cases[i].want == NULL)
				good++;
			else
				bad++;
		}
		cr_expect_gt(good, 0, "%s: no good value", o->name);
		/* Any text is a text. */
		cr_expect(bad > 0 || t == CONF_T_TEXT, "%s: no bad value",
			  o->name);
	}
	for (size_t i = 0; i < PGQ_NELEM(type_cases); i++) {
		const struct type_case *c = &type_cases[i];

		cr_expect_eq(key_of(c->kind, c->key)->type, c->type,
			     "case %zu: %s has another type", i, c->key);
	}
}

Test(conf, each_type_parses_its_good_values_and_reports_bad_ones)
{
	for (size_t i = 0; i < PGQ_NELEM(type_cases); i++) {
		const struct type_case *c = &type_cases[i];
		const struct conf_key *k = key_of(c->kind, c->key);
		const struct conf_type_ops *o = &conf_types[k->type];
		struct conf_errors e = {0};
		union type_base b, before;
		int rc;

		type_base_init(k, &b);
		type_base_init(k, &before);
		rc = type_set(k, c->text, &b, &e);
		if (c->want == NULL) {
			cr_expect_eq(rc, 0, "%s = \"%s\": %s", c->key, c->text,
				     e.n ? e.v[0].text : "");
			cr_expect_eq(e.n, 0);
		} else {
			cr_expect_eq(rc, -1, "%s = \"%s\" was taken", c->key,
				     c->text);
			cr_assert_eq(e.n, 1, "%s = \"%s\"", c->key, c->text);
			cr_expect_eq(e.v[0].line, 3);
			cr_expect(strncmp(e.v[0].text, c->want,
					  strlen(c->want)) == 0,
				  "want \"%s\"\n got \"%s\"", c->want,
				  e.v[0].text);
			/* A refused value leaves the one before it. */
			cr_expect(o->equal(k, &b, &before), "%s = \"%s\"",
				  c->key, c->text);
			/* A password is never echoed. */
			if (o->secret)
				cr_expect_null(strstr(e.v[0].text, "got "),
					       "%s", e.v[0].text);
		}
		o->clear(k, &b);
		o->clear(k, &before);
		conf_errors_clear(&e);
	}
}

Test(conf, each_type_prints_what_it_parses_back_equal)
{
	for (size_t i = 0; i < PGQ_NELEM(type_cases); i++) {
		const struct type_case *c = &type_cases[i];
		const struct conf_key *k = key_of(c->kind, c->key);
		const struct conf_type_ops *o = &conf_types[k->type];
		struct conf_errors e = {0};
		union type_base a, b;
		char *text;

		if (c->want != NULL)
			continue;
		type_base_init(k, &a);
		type_base_init(k, &b);
		cr_assert_eq(type_set(k, c->text, &a, &e), 0, "%s", c->text);
		text = o->print(k, &a);
		cr_expect_str_eq(text, c->printed, "%s = \"%s\"", c->key,
				 c->text);
		cr_expect_eq(type_set(k, text, &b, &e), 0, "%s = \"%s\"",
			     c->key, text);
		cr_expect(o->equal(k, &a, &b), "%s: \"%s\" reads back other",
			  c->key, text);
		cr_expect_eq(e.n, 0);
		free(text);
		o->clear(k, &a);
		o->clear(k, &b);
		conf_errors_clear(&e);
	}
}

/* Two values of one key, and whether a reload sees them as the same. */
struct type_pair {
	enum conf_section_kind kind;
	const char *key;
	const char *a, *b;
	bool equal;
};

static const struct type_pair type_pairs[] = {
	{CONF_SECT_PGQ, "workers", "4", " 4", true},
	{CONF_SECT_PGQ, "workers", "4", "5", false},
	{CONF_SECT_ENTRYPOINT, "max_attempts", "5", "5", true},
	{CONF_SECT_ENTRYPOINT, "max_attempts", "5", "6", false},
	{CONF_SECT_PGQ, "poll_interval", "60s", "1m", true},
	{CONF_SECT_PGQ, "poll_interval", "60s", "61s", false},
	{CONF_SECT_ENTRYPOINT, "retry_backoff", "2", "2.0", true},
	{CONF_SECT_ENTRYPOINT, "retry_backoff", "2", "2.5", false},
	{CONF_SECT_PGQ, "prefix", "a_", "a_", true},
	{CONF_SECT_PGQ, "prefix", "a_", "b_", false},
	{CONF_SECT_PGQ, "pidfile", "/a", "/a", true},
	{CONF_SECT_PGQ, "pidfile", "/a", "/b", false},
	{CONF_SECT_DATABASE, "dsn", "host=a", "host=a", true},
	{CONF_SECT_DATABASE, "dsn", "host=a", "host=b", false},
	{CONF_SECT_PGQ, "log_level", "info", "info", true},
	{CONF_SECT_PGQ, "log_level", "info", "debug", false},
	/* what runs is argv, whatever the spacing */
	{CONF_SECT_ENTRYPOINT, "command", "/bin/sh  -c   x", "/bin/sh -c x",
	 true},
	{CONF_SECT_ENTRYPOINT, "command", "/bin/sh -c 'x y'", "/bin/sh -c x y",
	 false},
	{CONF_SECT_ENTRYPOINT, "module", "/etc/passwd", "/etc/passwd", true},
	{CONF_SECT_ENTRYPOINT, "module", "/etc/passwd", "/etc/group", false},
	{CONF_SECT_ENTRYPOINT, "function", "f", "f", true},
	{CONF_SECT_ENTRYPOINT, "function", "f", "g", false},
	{CONF_SECT_SCHEDULE, "entrypoint", "a", "a", true},
	{CONF_SECT_SCHEDULE, "entrypoint", "a", "b", false},
	/* a schedule's cron compares as written */
	{CONF_SECT_SCHEDULE, "cron", "@daily", "@daily", true},
	{CONF_SECT_SCHEDULE, "cron", "0 3 * * *", "0  3 * * *", false},
	{CONF_SECT_SCHEDULE, "payload", "x", "x", true},
	{CONF_SECT_SCHEDULE, "payload", "x", "y", false},
	{CONF_SECT_ENTRYPOINT, "max_payload", "1k", "1024", true},
	{CONF_SECT_ENTRYPOINT, "max_payload", "1k", "1M", false},
	{CONF_SECT_PGQ, "user", "root", "root", true},
	{CONF_SECT_PGQ, "user", "root", "0", false},
	{CONF_SECT_PGQ, "group", "root", "root", true},
	{CONF_SECT_PGQ, "group", "root", "0", false},
	{CONF_SECT_ENTRYPOINT, "pass_env", "A B", "A B", true},
	{CONF_SECT_ENTRYPOINT, "pass_env", "A B", "B A", false},
	{CONF_SECT_PGQ, "allow_root", "yes", "on", true},
	{CONF_SECT_PGQ, "allow_root", "yes", "no", false},
};

Test(conf, each_type_compares_and_copies_values)
{
	bool seen_equal[CONF_T_COUNT] = {false};
	bool seen_differ[CONF_T_COUNT] = {false};

	for (size_t i = 0; i < PGQ_NELEM(type_pairs); i++) {
		const struct type_pair *p = &type_pairs[i];
		const struct conf_key *k = key_of(p->kind, p->key);
		const struct conf_type_ops *o = &conf_types[k->type];
		struct conf_errors e = {0};
		union type_base a, b;
		char *want, *got;

		type_base_init(k, &a);
		type_base_init(k, &b);
		cr_assert_eq(type_set(k, p->a, &a, &e), 0, "%s", p->a);
		cr_assert_eq(type_set(k, p->b, &b, &e), 0, "%s", p->b);
		cr_expect_eq(o->equal(k, &a, &b), p->equal,
			     "%s: \"%s\" vs \"%s\"", p->key, p->a, p->b);
		cr_expect_eq(o->equal(k, &b, &a), p->equal);
		(p->equal ? seen_equal : seen_differ)[k->type] = true;

		/* A copy is equal and owns its memory: a's value outlives a. */
		want = o->print(k, &a);
		o->copy(k, &b, &a);
		cr_expect(o->equal(k, &a, &b), "%s: copy differs", p->key);
		o->clear(k, &a);
		got = o->print(k, &b);
		cr_expect_str_eq(got, want, "%s", p->key);
		free(want);
		free(got);
		o->clear(k, &b);
		conf_errors_clear(&e);
	}
	for (size_t t = 0; t < CONF_T_COUNT; t++)
		cr_expect(seen_equal[t] && seen_differ[t],
			  "%s: no pair of equal and of different values",
			  conf_types[t].name);
}

Test(conf, value_errors_hide_secrets_and_note_a_cut_comment)
{
	struct conf_errors e = {0};
	struct conf_value v = {.key = key_of(CONF_SECT_DATABASE, "dsn"),
			       .text = "password=s3cret",
			       .file = "t.ini",
			       .line = 9,
			       .errs = &e};

	conf_value_error(&v, NULL, "bad: %d", 42);
	v.key = key_of(CONF_SECT_PGQ, "workers");
	v.text = "4";
	v.comment_cut = true;
	conf_value_error(&v, NULL, "must be 1..1024");
	conf_value_error(&v, "a hint", "must be 1..1024");
	cr_assert_eq(e.n, 3);
	cr_expect_str_eq(e.v[0].text, "t.ini:9: dsn: bad: 42");
	cr_expect_str_eq(e.v[1].text,
			 "t.ini:9: workers: must be 1..1024, got \"4\"; note: "
			 "\" ;\" starts a comment, removed from the value");
	cr_expect_str_eq(
		e.v[2].text,
		"t.ini:9: workers: must be 1..1024, got \"4\"; a hint");
	conf_errors_clear(&e);
}
