/* main.c - the `auteur` binary: picks the subcommand and returns its exit code.
 * Exit codes: 0 success, 1 failure, 2 usage error (unknown command, flag or bad value).
 */
#include <stdio.h>
#include <string.h>

#include "cmd_dev.h"
#include "commands.h"
#include "config.h"

#ifndef AUTEUR_VERSION
#define AUTEUR_VERSION "dev"
#endif

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {
        {"serve", cmd_serve},   {"generate", cmd_generate}, {"migrate", cmd_migrate},
        {"health", cmd_health}, {"worker", cmd_worker},     {"dev", cmd_dev},
    };
    if (argc < 2) {
        config_print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        config_print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("auteur %s\n", AUTEUR_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "auteur: unknown command \"%s\"\n\n", argv[1]);
    config_print_usage(stderr);
    return 2;
}
