/* migrations.h - the SQL migrations compiled into the binary (generated from migrations/). */
#ifndef AU_MIGRATIONS_H
#define AU_MIGRATIONS_H

typedef struct au_migration {
    int version;      /* NNNN of NNNN_name.sql; applied in order, tracked by PRAGMA user_version */
    const char *name; /* file name */
    const char *sql;
} au_migration;

extern const au_migration au_migrations[];
extern const int au_migrations_count;

#endif
