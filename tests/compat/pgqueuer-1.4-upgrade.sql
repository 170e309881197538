-- Test data, not pgq's SQL: the statements by which PgQueuer's upgrade takes
-- a 1.3 queue to 1.4, and PgQueuer's uninstall, transcribed for
-- tests/db/test_compat.c.
--
-- Origin: janbjorge/pgqueuer, pgqueuer/adapters/persistence/qb.py at commit
-- 2f3a8b16db15f49354c9cfb87a6f38d56f710eb6 (release v1.4.0):
-- QueryBuilderEnvironment.build_upgrade_queries, its last two statements
-- (the ones RELEASE.md's v1.4.0 section gives as the schema change), and
-- build_uninstall_query. The earlier statements of build_upgrade_queries
-- re-apply older migrations, which change nothing on a 1.3 queue except
-- that every run also creates {s.queue_table}_heartbeat_id_id1_idx (an index
-- install never creates, retired by v1.5.0) and drops and rebuilds
-- {s.queue_table_log}_not_aggregated; pgq's upgrade does neither.
-- Placeholders as in pgqueuer-1.3-install.sql; {s.qualify(...)} is the
-- qualified name of the enum that PgQueuer releases before 0.19 created.

-- name: slot_column
ALTER TABLE {qn.queue_table} ADD COLUMN IF NOT EXISTS slot BIGINT;

-- name: slot_index
CREATE UNIQUE INDEX IF NOT EXISTS {s.queue_table}_picked_slot_idx ON {qn.queue_table} (entrypoint, slot) WHERE (status = 'picked' AND slot IS NOT NULL);

-- name: uninstall
DROP TRIGGER    IF EXISTS   {s.trigger} ON {qn.queue_table};
    DROP FUNCTION   IF EXISTS   {qn.function};
    DROP TABLE      IF EXISTS   {qn.queue_table};
    DROP TABLE      IF EXISTS   {qn.statistics_table};
    DROP TABLE      IF EXISTS   {qn.schedules_table};
    DROP TABLE      IF EXISTS   {qn.queue_table_log};
    DROP TYPE       IF EXISTS   {qn.queue_status_type};
    DROP TYPE       IF EXISTS   {s.qualify(s.legacy_statistics_status_type)};
