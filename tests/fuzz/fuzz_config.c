/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the domain configuration parser (pvusb.cfg(5)):
 * files that users and scripts write, so any byte string must give either
 * a plan that keeps every promise of config.h, or one bounded error line
 * "fz.cfg:<line>: ..." free of control bytes. A violation traps.
 *
 * Input: the bytes are the file, cut at the first NUL (as pvusb_cfg_load
 * refuses NUL bytes). The first byte also chooses a small error buffer for
 * a second parse, which must truncate without overflowing and give the
 * same result.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvusb/config.h"
#include "pvusb/devname.h"

#define FUZZ_NAME "fuzz_config"
#include "invariant.h"

static bool terminated(const char *s, size_t size)
{
	return memchr(s, 0, size) != NULL;
}

static const struct pvusb_cfg_ctrl *find_ctrl(const struct pvusb_cfg *c, int devid)
{
	for (unsigned i = 0; i < c->nctrls; i++)
		if (c->ctrls[i].devid == devid)
			return &c->ctrls[i];
	return NULL;
}

static void check_plan(const struct pvusb_cfg *c, unsigned nlines)
{
	REQUIRE(c->nctrls <= PVUSB_CFG_MAX_CTRLS && c->ndevs <= PVUSB_CFG_MAX_DEVS);
	REQUIRE(terminated(c->name, sizeof(c->name)));
	REQUIRE(c->syntax != PVUSB_CFG_NONE || (c->nctrls == 0 && c->ndevs == 0));
	for (unsigned i = 0; i < c->nctrls; i++) {
		const struct pvusb_cfg_ctrl *h = &c->ctrls[i];
		REQUIRE(h->devid >= 0 && h->devid <= PVUSB_CFG_MAX_DEVID);
		REQUIRE(find_ctrl(c, h->devid) == h); /* ids are unique */
		REQUIRE(h->usb_ver == 1 || h->usb_ver == 2);
		REQUIRE(h->ports >= 1 && h->ports <= (c->syntax == PVUSB_CFG_XM ? 16u : 31u));
		REQUIRE(terminated(h->type, sizeof(h->type)) && terminated(h->what, sizeof(h->what)));
		REQUIRE(h->line >= 1 && h->line <= nlines);
	}
	for (unsigned i = 0; i < c->ndevs; i++) {
		const struct pvusb_cfg_dev *d = &c->devs[i];
		const struct pvusb_cfg_ctrl *h = find_ctrl(c, d->ctrl);
		REQUIRE(h && d->port >= 1 && (unsigned)d->port <= h->ports);
		for (unsigned j = 0; j < i; j++)
			REQUIRE(c->devs[j].ctrl != d->ctrl || c->devs[j].port != d->port);
		REQUIRE(terminated(d->device, sizeof(d->device)) && d->device[0]);
		REQUIRE(terminated(d->what, sizeof(d->what)));
		REQUIRE(d->line >= 1 && d->line <= nlines);
		struct pvusb_devname n;
		char why[256];
		REQUIRE(pvusb_devname_parse(d->device, &n, why, sizeof(why)) == 0);
	}
}

static void check_error(const char *err, size_t errlen, unsigned nlines)
{
	REQUIRE(terminated(err, errlen));
	REQUIRE(!strncmp(err, "fz.cfg:", errlen - 1 < 7 ? errlen - 1 : 7));
	for (const char *c = err; *c; c++)
		REQUIRE((unsigned char)*c >= 0x20 && *c != 0x7f);
	if (errlen > 20) {
		char *end;
		unsigned long line = strtoul(err + 7, &end, 10);
		REQUIRE(*end == ':' && line >= 1 && line <= nlines);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	unsigned nlines = 1;
	for (size_t i = 0; i < size && text[i]; i++)
		nlines += text[i] == '\n';

	static struct pvusb_cfg cfg, cfg2;
	char err[512];
	memset(err, 'X', sizeof(err));
	int rc = pvusb_cfg_parse("fz.cfg", text, &cfg, err, sizeof(err));
	REQUIRE(rc == 0 || rc == -EINVAL);
	if (rc == 0) {
		REQUIRE(err[0] == 0);
		check_plan(&cfg, nlines);
	} else {
		REQUIRE(err[0] != 0);
		check_error(err, sizeof(err), nlines);
	}

	/* a tiny error buffer: truncated, never overrun (guard bytes after it) */
	size_t small = size ? data[0] % 24 : 0;
	char tiny[24 + 8];
	memset(tiny, 'G', sizeof(tiny));
	int rc2 = pvusb_cfg_parse("fz.cfg", text, &cfg2, tiny, small);
	REQUIRE(rc2 == rc);
	for (size_t i = small; i < sizeof(tiny); i++)
		REQUIRE(tiny[i] == 'G');
	if (small)
		REQUIRE(terminated(tiny, small));
	REQUIRE(rc != 0 || !memcmp(&cfg, &cfg2, sizeof(cfg)));
	free(text);
	return 0;
}
