/* SPDX-License-Identifier: MIT */
/* usb-list [<dom>]: controllers and ports, or --json for scripts. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void print_port(json_object *p)
{
	const char *state = cli_str(p, "state");
	if (!*cli_str(p, "device"))
		printf("  Port %d:\n", cli_int(p, "port"));
	else if (strcmp(state, "attached"))
		printf("  Port %d: %s (%s)\n", cli_int(p, "port"), cli_str(p, "device"),
		       !strcmp(state, "missing") ? "missing: attached again when it appears"
						 : "unplugged: comes back by itself");
	else
		printf("  Port %d: %s  ID %s %s (%s speed)\n", cli_int(p, "port"), cli_str(p, "device"),
		       cli_str(p, "id"), cli_str(p, "description"), cli_str(p, "speed"));
}

static void print_hc(json_object *h)
{
	printf("Devid  Type  BE  state       usb-ver  ports  transport\n");
	printf("%-6d pv    0   %-11s %-8s %-6d %s\n", cli_int(h, "controller"), cli_str(h, "state"),
	       cli_int(h, "usb-ver") == 1 ? "1.1" : "2.0", cli_int(h, "ports"), cli_str(h, "transport"));
	json_object *ports;
	if (json_object_object_get_ex(h, "port-list", &ports))
		for (size_t i = 0; i < json_object_array_length(ports); i++)
			print_port(json_object_array_get_idx(ports, i));
}

static int run(struct cli *c, int argc, char **argv)
{
	if (argc > 1)
		return cli_usage_error("usb-list takes at most one domain");
	json_object *req = cli_req("list", argc == 1 ? argv[0] : NULL);
	int rc;
	json_object *reply = cli_request(c, req, &rc), *arr;
	json_object_put(req);
	if (!reply)
		return rc;
	json_object_object_get_ex(reply, "controllers", &arr);
	if (c->json)
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
	const char *last = NULL;
	for (size_t i = 0; !c->json && i < json_object_array_length(arr); i++) {
		json_object *h = json_object_array_get_idx(arr, i);
		if (argc == 0 && (!last || strcmp(last, cli_str(h, "frontend"))))
			printf("%s%s:\n", last ? "\n" : "", cli_str(h, "frontend"));
		last = cli_str(h, "frontend");
		print_hc(h);
	}
	json_object_put(reply);
	return EXIT_OK;
}

const struct cli_cmd cli_usb_list = {
	"usb-list", NULL, "[<dom>]", "list a domain's controllers and what is on their ports",
	"Per controller: devid, state (waiting for a frontend, connected, broken), USB\n"
	"version, port count and transport; per port the device, its ID, description and\n"
	"speed. Without <dom>, every domain. --json prints the same as a JSON array.\n",
	run};
