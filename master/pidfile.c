/*
 * The pidfile: created with O_EXCL and held with flock(2) for the master's
 * whole life, so a second master is refused while the first lives, and a file
 * left behind by a master that died (its lock released by the kernel) is
 * simply taken over.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/log.h"
#include "master/master_int.h"

static int pidfile_fd = -1;
static char *pidfile_path;

/* Reads the pid written in the file, for the refusal message; 0 if none. */
static long
pidfile_read_pid(int fd)
{
	char buf[32];
	ssize_t n;

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

int
pidfile_create(const char *path)
{
	char buf[32];
	int fd, len;
	bool stale = false;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd == -1 && errno == EEXIST) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		stale = true;
	}
	if (fd == -1) {
		log_warn("pidfile %s: cannot open", path);
		return -1;
	}
	/*
	 * The lock, not the pid in the file, says whether a master lives: a
	 * pid may have been reused, a lock dies with its holder.
	 */
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			log_error("pidfile %s: held by a running master "
				  "pid=%ld",
				  path, pidfile_read_pid(fd));
		else
			log_warn("pidfile %s: cannot lock", path);
		close(fd);
		return -1;
	}
	if (stale)
		log_info("pidfile %s: replacing a stale file pid=%ld", path,
			 pidfile_read_pid(fd));
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 ||
	    pwrite(fd, buf, (size_t)len, 0) != (ssize_t)len) {
		log_warn("pidfile %s: cannot write", path);
		close(fd);
		return -1;
	}
	pidfile_fd = fd;
	pidfile_path = xstrdup(path);
	return 0;
}

void
pidfile_remove(void)
{
	if (pidfile_fd == -1)
		return;
	/* Unlink before unlocking: a new master must not lose its file. */
	if (unlink(pidfile_path) == -1) {
		/* After a privilege drop the directory may not be ours: an
		 * empty, unlocked file is taken over by the next master. */
		if (errno == EACCES || errno == EPERM) {
			if (ftruncate(pidfile_fd, 0) == -1)
				log_warn("pidfile %s: cannot empty",
					 pidfile_path);
		} else if (errno != ENOENT) {
			log_warn("pidfile %s: cannot remove", pidfile_path);
		}
	}
	close(pidfile_fd);
	pidfile_fd = -1;
	free(pidfile_path);
	pidfile_path = NULL;
}
