/*
 * pgq-master's life cycle as an operator sees it: the -t check, usage and
 * version, the pidfile (a live master refuses a second, a stale file is
 * replaced), process titles, sd_notify, workers that hold no descriptor but
 * their own, and workers that exit when their master is killed.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include "tests/daemon/suite.h"

TestSuite(lifecycle, .init = suite_setup, .fini = suite_teardown,
	  .timeout = 120);

static const char *noop_section = "[entrypoint noop]\nbuiltin = noop\n";

Test(lifecycle, check_accepts_a_good_file)
{
	char out[4096];

	hd_write_ini(&d, "%s", hd_ini_text(dsn, 2, "", noop_section));
	cr_assert_eq(hd_run(out, sizeof(out), "-t", "-c", d.ini, NULL), 0, "%s",
		     out);
	cr_assert(strstr(out, "configuration OK") != NULL, "%s", out);
}

Test(lifecycle, check_reports_every_error_with_its_line)
{
	char out[4096], want[512];
	int rc;

	hd_write_ini(&d,
		     "[pgq]\n"
		     "workers = 0\n"
		     "; a comment\n"
		     "poll_interval = soon\n"
		     "[database]\n"
		     "dsn = %s\n"
		     "colour = blue\n"
		     "[entrypoint noop]\n"
		     "builtin = noop\n",
		     dsn);
	rc = hd_run(out, sizeof(out), "-t", "-c", d.ini, NULL);
	cr_assert_eq(rc, 78, "exit %d: %s", rc, out);
	cr_assert(strstr(out, "configuration OK") == NULL, "%s", out);
	static const unsigned lines[] = {2, 4, 7};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(want, sizeof(want), "%s:%u:", d.ini, lines[i]);
		cr_assert(strstr(out, want) != NULL, "no %s in:\n%s", want,
			  out);
	}
}

Test(lifecycle, check_names_the_line_of_a_too_long_line)
{
	char out[4096], want[512], longdsn[300];
	int rc;

	memset(longdsn, 'x', sizeof(longdsn) - 1);
	longdsn[sizeof(longdsn) - 1] = '\0';
	hd_write_ini(&d,
		     "[pgq]\nworkers = 1\n\n[database]\ndsn = %s\n"
		     "[entrypoint noop]\nbuiltin = noop\n",
		     longdsn);
	rc = hd_run(out, sizeof(out), "-t", "-c", d.ini, NULL);
	cr_assert_eq(rc, 78, "exit %d: %s", rc, out);
	snprintf(want, sizeof(want), "%s:5:", d.ini);
	cr_assert(strstr(out, want) != NULL, "no %s in:\n%s", want, out);
	cr_assert(strstr(out, "too long") != NULL, "%s", out);
}

Test(lifecycle, check_treats_a_spaced_semicolon_as_a_comment_only)
{
	char out[4096], want[512];
	int rc;

	hd_write_ini(&d,
		     "[pgq]\nworkers = 2 ; two of them\n[database]\n"
		     "dsn = %s\n[entrypoint noop]\nbuiltin = noop\n",
		     dsn);
	rc = hd_run(out, sizeof(out), "-t", "-c", d.ini, NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
	/* Without a space the ';' is part of the value, which is then bad. */
	hd_write_ini(&d,
		     "[pgq]\nworkers = 2;two\n[database]\n"
		     "dsn = %s\n[entrypoint noop]\nbuiltin = noop\n",
		     dsn);
	rc = hd_run(out, sizeof(out), "-t", "-c", d.ini, NULL);
	cr_assert_eq(rc, 78, "exit %d: %s", rc, out);
	snprintf(want, sizeof(want), "%s:2:", d.ini);
	cr_assert(strstr(out, want) != NULL, "no %s in:\n%s", want, out);
}

Test(lifecycle, usage_errors_exit_64_and_version_exits_0)
{
	char out[4096];

	cr_assert_eq(hd_run(out, sizeof(out), NULL), 64, "%s", out);
	cr_assert(strstr(out, "usage:") != NULL, "%s", out);
	cr_assert_eq(hd_run(out, sizeof(out), "--bogus", NULL), 64, "%s", out);
	cr_assert_eq(hd_run(out, sizeof(out), "-V", NULL), 0, "%s", out);
	cr_assert(strstr(out, "pgq-master ") != NULL, "%s", out);
	cr_assert_eq(
		hd_run(out, sizeof(out), "-c", "/nonexistent/pgq.ini", NULL),
		78, "%s", out);
}

Test(lifecycle, a_live_master_refuses_a_second_one_and_removes_its_pidfile)
{
	char extra[512], out[8192], buf[64];
	FILE *f;
	long pid = 0;

	snprintf(extra, sizeof(extra), "pidfile = %s\n", d.pidfile);
	suite_start(2, extra, noop_section);
	f = fopen(d.pidfile, "r");
	cr_assert(f != NULL, "no pidfile: %s", strerror(errno));
	cr_assert(fgets(buf, sizeof(buf), f) != NULL);
	fclose(f);
	pid = strtol(buf, NULL, 10);
	cr_assert_eq(pid, (long)d.pid);

	cr_assert_eq(
		hd_run(out, sizeof(out), "-c", d.ini, "--allow-root", NULL), 1,
		"%s", out);
	cr_assert(strstr(out, "held by a running master") != NULL, "%s", out);
	cr_assert(access(d.pidfile, F_OK) == 0, "the refused one removed it");

	hd_signal(&d, SIGTERM);
	cr_assert_eq(hd_wait_exit(&d, T_EVENT_MS), 0, "%s", hd_read_log(&d));
	cr_assert(access(d.pidfile, F_OK) == -1, "pidfile left behind");
}

Test(lifecycle, a_stale_pidfile_is_replaced)
{
	char extra[512], buf[64];
	FILE *f;

	hd_write_file(&d, "pgq-master.pid", "999999\n");
	snprintf(extra, sizeof(extra), "pidfile = %s\n", d.pidfile);
	suite_start(1, extra, noop_section);
	cr_assert(hd_count_log(&d, "replacing a stale file") == 1, "%s",
		  hd_read_log(&d));
	f = fopen(d.pidfile, "r");
	cr_assert(f != NULL);
	cr_assert(fgets(buf, sizeof(buf), f) != NULL);
	fclose(f);
	cr_assert_eq(strtol(buf, NULL, 10), (long)d.pid);
}

Test(lifecycle, titles_name_the_master_and_each_worker)
{
	pid_t kids[16];
	size_t n;

	suite_start(2, "", noop_section);
	cr_assert_str_eq(proc_cmdline(d.pid), "pgq-master: master");
	n = hd_live_children(d.pid, kids, 16);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++)
		cr_assert(strncmp(proc_cmdline(kids[i]), "pgq-master: worker ",
				  19) == 0,
			  "title %s", proc_cmdline(kids[i]));
}

/* True when target names an object with an identity (socket, pipe, file). */
static bool
fd_comparable(const char *target)
{
	return strncmp(target, "anon_inode:", 11) != 0 &&
	       strcmp(target, "/dev/null") != 0 && target[0] != '\0';
}

Test(lifecycle, workers_hold_no_descriptor_but_their_own)
{
	int mfds[256], wfds[256];
	char mtargets[256][128];
	size_t nm, nw, nk;
	pid_t kids[16];
	char extra[512];

	snprintf(extra, sizeof(extra), "pidfile = %s\n", d.pidfile);
	suite_start(2, extra, noop_section);
	suite_wait_idle(2);
	nm = proc_fds(d.pid, mfds, 256);
	for (size_t i = 0; i < nm; i++)
		snprintf(mtargets[i], sizeof(mtargets[i]), "%s",
			 proc_fd_target(d.pid, mfds[i]));
	nk = hd_live_children(d.pid, kids, 16);
	cr_assert_eq(nk, 2);
	for (size_t k = 0; k < nk; k++) {
		nw = proc_fds(kids[k], wfds, 256);
		for (size_t i = 0; i < nw; i++) {
			const char *t = proc_fd_target(kids[k], wfds[i]);

			if (wfds[i] < 3 || !fd_comparable(t))
				continue;
			cr_expect(strcmp(t, d.pidfile) != 0,
				  "worker %ld holds the pidfile",
				  (long)kids[k]);
			for (size_t j = 0; j < nm; j++) {
				if (mfds[j] < 3)
					continue;
				cr_expect(strcmp(t, mtargets[j]) != 0,
					  "worker %ld fd %d shares %s with the "
					  "master",
					  (long)kids[k], wfds[i], t);
			}
		}
	}
}

Test(lifecycle, workers_exit_when_the_master_is_killed)
{
	pid_t kids[16];
	size_t n;
	unsigned long long deadline;

	suite_start(3, "", noop_section);
	n = hd_live_children(d.pid, kids, 16);
	cr_assert_eq(n, 3);
	cr_assert(kill(d.pid, SIGKILL) == 0);
	cr_assert_eq(hd_wait_exit(&d, T_EVENT_MS), 128 + SIGKILL);
	deadline = hd_now_ms() + T_EVENT_MS;
	for (size_t i = 0; i < n; i++) {
		while (proc_alive(kids[i]) && hd_now_ms() < deadline)
			(void)hd_wait_exit(&d, 10);
		cr_assert(!proc_alive(kids[i]),
			  "worker %ld outlived its master", (long)kids[i]);
	}
}

/* Receives datagrams until one holds want or the deadline passes. */
static bool
notify_wait(int fd, const char *want, unsigned timeout_ms)
{
	unsigned long long deadline = hd_now_ms() + timeout_ms;
	char buf[1024];

	while (hd_now_ms() < deadline) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, want) != NULL)
				return true;
			continue;
		}
		(void)hd_wait_exit(&d, 5);
	}
	return false;
}

Test(lifecycle, sd_notify_says_ready_reloading_and_stopping)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	cr_assert(snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify",
			   d.dir) < (int)sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(fd != -1);
	cr_assert(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, "%s",
		  strerror(errno));
	setenv("NOTIFY_SOCKET", sun.sun_path, 1);
	suite_start(1, "", noop_section);
	unsetenv("NOTIFY_SOCKET");
	cr_assert(notify_wait(fd, "READY=1", T_EVENT_MS));
	hd_signal(&d, SIGHUP);
	cr_assert(notify_wait(fd, "RELOADING=1", T_EVENT_MS));
	cr_assert(notify_wait(fd, "READY=1", T_EVENT_MS));
	hd_signal(&d, SIGTERM);
	cr_assert(notify_wait(fd, "STOPPING=1", T_EVENT_MS));
	cr_assert_eq(hd_wait_exit(&d, T_EVENT_MS), 0);
	close(fd);
}

Test(lifecycle, a_log_file_holds_master_and_worker_lines_and_usr1_reopens_it)
{
	char extra[512], logpath[300], rotated[320], *text;
	unsigned long long deadline;
	FILE *f;
	long size;

	snprintf(logpath, sizeof(logpath), "%s/pgq.log", d.dir);
	snprintf(rotated, sizeof(rotated), "%s.1", logpath);
	snprintf(extra, sizeof(extra), "log_target = file\nlog_file = %s\n",
		 logpath);
	hd_write_ini(&d, "%s", hd_ini_text(dsn, 2, extra, noop_section));
	hd_start(&d, NULL);
	(void)hd_enqueue(db, "noop", NULL, 3, 0);
	cr_assert_eq(hd_wait_scalar(
			     db, 3, T_EVENT_MS,
			     "SELECT count(*) FROM pgqueuer_log WHERE status = "
			     "'successful'"),
		     3);
	/* Lines written by the workers themselves (their own pid). */
	f = fopen(logpath, "r");
	cr_assert(f != NULL);
	text = calloc(1, 1 << 20);
	cr_assert(text != NULL);
	size = (long)fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	cr_assert_gt(size, 0);
	cr_assert(strstr(text, "listening channel=") != NULL, "%s", text);
	cr_assert(strstr(text, ": worker 0: connected") != NULL ||
			  strstr(text, ": worker 1: connected") != NULL,
		  "no worker line in the file:\n%s", text);
	free(text);

	cr_assert(rename(logpath, rotated) == 0);
	hd_signal(&d, SIGUSR1);
	deadline = hd_now_ms() + T_EVENT_MS;
	while (access(logpath, F_OK) != 0 && hd_now_ms() < deadline)
		(void)hd_wait_exit(&d, 10);
	cr_assert(access(logpath, F_OK) == 0, "USR1 did not reopen the log");
	hd_signal(&d, SIGTERM);
	cr_assert_eq(hd_wait_exit(&d, T_EVENT_MS), 0);
}

struct title_wait {
	pid_t pid;
	char want[128];
};

static bool
title_is(void *arg)
{
	const struct title_wait *t = arg;

	return strcmp(proc_cmdline(t->pid), t->want) == 0;
}

Test(lifecycle, a_busy_worker_shows_its_job_in_its_title)
{
	struct title_wait t;
	char needle[64];
	long long job;

	suite_start(1, "", "[entrypoint sleep]\nbuiltin = sleep\n");
	job = hd_enqueue(db, "sleep", "3s", 1, 0);
	snprintf(needle, sizeof(needle), "job start job=%lld ", job);
	cr_assert(hd_wait_log(&d, needle, T_EVENT_MS), "%s", hd_read_log(&d));
	t.pid = suite_worker_pid(0);
	snprintf(t.want, sizeof(t.want),
		 "pgq-master: worker 0 busy job=%lld sleep", job);
	cr_assert(hd_until(title_is, &t, T_EVENT_MS), "title: \"%s\"",
		  proc_cmdline(t.pid));
}
