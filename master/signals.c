/*
 * The master's signals as libev watchers, so that what a signal does
 * (master_signal in master.c) runs in the loop, never in signal context; and
 * their names for the log.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "master/master_int.h"

const char *
signal_name(int sig)
{
	static const struct {
		int sig;
		const char *name;
	} names[] = {{SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},
		     {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
		     {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"},
		     {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
		     {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
		     {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
		     {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"},
		     {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
		     {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"},
		     {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
		     {SIGTTOU, "SIGTTOU"}, {SIGXCPU, "SIGXCPU"},
		     {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"}};
	static char buf[32];

	for (size_t i = 0; i < PGQ_NELEM(names); i++) {
		if (names[i].sig == sig)
			return names[i].name;
	}
	snprintf(buf, sizeof(buf), "signal %d", sig);
	return buf;
}

/* In the loop, never in signal context: master.c decides what it means. */
static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	master_signal(w->data, w->signum);
}

void
signals_start(struct master *m)
{
	struct {
		ev_signal *w;
		int sig;
	} sigs[] = {{&m->sig_term, SIGTERM}, {&m->sig_int, SIGINT},
		    {&m->sig_quit, SIGQUIT}, {&m->sig_hup, SIGHUP},
		    {&m->sig_ttin, SIGTTIN}, {&m->sig_ttou, SIGTTOU},
		    {&m->sig_usr1, SIGUSR1}, {&m->sig_chld, SIGCHLD}};

	/* A dead channel peer must be an error from send, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < PGQ_NELEM(sigs); i++) {
		ev_signal_init(sigs[i].w, signal_cb, sigs[i].sig);
		sigs[i].w->data = m;
		ev_signal_start(m->loop, sigs[i].w);
	}
}

void
signals_stop(struct master *m)
{
	ev_signal *ws[] = {&m->sig_term, &m->sig_int,  &m->sig_quit,
			   &m->sig_hup,	 &m->sig_ttin, &m->sig_ttou,
			   &m->sig_usr1, &m->sig_chld};

	for (size_t i = 0; i < PGQ_NELEM(ws); i++)
		ev_signal_stop(m->loop, ws[i]);
}
