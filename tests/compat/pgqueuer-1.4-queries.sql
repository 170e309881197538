-- Test data, not pgq's SQL: the statements a PgQueuer 1.4 worker, producer
-- and scheduler run, transcribed for tests/db/test_compat.c, which runs them
-- against queues that pgq installed and next to pgq's own statements.
--
-- Origin: janbjorge/pgqueuer at commit
-- 2f3a8b16db15f49354c9cfb87a6f38d56f710eb6 (#777, capacity slots; the
-- dequeue of release v1.4.0):
--   dequeue_limited  test/query_shapes/dequeue_entrypoint_gate.sql: what
--                    QueryQueueBuilder.build_dequeue_query renders when an
--                    entrypoint has a concurrency_limit and the worker sets
--                    no max_concurrent_tasks. $1 batch_size, $2 text[]
--                    entrypoints, $3 uuid queue_manager_id, $4 interval
--                    heartbeat_timeout, $5 bigint[] concurrency_limit per
--                    entrypoint (0 = none). A lost slot race fails it with
--                    23505 on {s.queue_table}_picked_slot_idx or 40P01,
--                    which Queries.dequeue turns into an empty batch.
--   dequeue          the same builder without limits: $1 .. $4 as above;
--                    transcribed from test/query_shapes/dequeue_no_gates.sql
--                    at b8f3e4a32e43fa5dbd9d2a364d0b2ff1497f0cbf, which #774
--                    and #777 left unchanged but for the comments.
--   the others       pgqueuer/adapters/persistence/qb.py at 2f3a8b16, the
--                    builder method named in each section; their
--                    parameters are those Queries (queries.py) passes.
-- Names: {qn.X} and {self.qualified.X} schema-qualified, {s.X} bare,
-- {self.settings.channel} the channel, as in pgqueuer-1.3-install.sql.
-- Each "-- name:" section is one statement.

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

-- Claims for entrypoints without a limit; lock straight down the backlog.
unlimited_claims AS (
    SELECT job.id, job.priority, available.entrypoint
    FROM available
    CROSS JOIN LATERAL (
        SELECT candidate.id, candidate.priority
        FROM {self.qualified.queue_table} candidate
        WHERE candidate.entrypoint = available.entrypoint
          AND candidate.status = 'queued'
          AND candidate.execute_after < NOW()
        ORDER BY candidate.priority DESC, candidate.id ASC
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ) job
    WHERE available.remaining IS NULL
),

-- Claims for limited entrypoints; the window is fixed before the lock.
limited_claims AS (
    SELECT job.id, job.priority, available.entrypoint
    FROM available
    CROSS JOIN LATERAL (
        SELECT locked.id, locked.priority
        FROM (
            SELECT candidate.id
            FROM {self.qualified.queue_table} candidate
            WHERE candidate.entrypoint = available.entrypoint
              AND candidate.status = 'queued'
              AND candidate.execute_after < NOW()
            ORDER BY candidate.priority DESC, candidate.id ASC
            LIMIT LEAST($1, available.remaining)
        ) capped
        CROSS JOIN LATERAL (
            SELECT target.id, target.priority
            FROM {self.qualified.queue_table} target
            WHERE target.id = capped.id
              AND target.status = 'queued'
              AND target.execute_after < NOW()
            FOR UPDATE OF target SKIP LOCKED
        ) locked
        ORDER BY locked.priority DESC, locked.id ASC
        LIMIT LEAST($1, available.remaining)
    ) job
    WHERE available.remaining IS NOT NULL
),

-- Both claim sets merged into one priority order.
next_queued AS (
    SELECT job.id, job.priority, job.entrypoint
    FROM (
        SELECT id, priority, entrypoint FROM unlimited_claims
        UNION ALL
        SELECT id, priority, entrypoint FROM limited_claims
    ) job
    ORDER BY job.priority DESC, job.id ASC
    LIMIT $1
),

-- Stale picked jobs whose heartbeat timed out.
next_stale AS (
    SELECT stale.id, stale.priority, stale.entrypoint
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
    SELECT id, priority, entrypoint, fresh FROM (
        SELECT id, priority, entrypoint, TRUE AS fresh FROM next_queued
        UNION ALL
        SELECT id, priority, entrypoint, FALSE AS fresh FROM next_stale
    ) combined
    ORDER BY priority DESC, id ASC
    LIMIT $1
),

-- Free capacity slots, ranked; only as many seats as one dequeue uses.
free_slots AS (
    SELECT
        available.entrypoint,
        slots.slot,
        ROW_NUMBER() OVER (
            PARTITION BY available.entrypoint ORDER BY slots.slot
        ) AS slot_rank
    FROM available
    JOIN params ON params.entrypoint = available.entrypoint
    CROSS JOIN LATERAL GENERATE_SERIES(
        0,
        params.concurrency_limit - available.remaining
            + LEAST($1, available.remaining) - 1
    ) AS slots(slot)
    WHERE available.remaining IS NOT NULL
      AND NOT EXISTS (
          SELECT FROM {self.qualified.queue_table} holder
          WHERE holder.entrypoint = available.entrypoint
            AND holder.status = 'picked'
            AND holder.slot = slots.slot
      )
),

-- Pair each fresh claim with a free slot by rank; unpaired ones drop.
slot_assignments AS (
    SELECT ranked.id, free_slots.slot
    FROM (
        SELECT
            id,
            entrypoint,
            ROW_NUMBER() OVER (
                PARTITION BY entrypoint ORDER BY priority DESC, id ASC
            ) AS slot_rank
        FROM eligible
        WHERE fresh
    ) ranked
    JOIN free_slots
        ON free_slots.entrypoint = ranked.entrypoint
        AND free_slots.slot_rank = ranked.slot_rank
),

-- Claim every eligible job in one atomic UPDATE.
claimed AS (
    UPDATE {self.qualified.queue_table} job
    SET status = 'picked',
        updated   = NOW(),
        heartbeat = NOW(),
        queue_manager_id = $3,
        slot = CASE WHEN eligible.fresh THEN slot_assignments.slot ELSE job.slot END
    FROM eligible
    LEFT JOIN slot_assignments ON slot_assignments.id = eligible.id
    LEFT JOIN params ON params.entrypoint = eligible.entrypoint
    WHERE job.id = eligible.id
      AND (NOT eligible.fresh
           OR params.concurrency_limit <= 0
           OR slot_assignments.slot IS NOT NULL)
    RETURNING job.*
),

-- Record the pick in the log table.
log_pick AS (
    INSERT INTO {self.qualified.queue_table_log} (job_id, status, entrypoint, priority)
    SELECT id, status, entrypoint, priority FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, id ASC;

-- name: dequeue
WITH
-- No entrypoint carries a concurrency limit; all are available.
available AS (
    SELECT UNNEST($2::text[]) AS entrypoint
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
        LIMIT $1
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

-- build_enqueue_query("raise"): $1 int[] priority, $2 text[] entrypoint,
-- $3 bytea[] payload, $4 interval[] execute_after (0 when none), $5 text[]
-- dedupe_key, $6 jsonb[] headers, each to_json(x): JSON null when none.
-- name: enqueue
        WITH input AS MATERIALIZED (
            -- MATERIALIZED: nextval is volatile and `input` is referenced twice,
            -- so pin single evaluation -- each input row gets exactly one id.
            -- The scalar sub-select resolves the sequence name once (InitPlan)
            -- rather than a catalog lookup per row.
            -- Skipped ON CONFLICT rows leave harmless id gaps; a pre-count CTE
            -- could avoid them but isn't worth the extra pass.
            SELECT
                nextval(
                    (SELECT pg_get_serial_sequence('{self.qualified.queue_table}', 'id'))
                ) AS id,
                priority, entrypoint, payload, execute_after, dedupe_key, headers, ord
            FROM UNNEST(
                $1::int[], $2::text[], $3::bytea[],
                $4::interval[], $5::text[], $6::jsonb[]
            ) WITH ORDINALITY AS
                t(priority, entrypoint, payload, execute_after, dedupe_key, headers, ord)
        ),
        inserted AS (
            INSERT INTO {self.qualified.queue_table}
            (id, priority, entrypoint, payload, execute_after, dedupe_key, headers, status)
            SELECT id, priority, entrypoint, payload, execute_after + NOW(),
                dedupe_key, headers, 'queued'
            FROM input
            
            RETURNING id, entrypoint, priority
        ),
        logged AS (
            INSERT INTO {self.qualified.queue_table_log}
            (job_id, status, entrypoint, priority)
            SELECT id, 'queued', entrypoint, priority
            FROM inserted
        )
        -- Join maps each surviving id back to its input ordinal. Rows skipped by
        -- ON CONFLICT are absent from `inserted`, so their positions never appear.
        SELECT i.ord AS ord, ins.id AS id
        FROM inserted ins
        JOIN input i ON i.id = ins.id
        ORDER BY i.ord

-- build_log_job_query: $1 bigint[] ids, $2 status[] (any terminal status;
-- 'failed' holds the job), $3 jsonb[] traceback (NULL when none). Completes
-- by id alone, picked or not; mark_job_as_cancelled runs it with 'canceled'.
-- name: log_job
WITH job_status AS (
            SELECT
                UNNEST($1::bigint[])                            AS id,
                UNNEST($2::{self.qualified.queue_status_type}[]) AS status,
                UNNEST($3::JSONB[])                             AS traceback
        ), deleted AS (
            DELETE FROM {self.qualified.queue_table}
            WHERE id = ANY(SELECT js.id FROM job_status js WHERE js.status != 'failed')
            RETURNING id, entrypoint, priority
        ), held AS (
            UPDATE {self.qualified.queue_table}
            SET status = 'failed', updated = NOW(), queue_manager_id = NULL
            WHERE id = ANY(SELECT js.id FROM job_status js WHERE js.status = 'failed')
            RETURNING id, entrypoint, priority
        ), all_resolved AS (
            SELECT id, entrypoint, priority FROM deleted
            UNION ALL
            SELECT id, entrypoint, priority FROM held
        ), merged AS (
            SELECT
                job_status.id           AS id,
                job_status.status       AS status,
                job_status.traceback    AS traceback,
                all_resolved.entrypoint AS entrypoint,
                all_resolved.priority   AS priority
            FROM job_status
            INNER JOIN all_resolved
                ON all_resolved.id = job_status.id
        )
        INSERT INTO {self.qualified.queue_table_log} (
            job_id,
            status,
            entrypoint,
            priority,
            traceback
        )
        SELECT id, status, entrypoint, priority, traceback FROM merged

-- build_retry_job_query: $1 bigint id, $2 interval delay, $3 jsonb
-- traceback. Leaves slot as it is.
-- name: retry
WITH retry AS (
            UPDATE {self.qualified.queue_table}
            SET
                status = 'queued',
                execute_after = NOW() + $2::interval,
                attempts = attempts + 1,
                updated = NOW(),
                queue_manager_id = NULL
            WHERE id = $1::bigint
            RETURNING id, entrypoint, priority
        )
        INSERT INTO {self.qualified.queue_table_log} (job_id, status, entrypoint, priority, traceback)
        SELECT id, 'queued', entrypoint, priority, $3::JSONB FROM retry

-- build_requeue_jobs_query: $1 bigint[] ids of held jobs.
-- name: requeue
WITH requeued AS (
            UPDATE {self.qualified.queue_table}
            SET status = 'queued', execute_after = NOW(), updated = NOW(),
                attempts = 0, queue_manager_id = NULL
            WHERE id = ANY($1::bigint[]) AND status = 'failed'
            RETURNING id, entrypoint, priority
        )
        INSERT INTO {self.qualified.queue_table_log} (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM requeued

-- build_update_heartbeat_query: $1 bigint[] job ids.
-- name: heartbeat
UPDATE {self.qualified.queue_table} SET heartbeat = NOW() WHERE id = ANY($1::bigint[])

-- build_queue_size_query: no parameters.
-- name: queue_size
SELECT
        count(*) AS count,
        priority,
        entrypoint,
        status
    FROM
        {self.qualified.queue_table}
    GROUP BY entrypoint, priority, status
    ORDER BY count, entrypoint, priority, status

-- build_aggregate_log_data_to_statistics_query(advisory_lock=True), the
-- periodic fold (Queries.aggregate_logs): no parameters.
-- name: aggregate
WITH guard AS (
            SELECT pg_try_advisory_xact_lock(hashtext('{self.qualified.statistics_table}')) AS proceed
        ),
        log_aggregation AS (
            SELECT
                entrypoint,
                priority,
                status,
                COUNT(*) AS count,
                date_trunc('sec', created) AS created
            FROM {self.qualified.queue_table_log}, guard
            WHERE NOT aggregated AND guard.proceed
            GROUP BY entrypoint, priority, status, date_trunc('sec', created)
        ),
        updated_logs AS (
            UPDATE {self.qualified.queue_table_log}
            SET aggregated = TRUE
            FROM guard
            WHERE NOT aggregated AND guard.proceed
            RETURNING id
        )
        INSERT INTO {self.qualified.statistics_table} (count, created, entrypoint, priority, status)
        SELECT count, created, entrypoint, priority, status
        FROM log_aggregation
        ON CONFLICT (
            priority,
            date_trunc('sec', created AT TIME ZONE 'UTC'),
            status,
            entrypoint
        ) DO UPDATE SET
            count = {self.qualified.statistics_table}.count + EXCLUDED.count

-- build_log_statistics_query(limit=..., last=...), as the composer renders
-- it: $1 interval last, $2 limit.
-- name: log_statistics
SELECT count, created, entrypoint, priority, status
FROM {self.qualified.statistics_table}
WHERE created > NOW() - $1::interval
ORDER BY id DESC
LIMIT $2

-- QuerySchedulerBuilder.build_insert_schedule_query: $1 text[] expression,
-- $2 text[] entrypoint, $3 interval[] delay until the first run.
-- name: schedule_insert
WITH params AS (
        SELECT UNNEST($1::text[])       AS expression,
               UNNEST($2::text[])       AS entrypoint,
               UNNEST($3::interval[])   AS delay
        )
        INSERT INTO {self.qualified.schedules_table} (expression, next_run, entrypoint)
        SELECT expression, date_trunc('seconds', NOW() + delay), entrypoint FROM params
        ON CONFLICT (entrypoint, expression) DO NOTHING

-- build_fetch_schedule_query: $1, $2, $3 as schedule_insert (the delay is
-- until the next run).
-- name: schedule_fetch
WITH params AS (
        SELECT UNNEST($1::text[])       AS expression,
               UNNEST($2::text[])       AS entrypoint,
               UNNEST($3::interval[])   AS delay
    ), picked_jobs AS (
        SELECT id, expression, entrypoint
        FROM {self.qualified.schedules_table}
        WHERE
                ((entrypoint, expression) IN (SELECT entrypoint, expression FROM params)
            AND next_run <= NOW()
            AND status = 'queued')
            OR
                ((entrypoint, expression) IN (SELECT entrypoint, expression FROM params)
            AND NOW() - heartbeat > interval '30 seconds'
            AND status = 'picked')
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {self.qualified.schedules_table}
    SET
        status = 'picked',
        updated = NOW(),
        heartbeat = NOW(),
        next_run = date_trunc('seconds', NOW() + (
                SELECT delay FROM params
                WHERE
                    params.entrypoint = {self.qualified.schedules_table}.entrypoint
                AND params.expression = {self.qualified.schedules_table}.expression
            ))
    WHERE (entrypoint, expression) IN (SELECT entrypoint, expression FROM picked_jobs)
    RETURNING *;

-- build_set_schedule_queued_query: $1 bigint[] schedule ids.
-- name: schedule_queued
UPDATE {self.qualified.schedules_table} SET status = 'queued', last_run = NOW(), updated = NOW() WHERE id = ANY($1);

-- build_delete_schedule_query: $1 bigint[] ids, $2 text[] entrypoints.
-- name: schedule_delete
DELETE FROM {self.qualified.schedules_table} WHERE id = ANY($1) OR entrypoint = ANY($2)

-- Queries.notify_job_cancellation sends models.CancellationEvent's
-- model_dump_json (fields channel, sent_at, type, received_at, ids, in the
-- order pgqueuer/domain/models.py declares them) through the driver's
-- notify. This is such a payload, for the default channel.
-- name: cancellation_event
{"channel":"ch_pgqueuer","sent_at":"2026-09-01T10:00:00.123456Z","type":"cancellation_event","received_at":"2026-09-01T10:00:00.123789Z","ids":[3,5]}
