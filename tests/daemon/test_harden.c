/*
 * Hardening of pgq-master as a process: the warning for a readable pgq.ini
 * that holds a password, the drop to [pgq] user (a command handler and the
 * master run as nobody), the refusal to run handlers as root unless allowed,
 * a job over max_payload that the worker ends as PayloadTooLarge, and the
 * LISTEN connection's choice of DSN and its password-free log lines.
 */
#include "config.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "pgq.h"
#include "tests/daemon/suite.h"

TestSuite(harden, .init = suite_setup, .fini = suite_teardown);

#define WARNING "run chmod 600"

static void
write_ini_mode(const char *conninfo, const char *pgq_extra,
	       const char *sections, mode_t mode)
{
	hd_write_ini(&d, "%s", hd_ini_text(conninfo, 1, pgq_extra, sections));
	cr_assert(chmod(d.ini, mode) == 0, "chmod: %s", strerror(errno));
}

static void
start_and_listen(void)
{
	hd_start(&d, NULL);
	cr_assert(hd_wait_log(&d, "listening channel=", T_START_MS), "%s",
		  hd_read_log(&d));
}

static void
stop_cleanly(void)
{
	hd_signal(&d, SIGTERM);
	cr_assert_eq(hd_wait_exit(&d, T_EVENT_MS), 0, "%s", hd_read_log(&d));
}

Test(harden,
     a_readable_file_with_a_password_draws_a_warning_at_start_and_reload)
{
	char secret[512];

	snprintf(secret, sizeof(secret), "%s password=secret123", dsn);
	write_ini_mode(secret, "", "[entrypoint noop]\nbuiltin = noop\n", 0640);
	start_and_listen();
	cr_assert_eq(hd_count_log(&d, WARNING), 1, "%s", hd_read_log(&d));
	cr_expect_eq(hd_count_log(&d, "mode 0640 lets its group read it"), 1,
		     "%s", hd_read_log(&d));
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "reload: configuration loaded", T_EVENT_MS),
		  "%s", hd_read_log(&d));
	cr_assert_eq(hd_count_log(&d, WARNING), 2, "%s", hd_read_log(&d));
	stop_cleanly();
	cr_expect_eq(hd_count_log(&d, "secret123"), 0, "%s", hd_read_log(&d));
}

Test(harden, a_uri_password_counts_too)
{
	char uri[512];
	const char *host = getenv("PGHOST"), *port = getenv("PGPORT");

	cr_assert(host != NULL && port != NULL);
	/* PGHOST and the database still come from the environment. */
	snprintf(uri, sizeof(uri),
		 "postgresql://postgres:secret456@/%s?port=%s",
		 getenv("PGDATABASE"), port);
	write_ini_mode(uri, "", "[entrypoint noop]\nbuiltin = noop\n", 0604);
	start_and_listen();
	cr_assert_eq(hd_count_log(&d, "mode 0604 lets every user read it"), 1,
		     "%s", hd_read_log(&d));
	stop_cleanly();
	cr_expect_eq(hd_count_log(&d, "secret456"), 0, "%s", hd_read_log(&d));
}

Test(harden, no_warning_for_mode_0600_or_without_a_password)
{
	char secret[512];

	snprintf(secret, sizeof(secret), "%s password=secret123", dsn);
	write_ini_mode(secret, "", "[entrypoint noop]\nbuiltin = noop\n", 0600);
	start_and_listen();
	stop_cleanly();
	cr_assert_eq(hd_count_log(&d, WARNING), 0, "%s", hd_read_log(&d));

	write_ini_mode(dsn, "", "[entrypoint noop]\nbuiltin = noop\n", 0644);
	start_and_listen();
	stop_cleanly();
	cr_assert_eq(hd_count_log(&d, WARNING), 0, "%s", hd_read_log(&d));
}

/* The Uid: line of /proc/PID/status: real, effective, saved, fs. */
static void
proc_uids(pid_t pid, unsigned uids[4])
{
	char path[64], line[256];
	FILE *f;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	cr_assert(f != NULL, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Uid: %u %u %u %u", &uids[0], &uids[1],
			   &uids[2], &uids[3]) == 4) {
			found = true;
			break;
		}
	fclose(f);
	cr_assert(found, "no Uid line in %s", path);
}

Test(harden, the_master_drops_root_and_its_command_handlers_run_as_nobody)
{
	struct passwd *pw = getpwnam("nobody");
	char sections[1024], extra[512], outdir[400], uidfile[450], buf[32];
	unsigned uids[4];
	pid_t workers[8];
	struct stat st;
	FILE *f;

	cr_assert(geteuid() == 0, "this test needs root");
	cr_assert(pw != NULL, "no user nobody");
	/* nobody must reach the file, the handler's output and the socket. */
	cr_assert(chmod(d.dir, 0755) == 0);
	cr_assert(chmod(getenv("PGHOST"), 0711) == 0, "chmod %s: %s",
		  getenv("PGHOST"), strerror(errno));
	snprintf(outdir, sizeof(outdir), "%s/out", d.dir);
	cr_assert(mkdir(outdir, 0755) == 0);
	cr_assert(chown(outdir, pw->pw_uid, pw->pw_gid) == 0);
	snprintf(uidfile, sizeof(uidfile), "%s/uid", outdir);
	snprintf(sections, sizeof(sections),
		 "[entrypoint whoami]\ncommand = /bin/sh -c 'id -u > %s'\n",
		 uidfile);
	snprintf(extra, sizeof(extra), "user = nobody\npidfile = %s\n",
		 d.pidfile);
	write_ini_mode(dsn, extra, sections, 0644);
	start_and_listen();
	cr_assert_eq(hd_count_log(&d, "dropped privileges user=nobody"), 1,
		     "%s", hd_read_log(&d));

	proc_uids(d.pid, uids);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(uids[i], (unsigned)pw->pw_uid,
			     "master uid %d is %u", i, uids[i]);
	cr_assert(hd_live_children(d.pid, workers, 8) >= 1);
	proc_uids(workers[0], uids);
	cr_assert_eq(uids[1], (unsigned)pw->pw_uid, "worker euid %u", uids[1]);

	(void)hd_enqueue(db, "whoami", NULL, 1, 0);
	cr_assert_eq(hd_wait_scalar(db, 1, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'successful'"),
		     1, "%s", hd_read_log(&d));
	f = fopen(uidfile, "r");
	cr_assert(f != NULL, "%s: %s", uidfile, strerror(errno));
	cr_assert(fgets(buf, sizeof(buf), f) != NULL);
	fclose(f);
	cr_assert_eq(strtoul(buf, NULL, 10), (unsigned long)pw->pw_uid,
		     "the handler ran as uid %s", buf);

	/* The dropped master may not unlink in a root directory: it empties
	 * its pidfile instead. */
	stop_cleanly();
	cr_assert(stat(d.pidfile, &st) != 0 || st.st_size == 0,
		  "the pidfile still holds a pid");
}

Test(harden, a_user_other_than_root_cannot_switch_and_exits_78)
{
	struct passwd *pw = getpwnam("nobody");
	char out[4096], bin[4096];
	int fd, st;
	ssize_t n;
	pid_t pid;

	cr_assert(pw != NULL && geteuid() == 0);
	cr_assert(chmod(d.dir, 0755) == 0);
	write_ini_mode(dsn, "user = root\n",
		       "[entrypoint noop]\nbuiltin = noop\n", 0644);
	snprintf(bin, sizeof(bin), "%s", harness_bin("pgq-master"));
	fd = open(d.log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd != -1);
	pid = fork();
	cr_assert(pid != -1);
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		if (setgroups(0, NULL) == -1 || setgid(pw->pw_gid) == -1 ||
		    setuid(pw->pw_uid) == -1)
			_exit(126);
		execl(bin, bin, "-c", d.ini, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) == -1)
		cr_assert(errno == EINTR);
	n = pread(fd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 78, "status %d: %s", st,
		  out);
	cr_assert(strstr(out, "[pgq] user = root: pgq-master runs as uid") !=
			  NULL,
		  "%s", out);
}

Test(harden, root_handlers_are_refused_unless_allowed)
{
	char out[8192];
	int rc;

	cr_assert(geteuid() == 0, "this test needs root");
	write_ini_mode(dsn, "", "[entrypoint noop]\nbuiltin = noop\n", 0600);
	rc = hd_run(out, sizeof(out), "-c", d.ini, NULL);
	cr_assert_eq(rc, 78, "%s", out);
	cr_assert(strstr(out, "[entrypoint noop] would run its handler as "
			      "root: set [pgq] user = NAME, or allow_root = "
			      "yes") != NULL,
		  "%s", out);
	cr_assert(strstr(out, d.ini) != NULL, "the file is not named: %s", out);

	/* The key allows it; --drain ends the run once the queue is empty. */
	write_ini_mode(dsn, "allow_root = yes\n",
		       "[entrypoint noop]\nbuiltin = noop\n", 0600);
	rc = hd_run(out, sizeof(out), "-c", d.ini, "--drain", NULL);
	cr_assert_eq(rc, 0, "%s", out);

	/* So does the flag. */
	write_ini_mode(dsn, "", "[entrypoint noop]\nbuiltin = noop\n", 0600);
	rc = hd_run(out, sizeof(out), "-c", d.ini, "--allow-root", "--drain",
		    NULL);
	cr_assert_eq(rc, 0, "%s", out);
}

Test(harden, max_payload_reaches_producers_and_the_worker_ends_bigger_jobs)
{
	static char big[17];
	struct pgq_job_spec s;
	struct pgq_error err;
	struct pgq *q;

	suite_start(1, "",
		    "[entrypoint small]\nbuiltin = noop\nmax_payload = 16\n");
	cr_assert_eq(hd_wait_scalar(db, 16, T_EVENT_MS,
				    "SELECT coalesce(max(max_payload), -1) "
				    "FROM pgqueuer_pgq_limits WHERE "
				    "entrypoint = 'small'"),
		     16, "%s", hd_read_log(&d));

	/* A producer that knows nothing of the limit (PgQueuer's). */
	PQclear(harness_query(
		db, "INSERT INTO pgqueuer (priority, entrypoint, payload, "
		    "status) VALUES (0, 'small', convert_to(repeat('x', 17), "
		    "'UTF8'), 'queued'), (0, 'small', convert_to(repeat('y', "
		    "16), 'UTF8'), 'queued')"));
	cr_assert_eq(hd_wait_scalar(db, 1, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'exception' AND "
				    "traceback->>'exception_type' = "
				    "'PayloadTooLarge' AND "
				    "traceback->>'exception_message' LIKE "
				    "'payload of 17 bytes exceeds max_payload "
				    "16 of entrypoint \"small\"'"),
		     1, "%s", hd_read_log(&d));
	cr_assert_eq(hd_wait_scalar(db, 1, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_log WHERE "
				    "status = 'successful'"),
		     1, "%s", hd_read_log(&d));
	cr_assert_eq(harness_scalar(db, "SELECT count(*) FROM pgqueuer"), 0);

	/* pgq's producers are refused at enqueue. */
	memset(&s, 0, sizeof(s));
	s.entrypoint = "small";
	s.payload = big;
	s.payload_len = sizeof(big);
	q = pgq_connect(dsn, NULL, PGQ_ROLE_PRODUCER, &err);
	cr_assert_not_null(q, "%s", err.message);
	cr_assert_eq(pgq_enqueue(q, &s, NULL, &err), -1);
	cr_assert_eq(err.klass, PGQ_ERR_LIMIT, "%s", err.message);
	pgq_free(q);

	/* A reload without the key clears the limit. */
	hd_write_ini(&d, "%s",
		     hd_ini_text(dsn, 1, "",
				 "[entrypoint small]\nbuiltin = noop\n"));
	hd_signal(&d, SIGHUP);
	cr_assert_eq(hd_wait_scalar(db, 0, T_EVENT_MS,
				    "SELECT count(*) FROM pgqueuer_pgq_limits "
				    "WHERE max_payload IS NOT NULL"),
		     0, "%s", hd_read_log(&d));
	q = pgq_connect(dsn, NULL, PGQ_ROLE_PRODUCER, &err);
	cr_assert_not_null(q, "%s", err.message);
	cr_assert_eq(pgq_enqueue(q, &s, NULL, &err), 0, "%s", err.message);
	pgq_free(q);
	stop_cleanly();
}

Test(harden, an_empty_pgqueuer_dsn_counts_as_unset_for_the_listener_too)
{
	char pgdsn[512];

	/*
	 * The workers and the listener must both take PGDSN; the libpq
	 * variables point nowhere, so "" would never connect.
	 */
	snprintf(pgdsn, sizeof(pgdsn), "host=%s port=%s dbname=%s",
		 getenv("PGHOST"), getenv("PGPORT"), getenv("PGDATABASE"));
	setenv("PGQUEUER_DSN", "", 1);
	setenv("PGDSN", pgdsn, 1);
	setenv("PGHOST", "/nonexistent-pgq-dir", 1);
	unsetenv("PGPORT");
	unsetenv("PGDATABASE");
	write_ini_mode("", "", "[entrypoint noop]\nbuiltin = noop\n", 0600);
	start_and_listen();
	cr_assert(hd_count_log(&d, "worker 0: ready") > 0 ||
			  hd_wait_log(&d, "worker 0: ready", T_START_MS),
		  "%s", hd_read_log(&d));
	stop_cleanly();
}

Test(harden, the_listener_logs_no_password)
{
	char *log, *line;
	unsigned failed = 0;

	/* libpq names the socket path, which here holds the password. */
	write_ini_mode("host=/nonexistent-pgq-Sekrit77 port=5 "
		       "password=Sekrit77 connect_timeout=2",
		       "", "[entrypoint noop]\nbuiltin = noop\n", 0600);
	hd_start(&d, NULL);
	cr_assert(hd_wait_log(&d, "listen connection failed", T_START_MS), "%s",
		  hd_read_log(&d));
	log = hd_read_log(&d);
	for (line = strtok(log, "\n"); line != NULL;
	     line = strtok(NULL, "\n")) {
		if (strstr(line, "listen connection failed") == NULL)
			continue;
		failed++;
		cr_expect(strstr(line, "/nonexistent-pgq-***") != NULL, "%s",
			  line);
		cr_expect(strstr(line, "Sekrit77") == NULL, "%s", line);
	}
	free(log);
	cr_expect(failed >= 1);
	stop_cleanly();
}
