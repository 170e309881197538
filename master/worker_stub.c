/*
 * Temporary stand-in for worker_main until worker/ lands: speaks the channel
 * protocol (hello, idle after each wake, exit on shutdown or end of file) so
 * that spawn, reap and signals can be tested. Compiled out once
 * worker/worker.h exists.
 */
#include "config.h"

#if !__has_include("worker/worker.h")
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/channel.h"
#include "common/log.h"
#include "master/master_int.h"

int worker_main(const struct conf *cf, unsigned slot, int chan_fd);

int
worker_main(const struct conf *cf, unsigned slot, int chan_fd)
{
	struct chan_msg msg;
	const char *ex = getenv("PGQ_STUB_EXIT");

	(void)cf;
	log_set_role("worker");
	(void)slot;
	if (ex != NULL)
		return atoi(ex);
	memset(&msg, 0, sizeof(msg));
	msg.type = CHAN_HELLO;
	uuid_generate_str(msg.uuid);
	if (chan_send(chan_fd, &msg) == -1)
		return 1;
	for (;;) {
		struct pollfd p = {chan_fd, POLLIN, 0};
		int rc;

		if (poll(&p, 1, -1) == -1 && errno != EINTR)
			return 1;
		rc = chan_recv(chan_fd, &msg);
		if (rc == 0)
			return 0;
		if (rc == -1)
			continue;
		if (msg.type == CHAN_SHUTDOWN || msg.type == CHAN_FAST)
			return 0;
		if (msg.type == CHAN_WAKE) {
			memset(&msg, 0, sizeof(msg));
			msg.type = CHAN_IDLE;
			if (chan_send(chan_fd, &msg) == -1)
				return 1;
		}
	}
}
#endif
