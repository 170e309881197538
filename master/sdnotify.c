/*
 * sd_notify for Type=notify units: READY=1 once the workers run, RELOADING=1
 * and STOPPING=1 around reload and shutdown, STATUS= lines for systemctl
 * status. Uses libsystemd when configure found it, else writes the datagram
 * to $NOTIFY_SOCKET itself (the protocol is one line per assignment).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/log.h"
#include "master/master_int.h"

#ifndef HAVE_LIBSYSTEMD
/* Sends state to the socket named by NOTIFY_SOCKET ('@' = abstract). */
static int
notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	size_t plen;
	int fd, rc = -1;

	if (path == NULL || path[0] == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    plen >= sizeof(sun.sun_path)) {
		errno = EINVAL;
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen +
			  (path[0] == '@' ? 0 : 1));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		   (struct sockaddr *)&sun, len) >= 0)
		rc = 1;
	close(fd);
	return rc;
}
#endif

void
sdnotify_send(const char *fmt, ...)
{
	char state[512];
	va_list ap;
	int rc;

	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(state, sizeof(state), fmt, ap);
	va_end(ap);
#ifdef HAVE_LIBSYSTEMD
	rc = sd_notify(0, state);
	if (rc < 0)
		errno = -rc;
#else
	rc = notify_send(state);
#endif
	if (rc < 0)
		log_warn("sd_notify failed state=\"%s\"", state);
}
