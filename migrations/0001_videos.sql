-- 0001_videos.sql - the job table: one row per video request, its parameters and its lifecycle.
-- status moves queued -> in_progress -> completed | failed; a lost or failed attempt goes back
-- to queued until `attempts` reaches the limit. seq orders the FIFO queue and the list endpoint.
-- expires_at (NULL = never) is when a finished video and its files are removed.
CREATE TABLE videos (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'in_progress', 'completed', 'failed')),
    progress        INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    model           TEXT    NOT NULL,
    prompt          TEXT    NOT NULL,
    negative_prompt TEXT,
    seconds         TEXT    NOT NULL,
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    frames          INTEGER NOT NULL,
    fps             INTEGER NOT NULL,
    steps           INTEGER NOT NULL,
    guidance_scale  REAL    NOT NULL,
    shift           REAL    NOT NULL,
    sampler         TEXT    NOT NULL,
    seed            INTEGER NOT NULL,
    remixed_from    TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_deadline  INTEGER,
    started_at      INTEGER,
    completed_at    INTEGER,
    error_code      TEXT,
    error_message   TEXT,
    expires_at      INTEGER
);
-- The dispatcher's two hot queries: the oldest queued job (claim) and the in-progress jobs
-- whose lease has run out (requeue).
CREATE INDEX videos_status_seq ON videos (status, seq);
CREATE INDEX videos_lease ON videos (status, lease_deadline);
