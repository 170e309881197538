/*
 * The chaos soak: a producer enqueues a recorded set of jobs into a master
 * with 4 workers while a seeded RNG injects faults (worker kills, stops past
 * the heartbeat timeout, backend terminations, PostgreSQL restarts, signal
 * storms). Afterwards every job must have exactly one terminal log row, the
 * master must be whole, and its descriptors and memory must not have grown.
 * PGQ_CHAOS_SECONDS sets the fault phase, PGQ_CHAOS_SEED replays a run.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "pgq.h"
#include "tests/harness/daemon.h"
#include "tests/harness/harness.h"

#define NWORKERS 4

/* ASan keeps freed memory in quarantine, so the master's RSS grows by
 * design there: the memory check is for plain builds. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECKED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_CHECKED 0
#endif
#endif
#ifndef RSS_CHECKED
#define RSS_CHECKED 1
#endif
#define MAX_STOPPED 8
#define MAX_SAMPLES 8192

enum fault { F_KILL9, F_STOP, F_TERMINATE, F_PG_RESTART, F_STORM, F_COUNT };

static const char *const fault_names[F_COUNT] = {
	"kill9", "stop", "terminate_backend", "pg_restart", "signal_storm"};

enum ep { EP_NOOP, EP_SLEEP, EP_TEMPFAIL, EP_KILLED, EP_MODULE, EP_COUNT };

static const char *const ep_names[EP_COUNT] = {"noop", "sleep", "tempfail",
					       "killed", "module"};

struct stopped {
	pid_t pid;
	unsigned long long cont_at;
};

struct soak {
	struct hd d;
	char dsn[256];
	PGconn *db;
	uint64_t rng;
	unsigned long long seed;
	unsigned seconds;
	/* What was injected and produced. */
	unsigned long faults[F_COUNT];
	unsigned long storm_signals;
	unsigned long jobs[EP_COUNT];
	unsigned long enqueue_errors;
	unsigned long ambiguous_commits;
	struct stopped stopped[MAX_STOPPED];
	/* Master samples, one per second of the fault phase. */
	size_t nsamples;
	size_t fds[MAX_SAMPLES];
	long rss_kb[MAX_SAMPLES];
	/* The worker count the master last announced, from its log. */
	long target_workers;
	off_t log_off;
	unsigned long long last_restart_ms;
};

static struct soak s;

static uint64_t
rng_next(void)
{
	/* xorshift64*: small, fast and fully determined by the seed. */
	s.rng ^= s.rng >> 12;
	s.rng ^= s.rng << 25;
	s.rng ^= s.rng >> 27;
	return s.rng * 2685821657736338717ULL;
}

/* A number in [lo, hi]. */
static unsigned
rng_range(unsigned lo, unsigned hi)
{
	return lo + (unsigned)(rng_next() % (uint64_t)(hi - lo + 1));
}

static void
ms_sleep(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000),
			      (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Reconnects the producer after a restart or a terminated backend. */
static bool
db_ok(void)
{
	if (PQstatus(s.db) == CONNECTION_OK)
		return true;
	PQreset(s.db);
	return PQstatus(s.db) == CONNECTION_OK;
}

/* Runs a statement on the producer connection; false on any failure. */
static bool
db_exec(const char *sql)
{
	PGresult *r = PQexec(s.db, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
		  PQresultStatus(r) == PGRES_TUPLES_OK;

	PQclear(r);
	return ok;
}

/*
 * Enqueues n jobs through libpgq and records their ids in the ledger in the
 * same transaction, so a commit cut by a restart leaves jobs and ledger
 * rows together or neither: the ledger is the known set.
 */
static void
produce(unsigned n)
{
	struct pgq_job_spec jobs[16];
	int64_t ids[16];
	enum ep eps[16];
	struct pgq_error err;
	struct pgq *q = NULL;
	char sql[16 * 24 + 128];
	size_t len;
	PGresult *r;

	if (!db_ok()) {
		s.enqueue_errors++;
		return;
	}
	memset(jobs, 0, sizeof(jobs));
	for (unsigned i = 0; i < n; i++) {
		unsigned pick = rng_range(0, 99);

		/* Mostly cheap jobs; enough failures to matter. */
		eps[i] = pick < 35   ? EP_NOOP
			 : pick < 60 ? EP_SLEEP
			 : pick < 75 ? EP_TEMPFAIL
			 : pick < 85 ? EP_KILLED
				     : EP_MODULE;
		jobs[i].entrypoint = ep_names[eps[i]];
		if (eps[i] == EP_MODULE) {
			/* One module job in 25 aborts its worker. */
			jobs[i].payload =
				rng_range(0, 24) == 0 ? "crash" : "ok";
			jobs[i].payload_len = strlen(jobs[i].payload);
		}
		jobs[i].priority = (int32_t)rng_range(0, 3);
	}
	if (!db_exec("BEGIN"))
		goto fail;
	q = pgq_wrap(s.db, NULL, PGQ_ROLE_PRODUCER, &err);
	if (q == NULL)
		goto fail;
	if (pgq_enqueue_batch(q, jobs, n, PGQ_CONFLICT_RAISE, ids, NULL,
			      &err) == -1)
		goto fail;
	len = (size_t)snprintf(sql, sizeof(sql),
			       "INSERT INTO chaos_ledger VALUES ");
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len,
					"%s(%lld)", i > 0 ? "," : "",
					(long long)ids[i]);
	if (!db_exec(sql))
		goto fail;
	pgq_free(q);
	q = NULL;
	r = PQexec(s.db, "COMMIT");
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		for (unsigned i = 0; i < n; i++)
			s.jobs[eps[i]]++;
	} else {
		/* The commit may or may not have happened: the ledger knows. */
		s.ambiguous_commits++;
	}
	PQclear(r);
	return;
fail:
	if (q != NULL)
		pgq_free(q);
	s.enqueue_errors++;
	if (PQstatus(s.db) == CONNECTION_OK)
		(void)db_exec("ROLLBACK");
}

static long
master_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)s.d.pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * Reads the master's log from where the last call stopped and remembers the
 * worker count it last announced (scale up/down, reload).
 */
static void
follow_log(void)
{
	char line[4096];
	FILE *f = fopen(s.d.log, "r");

	if (f == NULL)
		return;
	if (fseeko(f, s.log_off, SEEK_SET) == 0) {
		while (fgets(line, sizeof(line), f) != NULL) {
			const char *w;

			if (strchr(line, '\n') == NULL)
				break; /* a partial line: read it next time */
			s.log_off = ftello(f);
			if (strstr(line, "scale up: ") == NULL &&
			    strstr(line, "scale down: ") == NULL &&
			    strstr(line, "reload: configuration loaded") ==
				    NULL)
				continue;
			w = strstr(line, " workers=");
			if (w != NULL)
				s.target_workers = strtol(w + 9, NULL, 10);
		}
	}
	fclose(f);
}

static pid_t
random_worker(void)
{
	pid_t kids[64];
	size_t n = hd_live_children(s.d.pid, kids, 64);

	return n == 0 ? 0 : kids[rng_range(0, (unsigned)n - 1)];
}

static void
fault_stop(void)
{
	pid_t pid = random_worker();

	if (pid == 0)
		return;
	for (size_t i = 0; i < MAX_STOPPED; i++) {
		if (s.stopped[i].pid != 0)
			continue;
		if (kill(pid, SIGSTOP) == 0) {
			/* heartbeat_timeout is 2s: stay stopped past it. */
			s.stopped[i].pid = pid;
			s.stopped[i].cont_at =
				hd_now_ms() + rng_range(2500, 4000);
			s.faults[F_STOP]++;
		}
		return;
	}
}

static void
resume_stopped(bool all)
{
	for (size_t i = 0; i < MAX_STOPPED; i++) {
		if (s.stopped[i].pid == 0 ||
		    (!all && hd_now_ms() < s.stopped[i].cont_at))
			continue;
		(void)kill(s.stopped[i].pid, SIGCONT);
		s.stopped[i].pid = 0;
	}
}

static void
fault_terminate(void)
{
	PGresult *r;
	char sql[256];

	if (!db_ok())
		return;
	/* Any pgq backend of this database: a worker's or the LISTEN one. */
	r = PQexec(s.db, "SELECT pid FROM pg_stat_activity WHERE datname = "
			 "current_database() AND pid <> pg_backend_pid() AND "
			 "backend_type = 'client backend'");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
		int row = (int)rng_range(0, (unsigned)PQntuples(r) - 1);

		snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s)",
			 PQgetvalue(r, row, 0));
		if (db_exec(sql))
			s.faults[F_TERMINATE]++;
	}
	PQclear(r);
}

/* Restarts the suite's cluster, fast mode, as its owner. */
static void
fault_pg_restart(void)
{
	const char *pgdir = getenv("PGQ_TEST_PGDIR");
	const char *bindir = getenv("PG_BINDIR");
	char cmd[2048];
	int rc;

	if (pgdir == NULL || bindir == NULL ||
	    hd_now_ms() < s.last_restart_ms + 10000)
		return;
	snprintf(cmd, sizeof(cmd),
		 "%s'%s/pg_ctl' -D '%s/data' -l '%s/server.log' -m fast -w "
		 "-t 60 restart >/dev/null 2>&1",
		 geteuid() == 0 ? "runuser -u postgres -- " : "", bindir, pgdir,
		 pgdir);
	rc = system(cmd);
	cr_assert(rc == 0, "pg_ctl restart failed (%d): %s", rc, cmd);
	s.last_restart_ms = hd_now_ms();
	s.faults[F_PG_RESTART]++;
}

/* A burst of TTIN/TTOU/HUP without pauses: signals may coalesce. */
static void
fault_storm(void)
{
	static const int sigs[] = {SIGTTIN, SIGTTOU, SIGHUP};
	unsigned n = rng_range(3, 10);

	for (unsigned i = 0; i < n; i++) {
		if (kill(s.d.pid, sigs[rng_range(0, 2)]) == 0)
			s.storm_signals++;
	}
	s.faults[F_STORM]++;
}

static void
inject(void)
{
	unsigned pick = rng_range(0, 99);

	if (pick < 30) {
		pid_t pid = random_worker();

		if (pid != 0 && kill(pid, SIGKILL) == 0)
			s.faults[F_KILL9]++;
	} else if (pick < 50) {
		fault_stop();
	} else if (pick < 75) {
		fault_terminate();
	} else if (pick < 85) {
		fault_pg_restart();
	} else {
		fault_storm();
	}
}

/* Brings the master back to NWORKERS after storms, one signal at a time. */
static void
settle_workers(void)
{
	unsigned long long deadline = hd_now_ms() + 30000;

	follow_log();
	while (s.target_workers != -1 && s.target_workers != NWORKERS &&
	       hd_now_ms() < deadline) {
		long before = s.target_workers;

		cr_assert(proc_alive(s.d.pid), "master gone");
		kill(s.d.pid, before < NWORKERS ? SIGTTIN : SIGTTOU);
		while (s.target_workers == before && hd_now_ms() < deadline) {
			ms_sleep(20);
			follow_log();
		}
	}
	cr_assert(s.target_workers == -1 || s.target_workers == NWORKERS,
		  "master stuck at workers=%ld", s.target_workers);
}

static void
sample_master(void)
{
	int fds[1024];
	pid_t kids[64];

	if (s.nsamples >= MAX_SAMPLES)
		return;
	/* Storms change the worker count, and each worker holds one channel
	 * descriptor in the master: count the others. */
	s.fds[s.nsamples] = proc_fds(s.d.pid, fds, 1024) -
			    hd_live_children(s.d.pid, kids, 64);
	s.rss_kb[s.nsamples] = master_rss_kb();
	s.nsamples++;
}

static bool
queue_settled(void *arg)
{
	PGconn *c = arg;
	PGresult *r;
	bool done = false;

	if (PQstatus(c) != CONNECTION_OK)
		PQreset(c);
	r = PQexec(c, "SELECT count(*) FROM chaos_ledger l WHERE NOT EXISTS "
		      "(SELECT 1 FROM pgqueuer_log g WHERE g.job_id = l.id "
		      "AND g.status IN ('successful','exception','canceled',"
		      "'deleted','failed')) OR EXISTS (SELECT 1 FROM pgqueuer "
		      "j WHERE j.id = l.id AND j.status IN ('queued',"
		      "'picked'))");
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		done = strcmp(PQgetvalue(r, 0, 0), "0") == 0;
	PQclear(r);
	return done;
}

static bool
workers_whole(void *arg)
{
	pid_t kids[64];
	size_t n;

	(void)arg;
	n = proc_children(s.d.pid, kids, 64);
	if (n != NWORKERS)
		return false;
	for (size_t i = 0; i < n; i++)
		if (proc_zombie(kids[i]))
			return false;
	return true;
}

static const char *
write_script(const char *name, const char *body)
{
	const char *path = hd_write_file(&s.d, name, body);

	cr_assert(chmod(path, 0755) == 0, "chmod %s: %s", path,
		  strerror(errno));
	return path;
}

static void
start_master(void)
{
	char tempfail[512], killed[512], module[4096];

	/* Exit 75 one time in three: retried until it succeeds. */
	snprintf(tempfail, sizeof(tempfail), "%s",
		 write_script("tempfail.sh",
			      "#!/bin/sh\ncat >/dev/null\n"
			      "n=$(od -An -N1 -tu1 /dev/urandom)\n"
			      "[ $((n % 3)) -eq 0 ] && exit 75\nexit 0\n"));
	/* Killed by a signal one time in five: an exception. */
	snprintf(killed, sizeof(killed), "%s",
		 write_script("killed.sh",
			      "#!/bin/sh\ncat >/dev/null\n"
			      "n=$(od -An -N1 -tu1 /dev/urandom)\n"
			      "[ $((n % 5)) -eq 0 ] && kill -9 $$\nexit 0\n"));
	snprintf(module, sizeof(module), "%s",
		 harness_bin("examples/.libs/handler_module.so"));
	hd_write_ini(
		&s.d,
		"[pgq]\nworkers = %d\nlog_level = info\n"
		"heartbeat_timeout = 2s\npoll_interval = 1s\n"
		"shutdown_timeout = 10s\nrespawn_backoff_max = 1s\n"
		"crash_breaker_count = 0\n\n"
		"[database]\ndsn = %s\n\n"
		"[entrypoint noop]\nbuiltin = noop\n\n"
		"[entrypoint sleep]\nbuiltin = sleep\nsleep = 30ms\n\n"
		"[entrypoint tempfail]\ncommand = %s\nmax_attempts = 50\n"
		"retry_delay = 50ms\nretry_backoff = 1.5\n"
		"retry_max_delay = 1s\ntimeout = 20s\n\n"
		"[entrypoint killed]\ncommand = %s\ntimeout = 20s\n\n"
		"[entrypoint module]\nmodule = %s\nfunction = example_handler\n"
		"max_attempts = 3\n",
		NWORKERS, s.dsn, tempfail, killed, module);
	hd_start(&s.d, NULL);
	cr_assert(hd_wait_log(&s.d, "listening channel=", 30000),
		  "master did not start:\n%s", hd_read_log(&s.d));
	cr_assert(hd_until(workers_whole, NULL, 30000), "workers missing");
}

static unsigned
env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static long long
count(const char *sql)
{
	if (PQstatus(s.db) != CONNECTION_OK)
		PQreset(s.db);
	return harness_scalar(s.db, "%s", sql);
}

static size_t
quarter_max_fds(size_t from, size_t to)
{
	size_t m = 0;

	for (size_t i = from; i < to; i++)
		m = s.fds[i] > m ? s.fds[i] : m;
	return m;
}

static long
quarter_max_rss(size_t from, size_t to)
{
	long m = 0;

	for (size_t i = from; i < to; i++)
		m = s.rss_kb[i] > m ? s.rss_kb[i] : m;
	return m;
}

static void
soak_setup(void)
{
	const char *seed = getenv("PGQ_CHAOS_SEED");

	memset(&s, 0, sizeof(s));
	s.target_workers = -1;
	s.seed = seed != NULL && *seed != '\0'
			 ? strtoull(seed, NULL, 10)
			 : (unsigned long long)time(NULL) ^
				   ((unsigned long long)getpid() << 16);
	s.rng = s.seed != 0 ? s.seed : 1;
	s.seconds = env_uint("PGQ_CHAOS_SECONDS", 45);
	printf("chaos: seed=%llu seconds=%u (replay: PGQ_CHAOS_SEED=%llu)\n",
	       s.seed, s.seconds, s.seed);
	fflush(stdout);
	hd_init(&s.d);
	snprintf(s.dsn, sizeof(s.dsn), "%s", harness_db_new(true));
	s.db = harness_connect(s.dsn);
	PQclear(harness_query(s.db, "CREATE TABLE chaos_ledger (id bigint "
				    "PRIMARY KEY)"));
}

static void
soak_teardown(void)
{
	resume_stopped(true);
	hd_free(&s.d);
	if (s.db != NULL)
		PQfinish(s.db);
	s.db = NULL;
}

TestSuite(chaos, .init = soak_setup, .fini = soak_teardown);

Test(chaos, every_job_ends_exactly_once_under_faults)
{
	unsigned long long start, end, next_fault, next_sample, next_batch;
	long long total, lost, twice, left, dups, dups_clean, unknown;
	size_t q;
	unsigned long njobs = 0;
	pid_t kids[64];
	size_t nkids;
	bool settled;

	start_master();
	start = hd_now_ms();
	end = start + (unsigned long long)s.seconds * 1000;
	next_fault = start + rng_range(500, 1500);
	next_sample = start;
	next_batch = start;
	while (hd_now_ms() < end) {
		unsigned long long now = hd_now_ms();

		cr_assert(proc_alive(s.d.pid), "master died:\n%s",
			  hd_read_log(&s.d));
		resume_stopped(false);
		if (now >= next_batch) {
			produce(rng_range(1, 8));
			next_batch = now + rng_range(40, 160);
		}
		if (now >= next_fault) {
			inject();
			next_fault = hd_now_ms() + rng_range(300, 1500);
		}
		if (now >= next_sample) {
			sample_master();
			next_sample = now + 1000;
		}
		ms_sleep(10);
	}
	resume_stopped(true);
	settle_workers();

	/* Faults are over: everything must finish, within a deadline. */
	settled = hd_until(queue_settled, s.db, 90000);
	cr_assert(db_ok(), "database unreachable after the soak");
	total = count("SELECT count(*) FROM chaos_ledger");
	lost = count("SELECT count(*) FROM chaos_ledger l WHERE NOT EXISTS "
		     "(SELECT 1 FROM pgqueuer_log g WHERE g.job_id = l.id AND "
		     "g.status IN ('successful','exception','canceled',"
		     "'deleted','failed'))");
	left = count("SELECT count(*) FROM pgqueuer j JOIN chaos_ledger l "
		     "ON l.id = j.id WHERE j.status IN ('queued','picked')");
	twice = count("SELECT count(*) FROM (SELECT job_id FROM pgqueuer_log "
		      "WHERE status IN ('successful','exception','canceled',"
		      "'deleted','failed') GROUP BY job_id HAVING count(*) > "
		      "1) t");
	dups = count("SELECT count(*) FROM (SELECT job_id FROM pgqueuer_log "
		     "WHERE status = 'picked' GROUP BY job_id HAVING count(*) "
		     "> 1) t");
	/* Entrypoints that never ask for a retry: repeats come from faults. */
	dups_clean = count(
		"SELECT count(*) FROM (SELECT job_id FROM pgqueuer_log WHERE "
		"status = 'picked' AND entrypoint IN ('noop','sleep') GROUP BY "
		"job_id HAVING count(*) > 1) t");
	/* Log rows for jobs the ledger does not know: a phantom job. */
	unknown = count("SELECT count(DISTINCT job_id) FROM pgqueuer_log g "
			"WHERE NOT EXISTS (SELECT 1 FROM chaos_ledger l WHERE "
			"l.id = g.job_id)");
	for (int e = 0; e < EP_COUNT; e++)
		njobs += s.jobs[e];

	q = s.nsamples / 4;
	printf("chaos: jobs=%lld (committed seen=%lu noop=%lu sleep=%lu "
	       "tempfail=%lu killed=%lu module=%lu) enqueue_errors=%lu "
	       "ambiguous_commits=%lu\n",
	       total, njobs, s.jobs[EP_NOOP], s.jobs[EP_SLEEP],
	       s.jobs[EP_TEMPFAIL], s.jobs[EP_KILLED], s.jobs[EP_MODULE],
	       s.enqueue_errors, s.ambiguous_commits);
	printf("chaos: faults");
	for (int f = 0; f < F_COUNT; f++)
		printf(" %s=%lu", fault_names[f], s.faults[f]);
	printf(" (storm signals=%lu)\n", s.storm_signals);
	printf("chaos: outcomes successful=%lld exception=%lld\n",
	       count("SELECT count(*) FROM pgqueuer_log WHERE status = "
		     "'successful'"),
	       count("SELECT count(*) FROM pgqueuer_log WHERE status = "
		     "'exception'"));
	printf("chaos: duplicates executed=%lld (on noop/sleep=%lld) lost=%lld "
	       "terminal_twice=%lld left_queued_or_picked=%lld unknown=%lld\n",
	       dups, dups_clean, lost, twice, left, unknown);
	if (q > 0)
		printf("chaos: master fds first_quarter_max=%zu "
		       "last_quarter_max=%zu rss_kb first_quarter_max=%ld "
		       "last_quarter_max=%ld samples=%zu\n",
		       quarter_max_fds(0, q),
		       quarter_max_fds(s.nsamples - q, s.nsamples),
		       quarter_max_rss(0, q),
		       quarter_max_rss(s.nsamples - q, s.nsamples), s.nsamples);
	fflush(stdout);

	cr_expect((unsigned long long)total >= njobs,
		  "ledger lost committed jobs");
	cr_expect(settled, "queue did not settle within the deadline");
	cr_expect_eq(lost, 0, "jobs without a terminal outcome: %lld", lost);
	cr_expect_eq(left, 0, "jobs left queued or picked: %lld", left);
	cr_expect_eq(twice, 0, "jobs terminal twice: %lld", twice);
	cr_expect_eq(unknown, 0, "log rows for unknown jobs: %lld", unknown);
	cr_expect(total > 0, "no job was enqueued");

	/* The master is whole: alive, NWORKERS live workers, no zombies. */
	cr_assert(proc_alive(s.d.pid), "master died:\n%s", hd_read_log(&s.d));
	cr_expect(hd_until(workers_whole, NULL, 30000),
		  "master has not %d live workers and no zombies", NWORKERS);
	nkids = proc_children(s.d.pid, kids, 64);
	for (size_t i = 0; i < nkids; i++)
		cr_expect(!proc_zombie(kids[i]), "zombie child %ld",
			  (long)kids[i]);
	/* Flat: a few descriptors of slack (a reconnect in progress) and
	 * a little memory (allocator arenas). */
	if (q > 0) {
		size_t f0 = quarter_max_fds(0, q);
		size_t f1 = quarter_max_fds(s.nsamples - q, s.nsamples);
		long r0 = quarter_max_rss(0, q);
		long r1 = quarter_max_rss(s.nsamples - q, s.nsamples);

		cr_expect(f1 <= f0 + 3, "master fds grew: %zu -> %zu", f0, f1);
		cr_expect(!RSS_CHECKED || r1 <= r0 + r0 / 5 + 2048,
			  "master RSS grew: %ld -> %ld kB", r0, r1);
	}

	hd_signal(&s.d, SIGTERM);
	cr_expect_eq(hd_wait_exit(&s.d, 30000), 0, "master did not stop:\n%s",
		     hd_read_log(&s.d));
}
