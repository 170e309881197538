-- Test data, not pgq's SQL: the dequeue of a PgQueuer worker of the 1.3
-- line for an entrypoint with a concurrency_limit, transcribed for
-- tests/db/test_compat.c. It counts the picked jobs and takes no capacity
-- slot, so it runs on a 1.3 and on a 1.4 queue alike.
--
-- Origin: janbjorge/pgqueuer, test/query_shapes/dequeue_entrypoint_gate.sql
-- at commit b8f3e4a32e43fa5dbd9d2a364d0b2ff1497f0cbf: the statement of
-- v1.3.2 as the SQL composer (#763) renders it for this gate, before
-- #774/#777 changed it for v1.4.0. v1.3.2 sent one statement with every
-- gate in it, the unused ones neutralised with NULL; its own text was not
-- among the copies we could read, so this is the closest form of it. The
-- other statements are the same in both lines as far as these tests use
-- them: see pgqueuer-1.4-queries.sql. $1 batch_size, $2 text[] entrypoints,
-- $3 uuid queue_manager_id, $4 interval heartbeat_timeout, $5 bigint[]
-- concurrency_limit per entrypoint. Names as in pgqueuer-1.4-queries.sql.

-- name: dequeue_limited
WITH
-- Unpack per-entrypoint parameters; concurrency_limit 0 means unlimited.
params AS (
    SELECT
        UNNEST($2::text[]) AS entrypoint,
        UNNEST($5::bigint[]) AS concurrency_limit
),

-- Per-entrypoint count of picked jobs (global, all workers).
picked AS (
    SELECT entrypoint, COUNT(*) AS total
    FROM {self.qualified.queue_table}
    WHERE queue_manager_id IS NOT NULL
      AND entrypoint = ANY($2)
    GROUP BY entrypoint
),

-- Entrypoints with free capacity; remaining caps a single dequeue.
available AS (
    SELECT
        params.entrypoint,
        CASE
            WHEN params.concurrency_limit <= 0 THEN NULL
            ELSE params.concurrency_limit - COALESCE(picked.total, 0)
        END AS remaining
    FROM params
    LEFT JOIN picked ON picked.entrypoint = params.entrypoint
    WHERE params.concurrency_limit <= 0
       OR COALESCE(picked.total, 0) < params.concurrency_limit
),

-- New queued jobs; LATERAL hits the (entrypoint, priority, id) index.
next_queued AS (
    SELECT job.id, job.priority
    FROM available
    CROSS JOIN LATERAL (
        SELECT candidate.id, candidate.priority
        FROM {self.qualified.queue_table} candidate
        WHERE candidate.entrypoint = available.entrypoint
          AND candidate.status = 'queued'
          AND candidate.execute_after < NOW()
        ORDER BY candidate.priority DESC, candidate.id ASC
        LIMIT LEAST($1, available.remaining)
        FOR UPDATE SKIP LOCKED
    ) job
    ORDER BY job.priority DESC, job.id ASC
    LIMIT $1
),

-- Stale picked jobs whose heartbeat timed out.
next_stale AS (
    SELECT stale.id, stale.priority
    FROM {self.qualified.queue_table} stale
    WHERE stale.status = 'picked'
      AND stale.entrypoint = ANY($2)
      AND stale.heartbeat < NOW() - $4::interval
      AND stale.execute_after < NOW()
    ORDER BY stale.priority DESC, stale.id ASC
    FOR UPDATE SKIP LOCKED
    LIMIT $1
),

-- Merge both sets into one priority order so stale competes with fresh.
eligible AS (
    SELECT id FROM (
        SELECT id, priority FROM next_queued
        UNION ALL
        SELECT id, priority FROM next_stale
    ) combined
    ORDER BY priority DESC, id ASC
    LIMIT $1
),

-- Atomically claim the jobs and log the pick event.
claimed AS (
    UPDATE {self.qualified.queue_table}
    SET status = 'picked',
        updated   = NOW(),
        heartbeat = NOW(),
        queue_manager_id = $3
    WHERE id IN (SELECT id FROM eligible)
    RETURNING *
),

log_pick AS (
    INSERT INTO {self.qualified.queue_table_log} (job_id, status, entrypoint, priority)
    SELECT id, status, entrypoint, priority FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, id ASC;
