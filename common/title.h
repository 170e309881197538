/*
 * Process titles for pgq-master and its workers. main saves the argv area
 * at start; a forked worker inherits it and sets its own title ("pgq-master:
 * worker 3 busy job=42 send_email"). In a process that never called
 * title_init, title_set only sets the kernel's thread name.
 */
#ifndef PGQ_TITLE_H
#define PGQ_TITLE_H

/*
 * Remembers the argv/environ area of the process so it can be overwritten
 * (environ is moved to the heap first). Call once from main, before anything
 * reads argv or environ pointers it kept.
 */
void title_init(int argc, char **argv);
/* Sets the title shown by ps: "pgq-master: " followed by the formatted text. */
void title_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
