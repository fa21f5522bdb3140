/* SPDX-License-Identifier: MIT */
/* usb-list-assignable-devices: host devices that could be given to a domain. */
#include <stdio.h>

#include "cli.h"

static int run(struct cli *c, int argc, char **argv)
{
	if (argc)
		return cli_usage_error("usb-list-assignable-devices takes no arguments");
	json_object *req = cli_req("list-assignable", NULL);
	int rc;
	json_object *reply = cli_request(c, req, &rc), *arr;
	json_object_put(req);
	if (!reply)
		return rc;
	json_object_object_get_ex(reply, "devices", &arr);
	if (c->json)
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
	for (size_t i = 0; !c->json && i < json_object_array_length(arr); i++) {
		json_object *d = json_object_array_get_idx(arr, i);
		printf("%-13s: ID %s %s %s\n", cli_str(d, "busid"), cli_str(d, "id"), cli_str(d, "vendor"),
		       cli_str(d, "product"));
	}
	json_object_put(reply);
	return EXIT_OK;
}

const struct cli_cmd cli_usb_list_assignable = {
	"usb-list-assignable-devices", NULL, "",
	"list host USB devices that can be assigned",
	"One line per device: bus path, vendor:product ID and names (udev hwdb or usb.ids).\n"
	"Hubs and devices already assigned to any domain are left out.\n",
	run};
