/* SPDX-License-Identifier: MIT */
/*
 * Domain configuration files (pvusb.cfg(5)): the three syntaxes, the file
 * grammar (comments, quotes, multi-line lists), xl's port-choosing rules,
 * and every error with its exact "file:line: key: reason" message.
 * Usage: test_config <tests/unit/data/cfg> <examples>
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pvusb/config.h"

#include "check.h"

static struct pvusb_cfg cfg;
static char err[512];

/* Parse text that must be valid. */
static bool good(const char *text)
{
	int rc = pvusb_cfg_parse("t.cfg", text, &cfg, err, sizeof(err));
	if (rc)
		fprintf(stderr, "  unexpected error: %s\n", err);
	return rc == 0;
}

/* Parse text that must fail with exactly msg. */
static bool bad_(const char *text, const char *msg, int line)
{
	int rc = pvusb_cfg_parse("t.cfg", text, &cfg, err, sizeof(err));
	bool ok = rc == -EINVAL && !strcmp(err, msg);
	if (!ok)
		fprintf(stderr, "FAIL %s:%d: rc %d\n  want: %s\n  got:  %s\n", __FILE__, line, rc, msg,
			rc ? err : "(no error)");
	return ok;
}
#define BAD(text, msg)                                                                     \
	do {                                                                               \
		if (bad_(text, msg, __LINE__))                                             \
			passed++;                                                          \
		else                                                                       \
			failed++;                                                          \
	} while (0)

static bool ctrl_is(unsigned i, int devid, unsigned ver, unsigned ports, const char *type)
{
	return i < cfg.nctrls && cfg.ctrls[i].devid == devid && cfg.ctrls[i].usb_ver == ver &&
	       cfg.ctrls[i].ports == ports && !strcmp(cfg.ctrls[i].type, type);
}

static bool dev_is(unsigned i, const char *dev, int ctrl, int port)
{
	return i < cfg.ndevs && !strcmp(cfg.devs[i].device, dev) && cfg.devs[i].ctrl == ctrl &&
	       cfg.devs[i].port == port;
}

/* ---- xl ---- */

static void test_xl(void)
{
	CHECK(good("usbctrl = [ 'type=pv,version=2,ports=4' ]\n"
		   "usbdev = [ 'hostbus=2,hostaddr=1,controller=0,port=1', 'type=hostdev,hostbus=1,hostaddr=6' ]\n"),
	      "xl: the spec's example");
	CHECK(cfg.syntax == PVUSB_CFG_XL && cfg.nctrls == 1 && cfg.ndevs == 2, "xl: counts");
	CHECK(ctrl_is(0, 0, 2, 4, "pv") && !cfg.ctrls[0].devid_given && !cfg.ctrls[0].implicit,
	      "xl: controller 0");
	CHECK(dev_is(0, "2.1", 0, 1) && cfg.devs[0].ctrl_given && cfg.devs[0].port_given,
	      "xl: hostbus/hostaddr become bus.address, explicit port");
	CHECK(dev_is(1, "1.6", 0, 2) && !cfg.devs[1].ctrl_given && !cfg.devs[1].port_given,
	      "xl: no controller: first free port");
	CHECK(!strcmp(cfg.devs[1].what, "usbdev[1]") && cfg.devs[1].line == 2 &&
	      !strcmp(cfg.ctrls[0].what, "usbctrl[0]") && cfg.ctrls[0].line == 1, "xl: what and line");

	CHECK(good("usbctrl=['']\n"), "xl: an empty spec is a default controller");
	CHECK(ctrl_is(0, 0, 2, 8, "auto"), "xl: defaults version 2, 8 ports, type auto");

	CHECK(good("usbctrl = [ 'devid=3', 'ports=2', 'version=1,devid=0', 'type=pv' ]\n"),
	      "xl: devid= extension");
	CHECK(ctrl_is(0, 3, 2, 8, "auto") && cfg.ctrls[0].devid_given && ctrl_is(1, 1, 2, 2, "auto") &&
	      ctrl_is(2, 0, 1, 8, "auto") && ctrl_is(3, 2, 2, 8, "pv"),
	      "xl: the others get the lowest free ids in list order");

	/* explicit ports are placed before automatic choices */
	CHECK(good("usbctrl = [ 'ports=2' ]\n"
		   "usbdev = [ 'device=tablet', 'device=keyboard,controller=0', 'device=1-1,controller=0,port=1' ]\n"),
	      "xl: placement order");
	CHECK(dev_is(2, "1-1", 0, 1) && dev_is(1, "keyboard", 0, 2) && dev_is(0, "tablet", 1, 1),
	      "xl: explicit, then controller's first free, then a new controller");
	CHECK(cfg.nctrls == 2 && ctrl_is(1, 1, 2, 8, "auto") && cfg.ctrls[1].implicit &&
	      !strcmp(cfg.ctrls[1].what, "usbdev[0]") && cfg.ctrls[1].line == 2,
	      "xl: the implicit controller is a default one, named after its usbdev");

	CHECK(good("usbdev = 'device=sourcesink'\n"), "xl: usbdev without usbctrl, a lone string");
	CHECK(cfg.nctrls == 1 && ctrl_is(0, 0, 2, 8, "auto") && cfg.ctrls[0].implicit &&
	      dev_is(0, "sourcesink", 0, 1) && !strcmp(cfg.devs[0].what, "usbdev"),
	      "xl: a default controller is created");

	CHECK(good("usbctrl = [ '' ]\nusbdev = [ 'device=storage:/img/a b.img,ro, controller=0', "
		   "'device=tablet', 'device=tablet' ]\n"),
	      "xl: a comma in device= is kept when the next item has no '='");
	CHECK(dev_is(0, "storage:/img/a b.img,ro", 0, 1) && dev_is(2, "tablet", 0, 3),
	      "xl: storage with ,ro; two tablets are two devices");

	CHECK(good("usbdev = [ 'device=046d:c016:ABC:1' ]\n") && dev_is(0, "046d:c016:ABC:1", 0, 1),
	      "xl: a serial with ':' in it");
}

static void test_xl_errors(void)
{
	BAD("usbctrl = [ 'version=2', 'version=3' ]\n",
	    "t.cfg:1: usbctrl[1]: version must be 1 or 2, got '3'");
	BAD("usbctrl = [ 'ports=32' ]\n", "t.cfg:1: usbctrl[0]: ports must be 1..31, got '32'");
	BAD("usbctrl = [ 'ports=0' ]\n", "t.cfg:1: usbctrl[0]: ports must be 1..31, got '0'");
	BAD("usbctrl = [ 'ports=99999999999999999999999' ]\n",
	    "t.cfg:1: usbctrl[0]: ports must be 1..31, got '99999999999999999999999'");
	BAD("usbctrl = [ 'ports=08' ]\n",
	    "t.cfg:1: usbctrl[0]: ports '08' has a leading zero: numbers are decimal, not octal");
	BAD("usbctrl = [ 'ports=-1' ]\n", "t.cfg:1: usbctrl[0]: ports must be a decimal number, got '-1'");
	BAD("usbctrl = [ 'ports=' ]\n", "t.cfg:1: usbctrl[0]: ports must be a decimal number, got ''");
	BAD("usbctrl = [ 'type=devicemodel' ]\n",
	    "t.cfg:1: usbctrl[0]: type=devicemodel controllers are served by QEMU, not pvusbd "
	    "(use pv or auto)");
	BAD("usbctrl = [ 'type=qusb' ]\n",
	    "t.cfg:1: usbctrl[0]: type=qusb controllers are served by QEMU, not pvusbd (use pv or auto)");
	BAD("usbctrl = [ 'type=xhci' ]\n", "t.cfg:1: usbctrl[0]: type must be pv or auto, got 'xhci'");
	BAD("usbctrl = [ 'speed=high' ]\n",
	    "t.cfg:1: usbctrl[0]: unknown item 'speed' (expected type=, version=, ports=, devid=)");
	BAD("usbctrl = [ 'ports=4,ports=5' ]\n", "t.cfg:1: usbctrl[0]: ports given twice");
	BAD("usbctrl = [ 'devid=1', 'devid=1' ]\n",
	    "t.cfg:1: usbctrl[1]: devid 1 is already used by usbctrl[0] (line 1)");
	BAD("usbctrl = [ 4 ]\n", "t.cfg:1: usbctrl[0]: expected a quoted string, got 4");
	BAD("usbctrl = [ 'a', [ 'b' ] ]\n", "t.cfg:1: usbctrl: a list inside this list is not allowed");

	/* leading zero: decimal, never octal as xl's strtoul(...,0) would read it */
	BAD("usbdev = [\n  'hostbus=01,hostaddr=6' ]\n",
	    "t.cfg:2: usbdev[0]: hostbus '01' has a leading zero: numbers are decimal, not octal");
	BAD("usbdev = [ 'hostbus=0x10,hostaddr=6' ]\n",
	    "t.cfg:1: usbdev[0]: hostbus must be a decimal number, got '0x10'");
	BAD("usbdev = [ 'hostbus=1,hostaddr=128' ]\n",
	    "t.cfg:1: usbdev[0]: hostaddr must be 1..127, got '128'");
	BAD("usbdev = [ 'hostbus=1' ]\n", "t.cfg:1: usbdev[0]: needs hostbus= and hostaddr= (or device=)");
	BAD("usbdev = [ '' ]\n", "t.cfg:1: usbdev[0]: needs hostbus= and hostaddr= (or device=)");
	BAD("usbdev = [ 'hostbus=1,hostaddr=2,device=tablet' ]\n",
	    "t.cfg:1: usbdev[0]: give either device= or hostbus= and hostaddr=, not both");
	BAD("usbdev = [ 'type=pci,hostbus=1,hostaddr=2' ]\n",
	    "t.cfg:1: usbdev[0]: type must be hostdev, got 'pci'");
	BAD("usbdev = [ 'hostbus=1,hostaddr=2,bus=3' ]\n",
	    "t.cfg:1: usbdev[0]: unknown item 'bus' (expected type=hostdev, hostbus=, hostaddr=, "
	    "controller=, port= or device=)");
	BAD("usbdev = [ 'hostbus=1,hostaddr=2,port=1' ]\n", "t.cfg:1: usbdev[0]: port= needs controller= too");
	BAD("usbctrl = [ '' ]\nusbdev = [ 'hostbus=1,hostaddr=2,controller=1' ]\n",
	    "t.cfg:2: usbdev[0]: controller=1 is not one of the controllers in usbctrl");
	BAD("usbctrl = [ 'ports=4' ]\nusbdev = [ 'hostbus=1,hostaddr=2,controller=0,port=5' ]\n",
	    "t.cfg:2: usbdev[0]: port 5 is beyond controller 0's 4 ports");
	BAD("usbctrl = [ 'ports=4' ]\nusbdev = [ 'hostbus=1,hostaddr=2,controller=0,port=32' ]\n",
	    "t.cfg:2: usbdev[0]: port must be 1..31, got '32'");
	BAD("usbctrl = [ '' ]\nusbdev = [ 'device=tablet,controller=0,port=2',\n"
	    "  'device=keyboard,controller=0,port=2' ]\n",
	    "t.cfg:3: usbdev[1]: port 2 of controller 0 is already taken by usbdev[0] (line 2)");
	BAD("usbctrl = [ 'ports=1' ]\nusbdev = [ 'device=tablet,controller=0,port=1', "
	    "'device=keyboard,controller=0' ]\n",
	    "t.cfg:2: usbdev[1]: controller 0 has no free port (all 1 taken)");

	/* one host device, one entry: the same device written three ways */
	BAD("usbdev = [ 'hostbus=1,hostaddr=6',\n 'device=host:1.6' ]\n",
	    "t.cfg:2: usbdev[1]: host:1.6 is already assigned by usbdev[0] (line 1)");
	BAD("usbdev = [ 'device=046d:c016', 'device=46D:C016' ]\n",
	    "t.cfg:1: usbdev[1]: 46D:C016 is already assigned by usbdev[0] (line 1)");
	BAD("usbdev = [ 'device=2-4.3', 'device=2-4.3' ]\n",
	    "t.cfg:1: usbdev[1]: 2-4.3 is already assigned by usbdev[0] (line 1)");
	BAD("usbdev = [ 'device=storage:/a.img', 'device=storage:/a.img,ro' ]\n",
	    "t.cfg:1: usbdev[1]: storage:/a.img,ro is already assigned by usbdev[0] (line 1)");
	BAD("usbdev = [ 'device=mouse' ]\n",
	    "t.cfg:1: usbdev[0]: device 'mouse': unknown device 'mouse': expected a bus path (2-4.3.3), "
	    "bus.address (1.6), vendor:product[:serial] (046d:c016), sourcesink, tablet, keyboard or "
	    "storage:<image>");
	BAD("usbdev = [ 'device=2-04' ]\n",
	    "t.cfg:1: usbdev[0]: device '2-04': a port number in a bus path '04' has a leading zero: "
	    "numbers here are decimal, not octal; write 4");
	BAD("usbdev = [ 'device=' ]\n", "t.cfg:1: usbdev[0]: device: empty device name");
}

static void test_xl_limits(void)
{
	char text[8192];
	size_t n = (size_t)snprintf(text, sizeof(text), "usbctrl = [");
	for (int i = 0; i < 17; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "'ports=1',\n");
	snprintf(text + n, sizeof(text) - n, "]\n");
	BAD(text, "t.cfg:17: usbctrl[16]: more than 16 controllers");

	n = (size_t)snprintf(text, sizeof(text), "usbdev = [");
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "'device=tablet',\n");
	snprintf(text + n, sizeof(text) - n, "]\n");
	BAD(text, "t.cfg:65: usbdev: more than 64 entries");

	/* 64 devices fill 8 default controllers */
	n = (size_t)snprintf(text, sizeof(text), "usbdev = [");
	for (int i = 0; i < 64; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "'device=1-%d.%d',", i / 31 + 1, i % 31 + 1);
	snprintf(text + n, sizeof(text) - n, "]\n");
	CHECK(good(text) && cfg.ndevs == 64 && cfg.nctrls == 8 && dev_is(63, "1-3.2", 7, 8),
	      "xl: 64 devices on 8 implicit controllers");

	/* 16 full controllers and one more device */
	n = (size_t)snprintf(text, sizeof(text), "usbctrl = [");
	for (int i = 0; i < 16; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "'ports=1',");
	n += (size_t)snprintf(text + n, sizeof(text) - n, "]\nusbdev = [");
	for (int i = 0; i < 17; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "'device=1-%d',", i + 1);
	snprintf(text + n, sizeof(text) - n, "]\n");
	BAD(text, "t.cfg:2: usbdev[16]: more than 16 controllers");
}

/* ---- xm ---- */

static void test_xm(void)
{
	CHECK(good("vusb = [ 'usbver=2, numports=4, port_1=1-2, port_2=1-1' ]\n"), "xm: the spec's example");
	CHECK(cfg.syntax == PVUSB_CFG_XM && cfg.nctrls == 1 && ctrl_is(0, 0, 2, 4, "auto") &&
	      cfg.ndevs == 2 && dev_is(0, "1-2", 0, 1) && dev_is(1, "1-1", 0, 2) &&
	      cfg.devs[0].ctrl_given && cfg.devs[0].port_given, "xm: plan");
	CHECK(!strcmp(cfg.devs[1].what, "vusb[0].port_2") && !strcmp(cfg.ctrls[0].what, "vusb[0]"),
	      "xm: names");
	CHECK(good("vusb = [ 'usbver=1,numports=2,port_2=3-1.5',\n  'port_16=2-1,numports=16', 'port_1=' ]\n"),
	      "xm: numports after its ports, 16 ports, an empty port");
	CHECK(cfg.nctrls == 3 && ctrl_is(0, 0, 1, 2, "auto") && ctrl_is(1, 1, 2, 16, "auto") &&
	      ctrl_is(2, 2, 2, 8, "auto") && cfg.ndevs == 2 && dev_is(0, "3-1.5", 0, 2) &&
	      dev_is(1, "2-1", 1, 16) && cfg.devs[1].line == 2, "xm: three controllers");
	CHECK(good("vusb = 'port_1=tablet,port_2=storage:/x.img,ro'\n") && dev_is(1, "storage:/x.img,ro", 0, 2),
	      "xm: any device name, with the comma rule");

	BAD("vusb = [ 'numports=17' ]\n", "t.cfg:1: vusb[0]: numports must be 1..16, got '17'");
	BAD("vusb = [ 'port_17=1-1' ]\n", "t.cfg:1: vusb[0]: port_17 must be 1..16, got '17'");
	BAD("vusb = [ 'port_0=1-1' ]\n", "t.cfg:1: vusb[0]: port_0 must be 1..16, got '0'");
	BAD("vusb = [ 'port_01=1-1' ]\n",
	    "t.cfg:1: vusb[0]: port_01 '01' has a leading zero: numbers are decimal, not octal");
	BAD("vusb = [ 'numports=2, port_3=1-1' ]\n", "t.cfg:1: vusb[0].port_3: port_3 is beyond numports=2");
	BAD("vusb = [ 'usbver=3' ]\n", "t.cfg:1: vusb[0]: usbver must be 1 or 2, got '3'");
	BAD("vusb = [ 'usbver=2,usbver=2' ]\n", "t.cfg:1: vusb[0]: usbver given twice");
	BAD("vusb = [ 'port_1=1-1,port_1=1-2' ]\n", "t.cfg:1: vusb[0]: port_1 given twice");
	BAD("vusb = [ 'version=2' ]\n",
	    "t.cfg:1: vusb[0]: unknown item 'version' (expected usbver=, numports=, port_1= .. port_16=)");
	BAD("vusb = [ 'numports' ]\n", "t.cfg:1: vusb[0]: numports needs a value");
	BAD("vusb = [ 'port_1=1-1', 'port_1=1-1' ]\n",
	    "t.cfg:1: vusb[1].port_1: 1-1 is already assigned by vusb[0].port_1 (line 1)");
	BAD("vusb = [ 'port_1=01-1' ]\n",
	    "t.cfg:1: vusb[0].port_1: device '01-1': the bus number '01' has a leading zero: "
	    "numbers here are decimal, not octal; write 1");
}

/* ---- emulated ---- */

static void test_emul(void)
{
	CHECK(good("usb = 1\nusbversion = 1\nusbdevice = [ 'tablet', 'host:1.6', 'host:0424:460' ]\n"),
	      "emul: list");
	CHECK(cfg.syntax == PVUSB_CFG_EMUL && cfg.nctrls == 1 && ctrl_is(0, 0, 1, 8, "auto") &&
	      cfg.ndevs == 3 && dev_is(0, "tablet", 0, 1) && dev_is(1, "host:1.6", 0, 2) &&
	      dev_is(2, "host:0424:460", 0, 3) && !cfg.devs[0].ctrl_given && !cfg.devs[0].port_given &&
	      !strcmp(cfg.devs[2].what, "usbdevice[2]") && !strcmp(cfg.ctrls[0].what, "usb"),
	      "emul: one controller, devices on ports 1, 2, 3");
	CHECK(good("usbdevice = 'tablet'\n") && cfg.nctrls == 1 && ctrl_is(0, 0, 2, 8, "auto") &&
	      dev_is(0, "tablet", 0, 1) && !strcmp(cfg.devs[0].what, "usbdevice") &&
	      !strcmp(cfg.ctrls[0].what, "usbdevice"), "emul: a lone string, usb implied");
	CHECK(good("usb = 1\n") && cfg.nctrls == 1 && cfg.ndevs == 0, "emul: usb = 1 alone");
	CHECK(good("usb = 0\nusbversion = 2\n") && cfg.syntax == PVUSB_CFG_NONE && cfg.nctrls == 0,
	      "emul: usb = 0 sets up nothing");
	char text[1024];
	size_t n = (size_t)snprintf(text, sizeof(text), "usbdevice = [");
	for (int i = 0; i < 10; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "'1-%d',", i + 1);
	snprintf(text + n, sizeof(text) - n, "]\n");
	CHECK(good(text) && ctrl_is(0, 0, 2, 10, "auto") && dev_is(9, "1-10", 0, 10),
	      "emul: more devices than 8 ports: as many ports as devices");
	n = (size_t)snprintf(text, sizeof(text), "usbdevice = [");
	for (int i = 0; i < 32; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "'tablet',");
	snprintf(text + n, sizeof(text) - n, "]\n");
	BAD(text, "t.cfg:1: usbdevice: 32 devices do not fit one controller (at most 31)");

	BAD("usb = 1\nusbversion = 3\n", "t.cfg:2: usbversion: must be 1 or 2, got '3'");
	BAD("usb = 2\n", "t.cfg:1: usb: must be 0 or 1, got '2'");
	BAD("usb = 'yes'\n", "t.cfg:1: usb: must be a number 0..1");
	BAD("usb = 0\nusbdevice = [ 'tablet' ]\n", "t.cfg:2: usbdevice: lists devices but usb = 0 (line 1)");
	BAD("usbdevice = [ 'mouse' ]\n",
	    "t.cfg:1: usbdevice[0]: device 'mouse': unknown device 'mouse': expected a bus path (2-4.3.3), "
	    "bus.address (1.6), vendor:product[:serial] (046d:c016), sourcesink, tablet, keyboard or "
	    "storage:<image>");
	BAD("usbdevice = [ 'host:1.6', 'host:1.6' ]\n",
	    "t.cfg:1: usbdevice[1]: host:1.6 is already assigned by usbdevice[0] (line 1)");
	BAD("usbdevice = [ 'host:1.06' ]\n",
	    "t.cfg:1: usbdevice[0]: device 'host:1.06': the device address '06' has a leading zero: "
	    "numbers here are decimal, not octal; write 6");
}

/* ---- the file grammar ---- */

static void test_grammar(void)
{
	CHECK(good(""), "empty file");
	CHECK(cfg.syntax == PVUSB_CFG_NONE && cfg.nctrls == 0 && cfg.ndevs == 0 && !cfg.name[0],
	      "empty file: an empty plan");
	CHECK(good("# only a comment\n\n   \t\n;\n"), "comments and blank lines");
	CHECK(good("name = \"web-1.example_x\"\nmemory = 512\n") && !strcmp(cfg.name, "web-1.example_x"),
	      "name");
	CHECK(good("name='a' ; memory=1;vcpus=2 # comment\n") && !strcmp(cfg.name, "a"),
	      "';' separates settings");
	CHECK(good("disk = [ 'a', \"b\", [ 1, [ 2, ], ], -1, 0x10, 08, True, ]\n"),
	      "ignored keys: any value, nested lists, trailing commas");
	CHECK(good("usbdev = [ # comment after [\n"
		   "  'device=tablet' # comment\n"
		   "  # a comment line inside the list\n"
		   "  ,\n"
		   "  \"device=keyboard\"\n"
		   "  ,\n"
		   "]\n") && cfg.ndevs == 2 && cfg.devs[1].line == 5 && dev_is(1, "keyboard", 0, 2),
	      "multi-line list with comments");
	CHECK(good("usbdev = [ 'device=storage:/it\\'s.img', \"device=storage:/a\\\"b\\\\c\" ]\n") &&
	      dev_is(0, "storage:/it's.img", 0, 1) && dev_is(1, "storage:/a\"b\\c", 0, 2),
	      "escapes in strings");
	CHECK(good("usbdev = [ 'device=storage:/a#b.img' ]\n") && dev_is(0, "storage:/a#b.img", 0, 1),
	      "'#' inside a string is not a comment");
	CHECK(good("usbdev = [ 'device=tablet' ]\nusbdev += [ 'device=keyboard' ]\n") && cfg.ndevs == 2 &&
	      cfg.devs[1].line == 2, "+= appends to a list");
	CHECK(good("usbctrl = [ ' version = 1 , ports = 2 ' ]\r\n") && ctrl_is(0, 0, 1, 2, "auto"),
	      "blanks around items and CRLF");

	BAD("name = \"guest\nmemory = 5\n", "t.cfg:1: name: unterminated string: \" is never closed on its line");
	BAD("usbdev = [ 'device=tablet', 'device=keyboard ]\n",
	    "t.cfg:1: usbdev: unterminated string: ' is never closed on its line");
	BAD("usbdev = [ 'device=tablet',\n  'device=keyboard',\n",
	    "t.cfg:1: usbdev: unterminated list: '[' is never closed by ']'");
	BAD("name = \"broken\"\nusbdev = [ 'hostbus=1,hostaddr=2',\n  'hostbus=1,hostaddr=3'\nmemory = 512\n",
	    "t.cfg:4: usbdev: expected ',' or ']' in the list opened on line 2");
	BAD("memory 512\n", "t.cfg:1: memory: expected '=' after the key");
	BAD("memory =\n512\n", "t.cfg:1: memory: expected a value after '='");
	BAD("memory = 512 1024\n", "t.cfg:1: memory: unexpected text after the value; one setting per line");
	BAD("memory = @\n", "t.cfg:1: memory: expected a value: a number, a 'string' or a [list]");
	BAD("\n\n= 5\n", "t.cfg:3: expected a setting like 'key = value'");
	BAD("x = [[[[[[[[[ ]]]]]]]]]\n", "t.cfg:1: x: lists nested deeper than 8");
	BAD("name = 'a'\nname = 'b'\n", "t.cfg:2: name: set twice (first on line 1)");
	BAD("usb = 1\nusb += [ 1 ]\n", "t.cfg:2: usb: += needs a list on line 1");
	BAD("usbdev += 'device=tablet'\n", "t.cfg:1: usbdev: += needs a list");
	BAD("name = 'bad name'\n", "t.cfg:1: name: must be 1-63 characters of A-Z a-z 0-9 . _ -, got 'bad name'");
	BAD("name = ''\n", "t.cfg:1: name: must be 1-63 characters of A-Z a-z 0-9 . _ -, got ''");
	BAD("name = [ 'a' ]\n", "t.cfg:1: name: must be a quoted string");
	BAD("name = 'a\033[2Jb'\n",
	    "t.cfg:1: name: must be 1-63 characters of A-Z a-z 0-9 . _ -, got 'a?[2Jb'");

	char *big = malloc(PVUSB_CFG_MAX_LINE + 64);
	memset(big, 'x', PVUSB_CFG_MAX_LINE + 1);
	memcpy(big, "\nextra = '", 10);
	big[PVUSB_CFG_MAX_LINE] = '\'';
	big[PVUSB_CFG_MAX_LINE + 1] = 0;
	CHECK(good(big), "a line of exactly the maximum length");
	strcpy(big + PVUSB_CFG_MAX_LINE, "x'\n");
	BAD(big, "t.cfg:2: line longer than 4096 bytes");
	free(big);
}

/* Mixing syntaxes is an error: their controllers would be numbered against each other. */
static void test_mixing(void)
{
	BAD("usbctrl = [ '' ]\nvusb = [ '' ]\n",
	    "t.cfg:2: vusb: cannot be mixed with usbctrl (line 1): use one syntax per file");
	BAD("vusb = [ '' ]\nusbdev = [ 'device=tablet' ]\n",
	    "t.cfg:2: usbdev: cannot be mixed with vusb (line 1): use one syntax per file");
	BAD("usbdevice = 'tablet'\nusbdev = [ 'device=tablet' ]\n",
	    "t.cfg:2: usbdev: cannot be mixed with usbdevice (line 1): use one syntax per file");
	BAD("usb = 1\nvusb = [ '' ]\n", "t.cfg:2: vusb: cannot be mixed with usb (line 1): use one syntax per file");
	CHECK(good("usb = 0\nusbctrl = [ '' ]\n") && cfg.syntax == PVUSB_CFG_XL,
	      "usb = 0 does not count as the emulated syntax");
}

/* ---- files ---- */

static void load_good(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int rc = pvusb_cfg_load(path, &cfg, err, sizeof(err));
	if (rc)
		fprintf(stderr, "  %s\n", err);
	CHECK(rc == 0, name);
}

static void test_files(const char *data, const char *examples)
{
	load_good(data, "xl-full.cfg");
	CHECK(!strcmp(cfg.name, "guest1") && cfg.syntax == PVUSB_CFG_XL && cfg.nctrls == 2 &&
	      ctrl_is(0, 0, 2, 4, "pv") && ctrl_is(1, 1, 1, 2, "auto") && cfg.ndevs == 4 &&
	      dev_is(0, "2.1", 0, 1) && dev_is(1, "1.6", 0, 2) && dev_is(2, "046d:c016", 1, 1) &&
	      dev_is(3, "storage:/srv/img/stick.img,ro", 0, 3) && cfg.devs[3].line == 22,
	      "xl-full.cfg plan");
	load_good(data, "xm-vusb.cfg");
	CHECK(!strcmp(cfg.name, "oldguest") && cfg.nctrls == 2 && dev_is(2, "3-1.5", 1, 2) &&
	      cfg.devs[2].line == 5, "xm-vusb.cfg plan");
	load_good(data, "hvm-emul.cfg");
	CHECK(!strcmp(cfg.name, "win10") && cfg.nctrls == 1 && cfg.ndevs == 3, "hvm-emul.cfg plan");

	char path[512];
	snprintf(path, sizeof(path), "%s/leading-zero.cfg", data);
	CHECK(pvusb_cfg_load(path, &cfg, err, sizeof(err)) == -EINVAL && strstr(err, "leading-zero.cfg:2: usbdev[0]: "
	      "hostbus '01' has a leading zero: numbers are decimal, not octal"), "leading-zero.cfg");
	snprintf(path, sizeof(path), "%s/unterminated-list.cfg", data);
	CHECK(pvusb_cfg_load(path, &cfg, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "unterminated-list.cfg:4: usbdev: expected ',' or ']' in the list opened on line 2"),
	      "unterminated-list.cfg");
	snprintf(path, sizeof(path), "%s/no-such-file.cfg", data);
	CHECK(pvusb_cfg_load(path, &cfg, err, sizeof(err)) == -ENOENT &&
	      strstr(err, "no-such-file.cfg: cannot open: No such file or directory"), "a missing file");

	char tmp[] = "/tmp/test_config_XXXXXX";
	int fd = mkstemp(tmp);
	CHECK(fd >= 0 && write(fd, "name = 'a'\nmemory = 1\0\n", 23) == 23, "write a file with a NUL");
	close(fd);
	CHECK(pvusb_cfg_load(tmp, &cfg, err, sizeof(err)) == -EINVAL && strstr(err, ":2: a NUL byte: not a text file"),
	      "a NUL byte");
	unlink(tmp);

	load_good(examples, "xl-pv-guest.cfg");
	CHECK(cfg.nctrls == 2 && cfg.ndevs == 4 && dev_is(3, "tablet", 0, 3), "examples/xl-pv-guest.cfg plan");
	load_good(examples, "xm-guest.cfg");
	load_good(examples, "hvm-emulated.cfg");
}

int main(int argc, char **argv)
{
	test_xl();
	test_xl_errors();
	test_xl_limits();
	test_xm();
	test_emul();
	test_grammar();
	test_mixing();
	if (argc >= 3)
		test_files(argv[1], argv[2]);
	else
		CHECK(0, "usage: test_config <data/cfg dir> <examples dir>");
	printf("test_config: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
