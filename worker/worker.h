/*
 * The daemon's worker process: what runs in a child of pgq-master after the
 * fork. It owns one autocommit connection and one consumer engine, and talks
 * to the master over its channel (common/channel.h).
 */
#ifndef PGQ_WORKER_H
#define PGQ_WORKER_H

#include "conf/conf.h"

/* Exit status of a worker whose configuration cannot work (EX_CONFIG). */
#define WORKER_EXIT_CONFIG 78

/*
 * Runs worker slot on its channel chan_fd until the master asks it to stop
 * or goes away; returns the process's exit status (0, or WORKER_EXIT_CONFIG
 * when a handler cannot be set up: the master must not respawn it). Call in
 * the forked child only: it closes every descriptor but chan_fd and stdio,
 * resets signal dispositions and mask, and builds its own event loop (the
 * master's watchers and connection are never touched; cf is only read).
 */
int worker_main(const struct conf *cf, unsigned slot, int chan_fd);

/*
 * What pgq-master --drain checks before it forks a worker (probe.c): a
 * worker's connection on cf's dsn opens and passes the consumer checks, its
 * claims of cf's entrypoints could run (consumer_probe), and the master's own
 * listen_dsn, when set, opens too. Returns 0, or -1 with err:
 * driver_error_fatal(err) tells what only an operator can mend from an
 * outage the drain may wait out.
 */
int worker_drain_check(const struct conf *cf, struct pgq_error *err);

#endif
