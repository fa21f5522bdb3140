/* SPDX-License-Identifier: MIT */
/*
 * A domain's USB setup read from an xl/xm domain configuration file
 * (pvusb.cfg(5)), as a plan the toolstack can apply. No I/O besides
 * reading the file in pvusb_cfg_load; no allocation.
 *
 * One of three syntaxes per file (mixing them is an error):
 *   xl        usbctrl = [ 'type=pv,version=2,ports=4' ]
 *             usbdev  = [ 'hostbus=2,hostaddr=1,controller=0,port=1', 'device=tablet' ]
 *   xm        vusb    = [ 'usbver=2, numports=4, port_1=1-2, port_2=1-1' ]
 *   emulated  usb = 1, usbversion = 2, usbdevice = [ 'tablet', 'host:1.6' ]
 *
 * The parsed plan is complete: every controller has a devid and every device
 * a controller and a port, chosen as xl chooses them for a new domain (see
 * pvusb.cfg(5)); the *_given flags say what the file wrote itself and what
 * the parser chose.
 */
#ifndef PVUSB_CONFIG_H
#define PVUSB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PVUSB_CFG_MAX_CTRLS 16
#define PVUSB_CFG_MAX_DEVS 64
#define PVUSB_CFG_MAX_LINE 4096      /* bytes per line, newline excluded */
#define PVUSB_CFG_MAX_FILE (1 << 20) /* pvusb_cfg_load refuses larger files */
#define PVUSB_CFG_MAX_DEVID 65535

enum pvusb_cfg_syntax {
	PVUSB_CFG_NONE, /* the file sets up no USB at all */
	PVUSB_CFG_XL,   /* usbctrl / usbdev */
	PVUSB_CFG_XM,   /* vusb */
	PVUSB_CFG_EMUL, /* usb / usbversion / usbdevice */
};

struct pvusb_cfg_ctrl {
	int devid;         /* >= 0: devid= as written, else the lowest free id in list order */
	unsigned usb_ver;  /* 1 or 2 */
	unsigned ports;    /* 1..31 (xm: 1..16) */
	char type[8];      /* "pv" or "auto" as written; "auto" when absent */
	bool devid_given;  /* devid= was written */
	bool implicit;     /* created by the xl rule for a usbdev that found no free port */
	unsigned line;     /* where it was written (implicit: the usbdev's line) */
	char what[24];     /* "usbctrl[1]", "vusb[0]", "usb", or the usbdev that caused it */
};

struct pvusb_cfg_dev {
	int ctrl;          /* devid of one of the plan's controllers */
	int port;          /* 1..that controller's ports */
	bool ctrl_given;   /* controller= (xm: always; emulated: never) */
	bool port_given;   /* port= (xm: always; emulated: never) */
	char device[280];  /* a pvusb device name (devname.h): "1.6", "2-4.3.3", "tablet", ... */
	unsigned line;
	char what[24];     /* "usbdev[2]", "vusb[0].port_3", "usbdevice[1]" */
};

struct pvusb_cfg {
	char name[64]; /* name = "..." or "" */
	enum pvusb_cfg_syntax syntax;
	struct pvusb_cfg_ctrl ctrls[PVUSB_CFG_MAX_CTRLS];
	unsigned nctrls;
	struct pvusb_cfg_dev devs[PVUSB_CFG_MAX_DEVS];
	unsigned ndevs;
};

/* Parse text (NUL-terminated), read from path (used only in messages).
 * Returns 0, or -EINVAL with one line in err: "path:line: key: reason",
 * e.g. "guest.cfg:7: usbctrl[1]: version must be 1 or 2, got '3'".
 * *out is always initialised; on error its contents are unspecified. */
int pvusb_cfg_parse(const char *path, const char *text, struct pvusb_cfg *out, char *err,
		    size_t errlen);

/* Read path and parse it. -errno when it cannot be read (err says why),
 * -EFBIG over PVUSB_CFG_MAX_FILE, -EINVAL as pvusb_cfg_parse (a NUL byte in
 * the file is a syntax error too). */
int pvusb_cfg_load(const char *path, struct pvusb_cfg *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
