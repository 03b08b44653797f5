/* cmd_dev.h - `auteur dev`: run one engine component on tensors from a file (parity checks). */
#ifndef AU_CMD_DEV_H
#define AU_CMD_DEV_H

/* argv[0] is "dev"; returns the process exit code (0, 1 failure, 2 usage). */
int cmd_dev(int argc, char **argv);

#endif
