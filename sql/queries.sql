-- The run-time statements of pgq (enum sql_stmt), prepared once per
-- connection. Every section says its parameters, its result, the index that
-- serves it and what it locks. Every write after the claim is conditional
-- on ownership: queue_manager_id = the owner AND status = 'picked', so a job
-- re-claimed by someone else is never touched by its old owner.
-- PgQueuer's trigger is statement-level and an UPDATE never notifies:
-- statements that make jobs runnable by UPDATE send the table_changed_event
-- themselves. A CTE that sends a notification is forced to run by a
-- one-time filter in the final WHERE ("(SELECT count(*) FROM notified) >= 0"),
-- which PostgreSQL evaluates once before anything else, even when no row is
-- returned.

-- ENQUEUE
-- $1 text[] entrypoint, $2 bytea[] payload, $3 int[] priority (NULL = 0),
-- $4 interval[] delay (NULL = none), $5 text[] dedupe_key, $6 jsonb[]
-- headers, $7 bool skip duplicates.
-- Returns (ord int, id bigint) for every job inserted, ordered by ord (the
-- 1-based position in the arrays); a duplicate left out in skip mode has no
-- row. Ids are drawn from the queue's sequence in input order before the
-- insert, which is what lets the result map ids back to positions.
-- Raise mode inserts plainly: a duplicate dedupe_key among queued/picked
-- jobs fails the statement with 23505. Skip mode inserts with ON CONFLICT DO
-- NOTHING on the unique dedupe index, which also skips a duplicate of an
-- earlier row of the same batch. Only one of the two INSERTs gets rows; the
-- statement trigger fires once for the statement (one notification, sent at
-- commit).
-- {enqueue_check} is empty in SQL_ENQUEUE; SQL_ENQUEUE_CHECKED puts
-- stmt.enqueue_check there (sql_stmt_render).
-- Index: the unique dedupe index is checked per row; no reads.
-- Locks: the new rows only (and the dedupe index key).
-- name: stmt.enqueue
WITH input AS (
    SELECT nextval((SELECT pg_get_serial_sequence('{queue}', 'id'))) AS id,
           t.ord::int AS ord,
           t.entrypoint,
           t.payload,
           coalesce(t.priority, 0) AS priority,
           now() + coalesce(t.delay, interval '0') AS execute_after,
           t.dedupe_key,
           t.headers
    FROM unnest($1::text[], $2::bytea[], $3::int[], $4::interval[],
                $5::text[], $6::jsonb[])
         WITH ORDINALITY AS t(entrypoint, payload, priority, delay,
                              dedupe_key, headers, ord)
    {enqueue_check}
    ORDER BY t.ord
),
raised AS (
    INSERT INTO {queue} AS q (id, priority, entrypoint, payload,
                              execute_after, status, dedupe_key, headers)
    SELECT i.id, i.priority, i.entrypoint, i.payload, i.execute_after,
           'queued', i.dedupe_key, i.headers
    FROM input i
    WHERE NOT $7::bool
    ORDER BY i.ord
    RETURNING q.id, q.priority, q.entrypoint
),
skipped AS (
    INSERT INTO {queue} AS q (id, priority, entrypoint, payload,
                              execute_after, status, dedupe_key, headers)
    SELECT i.id, i.priority, i.entrypoint, i.payload, i.execute_after,
           'queued', i.dedupe_key, i.headers
    FROM input i
    WHERE $7::bool
    ORDER BY i.ord
    ON CONFLICT (dedupe_key)
        WHERE status IN ('queued', 'picked') AND dedupe_key IS NOT NULL
        DO NOTHING
    RETURNING q.id, q.priority, q.entrypoint
),
inserted AS (
    SELECT id, priority, entrypoint FROM raised
    UNION ALL
    SELECT id, priority, entrypoint FROM skipped
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint)
    SELECT id, 'queued', priority, entrypoint FROM inserted
)
SELECT i.ord, i.id
FROM input i JOIN inserted j ON j.id = i.id
ORDER BY i.ord;

-- ENQUEUE_CHECK: the WHERE that SQL_ENQUEUE_CHECKED adds to the input of
-- stmt.enqueue, for a queue with pgq's limits table and payload function.
-- An uncorrelated subquery, so PostgreSQL runs it once, as a one-time
-- filter, before the first row is inserted: the payload function raises
-- 54000 for the first job over its entrypoint's max_payload, and the whole
-- statement (every job of the batch) fails. Jobs within their limits make
-- the count 0 and the filter true.
-- Index: the limits table's primary key (a hash of its few rows).
-- Locks: none.
-- name: stmt.enqueue_check
    WHERE (SELECT count({queue}_pgq_payload_check(c.entrypoint,
                                                  octet_length(c.payload),
                                                  l.max_payload))
           FROM unnest($1::text[], $2::bytea[]) AS c(entrypoint, payload)
           JOIN {queue}_pgq_limits l ON l.entrypoint = c.entrypoint
           WHERE l.max_payload IS NOT NULL
             AND octet_length(c.payload) > l.max_payload) = 0

-- PAYLOAD_LIMITS: the master's max_payload per entrypoint into the limits
-- table, at start and reload.
-- $1 text[] entrypoints, $2 bigint[] max_payload (0 = none).
-- A limit creates or updates the entrypoint's row; 0 clears a limit that a
-- row holds and creates no row. Returns nothing; PQcmdTuples = rows changed.
-- Index: the limits table's primary key. Locks: the rows written.
-- name: stmt.payload_limits
INSERT INTO {queue}_pgq_limits AS l (entrypoint, max_payload)
SELECT t.entrypoint, nullif(t.max_payload, 0)
FROM unnest($1::text[], $2::bigint[]) AS t(entrypoint, max_payload)
WHERE t.max_payload > 0
   OR EXISTS (SELECT 1 FROM {queue}_pgq_limits x
              WHERE x.entrypoint = t.entrypoint
                AND x.max_payload IS NOT NULL)
ON CONFLICT (entrypoint) DO UPDATE
    SET max_payload = excluded.max_payload, updated = now()
    WHERE l.max_payload IS DISTINCT FROM excluded.max_payload;

-- CLAIM
-- $1 text[] entrypoints, $2 int limit, $3 interval heartbeat timeout, $4
-- uuid owner.
-- Returns id, priority, attempts, entrypoint, payload, headers, dedupe_key
-- of each job claimed, ordered priority desc, id asc.
-- Eligible: queued with execute_after <= now(), or picked with a heartbeat
-- older than $3 (its owner is gone). The two kinds come from two branches,
-- each ordered and limited on its own so that a partial index serves it:
-- the queued branch walks <queue>_priority_id_id1_idx backwards (priority
-- desc, id asc), filtering entrypoint and execute_after and stopping after
-- $2 eligible rows (the planner may pick <queue>_ep_prio_id_idx instead);
-- its cost grows only with the queued jobs of higher priority that this
-- worker does not handle or that are deferred. The stale branch reads the
-- few picked rows through <queue>_updated_id_id1_idx. The best $2 of both
-- are taken. Locking inside the scan, rather than choosing candidates first,
-- means a claimer that meets locked rows keeps scanning instead of coming
-- back empty while work remains.
-- Locks: FOR UPDATE SKIP LOCKED on at most 2 x $2 rows (rows locked by
-- another claimer are skipped, never waited for); the ones not taken stay
-- locked only until this statement's transaction ends. attempts is not
-- changed: a claim is not a retry.
-- Commit: asynchronous (synchronous_commit off for this transaction only),
-- so the handler starts without waiting for a WAL flush. A claim lost in a
-- server crash leaves its jobs queued, to run again: at-least-once, as
-- after a worker crash. The completion that follows commits synchronously,
-- and its flush takes the claim's WAL with it.
-- name: stmt.claim
WITH queued AS (
    SELECT q.id, q.priority
    FROM {queue} q
    WHERE q.status = 'queued'
      AND q.entrypoint = ANY($1::text[])
      AND q.execute_after <= now()
    ORDER BY q.priority DESC, q.id ASC
    LIMIT $2::int
    FOR UPDATE SKIP LOCKED
),
stale AS (
    SELECT q.id, q.priority
    FROM {queue} q
    WHERE q.status = 'picked'
      AND q.updated < now() - $3::interval
      AND q.heartbeat < now() - $3::interval
      AND q.entrypoint = ANY($1::text[])
    ORDER BY q.priority DESC, q.id ASC
    LIMIT $2::int
    FOR UPDATE SKIP LOCKED
),
chosen AS (
    SELECT c.id
    FROM (SELECT id, priority FROM queued
          UNION ALL
          SELECT id, priority FROM stale) c
    ORDER BY c.priority DESC, c.id ASC
    LIMIT $2::int
),
claimed AS (
    UPDATE {queue} q
    SET status = 'picked',
        updated = now(),
        heartbeat = now(),
        queue_manager_id = $4::uuid
    WHERE q.id = ANY(ARRAY(SELECT id FROM chosen))
    RETURNING q.id, q.priority, q.attempts, q.entrypoint, q.payload,
              q.headers, q.dedupe_key
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint)
    SELECT id, 'picked', priority, entrypoint FROM claimed
),
async_commit AS (
    SELECT set_config('synchronous_commit', 'off', true) AS setting
)
SELECT id, priority, attempts, entrypoint, payload, headers, dedupe_key
FROM claimed
WHERE (SELECT setting FROM async_commit) IS NOT NULL
ORDER BY priority DESC, id ASC;

-- LIMIT_LOCK
-- $1 text entrypoint, $2 int concurrency_limit (0 = none), $3 float8 rate
-- in jobs per second (0 = none), $4 float8 burst (the bucket's size).
-- Returns one row: tokens (float8), the rate limit's bucket after refilling
-- it for the time since the last claim (min(burst, tokens + rate x
-- elapsed)); a new row starts full.
-- The first statement of a limited entrypoint's claim transaction (BEGIN;
-- LIMIT_LOCK; CLAIM_LIMITED; COMMIT). The upsert takes the row lock of the
-- entrypoint's row in <queue>_pgq_limits and keeps it until the commit, so
-- the claimers of one entrypoint run one after another while the claims of
-- other entrypoints are not held up. Time comes from clock_timestamp(),
-- read once: now() is the start of a transaction that may have waited for
-- the lock. The settings columns record this claimer's values.
-- Index: <queue>_pgq_limits_pkey. Locks: that one row (waits for it).
-- name: stmt.limit_lock
WITH t AS (
    SELECT clock_timestamp() AS at
)
INSERT INTO {queue}_pgq_limits AS l (entrypoint, concurrency_limit, rate,
                                     burst, tokens, refilled, updated)
SELECT $1::text, $2::int, $3::float8, $4::float8, $4::float8, t.at, t.at
FROM t
ON CONFLICT (entrypoint) DO UPDATE
SET concurrency_limit = EXCLUDED.concurrency_limit,
    rate = EXCLUDED.rate,
    burst = EXCLUDED.burst,
    tokens = least(EXCLUDED.burst,
                   l.tokens + EXCLUDED.rate * greatest(0, extract(epoch FROM
                       EXCLUDED.refilled - l.refilled))::float8),
    refilled = greatest(l.refilled, EXCLUDED.refilled),
    updated = EXCLUDED.updated
RETURNING l.tokens;

-- CLAIM_LIMITED
-- $1 text entrypoint, $2 int most jobs to claim, $3 int concurrency_limit
-- (0 = none), $4 float8 rate (0 = none), $5 int 1 when the caller brings a
-- reserved token (a ticket it was given earlier, now due) else 0, $6
-- interval heartbeat timeout, $7 uuid owner, $8 bool the caller may be
-- given a ticket (it holds none).
-- Runs after LIMIT_LOCK in the same transaction. Returns one row per job
-- claimed (id, priority, attempts, entrypoint, payload, headers,
-- dedupe_key as CLAIM), or one row of NULLs when none, each followed by:
-- tokens (float8, the bucket after this claim; NULL without a rate), wait
-- (float8 seconds until the ticket given now is due; NULL = no ticket),
-- spare (int, how many more jobs the limits would allow at once) and held
-- (bool, an eligible job is left that only the limits hold back).
-- slots (free concurrency slots) and paid (jobs the tokens pay for) are
-- NULL when that limit is not set; least() skips NULLs and LIMIT NULL is
-- no limit.
-- Concurrency: this statement's snapshot is taken after LIMIT_LOCK got the
-- row lock, so it sees every claim of the entrypoint committed before
-- (each claimer held the lock until its commit): the count of picked rows
-- is exact, and at most limit - picked queued jobs are taken. Completion,
-- retry, hold and recovery only lower that count, so they need no part in
-- it. A stale job (heartbeat older than $6) is re-claimed whatever the
-- limit: it is already counted as picked, and its owner is gone, so taking
-- it over does not add a run. Stale jobs come first.
-- Rate: at most floor(tokens) (none below zero) + $5 jobs: a ticket pays
-- for one job whatever the bucket holds, for its token was taken when it
-- was given. Every job claimed (stale ones too) costs a token, the ticket
-- paying for the first. A ticket brought
-- back unused is refunded. When nothing could be claimed only for want of
-- a token while an eligible job waits, and $8 allows it, the caller gets a
-- ticket: a token reserved now (tokens may go below zero), due when the
-- bucket has refilled to cover it. Each waiting claimer thus comes back at
-- its own time, once, instead of all polling the bucket together.
-- Index: <queue>_ep_prio_id_idx for the queued jobs, <queue>_updated_id_id1_idx
-- for the picked rows (counted and stale), the limits row by its key.
-- Locks: FOR UPDATE SKIP LOCKED on the candidate rows, as CLAIM; the
-- limits row is already held.
-- name: stmt.claim_limited
WITH lim AS (
    SELECT l.tokens
    FROM {queue}_pgq_limits l
    WHERE l.entrypoint = $1::text
),
running AS (
    SELECT count(*)::int AS n
    FROM {queue} q
    WHERE q.status = 'picked' AND q.entrypoint = $1::text
),
allowed AS (
    SELECT CASE WHEN $3::int > 0 THEN greatest(0, $3::int - r.n)
           END AS slots,
           CASE WHEN $4::float8 > 0
                THEN greatest(0, floor(coalesce((SELECT tokens FROM lim),
                                                0)))::int + $5::int
           END AS paid
    FROM running r
),
queued AS (
    SELECT q.id, q.priority
    FROM {queue} q
    WHERE q.status = 'queued'
      AND q.entrypoint = $1::text
      AND q.execute_after <= statement_timestamp()
    ORDER BY q.priority DESC, q.id ASC
    LIMIT (SELECT least($2::int, a.slots, a.paid) FROM allowed a)
    FOR UPDATE SKIP LOCKED
),
stale AS (
    SELECT q.id, q.priority
    FROM {queue} q
    WHERE q.status = 'picked'
      AND q.entrypoint = $1::text
      AND q.heartbeat < statement_timestamp() - $6::interval
    ORDER BY q.priority DESC, q.id ASC
    LIMIT $2::int
    FOR UPDATE SKIP LOCKED
),
chosen AS (
    SELECT c.id
    FROM (SELECT id, priority, 0 AS kind FROM stale
          UNION ALL
          SELECT id, priority, 1 AS kind FROM queued) c
    ORDER BY c.kind, c.priority DESC, c.id ASC
    LIMIT $2::int
),
claimed AS (
    UPDATE {queue} q
    SET status = 'picked',
        updated = now(),
        heartbeat = now(),
        queue_manager_id = $7::uuid
    FROM chosen c
    WHERE q.id = c.id
    RETURNING q.id, q.priority, q.attempts, q.entrypoint, q.payload,
              q.headers, q.dedupe_key
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint)
    SELECT id, 'picked', priority, entrypoint FROM claimed
),
counted AS (
    SELECT count(*)::int AS n FROM claimed
),
left_over AS (
    SELECT EXISTS (SELECT 1 FROM {queue} q
                   WHERE q.status = 'queued'
                     AND q.entrypoint = $1::text
                     AND q.execute_after <= statement_timestamp()
                     AND q.id NOT IN (SELECT id FROM chosen)) AS waiting
),
ticket AS (
    SELECT $4::float8 > 0 AND $8::bool AND $5::int = 0
           AND (SELECT n FROM counted) = 0
           AND a.paid = 0 AND coalesce(a.slots, 1) > 0
           AND (SELECT waiting FROM left_over)
           AS take
    FROM allowed a
),
spent AS (
    UPDATE {queue}_pgq_limits l
    SET tokens = l.tokens - (SELECT n FROM counted) + $5::int
                 - CASE WHEN (SELECT take FROM ticket) THEN 1 ELSE 0 END
    WHERE l.entrypoint = $1::text AND $4::float8 > 0
    RETURNING l.tokens
),
info AS (
    SELECT (SELECT tokens FROM spent) AS tokens,
           CASE WHEN (SELECT take FROM ticket)
                THEN greatest(0, -(SELECT tokens FROM spent)) / $4::float8
           END AS wait,
           greatest(0, (SELECT least(a.slots, a.paid) FROM allowed a)
                       - (SELECT n FROM counted)) AS spare
)
SELECT c.id, c.priority, c.attempts, c.entrypoint, c.payload, c.headers,
       c.dedupe_key, i.tokens, i.wait, i.spare,
       i.spare = 0 AND (SELECT waiting FROM left_over) AS held
FROM info i
LEFT JOIN claimed c ON true
ORDER BY c.priority DESC, c.id ASC;

-- COMPLETE
-- $1 uuid owner, $2 bigint[] ids, $3 <status>[] terminal status per id
-- (successful, exception, canceled or deleted), $4 jsonb[] traceback per id
-- (NULL elements allowed).
-- Returns the id of each job really completed: owned by $1 and still
-- picked; others are left alone. Deletes the row and writes the terminal
-- log row in the same statement (the trigger notifies 'delete').
-- The DELETE finds its rows through the id array alone (= ANY: one probe of
-- the primary key per id); joining the queue to the unnested input instead
-- lets the planner drive the join from every picked row of the queue, which
-- is O(picked x batch). The statuses and tracebacks are matched to the
-- deleted rows afterwards, a hash join of two batch-sized sets.
-- Index: the primary key; locks the deleted rows.
-- name: stmt.complete
WITH input AS (
    SELECT t.id, t.status, t.traceback
    FROM unnest($2::bigint[], $3::{status}[], $4::jsonb[])
         AS t(id, status, traceback)
    WHERE t.status IN ('successful', 'exception', 'canceled', 'deleted')
),
done AS (
    DELETE FROM {queue} q
    WHERE q.id = ANY(ARRAY(SELECT id FROM input))
      AND q.queue_manager_id = $1::uuid
      AND q.status = 'picked'
    RETURNING q.id, q.priority, q.entrypoint
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint, traceback)
    SELECT d.id, i.status, d.priority, d.entrypoint, i.traceback
    FROM done d JOIN input i ON i.id = d.id
)
SELECT id FROM done ORDER BY id;

-- RETRY
-- $1 uuid owner, $2 bigint[] ids, $3 interval[] delay per id (NULL = none),
-- $4 jsonb[] traceback per id, $5 int[] attempts to add per id (NULL = 1;
-- 0 releases a job that never started, such as the unstarted rest of a
-- batch when its consumer stops: that must not use up an attempt).
-- Returns the id of each job put back: owned and picked rows become queued
-- with attempts + $5, execute_after = now() + delay, no owner, and a
-- 'queued' log row with the traceback. Sends one table_changed_event
-- (operation 'update') when any row was put back.
-- Index: the primary key; locks the updated rows.
-- name: stmt.retry
WITH input AS (
    SELECT t.id, t.delay, t.traceback, t.added
    FROM unnest($2::bigint[], $3::interval[], $4::jsonb[], $5::int[])
         AS t(id, delay, traceback, added)
),
retried AS (
    UPDATE {queue} q
    SET status = 'queued',
        attempts = q.attempts + coalesce(i.added, 1),
        execute_after = now() + coalesce(i.delay, interval '0'),
        queue_manager_id = NULL,
        updated = now()
    FROM input i
    WHERE q.id = i.id
      AND q.queue_manager_id = $1::uuid
      AND q.status = 'picked'
    RETURNING q.id, q.priority, q.entrypoint, i.traceback
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint, traceback)
    SELECT id, 'queued', priority, entrypoint, traceback FROM retried
),
notified AS (
    SELECT pg_notify({channel_literal}, json_build_object(
        'channel', {channel_literal},
        'operation', 'update',
        'sent_at', now(),
        'table', '{queue_bare}',
        'type', 'table_changed_event')::text)
    FROM (SELECT 1 FROM retried LIMIT 1) AS any_row
)
SELECT r.id FROM retried r
WHERE (SELECT count(*) FROM notified) >= 0
ORDER BY r.id;

-- HOLD
-- $1 uuid owner, $2 bigint[] ids, $3 jsonb[] traceback per id.
-- Returns the id of each job held: owned and picked rows get status
-- 'failed' and no owner (they wait for a requeue), with a 'failed' log row
-- carrying the traceback. No notification: nothing became runnable.
-- Index: the primary key; locks the updated rows.
-- name: stmt.hold
WITH input AS (
    SELECT t.id, t.traceback
    FROM unnest($2::bigint[], $3::jsonb[]) AS t(id, traceback)
),
held AS (
    UPDATE {queue} q
    SET status = 'failed',
        queue_manager_id = NULL,
        updated = now()
    FROM input i
    WHERE q.id = i.id
      AND q.queue_manager_id = $1::uuid
      AND q.status = 'picked'
    RETURNING q.id, q.priority, q.entrypoint, i.traceback
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint, traceback)
    SELECT id, 'failed', priority, entrypoint, traceback FROM held
)
SELECT id FROM held ORDER BY id;

-- REQUEUE
-- $1 bigint[] ids, or NULL for every held job.
-- Returns the id of each held (status 'failed') job put back: queued,
-- attempts 0, execute_after now(), a 'queued' log row, and one
-- table_changed_event (operation 'update') when any.
-- Index: the primary key for ids; with NULL a scan of the table, which is
-- an operator's command and rare. Locks the updated rows. A held job whose
-- dedupe_key is queued again meanwhile fails the statement with 23505.
-- name: stmt.requeue
WITH requeued AS (
    UPDATE {queue} q
    SET status = 'queued',
        attempts = 0,
        execute_after = now(),
        queue_manager_id = NULL,
        updated = now()
    WHERE q.status = 'failed'
      AND ($1::bigint[] IS NULL OR q.id = ANY($1::bigint[]))
    RETURNING q.id, q.priority, q.entrypoint
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint)
    SELECT id, 'queued', priority, entrypoint FROM requeued
),
notified AS (
    SELECT pg_notify({channel_literal}, json_build_object(
        'channel', {channel_literal},
        'operation', 'update',
        'sent_at', now(),
        'table', '{queue_bare}',
        'type', 'table_changed_event')::text)
    FROM (SELECT 1 FROM requeued LIMIT 1) AS any_row
)
SELECT r.id FROM requeued r
WHERE (SELECT count(*) FROM notified) >= 0
ORDER BY r.id;

-- CANCEL
-- $1 bigint[] ids.
-- Returns the id of each queued job removed (with a 'canceled' log row).
-- Always sends one cancellation_event naming every id of $1, so that the
-- holder of a job already running can stop it.
-- Index: the primary key; locks the deleted rows. A picked job is not
-- touched here: its worker completes it as canceled.
-- name: stmt.cancel
WITH removed AS (
    DELETE FROM {queue} q
    WHERE q.id = ANY($1::bigint[]) AND q.status = 'queued'
    RETURNING q.id, q.priority, q.entrypoint
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint)
    SELECT id, 'canceled', priority, entrypoint FROM removed
),
notified AS (
    SELECT pg_notify({channel_literal}, json_build_object(
        'channel', {channel_literal},
        'sent_at', now(),
        'type', 'cancellation_event',
        'received_at', now(),
        'ids', to_json($1::bigint[]))::text)
)
SELECT r.id FROM removed r
WHERE (SELECT count(*) FROM notified) >= 0
ORDER BY r.id;

-- HEARTBEAT
-- $1 uuid[] owners.
-- Returns nothing; PQcmdTuples is the number of jobs refreshed.
-- Index: <queue>_queue_manager_id_idx; locks the picked rows of the owners
-- (briefly: the statement is its own transaction).
-- name: stmt.heartbeat
UPDATE {queue}
SET heartbeat = now()
WHERE queue_manager_id = ANY($1::uuid[]) AND status = 'picked';

-- RECOVER
-- $1 uuid owner (a worker that died), $2 text[] entrypoints, $3 int[]
-- max_attempts, $4 bool[] hold (per entrypoint), $5 int default
-- max_attempts, $6 bool default hold, $7 jsonb traceback (the cause; when
-- it is an object, job_id is added per row).
-- For each picked job of $1: attempts + 1; when that is below max_attempts
-- (0 = unlimited) the job goes back to queued (execute_after now(), no
-- owner, log 'queued'); otherwise it is held as 'failed' when hold, else
-- deleted with log 'exception'. Returns id, entrypoint, outcome ('queued',
-- 'failed' or 'exception'). One table_changed_event (operation 'update')
-- when any job went back to queued.
-- Index: <queue>_queue_manager_id_idx; locks the owner's picked rows
-- (FOR UPDATE, waits: the owner is dead, nobody else should hold them).
-- name: stmt.recover
WITH limits AS (
    SELECT DISTINCT ON (t.entrypoint) t.entrypoint, t.max_attempts, t.hold
    FROM unnest($2::text[], $3::int[], $4::bool[])
         AS t(entrypoint, max_attempts, hold)
    ORDER BY t.entrypoint
),
jobs AS (
    SELECT q.id, q.priority, q.entrypoint, q.attempts + 1 AS attempts,
           coalesce(l.max_attempts, $5::int) AS max_attempts,
           coalesce(l.hold, $6::bool) AS hold
    FROM {queue} q
    LEFT JOIN limits l ON l.entrypoint = q.entrypoint
    WHERE q.queue_manager_id = $1::uuid AND q.status = 'picked'
    FOR UPDATE OF q
),
decided AS (
    SELECT j.id, j.attempts,
           CASE WHEN j.max_attempts <= 0 OR j.attempts < j.max_attempts
                    THEN 'queued'
                WHEN j.hold THEN 'failed'
                ELSE 'exception'
           END AS outcome
    FROM jobs j
),
updated AS (
    UPDATE {queue} q
    SET status = d.outcome::{status},
        attempts = d.attempts,
        execute_after = CASE WHEN d.outcome = 'queued' THEN now()
                             ELSE q.execute_after END,
        queue_manager_id = NULL,
        updated = now()
    FROM decided d
    WHERE q.id = d.id AND d.outcome <> 'exception'
    RETURNING q.id, q.priority, q.entrypoint, d.outcome
),
removed AS (
    DELETE FROM {queue} q
    USING decided d
    WHERE q.id = d.id AND d.outcome = 'exception'
    RETURNING q.id, q.priority, q.entrypoint, d.outcome
),
changed AS (
    SELECT id, priority, entrypoint, outcome FROM updated
    UNION ALL
    SELECT id, priority, entrypoint, outcome FROM removed
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint, traceback)
    SELECT c.id, c.outcome::{status}, c.priority, c.entrypoint,
           CASE WHEN jsonb_typeof($7::jsonb) = 'object'
                THEN $7::jsonb || jsonb_build_object('job_id', c.id)
                ELSE $7::jsonb END
    FROM changed c
),
notified AS (
    SELECT pg_notify({channel_literal}, json_build_object(
        'channel', {channel_literal},
        'operation', 'update',
        'sent_at', now(),
        'table', '{queue_bare}',
        'type', 'table_changed_event')::text)
    FROM (SELECT 1 FROM updated WHERE outcome = 'queued' LIMIT 1) AS any_row
)
SELECT c.id, c.entrypoint, c.outcome
FROM changed c
WHERE (SELECT count(*) FROM notified) >= 0
ORDER BY c.id;

-- AGGREGATE
-- No parameters. Returns one row: aggregated bigint, the number of log rows
-- folded (0 when another process holds the lock), at most 500: a chunk.
-- The master runs it on its maintenance connection, never on the LISTEN
-- one: PostgreSQL delivers no notification to a backend while it runs a
-- statement, and one long fold (40,000 rows took 0.5 s) left idle workers
-- unwoken that long under load. A full chunk (500) means more rows wait:
-- the caller runs it again after a pause (20 ms), so the heartbeats and
-- recoveries queued behind it on that connection do not wait for the whole
-- backlog.
-- PgQueuer's statistics fold: under a transaction-level advisory lock whose
-- key is hashtext of the statistics table's name (one aggregator at a time
-- per queue), every log row not yet aggregated is marked aggregated and
-- counted into per-second rows of the statistics table, adding to an
-- existing row of the same second, priority, status and entrypoint. The
-- second is taken from the timestamptz itself, so the session time zone
-- does not shift it.
-- Index: <log>_not_aggregated (partial, NOT aggregated); the upsert uses
-- <statistics>_unique_count. Locks the marked log rows and the upserted
-- statistics rows.
-- name: stmt.aggregate
WITH locked AS (
    SELECT pg_try_advisory_xact_lock(hashtext('{statistics}')) AS ok
),
marked AS (
    UPDATE {log} l
    SET aggregated = true
    WHERE l.id = ANY(ARRAY(SELECT x.id FROM {log} x
                           WHERE NOT x.aggregated
                           LIMIT 500))
      AND NOT l.aggregated AND (SELECT ok FROM locked)
    RETURNING l.created, l.priority, l.status, l.entrypoint
),
counted AS (
    INSERT INTO {statistics} AS s (created, count, priority, status,
                                   entrypoint)
    SELECT date_trunc('second', m.created), count(*), m.priority, m.status,
           m.entrypoint
    FROM marked m
    GROUP BY date_trunc('second', m.created), m.priority, m.status,
             m.entrypoint
    ON CONFLICT (priority, date_trunc('sec', created AT TIME ZONE 'UTC'),
                 status, entrypoint)
        DO UPDATE SET count = s.count + EXCLUDED.count
    RETURNING s.id
)
SELECT (SELECT count(*) FROM marked) AS aggregated,
       (SELECT count(*) FROM counted) AS statistics_rows;

-- QUEUE_SIZE
-- $1 text entrypoint, or NULL for all.
-- Returns entrypoint, priority, status, count of the jobs in the queue
-- table, grouped, ordered by entrypoint, priority desc, status.
-- Index: none (a scan of the queue table, which holds only live jobs);
-- no locks.
-- name: stmt.queue_size
SELECT q.entrypoint, q.priority, q.status, count(*) AS count
FROM {queue} q
WHERE $1::text IS NULL OR q.entrypoint = $1::text
GROUP BY q.entrypoint, q.priority, q.status
ORDER BY q.entrypoint, q.priority DESC, q.status;

-- JOB_LOG
-- $1 bigint job id.
-- Returns created, status, priority, entrypoint, traceback of every log
-- row of the job, oldest first.
-- Index: <log>_job_id_status (job_id, created desc); no locks.
-- name: stmt.job_log
SELECT l.created, l.status, l.priority, l.entrypoint, l.traceback
FROM {log} l
WHERE l.job_id = $1::bigint
ORDER BY l.created ASC, l.id ASC;

-- FAILED
-- $1 int limit.
-- Returns id, entrypoint, priority, attempts, updated and the latest
-- traceback (from the log) of the held jobs, most recently held first.
-- Index: a scan of the queue table filtered on status 'failed'; the
-- traceback through <log>_job_id_status. No locks.
-- name: stmt.failed
SELECT q.id, q.entrypoint, q.priority, q.attempts, q.updated,
       (SELECT l.traceback FROM {log} l
        WHERE l.job_id = q.id AND l.traceback IS NOT NULL
        ORDER BY l.created DESC, l.id DESC
        LIMIT 1) AS traceback
FROM {queue} q
WHERE q.status = 'failed'
ORDER BY q.updated DESC, q.id DESC
LIMIT $1::int;

-- NEXT_DUE
-- $1 text[] entrypoints.
-- Returns one row: seconds (double precision, >= 0) until the earliest
-- execute_after of a queued job of those entrypoints, NULL when there is
-- none.
-- Index: <queue>_ep_ea_idx (entrypoint, execute_after) WHERE queued; no
-- locks.
-- name: stmt.next_due
SELECT CASE WHEN min(q.execute_after) IS NULL THEN NULL
            ELSE greatest(0, extract(epoch FROM min(q.execute_after) - now()))
       END::float8 AS seconds
FROM {queue} q
WHERE q.status = 'queued' AND q.entrypoint = ANY($1::text[]);

-- NOTIFY
-- $1 text operation ('insert', 'update', ...).
-- Sends a table_changed_event for the queue table on the channel, as the
-- trigger would; delivered at commit. No table access.
-- name: stmt.notify
SELECT pg_notify({channel_literal}, json_build_object(
    'channel', {channel_literal},
    'operation', $1::text,
    'sent_at', now(),
    'table', '{queue_bare}',
    'type', 'table_changed_event')::text);

-- ---------------------------------------------------------------- schedules
-- PgQueuer's schedules protocol, shared with its scheduler: one row per
-- (expression, entrypoint); whoever claims a due row with FOR UPDATE SKIP
-- LOCKED marks it picked with a fresh heartbeat, and nobody else touches a
-- picked row until its heartbeat is 30 s old. pgq claims in one statement
-- and fires in a second one that enqueues the job, sets next_run and puts
-- the row back to queued atomically: a crash between the two leaves the
-- row picked, and after 30 s someone claims it again and fires once.

-- SCHEDULE_UPSERT
-- $1 text[] expressions (canonical, cron_normalize), $2 text[] entrypoints,
-- $3 bigint[] next_run as seconds since the epoch.
-- Inserts the rows that do not exist; an existing row keeps its next_run
-- and status (another master or PgQueuer may be firing it), as PgQueuer's
-- insert does. PQcmdTuples is the number of rows inserted.
-- Index: the unique (expression, entrypoint) constraint; locks the new rows.
-- name: stmt.schedule_upsert
INSERT INTO {schedules} (expression, entrypoint, next_run)
SELECT t.expression, t.entrypoint, to_timestamp(t.next_run)
FROM unnest($1::text[], $2::text[], $3::bigint[])
     AS t(expression, entrypoint, next_run)
ON CONFLICT (expression, entrypoint) DO NOTHING;

-- SCHEDULE_CLAIM
-- $1 text[] expressions, $2 text[] entrypoints: the caller's schedules.
-- Claims the due ones exactly as PgQueuer's scheduler does: queued with
-- next_run <= now(), or picked with a heartbeat older than 30 seconds (its
-- claimer died); FOR UPDATE SKIP LOCKED; sets picked, updated, heartbeat.
-- Returns one row per schedule of the caller that exists, claimed or not:
-- id, expression, entrypoint, claimed (bool), status and next_run (epoch
-- float8) as they were, due (next_run as text, for the job's headers),
-- token (the new heartbeat as text, claimed rows only: SCHEDULE_FIRE checks
-- it to know the row is still this claim's), heartbeat (epoch) and now()
-- (epoch). The unclaimed rows tell the caller when to look again.
-- Index: the unique (expression, entrypoint) constraint; locks the claimed
-- rows until the statement's transaction ends (rows locked by another
-- claimer are skipped, never waited for).
-- name: stmt.schedule_claim
WITH params AS (
    SELECT DISTINCT t.expression, t.entrypoint
    FROM unnest($1::text[], $2::text[]) AS t(expression, entrypoint)
),
due AS (
    SELECT s.id
    FROM {schedules} s
    JOIN params p ON p.expression = s.expression
                 AND p.entrypoint = s.entrypoint
    WHERE (s.status = 'queued' AND s.next_run <= now())
       OR (s.status = 'picked' AND now() - s.heartbeat > interval '30 seconds')
    FOR UPDATE OF s SKIP LOCKED
),
claimed AS (
    UPDATE {schedules} s
    SET status = 'picked',
        updated = now(),
        heartbeat = now()
    FROM due d
    WHERE s.id = d.id
    RETURNING s.id, s.heartbeat
)
SELECT s.id, s.expression, s.entrypoint, c.id IS NOT NULL AS claimed,
       s.status, extract(epoch FROM s.next_run)::float8 AS next_run,
       s.next_run AS due, c.heartbeat AS token,
       extract(epoch FROM s.heartbeat)::float8 AS heartbeat,
       extract(epoch FROM now())::float8 AS now
FROM {schedules} s
JOIN params p ON p.expression = s.expression AND p.entrypoint = s.entrypoint
LEFT JOIN claimed c ON c.id = s.id
ORDER BY s.id;

-- SCHEDULE_FIRE
-- $1 bigint schedule id, $2 timestamptz token (from SCHEDULE_CLAIM), $3
-- bigint next_run (epoch seconds: the first tick after the claim's now()),
-- $4 bytea payload (NULL = none), $5 text schedule name (for the headers).
-- When the row is still picked with this claim's heartbeat, in one
-- statement: sets it back to queued with last_run = now() and the new
-- next_run, enqueues one job for its entrypoint (priority 0, headers
-- {"schedule", "expression", "scheduled_for": the tick fired}) with its
-- 'queued' log row. Returns the job's id; no row when the claim was lost
-- (30 s passed and someone else claimed it), and then nothing changes.
-- The queue's statement trigger notifies the insert.
-- Index: the primary key; locks the schedule row and the new job.
-- name: stmt.schedule_fire
WITH fired AS (
    UPDATE {schedules} s
    SET status = 'queued',
        last_run = now(),
        updated = now(),
        next_run = to_timestamp($3::bigint)
    FROM (SELECT o.id, o.next_run AS due
          FROM {schedules} o WHERE o.id = $1::bigint) AS old
    WHERE s.id = old.id
      AND s.status = 'picked'
      AND s.heartbeat = $2::timestamptz
    RETURNING s.id, s.expression, s.entrypoint, old.due
),
job AS (
    INSERT INTO {queue} AS q (priority, entrypoint, payload, execute_after,
                              status, headers)
    SELECT 0, f.entrypoint, $4::bytea, now(), 'queued',
           jsonb_build_object('schedule', $5::text,
                              'expression', f.expression,
                              'scheduled_for', f.due)
    FROM fired f
    RETURNING q.id, q.priority, q.entrypoint
),
logged AS (
    INSERT INTO {log} (job_id, status, priority, entrypoint)
    SELECT id, 'queued', priority, entrypoint FROM job
)
SELECT j.id FROM job j;

-- SCHEDULE_LIST
-- No parameters. Returns id, expression, entrypoint, status, next_run,
-- last_run, heartbeat of every schedule row, by entrypoint and expression.
-- Index: none (a scan of a small table); no locks.
-- name: stmt.schedule_list
SELECT s.id, s.expression, s.entrypoint, s.status, s.next_run, s.last_run,
       s.heartbeat
FROM {schedules} s
ORDER BY s.entrypoint, s.expression, s.id;

-- SCHEDULE_REMOVE
-- $1 bigint[] ids, $2 text[] entrypoints (either may be empty).
-- Deletes the schedule rows with one of the ids or entrypoints, as
-- PgQueuer's delete does. Returns id, expression, entrypoint of each.
-- Index: the primary key for ids; a scan for entrypoints (a small table).
-- Locks the deleted rows.
-- name: stmt.schedule_remove
DELETE FROM {schedules} s
WHERE s.id = ANY($1::bigint[]) OR s.entrypoint = ANY($2::text[])
RETURNING s.id, s.expression, s.entrypoint;

-- ---------------------------------------------------------------- statistics

-- STATS
-- $1 interval: the window, ending now.
-- Returns per entrypoint with any activity in the window: queued, picked,
-- successful, exception, failed, canceled, deleted (bigint counts of
-- transitions) and last (timestamptz of the latest), by entrypoint. Counts
-- come from the statistics table (per second, aggregated) plus the log
-- rows not aggregated yet; one snapshot sees each log row in exactly one of
-- the two. A statistics row counts when its second starts in the window.
-- Index: <log>_not_aggregated for the log rows; the statistics table is
-- scanned (its unique index leads with priority). No locks.
-- name: stmt.stats
WITH since AS (
    SELECT now() - $1::interval AS t
),
counted AS (
    SELECT s.entrypoint, s.status, s.count, s.created
    FROM {statistics} s
    WHERE s.created >= (SELECT t FROM since)
    UNION ALL
    SELECT l.entrypoint, l.status, 1, l.created
    FROM {log} l
    WHERE NOT l.aggregated AND l.created >= (SELECT t FROM since)
)
SELECT c.entrypoint,
       coalesce(sum(c.count) FILTER (WHERE c.status = 'queued'), 0)::bigint
           AS queued,
       coalesce(sum(c.count) FILTER (WHERE c.status = 'picked'), 0)::bigint
           AS picked,
       coalesce(sum(c.count) FILTER (WHERE c.status = 'successful'),
                0)::bigint AS successful,
       coalesce(sum(c.count) FILTER (WHERE c.status = 'exception'),
                0)::bigint AS exception,
       coalesce(sum(c.count) FILTER (WHERE c.status = 'failed'), 0)::bigint
           AS failed,
       coalesce(sum(c.count) FILTER (WHERE c.status = 'canceled'), 0)::bigint
           AS canceled,
       coalesce(sum(c.count) FILTER (WHERE c.status = 'deleted'), 0)::bigint
           AS deleted,
       max(c.created) AS last
FROM counted c
GROUP BY c.entrypoint
ORDER BY c.entrypoint;

-- PRUNE
-- $1 interval age, $2 bool all.
-- Deletes log rows created more than $1 ago (only those already aggregated
-- into the statistics unless $2) and statistics rows older than $1.
-- Returns one row: log (rows deleted from the log), statistics (rows
-- deleted from the statistics table).
-- Index: <log>_created for the log; the statistics table is scanned. Locks
-- the deleted rows; an operator's command, in one transaction.
-- name: stmt.prune
WITH cutoff AS (
    SELECT now() - $1::interval AS t
),
log_gone AS (
    DELETE FROM {log} l
    WHERE l.created < (SELECT t FROM cutoff)
      AND ($2::bool OR l.aggregated)
    RETURNING 1
),
statistics_gone AS (
    DELETE FROM {statistics} s
    WHERE s.created < (SELECT t FROM cutoff)
    RETURNING 1
)
SELECT (SELECT count(*) FROM log_gone) AS log,
       (SELECT count(*) FROM statistics_gone) AS statistics;
