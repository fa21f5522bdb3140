/* SPDX-License-Identifier: MIT */
/* pvusb: the toolstack CLI. xl names and the classic xm names map onto the
 * same subcommands; each subcommand lives in its own file. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pvusb/local.h"

static const struct cli_cmd commands[] = {
	{"usbctrl-attach", "<dom> [type=pv] [version=1|2] [ports=1..31]",
	 "create a virtual USB controller", cmd_usbctrl_attach},
	{"usbctrl-detach", "<dom> <devid>", "destroy a controller and detach its devices",
	 cmd_usbctrl_detach},
	{"usbdev-attach", "<dom> <device> [controller=<id>] [port=<n>]", "attach a device to a port",
	 cmd_usbdev_attach},
	{"usbdev-detach", "<dom> <controller> <port>", "detach the device on a port", cmd_usbdev_detach},
	{"usb-list", "[<dom>]", "list controllers and their ports", cmd_usb_list},
};

static void usage(FILE *to)
{
	fprintf(to, "Usage: pvusb [--socket PATH] [--json] <command> [args]\n\n"
		    "Manage PVUSB virtual USB controllers served by pvusbd.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(to, "  %-15s %s\n  %-15s   %s\n", commands[i].name, commands[i].args, "",
			commands[i].help);
	fprintf(to, "\nDevices: sourcesink[:speed=full|high], tablet, keyboard, storage:<image>.\n"
		    "Exit status: 0 success, 1 refused by pvusbd (nothing changed), 2 usage error,\n"
		    "3 pvusbd not reachable.\n");
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
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name))
			continue;
		int rc = commands[i].run(&c, argc - optind - 1, argv + optind + 1);
		if (rc == EXIT_USAGE)
			fprintf(stderr, "Usage: pvusb %s %s\n", commands[i].name, commands[i].args);
		return rc;
	}
	fprintf(stderr, "pvusb: unknown command '%s'; see 'pvusb --help'\n", argv[optind]);
	return EXIT_USAGE;
}
