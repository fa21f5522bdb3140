/* SPDX-License-Identifier: MIT */
/*
 * Device names as users write them, parsed without any I/O:
 *   bus path        2-4.3.3      (bus 2, ports 4 -> 3 -> 3; as sysfs names it)
 *   bus.address     1.6          (decimal; a leading zero is refused, never octal)
 *   vendor:product  046d:c016    (hex, 1-4 digits each)
 *   vendor:product:serial
 *   emulated        sourcesink[:opts], tablet, keyboard, storage:<image>[,ro]
 * An optional "host:" prefix (the xm/qemu `usbdevice=` form) is accepted
 * before the three host forms.
 */
#ifndef PVUSB_DEVNAME_H
#define PVUSB_DEVNAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pvusb_devname_kind {
	PVUSB_DEVNAME_EMUL,    /* emul, arg */
	PVUSB_DEVNAME_BUSPATH, /* bus, ports[0..nports-1] */
	PVUSB_DEVNAME_BUSADDR, /* bus, addr */
	PVUSB_DEVNAME_VIDPID,  /* vendor, product, serial ("" when not given) */
};

#define PVUSB_DEVNAME_MAX_DEPTH 7 /* USB allows 7 tiers below the root */

struct pvusb_devname {
	enum pvusb_devname_kind kind;
	char emul[16];   /* "sourcesink", "tablet", "keyboard", "storage" */
	char arg[256];   /* what followed "kind:" for emulated devices, or "" */
	uint8_t bus;     /* 1..255 */
	uint8_t nports;
	uint8_t ports[PVUSB_DEVNAME_MAX_DEPTH];
	uint8_t addr;    /* 1..127 */
	uint16_t vendor, product;
	char serial[128];
};

/* Parse s. Returns 0, or -EINVAL with a one-line reason in err that says
 * what was expected (and, for "01.6", that leading zeros are refused
 * because the numbers are decimal, not octal). */
int pvusb_devname_parse(const char *s, struct pvusb_devname *out, char *err, size_t errlen);

/* Format a BUSPATH name back ("2-4.3.3"). */
void pvusb_devname_buspath(uint8_t bus, const uint8_t *ports, unsigned nports, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
