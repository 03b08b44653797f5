/* migrate.h - bring a SQLite database to the schema this binary was built with.
 *
 * The migrations are migrations/NNNN_name.sql, embedded at build time (migrations.h).
 * PRAGMA user_version holds the number of the last one applied; each newer one runs in its
 * own transaction together with the user_version bump, so a failure leaves the database at
 * the previous version. A database newer than the binary is refused.
 */
#ifndef AU_MIGRATE_H
#define AU_MIGRATE_H

#include <sqlite3.h>

#include "migrations.h"
#include "status.h"

/* The version the embedded migrations lead to. */
int migrate_latest_version(void);

/* Read PRAGMA user_version. 0 or AU_EIO. */
int migrate_current_version(sqlite3 *db, int *version, au_err *err);

/* Apply migrations[0..n) whose version is above the database's, in order. *from and *to
 * (may be NULL) receive the versions before and after. 0, AU_EIO (SQL failure, naming the
 * migration) or AU_EUNSUPPORTED (database newer than the newest migration). */
int migrate_apply_list(sqlite3 *db, const au_migration *migrations, int n, int *from, int *to, au_err *err);

/* migrate_apply_list over the embedded migrations. */
int migrate_apply(sqlite3 *db, int *from, int *to, au_err *err);

#endif
