/* SPDX-License-Identifier: MIT */
/* usb-list <dom>: controllers and ports, or --json for scripts. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *str(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static int num(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int(v) : 0;
}

static void print_hc(json_object *h)
{
	printf("Devid  Type  BE  state      usb-ver  ports  transport\n");
	printf("%-6d pv    0   %-10s %-8s %-6d %s\n", num(h, "controller"), str(h, "state"),
	       num(h, "usb-ver") == 1 ? "1.1" : "2.0", num(h, "ports"), str(h, "transport"));
	json_object *ports;
	if (!json_object_object_get_ex(h, "port-list", &ports))
		return;
	for (size_t i = 0; i < json_object_array_length(ports); i++) {
		json_object *p = json_object_array_get_idx(ports, i);
		if (*str(p, "device"))
			printf("  Port %d: %s  ID %s %s (%s speed)\n", num(p, "port"), str(p, "device"),
			       str(p, "id"), str(p, "description"), str(p, "speed"));
		else
			printf("  Port %d:\n", num(p, "port"));
	}
}

int cmd_usb_list(struct cli *c, int argc, char **argv)
{
	json_object *req = cli_req("list", argc >= 1 ? argv[0] : NULL);
	int rc;
	json_object *reply = cli_request(c, req, &rc), *arr;
	json_object_put(req);
	if (!reply)
		return rc;
	json_object_object_get_ex(reply, "controllers", &arr);
	if (c->json)
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
	else
		for (size_t i = 0; i < json_object_array_length(arr); i++)
			print_hc(json_object_array_get_idx(arr, i));
	json_object_put(reply);
	return EXIT_OK;
}
