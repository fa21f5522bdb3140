/* SPDX-License-Identifier: MIT */
/* apply <file> [<dom>]: set up a domain's USB from an xl/xm config file. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The file is read here and its text sent, so pvusbd never opens files on
 * a client's behalf; pvusbd parses it and names file:line in errors. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "pvusb: cannot read %s: %s\n", path, strerror(errno));
		return NULL;
	}
	size_t cap = 64 * 1024; /* one control message carries it; configs are far smaller */
	char *buf = malloc(cap + 1);
	size_t n = buf ? fread(buf, 1, cap, f) : 0;
	bool big = !feof(f);
	fclose(f);
	if (!buf || big) {
		fprintf(stderr, "pvusb: %s is larger than 64 KiB; not a domain config\n", path);
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

static int run(struct cli *c, int argc, char **argv)
{
	if (argc < 1 || argc > 2)
		return cli_usage_error("apply needs a config file and optionally a domain");
	char *text = read_file(argv[0]);
	if (!text)
		return EXIT_USAGE;
	json_object *req = cli_req("apply", argc == 2 ? argv[1] : NULL);
	json_object_object_add(req, "file", json_object_new_string(argv[0]));
	json_object_object_add(req, "text", json_object_new_string(text));
	free(text);
	int rc;
	json_object *reply = cli_request(c, req, &rc), *arr;
	json_object_put(req);
	if (!reply)
		return rc;
	if (json_object_object_get_ex(reply, "done", &arr)) {
		if (c->json)
			printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
		for (size_t i = 0; !c->json && i < json_object_array_length(arr); i++)
			printf("%s\n", json_object_get_string(json_object_array_get_idx(arr, i)));
	}
	json_object_put(reply);
	return EXIT_OK;
}

const struct cli_cmd cli_apply = {
	"apply", NULL, "<file> [<dom>]",
	"create the controllers and attach the devices a domain config names",
	"Reads usbctrl=/usbdev= (xl), vusb= (xm) or usb=/usbdevice= (emulated) from an\n"
	"xl or xm domain config file; see pvusb.cfg(5). <dom> defaults to the file's\n"
	"name=. All or nothing: when any step fails, everything it did is undone.\n",
	run};
