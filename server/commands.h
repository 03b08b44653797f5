/* commands.h - the subcommands of the `auteur` binary. Each takes its own argv (argv[0]
 * is the command name) and returns the process exit code: 0 success, 1 failure, 2 usage
 * error (unknown flag or bad value, with a message on stderr).
 */
#ifndef AU_COMMANDS_H
#define AU_COMMANDS_H

int cmd_serve(int argc, char **argv);    /* serve.c */
int cmd_migrate(int argc, char **argv);  /* serve.c */
int cmd_generate(int argc, char **argv); /* cmd_generate.c */
int cmd_health(int argc, char **argv);   /* cmd_health.c */
int cmd_worker(int argc, char **argv);   /* cmd_worker.c */

#endif
