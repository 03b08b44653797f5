/* migrate.c - the migration runner (migrate.h). */
#include "migrate.h"

#include <stdio.h>

int migrate_latest_version(void) {
    int v = 0;
    for (int i = 0; i < au_migrations_count; i++)
        if (au_migrations[i].version > v)
            v = au_migrations[i].version;
    return v;
}

int migrate_current_version(sqlite3 *db, int *version, au_err *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return au_errf(err, AU_EIO, "reading PRAGMA user_version: %s", sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        au_errf(err, AU_EIO, "reading PRAGMA user_version: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return AU_EIO;
    }
    *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* One migration and its version bump, all or nothing. */
static int apply_one(sqlite3 *db, const au_migration *m, au_err *err) {
    char *msg = NULL;
    char bump[64];
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
        goto fail;
    snprintf(bump, sizeof bump, "PRAGMA user_version = %d", m->version);
    if (sqlite3_exec(db, m->sql, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, bump, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto fail;
    }
    return 0;
fail:
    au_errf(err, AU_EIO, "migration %s: %s", m->name, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return AU_EIO;
}

int migrate_apply_list(sqlite3 *db, const au_migration *migrations, int n, int *from, int *to, au_err *err) {
    int current, rc, latest = 0;
    if ((rc = migrate_current_version(db, &current, err)))
        return rc;
    if (from)
        *from = current;
    for (int i = 0; i < n; i++)
        if (migrations[i].version > latest)
            latest = migrations[i].version;
    if (current > latest)
        return au_errf(err, AU_EUNSUPPORTED,
                       "database schema version %d is newer than this binary's (%d): upgrade auteur", current,
                       latest);
    for (int i = 0; i < n; i++) {
        if (i > 0 && migrations[i].version <= migrations[i - 1].version)
            return au_errf(err, AU_EINTERNAL, "migration %s is out of order", migrations[i].name);
        if (migrations[i].version <= current)
            continue;
        if ((rc = apply_one(db, &migrations[i], err)))
            return rc;
        current = migrations[i].version;
    }
    if (to)
        *to = current;
    return 0;
}

int migrate_apply(sqlite3 *db, int *from, int *to, au_err *err) {
    return migrate_apply_list(db, au_migrations, au_migrations_count, from, to, err);
}
