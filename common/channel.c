/*
 * Channel records over SOCK_SEQPACKET: the kernel keeps message boundaries,
 * so a record is never split or merged, and a short read is a protocol error.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/channel.h"

int
chan_pair(int fds[2])
{
	return socketpair(
		AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds);
}

int
chan_send(int fd, const struct chan_msg *m)
{
	ssize_t n;

	do
		n = send(fd, m, sizeof(*m), MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if ((size_t)n != sizeof(*m)) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

bool
chan_decode(const void *buf, size_t len, struct chan_msg *m)
{
	if (len != sizeof(*m))
		return false;
	memcpy(m, buf, sizeof(*m));
	if (m->type == CHAN_NONE || m->type >= CHAN_TYPE_MAX || m->flags != 0)
		return false;
	if (memchr(m->uuid, '\0', sizeof(m->uuid)) == NULL ||
	    memchr(m->text, '\0', sizeof(m->text)) == NULL)
		return false;
	return true;
}

int
chan_recv(int fd, struct chan_msg *m)
{
	unsigned char buf[sizeof(*m) + 1];
	ssize_t n;

	do
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if (n == 0)
		return 0;
	if (!chan_decode(buf, (size_t)n, m)) {
		errno = EBADMSG;
		return -1;
	}
	return 1;
}

const char *
chan_type_name(uint32_t type)
{
	static const char *const names[] = {
		"none",	     "wake",  "shutdown",  "fast",
		"cancel",    "hello", "job_start", "job_end",
		"wake_more", "idle",  "recycle",   "handler_group"};
	_Static_assert(PGQ_NELEM(names) == CHAN_TYPE_MAX, "a name per type");

	return type < CHAN_TYPE_MAX ? names[type] : "invalid";
}
