-- 0002_health.sql - the /health history: one row per hardware run (at start-up or on request)
-- with the run's JSON report and its headline figures as columns, so a drop in bandwidth or GEMM
-- rate over time shows with plain SQL. Times are Unix seconds; a figure is NULL when the run could
-- not measure it (no GPU). health_write_probe is the one row the database_writable check rewrites.
-- IF NOT EXISTS: databases written before this migration existed got these tables from
-- server/health_store.c.
CREATE TABLE IF NOT EXISTS health_runs (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at           REAL    NOT NULL,
    finished_at          REAL    NOT NULL,
    trigger              TEXT    NOT NULL CHECK (trigger IN ('startup', 'request')),
    verdict              TEXT    NOT NULL CHECK (verdict IN ('READY', 'DEGRADED', 'NOT_READY')),
    memory_bandwidth_gbs REAL,
    gemm_fp16_tflops     REAL,
    gemm_fp8_tflops      REAL,
    report               TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS health_write_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    written_at REAL    NOT NULL
);
