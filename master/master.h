/*
 * The one header of master/ other folders may include: process titles. The
 * master saves the argv area at start; a forked worker inherits it and calls
 * master_title_set to show what it runs ("pgq-master: worker 3 busy job=42
 * send_email"). In a process that never called master_title_init both calls
 * only set the thread name.
 */
#ifndef PGQ_MASTER_H
#define PGQ_MASTER_H

/*
 * Remembers the argv/environ area of the process so it can be overwritten
 * (environ is moved to the heap first). Call once from main, before anything
 * reads argv or environ pointers it kept.
 */
void master_title_init(int argc, char **argv);
/* Sets the title shown by ps: "pgq-master: " followed by the formatted text. */
void master_title_set(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif
