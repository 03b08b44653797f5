// deps: au_server
/* test_store_migrate.c - the migration runner on an empty database, on an old one (rows kept,
 * only newer migrations applied), with a failing migration (rolled back, version unchanged)
 * and on a database newer than the binary (refused); store_open sets WAL mode.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/migrate.h"
#include "server/store.h"

static int failures;
#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static char dir[] = "/tmp/au_test_migrate_XXXXXX";

static sqlite3 *open_db(const char *name) {
    char path[256];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (sqlite3_open(path, &db) != SQLITE_OK)
        abort();
    return db;
}

/* First column of the first row of sql as text, into out ("" when no row). */
static void query_text(sqlite3 *db, const char *sql, char *out, size_t cap) {
    sqlite3_stmt *st;
    out[0] = '\0';
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(out, cap, "error: %s", sqlite3_errmsg(db));
        return;
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static int query_int(sqlite3 *db, const char *sql) {
    char buf[64];
    query_text(db, sql, buf, sizeof buf);
    return atoi(buf);
}

static void test_empty(void) {
    sqlite3 *db = open_db("empty.db");
    au_err err;
    int from = -1, to = -1;
    CHECK(migrate_apply(db, &from, &to, &err) == 0);
    CHECK(from == 0 && to == migrate_latest_version() && to >= 1);
    CHECK(query_int(db, "PRAGMA user_version") == to);
    /* the schema the store relies on */
    CHECK(query_int(db, "SELECT count(*) FROM pragma_table_info('videos') WHERE name IN ('id', 'status', "
                        "'lease_owner', 'lease_deadline', 'attempts', 'expires_at', 'seed')") == 7);
    CHECK(query_int(
              db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'videos_status_seq'") ==
          1);
    /* a second run applies nothing */
    CHECK(migrate_apply(db, &from, &to, &err) == 0);
    CHECK(from == to && to == migrate_latest_version());
    /* states are constrained by the schema */
    CHECK(
        sqlite3_exec(
            db,
            "INSERT INTO videos (id, created_at, status, model, prompt, seconds, width, height, frames, fps, "
            "steps, guidance_scale, shift, sampler, seed) VALUES ('x', 1, 'exploded', 'm', 'p', '1', 16, "
            "16, 1, 16, 1, 1.0, 1.0, 'unipc', 0)",
            NULL, NULL, NULL) == SQLITE_CONSTRAINT);
    sqlite3_close(db);
}

static void test_old(void) {
    int latest = migrate_latest_version();
    /* an old database: built by an older binary (the real migrations), holding a row */
    sqlite3 *db = open_db("old.db");
    au_err err;
    int from, to;
    CHECK(migrate_apply(db, &from, &to, &err) == 0);
    CHECK(
        sqlite3_exec(
            db,
            "INSERT INTO videos (id, created_at, model, prompt, seconds, width, height, frames, fps, steps, "
            "guidance_scale, shift, sampler, seed) VALUES ('video_old', 1, 'm', 'kept', '1', 16, 16, 1, "
            "16, 1, 1.0, 1.0, 'unipc', 7)",
            NULL, NULL, NULL) == SQLITE_OK);
    /* a newer binary: the same migrations plus two more */
    au_migration newer[64];
    int n = au_migrations_count;
    memcpy(newer, au_migrations, n * sizeof newer[0]);
    newer[n++] = (au_migration){latest + 1, "future_a.sql",
                                "ALTER TABLE videos ADD COLUMN note TEXT;\n"
                                "UPDATE videos SET note = 'migrated ' || prompt;"};
    newer[n++] =
        (au_migration){latest + 2, "future_b.sql", "CREATE TABLE extra (k TEXT PRIMARY KEY, v TEXT);"};
    CHECK(migrate_apply_list(db, newer, n, &from, &to, &err) == 0);
    CHECK(from == latest && to == latest + 2);
    CHECK(query_int(db, "PRAGMA user_version") == latest + 2);
    char note[64];
    query_text(db, "SELECT note FROM videos WHERE id = 'video_old'", note, sizeof note);
    CHECK(strcmp(note, "migrated kept") == 0);
    CHECK(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'extra'") == 1);

    /* a failing migration rolls back completely and names itself */
    newer[n++] =
        (au_migration){latest + 3, "broken.sql", "CREATE TABLE half (x);\nINSERT INTO missing VALUES (1);"};
    CHECK(migrate_apply_list(db, newer, n, &from, &to, &err) == AU_EIO);
    CHECK(strstr(err.msg, "broken.sql") != NULL && strstr(err.msg, "missing") != NULL);
    CHECK(query_int(db, "PRAGMA user_version") == latest + 2);
    CHECK(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'half'") == 0);

    /* this binary refuses the database the newer one left */
    CHECK(migrate_apply(db, &from, &to, &err) == AU_EUNSUPPORTED);
    CHECK(strstr(err.msg, "newer") != NULL);
    sqlite3_close(db);
    char path[256];
    snprintf(path, sizeof path, "%s/old.db", dir);
    store *s;
    CHECK(store_open(&s, path, &err) == AU_EUNSUPPORTED);
}

static void test_store_open_wal(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/wal.db", dir);
    store *s;
    au_err err;
    CHECK(store_open(&s, path, &err) == 0);
    sqlite3 *db = open_db("wal.db");
    char mode[16];
    query_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    CHECK(strcmp(mode, "wal") == 0);
    CHECK(query_int(db, "PRAGMA user_version") == migrate_latest_version());
    sqlite3_close(db);
    store_close(s);
}

int main(void) {
    if (!mkdtemp(dir))
        return 1;
    test_empty();
    test_old();
    test_store_open_wal();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    if (failures) {
        fprintf(stderr, "test_store_migrate: %d checks failed\n", failures);
        return 1;
    }
    printf("test_store_migrate: ok\n");
    return 0;
}
