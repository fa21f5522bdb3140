/* SPDX-License-Identifier: MIT */
/* pvusb(1): one file per subcommand, dispatched from a table in main.c. */
#ifndef PVUSB_CLI_H
#define PVUSB_CLI_H

#include <json-c/json.h>
#include <stdbool.h>

/* Exit codes, documented in --help: */
#define EXIT_OK 0
#define EXIT_FAIL 1  /* the daemon refused the command; nothing changed */
#define EXIT_USAGE 2 /* the command line was wrong */
#define EXIT_NODAEMON 3 /* pvusbd is not reachable */

struct cli {
	const char *sock;
	bool json;
};

struct cli_cmd {
	const char *name;
	const char *args;
	const char *help;
	int (*run)(struct cli *c, int argc, char **argv);
};

/* Send a request, print the daemon's error on failure. Returns the reply
 * when it says ok (caller puts it), else NULL with *rc set to the exit code. */
json_object *cli_request(struct cli *c, json_object *req, int *rc);
/* A request {"cmd":cmd,"frontend":dom} to add fields to. */
json_object *cli_req(const char *cmd, const char *dom);
/* Send a request whose reply carries nothing to print; puts req. Returns
 * the exit code. */
int cli_call(struct cli *c, json_object *req);
/* Parse "key=value" arguments; returns the value of key or NULL. */
const char *cli_kv(int argc, char **argv, const char *key);
/* A decimal number in [lo, hi]; -1 when it is not one. */
long cli_number(const char *s, long lo, long hi);

int cmd_usbctrl_attach(struct cli *c, int argc, char **argv);
int cmd_usbctrl_detach(struct cli *c, int argc, char **argv);
int cmd_usbdev_attach(struct cli *c, int argc, char **argv);
int cmd_usbdev_detach(struct cli *c, int argc, char **argv);
int cmd_usb_list(struct cli *c, int argc, char **argv);

#endif
