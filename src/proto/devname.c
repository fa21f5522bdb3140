/* SPDX-License-Identifier: MIT */
/* Device names as users write them (see pvusb/devname.h). No I/O: the
 * parser only classifies and range-checks, so it can be fuzzed. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pvusb/devname.h"

static const char *const emulated_kinds[] = {"sourcesink", "tablet", "keyboard", "storage"};

/* A decimal number in [lo, hi] spanning s[0..len). Leading zeros are
 * refused: "08" is not octal and "01" would hide a typo. */
static int parse_dec(const char *s, size_t len, unsigned lo, unsigned hi, unsigned *out,
		     const char *what, char *err, size_t errlen)
{
	unsigned v = 0;
	if (len == 0 || len > 3) {
		snprintf(err, errlen, "%s must be a decimal number %u..%u", what, lo, hi);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			snprintf(err, errlen, "%s must be a decimal number %u..%u, got '%.*s'", what, lo,
				 hi, (int)len, s);
			return -EINVAL;
		}
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (len > 1 && s[0] == '0') {
		snprintf(err, errlen,
			 "%s '%.*s' has a leading zero: numbers here are decimal, not octal; write %u",
			 what, (int)len, s, v);
		return -EINVAL;
	}
	if (v < lo || v > hi) {
		snprintf(err, errlen, "%s must be %u..%u, got %u", what, lo, hi, v);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* 1..4 hex digits. */
static int parse_hex16(const char *s, size_t len, uint16_t *out)
{
	unsigned v = 0;
	if (len == 0 || len > 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
		if (d > 15)
			return -EINVAL;
		v = v * 16 + d;
	}
	*out = (uint16_t)v;
	return 0;
}

static int parse_emul(const char *s, struct pvusb_devname *n, char *err, size_t errlen)
{
	size_t klen = strcspn(s, ":");
	for (size_t i = 0; i < sizeof(emulated_kinds) / sizeof(emulated_kinds[0]); i++) {
		if (strlen(emulated_kinds[i]) != klen || strncmp(s, emulated_kinds[i], klen))
			continue;
		const char *arg = s[klen] == ':' ? s + klen + 1 : "";
		if (strlen(arg) >= sizeof(n->arg)) {
			snprintf(err, errlen, "%s: options too long", emulated_kinds[i]);
			return -EINVAL;
		}
		if (!strcmp(emulated_kinds[i], "storage") && !*arg) {
			snprintf(err, errlen, "storage needs an image file: storage:<image>[,ro]");
			return -EINVAL;
		}
		n->kind = PVUSB_DEVNAME_EMUL;
		snprintf(n->emul, sizeof(n->emul), "%s", emulated_kinds[i]);
		snprintf(n->arg, sizeof(n->arg), "%s", arg);
		return 0;
	}
	return 1; /* not an emulated name */
}

/* "2-4.3.3": bus, then '.'-separated port numbers (1..31 each). */
static int parse_buspath(const char *s, struct pvusb_devname *n, char *err, size_t errlen)
{
	size_t blen = strcspn(s, "-");
	unsigned v;
	int rc = parse_dec(s, blen, 1, 255, &v, "the bus number", err, errlen);
	if (rc)
		return rc;
	n->bus = (uint8_t)v;
	n->nports = 0;
	for (const char *p = s + blen + 1;; ) {
		size_t len = strcspn(p, ".");
		if (n->nports == PVUSB_DEVNAME_MAX_DEPTH) {
			snprintf(err, errlen, "bus path '%s' is deeper than USB allows (%d hubs)", s,
				 PVUSB_DEVNAME_MAX_DEPTH);
			return -EINVAL;
		}
		rc = parse_dec(p, len, 1, 31, &v, "a port number in a bus path", err, errlen);
		if (rc)
			return rc;
		n->ports[n->nports++] = (uint8_t)v;
		if (!p[len])
			break;
		p += len + 1;
	}
	n->kind = PVUSB_DEVNAME_BUSPATH;
	return 0;
}

static int parse_busaddr(const char *s, struct pvusb_devname *n, char *err, size_t errlen)
{
	size_t blen = strcspn(s, ".");
	unsigned bus, addr;
	int rc = parse_dec(s, blen, 1, 255, &bus, "the bus number", err, errlen);
	if (!rc)
		rc = parse_dec(s + blen + 1, strlen(s + blen + 1), 1, 127, &addr, "the device address",
			       err, errlen);
	if (rc)
		return rc;
	n->kind = PVUSB_DEVNAME_BUSADDR;
	n->bus = (uint8_t)bus;
	n->addr = (uint8_t)addr;
	return 0;
}

static int parse_vidpid(const char *s, struct pvusb_devname *n, char *err, size_t errlen)
{
	size_t vlen = strcspn(s, ":");
	const char *p = s + vlen + 1;
	size_t plen = strcspn(p, ":");
	if (parse_hex16(s, vlen, &n->vendor) || parse_hex16(p, plen, &n->product)) {
		snprintf(err, errlen, "'%s': expected vendor:product in hex, like 046d:c016", s);
		return -EINVAL;
	}
	const char *serial = p[plen] == ':' ? p + plen + 1 : "";
	if (p[plen] == ':' && !*serial) {
		snprintf(err, errlen, "'%s': the serial after the second ':' is empty", s);
		return -EINVAL;
	}
	if (strlen(serial) >= sizeof(n->serial)) {
		snprintf(err, errlen, "'%s': the serial is too long", s);
		return -EINVAL;
	}
	snprintf(n->serial, sizeof(n->serial), "%s", serial);
	n->kind = PVUSB_DEVNAME_VIDPID;
	return 0;
}

int pvusb_devname_parse(const char *s, struct pvusb_devname *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!s || !*s) {
		snprintf(err, errlen, "empty device name");
		return -EINVAL;
	}
	int rc = parse_emul(s, out, err, errlen);
	if (rc <= 0)
		return rc;
	const char *h = !strncmp(s, "host:", 5) ? s + 5 : s;
	if (strchr(h, ':'))
		return parse_vidpid(h, out, err, errlen);
	if (strchr(h, '-'))
		return parse_buspath(h, out, err, errlen);
	if (strchr(h, '.'))
		return parse_busaddr(h, out, err, errlen);
	snprintf(err, errlen,
		 "unknown device '%s': expected a bus path (2-4.3.3), bus.address (1.6), "
		 "vendor:product[:serial] (046d:c016), sourcesink, tablet, keyboard or "
		 "storage:<image>", s);
	return -EINVAL;
}

void pvusb_devname_buspath(uint8_t bus, const uint8_t *ports, unsigned nports, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%u", bus);
	for (unsigned i = 0; i < nports && n >= 0 && (size_t)n < len; i++)
		n += snprintf(buf + n, len - (size_t)n, "%c%u", i ? '.' : '-', ports[i]);
}
