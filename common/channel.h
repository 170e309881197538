/*
 * The master/worker channel: one SOCK_SEQPACKET socketpair per worker, each
 * message one fixed-size record, sent without blocking. Wake-ups may be
 * coalesced; control messages (shutdown, fast, cancel) must not be dropped.
 */
#ifndef PGQ_CHANNEL_H
#define PGQ_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

enum chan_type {
	CHAN_NONE = 0, /* never sent */
	/* master -> worker */
	CHAN_WAKE,     /* there may be work: claim until none is left */
	CHAN_SHUTDOWN, /* graceful: stop claiming, finish the job, exit 0 */
	CHAN_FAST,     /* fast: stop the running job, return it, exit 0 */
	CHAN_CANCEL,   /* a = job id: stop it if running, end it canceled */
	/* worker -> master */
	CHAN_HELLO, /* connected: uuid = queue_manager_id, a = backend pid */
	CHAN_JOB_START, /* a = job id, b = timeout ms the master enforces by
			   killing the worker (module handlers; 0 = none),
			   text = entrypoint */
	CHAN_JOB_END,	/* a = job id, b = outcome (enum pgq_outcome) */
	CHAN_WAKE_MORE, /* found work: wake one more idle worker (chain wake) */
	CHAN_IDLE,	/* nothing left to claim; waiting for a wake */
	CHAN_RECYCLE,	/* exiting 0 after its jobs (max_jobs_per_worker,
			   max_worker_rss): replace at once; a = jobs run,
			   b = resident set KiB */
	CHAN_HANDLER_GROUP, /* a = process group of the running command
			       handler, 0 once it has ended; b = its
			       kill_grace in ms: the master ends the group if
			       the worker dies first */
	CHAN_TYPE_MAX
};

#define CHAN_TEXT_MAX 64

struct chan_msg {
	uint32_t type;	/* enum chan_type */
	uint32_t flags; /* reserved, 0 */
	int64_t a;
	int64_t b;
	char uuid[40];		  /* NUL-terminated */
	char text[CHAN_TEXT_MAX]; /* NUL-terminated */
};

/* Creates a close-on-exec, non-blocking SOCK_SEQPACKET pair. */
int chan_pair(int fds[2]) PGQ_WUR;
/*
 * Sends one message. Returns 0, or -1 with errno (EAGAIN when the peer's
 * buffer is full: the caller keeps the message pending and retries when
 * writable).
 */
int chan_send(int fd, const struct chan_msg *m) PGQ_WUR;
/*
 * Receives one message. Returns 1 with *m filled, 0 at end of file (peer
 * gone), -1 with errno (EAGAIN: nothing to read; EBADMSG: malformed record).
 */
int chan_recv(int fd, struct chan_msg *m) PGQ_WUR;
/* Validates a received record of len bytes (exposed for the fuzzer). */
bool chan_decode(const void *buf, size_t len, struct chan_msg *m) PGQ_WUR;
const char *chan_type_name(uint32_t type);

#endif
