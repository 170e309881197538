/*
 * Module handlers: a shared object loaded once per worker with RTLD_NOW (a
 * missing symbol fails at start-up, not at the first job) and RTLD_LOCAL (two
 * modules cannot capture each other's symbols). Its optional init hook
 * creates the resources every call receives; fini releases them.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/worker_int.h"

struct handler_module {
	struct handler h; /* first: the common head */
	void *dl;
	pgq_handler_fn fn;
	pgq_module_fini_fn fini;
	void *resources;
	char *path;
};

/*
 * ISO C cannot convert a data pointer to a function pointer; POSIX
 * guarantees dlsym results can be. The union says so without a warning.
 */
union dl_sym {
	void *p;
	pgq_handler_fn handler;
	pgq_module_init_fn init;
	pgq_module_fini_fn fini;
};

static void *
module_sym(void *dl, const char *name)
{
	(void)dlerror();
	return dlsym(dl, name);
}

static void
module_start(struct handler *h, struct ev_loop *loop, const struct pgq_job *job,
	     handler_done_fn done, void *arg)
{
	struct handler_module *m = (struct handler_module *)h;

	(void)loop;
	handler_call_fn(m->fn, m->resources, job, done, arg);
}

static void
module_abort(struct handler *h)
{
	/* The call runs in our stack: it cannot be interrupted. */
	(void)h;
}

static void
module_free(struct handler *h)
{
	struct handler_module *m = (struct handler_module *)h;

	if (m->fini != NULL)
		m->fini(m->resources);
	if (m->dl != NULL)
		dlclose(m->dl);
	free(m->path);
	free(m);
}

static const struct handler_ops module_ops = {
	.kind = "module",
	.start = module_start,
	.abort = module_abort,
	.free = module_free,
};

struct handler *
handler_module_new(const char *path, const char *function,
		   const char *entrypoint, char *errbuf, size_t errlen)
{
	struct handler_module *m = xcalloc(1, sizeof(*m));
	union dl_sym sym;
	pgq_module_init_fn init;
	const char *e;

	m->h.ops = &module_ops;
	m->path = xstrdup(path);
	m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (m->dl == NULL) {
		e = dlerror();
		snprintf(errbuf, errlen, "cannot load module %s: %s", path,
			 e != NULL ? e : "unknown error");
		goto fail;
	}
	sym.p = module_sym(m->dl, function);
	if (sym.p == NULL) {
		e = dlerror();
		snprintf(errbuf, errlen, "module %s: function %s not found: %s",
			 path, function, e != NULL ? e : "symbol is NULL");
		goto fail;
	}
	m->fn = sym.handler;
	sym.p = module_sym(m->dl, "pgq_module_fini");
	m->fini = sym.fini;
	sym.p = module_sym(m->dl, "pgq_module_init");
	init = sym.init;
	if (init != NULL) {
		char msg[512] = "";
		int rc = init(&m->resources, entrypoint, msg, sizeof(msg));

		if (rc != 0) {
			msg[sizeof(msg) - 1] = '\0';
			snprintf(errbuf, errlen,
				 "module %s: pgq_module_init failed for "
				 "entrypoint %s (returned %d): %s",
				 path, entrypoint, rc,
				 msg[0] != '\0' ? msg : "no reason given");
			/* A failed init created nothing to finish. */
			m->fini = NULL;
			goto fail;
		}
	}
	return &m->h;
fail:
	module_free(&m->h);
	return NULL;
}
