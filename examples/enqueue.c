/*
 * Enqueue from C: wrap a connection you already have, check it, and add jobs
 * one at a time and in a batch. Build: cc enqueue.c $(pkg-config --cflags
 * --libs pgq). Run with the libpq environment pointing at a database where
 * `pgq install` has been run.
 */
#include <stdio.h>
#include <string.h>

#include <pgq.h>

int
main(void)
{
	struct pgq_job_spec batch[3];
	struct pgq_error err;
	int64_t id, ids[3];
	struct pgq *q;
	PGconn *conn;
	int rc = 1;

	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "connect: %s", PQerrorMessage(conn));
		goto out;
	}
	q = pgq_wrap(conn, NULL, PGQ_ROLE_PRODUCER, &err);
	if (q == NULL) {
		fprintf(stderr, "pgq_wrap: %s (%s)\n", err.message, err.hint);
		goto out;
	}

	struct pgq_job_spec one = {.entrypoint = "send_email",
				   .payload = "to=ops@example.org",
				   .payload_len = 18,
				   .priority = 5};
	if (pgq_enqueue(q, &one, &id, &err) == -1) {
		fprintf(stderr, "enqueue: %s [%s] hint: %s\n", err.message,
			err.sqlstate, err.hint);
		goto free;
	}
	printf("enqueued job %lld\n", (long long)id);

	memset(batch, 0, sizeof(batch));
	for (int i = 0; i < 3; i++) {
		batch[i].entrypoint = "resize";
		batch[i].payload = "image.png";
		batch[i].payload_len = 9;
		batch[i].delay_ms = 1000 * i;
	}
	batch[2].dedupe_key = "resize-image.png";
	if (pgq_enqueue_batch(q, batch, 3, PGQ_CONFLICT_SKIP, ids, NULL,
			      &err) == -1) {
		fprintf(stderr, "enqueue batch: %s [%s]\n", err.message,
			err.sqlstate);
		goto free;
	}
	for (int i = 0; i < 3; i++)
		printf("batch job %d: id %lld\n", i, (long long)ids[i]);
	rc = 0;
free:
	pgq_free(q);
out:
	PQfinish(conn);
	return rc;
}
