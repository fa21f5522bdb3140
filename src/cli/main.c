/* SPDX-License-Identifier: MIT */
/* pvusb: the toolstack CLI. The xl names and the classic xm names share
 * bodies; each subcommand lives in its own file and is listed here. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pvusb/local.h"

static const struct cli_cmd *const commands[] = {
	&cli_usbctrl_attach, &cli_usbctrl_detach, &cli_usbdev_attach, &cli_usbdev_detach,
	&cli_usb_list,       &cli_usb_list_assignable, &cli_apply,
	&cli_usb_hc_create,  &cli_usb_hc_destroy, &cli_usb_attach, &cli_usb_detach,
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char devices_help[] =
	"Devices: a bus path (2-4.3.3), bus.address (1.6, decimal), vendor:product\n"
	"(046d:c016) or vendor:product:serial; emulated: sourcesink[:speed=full|high],\n"
	"tablet, keyboard, storage:<image>[,ro].\n";

static const char exit_help[] =
	"Exit status: 0 success; 1 refused by pvusbd (nothing changed); 2 usage error\n"
	"(nothing sent); 3 pvusbd not reachable.\n";

static void usage(FILE *to)
{
	fprintf(to, "Usage: pvusb [--socket PATH] [--json] <command> [args]\n"
		    "       pvusb <command> --help\n\n"
		    "Manage the virtual USB controllers pvusbd serves to domains (Xen guests or\n"
		    "local frontends). <dom> is a domain name or id on Xen, a frontend name on\n"
		    "the local transport.\n\nCommands (xl names):\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (i == 7)
			fprintf(to, "\nClassic xm names:\n");
		fprintf(to, "  %-28s %s\n", commands[i]->name, commands[i]->summary);
	}
	fprintf(to, "\nOptions:\n"
		    "  -s, --socket PATH  pvusbd's control socket (default $PVUSB_SOCKET or %s)\n"
		    "  -j, --json         print listings and results as JSON\n"
		    "  -h, --help         this help\n\n%s%s",
		PVUSB_DEFAULT_SOCKET, devices_help, exit_help);
}

static void command_help(const struct cli_cmd *cmd)
{
	printf("Usage: pvusb %s %s\n\n%s.\n", cmd->name, cmd->args, cmd->summary);
	if (cmd->alias_of)
		printf("The xm name of '%s'.\n", cmd->alias_of);
	if (cmd->help[0])
		printf("\n%s", cmd->help);
	printf("\n%s%s", devices_help, exit_help);
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

/* Global options may also follow the command ("pvusb usb-list --json"). */
static int strip_global_opts(struct cli *c, int argc, char **argv)
{
	int out = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j"))
			c->json = true;
		else if ((!strcmp(argv[i], "--socket") || !strcmp(argv[i], "-s")) && i + 1 < argc)
			c->sock = argv[++i];
		else
			argv[out++] = argv[i];
	}
	return out;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
					     {"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct cli c = {.sock = getenv("PVUSB_SOCKET") ? getenv("PVUSB_SOCKET") : PVUSB_DEFAULT_SOCKET};
	for (int o; (o = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1;) {
		switch (o) {
		case 's': c.sock = optarg; break;
		case 'j': c.json = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct cli_cmd *cmd = commands[i];
		if (strcmp(argv[optind], cmd->name))
			continue;
		int n = argc - optind - 1;
		char **args = argv + optind + 1;
		if (wants_help(n, args)) {
			command_help(cmd);
			return EXIT_OK;
		}
		n = strip_global_opts(&c, n, args);
		int rc = cmd->run(&c, n, args);
		if (rc == EXIT_USAGE)
			fprintf(stderr, "Usage: pvusb %s %s\n", cmd->name, cmd->args);
		return rc;
	}
	fprintf(stderr, "pvusb: unknown command '%s'; see 'pvusb --help'\n", argv[optind]);
	return EXIT_USAGE;
}
