/* SPDX-License-Identifier: MIT */
/* pvusb(1): one file per subcommand, dispatched from a table in main.c. */
#ifndef PVUSB_CLI_H
#define PVUSB_CLI_H

#include <json-c/json.h>
#include <stdbool.h>

/* Exit codes, documented in --help and pvusb(1): */
#define EXIT_OK 0
#define EXIT_FAIL 1     /* pvusbd refused the command; nothing changed */
#define EXIT_USAGE 2    /* the command line was wrong; nothing was sent */
#define EXIT_NODAEMON 3 /* pvusbd is not reachable */

struct cli {
	const char *sock;
	bool json;
};

struct cli_cmd {
	const char *name;
	const char *alias_of; /* xl name an xm name stands for, for the help */
	const char *args;     /* synopsis */
	const char *summary;  /* one line */
	const char *help;     /* the rest of 'pvusb <cmd> --help' */
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
/* Send req (puts it); on success print the reply's `fields` as one JSON
 * object with --json, else through fmt with the fields' integer values. */
int cli_call_print(struct cli *c, json_object *req, const char *fmt, const char *f1, const char *f2);
/* Fields of a reply: the string ("" when absent) or the integer (0). */
const char *cli_str(json_object *o, const char *k);
int cli_int(json_object *o, const char *k);
/* Parse "key=value" arguments; returns the value of key or NULL. */
const char *cli_kv(int argc, char **argv, const char *key);
/* The first argument that is neither key=value with one of `keys` nor
 * consumed; used to refuse unknown keys. NULL when all are known. */
const char *cli_unknown_kv(int argc, char **argv, const char *const *keys);
/* A decimal number in [lo, hi]; -1 when it is not one (leading zeros are
 * refused: never octal). */
long cli_number(const char *s, long lo, long hi);
/* cli_number, printing "pvusb: <what> must be <lo>..<hi> ..." on failure. */
long cli_number_arg(const char *s, long lo, long hi, const char *what);
/* Print a usage error for the running command. Returns EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

extern const struct cli_cmd cli_usbctrl_attach, cli_usbctrl_detach, cli_usbdev_attach,
	cli_usbdev_detach, cli_usb_list, cli_usb_hc_create, cli_usb_hc_destroy, cli_usb_attach,
	cli_usb_detach, cli_usb_list_assignable, cli_apply;

/* Shared bodies: the xm names are thin argument mappings onto these. */
int cli_hc_create(struct cli *c, const char *dom, long ver, long ports);
int cli_hc_destroy(struct cli *c, const char *dom, long devid);
int cli_attach(struct cli *c, const char *dom, const char *device, long ctrl, long port);
int cli_detach(struct cli *c, const char *dom, long ctrl, long port);

#endif
