/* SPDX-License-Identifier: MIT */
/*
 * gadget_check: one check of the gadget integration suite, run inside the
 * gadget VM (tests/vm/gadget-suite-guest.sh). It is the guest's side of a
 * pvusb controller: it connects to pvusbd with the frontend library,
 * enumerates the device on PORT as xen-hcd would, and checks what a user of
 * that real device would check. Exit status 0 when the check held, 1 when it
 * did not (the reason on stderr), 2 on bad usage.
 *
 *   gadget_check [-s SOCK] [-f FRONTEND] [-c CTRL] CMD PORT [ARGS]
 *     enum PORT VID:PID [full] the device enumerates with that id, high speed
 *                              (full speed with "full")
 *     ss-in PORT BYTES         SourceSink bulk IN, 16 KiB transfers, every byte
 *                              checked against the pattern=1 data
 *     ss-out PORT BYTES        SourceSink bulk OUT of the pattern (the sink checks
 *                              it and stalls on a mismatch)
 *     ss-ctrl PORT             vendor control loopback (0x5b write, 0x5c read back)
 *                              and GET_DESCRIPTOR matching the enumerated one
 *     storage PORT BACKING     mass storage: SCSI WRITE(10) through Bulk-Only
 *                              Transport lands in BACKING; READ(10) reads it back
 *     hid PORT HIDG            a report written to HIDG arrives by interrupt IN
 *     acm PORT TTY             bulk OUT arrives at the gadget's TTY, bytes written
 *                              to TTY arrive by bulk IN
 *     unplug PORT UDC_FILE UDC  SourceSink streams with 16 URBs in flight; writing
 *                              "" to UDC_FILE (a physical unplug) answers every one
 *                              exactly once, the conn ring says speed 0; writing UDC
 *                              back brings the device back on PORT, which enumerates
 *                              and streams again
 *   Isochronous OUT (QEMU's usb-audio; SYSDIR is the device's sysfs directory,
 *   where the kernel's current alt setting is read back after each
 *   SET_INTERFACE). Each sets the streaming interface's alt setting, runs
 *   its URBs, sets alt 0 and checks that the endpoint then refuses a URB:
 *     iso-out PORT SYSDIR      24 URBs of 12 max-size packets, 4 in flight:
 *                              each answered once, status 0, every packet sent
 *                              in full, start_frame advancing with the clock
 *     iso-unlink PORT SYSDIR   4 queued, the first (running) unlinked: it answers
 *                              once with -ECONNRESET, the others in full, then
 *                              it runs again
 *     iso-gaps PORT SYSDIR     packets 64 bytes apart in the buffer (usbif
 *                              offsets; libusb needs them packed) are accepted
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "pvusb/front.h"
#include "pvusb/local.h"
#include "util/sock.h"

#define TIMEOUT_MS 5000
#define SS_CHUNK 16384u
#define HS_MPS 512u

static const char *sock_path = PVUSB_DEFAULT_SOCKET;
static const char *frontend = "vm";
static unsigned ctrl_id;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("gadget_check: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- connecting and enumerating ---- */

static struct pvusb_front *connect_front(void)
{
	struct pvusb_front *f;
	char err[256];
	int rc = pvusb_front_connect(sock_path, frontend, ctrl_id, NULL, &f, err, sizeof(err));
	if (rc < 0) {
		fail("cannot connect to %s as %s/%u: %s", sock_path, frontend, ctrl_id, err);
		return NULL;
	}
	return f;
}

/* The conn ring announces occupied ports right after connecting; a device
 * that is (re)plugged may take a moment longer. */
static bool wait_port_speed(struct pvusb_front *f, unsigned port, bool connected, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while ((pvusb_front_port_speed(f, port) != 0) != connected) {
		if (now_ms() >= end || pvusb_front_wait(f, 50) < 0)
			return false;
	}
	return true;
}

static int connect_and_enumerate(unsigned port, struct pvusb_front **fp, struct pvusb_front_dev *d)
{
	struct pvusb_front *f = connect_front();
	if (!f)
		return -1;
	if (!wait_port_speed(f, port, true, TIMEOUT_MS)) {
		pvusb_front_close(f);
		return fail("port %u: no device announced on the conn ring", port);
	}
	/* Any free address does; port + 1 keeps them distinct across ports. */
	int rc = pvusb_front_enumerate(f, port, (uint8_t)(port + 1), d);
	if (rc < 0) {
		pvusb_front_close(f);
		return fail("port %u: enumeration failed: %s", port, strerror(-rc));
	}
	*fp = f;
	return 0;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* The first endpoint of transfer type `xfer` (USB_ENDPOINT_XFER_*) and
 * direction `in` in an interface of class `cls` (-1: any). */
struct ep_info {
	uint8_t addr;
	uint16_t mps;
	uint8_t interval;
};

static int find_ep(const struct pvusb_front_dev *d, int cls, uint8_t xfer, bool in, struct ep_info *ep)
{
	int cur_cls = -1;
	for (unsigned off = 0; off + 2 <= d->config_len && d->config[off] >= 2; off += d->config[off]) {
		const uint8_t *p = d->config + off;
		if (p[1] == 4 && p[0] >= 9) /* interface */
			cur_cls = p[5];
		if (p[1] == 5 && p[0] >= 7 && (cls < 0 || cur_cls == cls) && (p[3] & 3) == xfer &&
		    ((p[2] & 0x80) != 0) == in) {
			*ep = (struct ep_info){.addr = p[2], .mps = le16(p + 4) & 0x7ff, .interval = p[6]};
			return 0;
		}
	}
	return fail("no %s %s endpoint in an interface of class %d", in ? "IN" : "OUT",
		    xfer == 2 ? "bulk" : xfer == 3 ? "interrupt" : "other", cls);
}

static int check_id(const struct pvusb_front_dev *d, const char *want, uint8_t speed)
{
	char got[16];
	snprintf(got, sizeof(got), "%04x:%04x", le16(d->dev_desc + 8), le16(d->dev_desc + 10));
	if (strcmp(got, want) != 0)
		return fail("port %u: device %s, expected %s", d->port, got, want);
	if (d->speed != speed)
		return fail("port %u: speed %u, expected %u", d->port, d->speed, speed);
	return 0;
}

/* ---- SourceSink ---- */

/* pattern=1: byte j of every max-size packet is j % 63 (f_sourcesink). */
static uint8_t ss_byte(size_t k) { return (uint8_t)((k % HS_MPS) % 63); }

static int verify_pattern(const uint8_t *b, size_t len, uint64_t at)
{
	for (size_t k = 0; k < len; k++)
		if (b[k] != ss_byte(k))
			return fail("bulk IN byte %llu is %u, expected %u", (unsigned long long)(at + k), b[k],
				    ss_byte(k));
	return 0;
}

static int cmd_ss_in(struct pvusb_front *f, const struct pvusb_front_dev *d, uint64_t bytes)
{
	struct ep_info in;
	if (find_ep(d, 0xff, 2, true, &in))
		return 1;
	uint8_t *buf = pvusb_front_alloc(f, SS_CHUNK);
	for (uint64_t done = 0; done < bytes; done += SS_CHUNK) {
		memset(buf, 0xee, SS_CHUNK); /* stale data must not pass */
		int n = pvusb_front_transfer(f, d->port, d->addr, USBIF_PIPE_TYPE_BULK, in.addr, buf,
					     SS_CHUNK, TIMEOUT_MS);
		if (n < 0)
			return fail("bulk IN at byte %llu: %s", (unsigned long long)done, strerror(-n));
		if ((unsigned)n != SS_CHUNK)
			return fail("bulk IN at byte %llu: %d of %u bytes", (unsigned long long)done, n, SS_CHUNK);
		if (verify_pattern(buf, SS_CHUNK, done))
			return 1;
	}
	return 0;
}

static int cmd_ss_out(struct pvusb_front *f, const struct pvusb_front_dev *d, uint64_t bytes)
{
	struct ep_info out;
	if (find_ep(d, 0xff, 2, false, &out))
		return 1;
	uint8_t *buf = pvusb_front_alloc(f, SS_CHUNK);
	for (size_t k = 0; k < SS_CHUNK; k++)
		buf[k] = ss_byte(k);
	for (uint64_t done = 0; done < bytes; done += SS_CHUNK) {
		int n = pvusb_front_transfer(f, d->port, d->addr, USBIF_PIPE_TYPE_BULK, out.addr, buf,
					     SS_CHUNK, TIMEOUT_MS);
		if (n != (int)SS_CHUNK)
			return fail("bulk OUT at byte %llu: %s (%d)", (unsigned long long)done,
				    n < 0 ? strerror(-n) : "short", n);
	}
	return 0;
}

static int cmd_ss_ctrl(struct pvusb_front *f, const struct pvusb_front_dev *d)
{
	uint8_t out[256], back[256], desc[18];
	unsigned seed = (unsigned)now_ms();
	for (size_t k = 0; k < sizeof(out); k++)
		out[k] = (uint8_t)(seed >> (k % 3 * 8) ^ k);
	/* f_sourcesink keeps 0x5b's data in its ep0 buffer and 0x5c returns it. */
	int n = pvusb_front_control(f, d->port, d->addr, 0x40, 0x5b, 0, 0, out, sizeof(out), TIMEOUT_MS);
	if (n != (int)sizeof(out))
		return fail("control OUT 0x5b: %s (%d)", n < 0 ? strerror(-n) : "short", n);
	memset(back, 0, sizeof(back));
	n = pvusb_front_control(f, d->port, d->addr, 0xc0, 0x5c, 0, 0, back, sizeof(back), TIMEOUT_MS);
	if (n != (int)sizeof(back))
		return fail("control IN 0x5c: %s (%d)", n < 0 ? strerror(-n) : "short", n);
	if (memcmp(out, back, sizeof(out)) != 0)
		return fail("control loopback returned other data");
	n = pvusb_front_control(f, d->port, d->addr, 0x80, 6, 0x100, 0, desc, sizeof(desc), TIMEOUT_MS);
	if (n != 18 || memcmp(desc, d->dev_desc, 18) != 0)
		return fail("GET_DESCRIPTOR(device) after the loopback: %d bytes, %s", n,
			    n == 18 ? "different" : "expected 18");
	return 0;
}

/* ---- mass storage: Bulk-Only Transport ---- */

struct bot {
	struct pvusb_front *f;
	const struct pvusb_front_dev *d;
	struct ep_info in, out;
	uint32_t tag;
};

/* One BOT command: CBW, optional data stage, CSW. Returns the CSW status
 * (0 passed, 1 failed, 2 phase error) or a negative error. */
static int bot_cmd(struct bot *b, const uint8_t *cdb, uint8_t cdb_len, bool in, void *data, uint32_t len)
{
	uint8_t cbw[31] = {'U', 'S', 'B', 'C'}, csw[13];
	uint32_t tag = ++b->tag;
	memcpy(cbw + 4, &tag, 4);
	memcpy(cbw + 8, &len, 4); /* little-endian host */
	cbw[12] = in ? 0x80 : 0;
	cbw[14] = cdb_len;
	memcpy(cbw + 15, cdb, cdb_len);
	int n = pvusb_front_transfer(b->f, b->d->port, b->d->addr, USBIF_PIPE_TYPE_BULK, b->out.addr, cbw,
				     31, TIMEOUT_MS);
	if (n != 31)
		return fail("CBW 0x%02x: %s", cdb[0], n < 0 ? strerror(-n) : "short"), -EIO;
	if (len) {
		n = pvusb_front_transfer(b->f, b->d->port, b->d->addr, USBIF_PIPE_TYPE_BULK,
					 in ? b->in.addr : b->out.addr, data, len, TIMEOUT_MS);
		if (n != (int)len)
			return fail("data stage of 0x%02x: %s (%d of %u)", cdb[0], n < 0 ? strerror(-n) : "short",
				    n, len), -EIO;
	}
	n = pvusb_front_transfer(b->f, b->d->port, b->d->addr, USBIF_PIPE_TYPE_BULK, b->in.addr, csw, 13,
				 TIMEOUT_MS);
	uint32_t csw_tag, residue;
	memcpy(&csw_tag, csw + 4, 4);
	memcpy(&residue, csw + 8, 4);
	if (n != 13 || memcmp(csw, "USBS", 4) != 0 || csw_tag != tag)
		return fail("CSW of 0x%02x: %d bytes, bad signature or tag", cdb[0], n), -EIO;
	if (csw[12] == 0 && residue != 0)
		return fail("CSW of 0x%02x: residue %u", cdb[0], residue), -EIO;
	return csw[12];
}

static int clear_halt(struct bot *b, uint8_t ep)
{
	return pvusb_front_control(b->f, b->d->port, b->d->addr, 0x02, 1 /* CLEAR_FEATURE */,
				   0 /* ENDPOINT_HALT */, ep, NULL, 0, TIMEOUT_MS);
}

/* What Linux's usb-storage meets at every probe: MODE SENSE asking for 192
 * bytes, the device answering fewer and then (BOT 6.7.2) stalling bulk IN
 * before its CSW. The host clears the halt and reads the CSW, whose residue
 * says how much was missing; the device must keep working afterwards. */
static int bot_short_reply(struct bot *b)
{
	uint8_t cdb[6] = {0x1a, 0, 0x3f, 0, 192, 0}, data[192], cbw[31] = {'U', 'S', 'B', 'C'}, csw[13];
	uint32_t tag = ++b->tag, len = sizeof(data), residue;
	memcpy(cbw + 4, &tag, 4);
	memcpy(cbw + 8, &len, 4);
	cbw[12] = 0x80;
	cbw[14] = 6;
	memcpy(cbw + 15, cdb, 6);
	int n = pvusb_front_transfer(b->f, b->d->port, b->d->addr, USBIF_PIPE_TYPE_BULK, b->out.addr, cbw,
				     31, TIMEOUT_MS);
	if (n != 31)
		return fail("MODE SENSE CBW: %d", n);
	int got = pvusb_front_transfer(b->f, b->d->port, b->d->addr, USBIF_PIPE_TYPE_BULK, b->in.addr, data,
				       len, TIMEOUT_MS);
	if (got == -EPIPE) /* stalled without data: allowed */
		got = 0;
	else if (got < 4 || got >= (int)len)
		return fail("MODE SENSE data: %d bytes, expected a short reply", got);
	n = pvusb_front_transfer(b->f, b->d->port, b->d->addr, USBIF_PIPE_TYPE_BULK, b->in.addr, csw, 13,
				 TIMEOUT_MS);
	bool stalled = n == -EPIPE;
	if (stalled) {
		if ((n = clear_halt(b, b->in.addr)) < 0)
			return fail("CLEAR_FEATURE(ENDPOINT_HALT) on 0x%02x: %d", b->in.addr, n);
		n = pvusb_front_transfer(b->f, b->d->port, b->d->addr, USBIF_PIPE_TYPE_BULK, b->in.addr, csw,
					 13, TIMEOUT_MS);
	}
	memcpy(&residue, csw + 8, 4);
	if (n != 13 || memcmp(csw, "USBS", 4) != 0 || memcmp(csw + 4, &tag, 4) != 0)
		return fail("MODE SENSE CSW after %s: %d bytes, bad signature or tag",
			    stalled ? "the stall" : "the short reply", n);
	if (csw[12] != 0 || residue != len - (uint32_t)got)
		return fail("MODE SENSE CSW: status %u residue %u, expected 0 and %u", csw[12], residue,
			    len - (uint32_t)got);
	fprintf(stderr, "gadget_check: MODE SENSE: %d of %u bytes, %s, residue %u\n", got, len,
	       stalled ? "bulk IN stalled and cleared" : "no stall", residue);
	return 0;
}

/* A fresh mass-storage function reports a unit attention first: clear it
 * the way hosts do (TEST UNIT READY, REQUEST SENSE). */
static int bot_ready(struct bot *b)
{
	uint8_t tur[6] = {0x00}, rs[6] = {0x03, 0, 0, 0, 18, 0}, sense[18] = {0};
	for (int i = 0; i < 5; i++) {
		int st = bot_cmd(b, tur, 6, false, NULL, 0);
		if (st <= 0)
			return st;
		if (bot_cmd(b, rs, 6, true, sense, 18) < 0)
			return -EIO;
	}
	return fail("TEST UNIT READY never passed (sense key %u asc 0x%02x)", sense[2] & 15, sense[12]), -EIO;
}

static void rw10_cdb(uint8_t cdb[10], uint8_t op, uint32_t lba, uint16_t blocks)
{
	memset(cdb, 0, 10);
	cdb[0] = op;
	cdb[2] = (uint8_t)(lba >> 24);
	cdb[3] = (uint8_t)(lba >> 16);
	cdb[4] = (uint8_t)(lba >> 8);
	cdb[5] = (uint8_t)lba;
	cdb[7] = (uint8_t)(blocks >> 8);
	cdb[8] = (uint8_t)blocks;
}

#define ST_LBA 2048u
#define ST_BLOCKS 16u
#define ST_BYTES (ST_BLOCKS * 512u)

static int cmd_storage(struct pvusb_front *f, const struct pvusb_front_dev *d, const char *backing)
{
	struct bot b = {.f = f, .d = d};
	if (find_ep(d, 8, 2, true, &b.in) || find_ep(d, 8, 2, false, &b.out))
		return 1;
	uint8_t inq[6] = {0x12, 0, 0, 0, 36, 0}, idata[36], cdb[10];
	if (bot_cmd(&b, inq, 6, true, idata, 36) != 0)
		return fail("INQUIRY failed");
	if ((idata[0] & 0x1f) != 0)
		return fail("INQUIRY: peripheral type %u, expected 0 (disk)", idata[0] & 0x1f);
	if (bot_ready(&b) != 0)
		return 1;
	if (bot_short_reply(&b) != 0)
		return 1;
	uint8_t *wr = pvusb_front_alloc(f, ST_BYTES), *rd = pvusb_front_alloc(f, ST_BYTES);
	unsigned seed = (unsigned)now_ms() * 2654435761u;
	for (size_t k = 0; k < ST_BYTES; k++)
		wr[k] = (uint8_t)((seed >> (k % 4 * 8)) + k * 7);
	rw10_cdb(cdb, 0x2a, ST_LBA, ST_BLOCKS);
	if (bot_cmd(&b, cdb, 10, false, wr, ST_BYTES) != 0)
		return fail("WRITE(10) of %u blocks at LBA %u failed", ST_BLOCKS, ST_LBA);
	/* What the gadget wrote is in its backing file (same kernel, same page cache). */
	int fd = open(backing, O_RDONLY);
	if (fd < 0)
		return fail("open %s: %s", backing, strerror(errno));
	ssize_t n = pread(fd, rd, ST_BYTES, (off_t)ST_LBA * 512);
	close(fd);
	if (n != (ssize_t)ST_BYTES || memcmp(rd, wr, ST_BYTES) != 0)
		return fail("%s at byte %u: not the data WRITE(10) sent (%zd bytes read)", backing,
			    ST_LBA * 512, n);
	memset(rd, 0, ST_BYTES);
	rw10_cdb(cdb, 0x28, ST_LBA, ST_BLOCKS);
	if (bot_cmd(&b, cdb, 10, true, rd, ST_BYTES) != 0)
		return fail("READ(10) of %u blocks at LBA %u failed", ST_BLOCKS, ST_LBA);
	if (memcmp(rd, wr, ST_BYTES) != 0)
		return fail("READ(10) returned other data than WRITE(10) wrote");
	return 0;
}

/* ---- HID ---- */

static void mark_done(struct pvusb_urb *u) { *(int *)u->user += 1; }

static int wait_urb(struct pvusb_front *f, struct pvusb_urb *u, const int *done, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (!*done && now_ms() < end)
		if (pvusb_front_wait(f, 50) < 0)
			return fail("frontend: the backend went away");
	if (*done)
		return 0;
	pvusb_front_unlink(f, u);
	while (!*done && pvusb_front_wait(f, 1000) > 0)
		;
	return fail("no completion within %d ms", timeout_ms);
}

static int cmd_hid(struct pvusb_front *f, const struct pvusb_front_dev *d, const char *hidg)
{
	struct ep_info ep;
	if (find_ep(d, 3, 3, true, &ep))
		return 1;
	int fd = open(hidg, O_RDWR);
	if (fd < 0)
		return fail("open %s: %s", hidg, strerror(errno));
	/* A boot keyboard report: left shift, keys 'a' 'b' 'c' + a per-run byte. */
	uint8_t report[8] = {0x02, 0, 0x04, 0x05, 0x06, (uint8_t)(0x07 + now_ms() % 20), 0, 0};
	uint8_t *buf = pvusb_front_alloc(f, 64);
	int done = 0;
	struct pvusb_urb u = {.port = d->port, .devaddr = d->addr, .endpoint = ep.addr & 15,
			      .type = USBIF_PIPE_TYPE_INT, .in = true, .length = ep.mps, .buffer = buf,
			      .interval = ep.interval, .complete = mark_done, .user = &done, .id = -1};
	int rc = pvusb_front_submit(f, &u);
	if (rc < 0) {
		close(fd);
		return fail("submit interrupt IN: %s", strerror(-rc));
	}
	/* Pending with nothing to report: the device has no data until we write. */
	pvusb_front_wait(f, 200);
	if (done) {
		close(fd);
		return fail("interrupt IN completed before any report was written (status %d, %u bytes)",
			    u.status, u.actual_length);
	}
	ssize_t w = write(fd, report, sizeof(report));
	close(fd);
	if (w != (ssize_t)sizeof(report))
		return fail("write %s: %s", hidg, w < 0 ? strerror(errno) : "short");
	if (wait_urb(f, &u, &done, TIMEOUT_MS))
		return 1;
	if (u.status != 0 || u.actual_length != sizeof(report) || memcmp(buf, report, sizeof(report)) != 0)
		return fail("interrupt IN: status %d, %u bytes, %s", u.status, u.actual_length,
			    u.actual_length == sizeof(report) ? "other data than written" : "expected 8");
	return 0;
}

/* ---- ACM ---- */

static int open_raw_tty(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t); /* no echo back to the host, no line editing */
		tcsetattr(fd, TCSANOW, &t);
	}
	tcflush(fd, TCIOFLUSH);
	return fd;
}

static int tty_read_all(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
	size_t got = 0;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (got < len && now_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = read(fd, buf + got, len - got);
		if (n > 0)
			got += (size_t)n;
	}
	return (int)got;
}

static int acm_out(struct pvusb_front *f, const struct pvusb_front_dev *d, int tty, uint8_t ep)
{
	char msg[64], got[64];
	int len = snprintf(msg, sizeof(msg), "pvusb bulk OUT to ttyGS %llu", (unsigned long long)now_ms());
	int n = pvusb_front_transfer(f, d->port, d->addr, USBIF_PIPE_TYPE_BULK, ep, msg, (uint32_t)len,
				     TIMEOUT_MS);
	if (n != len)
		return fail("bulk OUT: %s (%d of %d)", n < 0 ? strerror(-n) : "short", n, len);
	n = tty_read_all(tty, (uint8_t *)got, (size_t)len, TIMEOUT_MS);
	if (n != len || memcmp(got, msg, (size_t)len) != 0)
		return fail("the tty read %d of %d bytes%s", n, len, n == len ? ", other data" : "");
	return 0;
}

static int acm_in(struct pvusb_front *f, const struct pvusb_front_dev *d, int tty, const struct ep_info *ep)
{
	char msg[64];
	int len = snprintf(msg, sizeof(msg), "ttyGS write to pvusb bulk IN %llu", (unsigned long long)now_ms());
	if (write(tty, msg, (size_t)len) != len)
		return fail("write to the tty: %s", strerror(errno));
	uint8_t *buf = pvusb_front_alloc(f, 512);
	int got = 0;
	uint64_t end = now_ms() + TIMEOUT_MS;
	while (got < len && now_ms() < end) { /* u_serial may send it in pieces */
		int n = pvusb_front_transfer(f, d->port, d->addr, USBIF_PIPE_TYPE_BULK, ep->addr, buf, 512,
					     TIMEOUT_MS);
		if (n < 0)
			return fail("bulk IN: %s", strerror(-n));
		if (got + n > len || memcmp(buf, msg + got, (size_t)n) != 0)
			return fail("bulk IN: %d unexpected bytes after %d good ones", n, got);
		got += n;
	}
	return got == len ? 0 : fail("bulk IN: %d of %d bytes", got, len);
}

static int cmd_acm(struct pvusb_front *f, const struct pvusb_front_dev *d, const char *tty_path)
{
	struct ep_info in, out;
	if (find_ep(d, 0x0a, 2, true, &in) || find_ep(d, 0x0a, 2, false, &out))
		return 1;
	int tty = open_raw_tty(tty_path);
	if (tty < 0)
		return fail("open %s: %s", tty_path, strerror(-tty));
	int rc = acm_out(f, d, tty, out.addr);
	if (rc == 0)
		rc = acm_in(f, d, tty, &in);
	close(tty);
	return rc;
}

/* ---- physical unplug with transfers in flight, then replug ---- */

#define UP_URBS 16

struct unplug_state {
	struct pvusb_front *f;
	struct pvusb_urb urb[UP_URBS];
	unsigned submitted[UP_URBS], completed[UP_URBS];
	unsigned ok, errors, stray;
	bool stop;
	int first_error;
	uint8_t port;
	bool saw_speed0;
};

static void up_complete(struct pvusb_urb *u)
{
	struct unplug_state *s = u->user;
	int i = (int)(u - s->urb);
	s->completed[i]++;
	if (u->status != 0) {
		if (!s->errors++)
			s->first_error = u->status;
		return; /* the device is going: no resubmit, so a second answer shows up as stray */
	}
	s->ok++;
	if (s->stop || pvusb_front_submit(s->f, u) < 0)
		return;
	s->submitted[i]++;
}

static void up_stray(struct pvusb_front *f, const struct usbif_urb_response *rsp, void *arg)
{
	((struct unplug_state *)arg)->stray++;
}

static void up_port(struct pvusb_front *f, unsigned port, uint8_t speed, void *arg)
{
	struct unplug_state *s = arg;
	if (port == s->port && speed == 0)
		s->saw_speed0 = true;
}

/* One line in one write(), as configfs wants (an empty write is refused). */
static int write_file(const char *path, const char *text)
{
	char line[128];
	int len = snprintf(line, sizeof(line), "%s\n", text);
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return fail("open %s: %s", path, strerror(errno));
	ssize_t n = write(fd, line, (size_t)len);
	int e = errno;
	close(fd);
	return n == len ? 0 : fail("write '%s' to %s: %s", text, path, strerror(e));
}

static unsigned up_inflight(const struct unplug_state *s)
{
	unsigned n = 0;
	for (int i = 0; i < UP_URBS; i++)
		n += s->urb[i].id >= 0;
	return n;
}

/* The daemon's own count: every request it took got a response. */
static int daemon_counts_match(void)
{
	int fd = pvusb_unix_connect(sock_path);
	if (fd < 0)
		return fail("cannot reach pvusbd at %s", sock_path);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char req[160], buf[65536];
	snprintf(req, sizeof(req), "{\"cmd\":\"list\",\"frontend\":\"%s\"}", frontend);
	ssize_t n = send(fd, req, strlen(req), 0) < 0 ? -1 : recv(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0)
		return fail("pvusbd did not answer 'list'");
	buf[n] = 0;
	json_object *o = json_tokener_parse(buf), *arr, *c, *rq, *rs, *inf;
	int rc = 0;
	if (!o || !json_object_object_get_ex(o, "controllers", &arr) || json_object_array_length(arr) == 0 ||
	    !(c = json_object_array_get_idx(arr, 0)) || !json_object_object_get_ex(c, "requests", &rq) ||
	    !json_object_object_get_ex(c, "responses", &rs) || !json_object_object_get_ex(c, "inflight", &inf))
		rc = fail("pvusbd's list has no requests/responses/inflight: %s", buf);
	else if (json_object_get_int64(rq) != json_object_get_int64(rs) || json_object_get_int(inf) != 0)
		rc = fail("pvusbd counts %lld requests, %lld responses, %d in flight",
			  (long long)json_object_get_int64(rq), (long long)json_object_get_int64(rs),
			  json_object_get_int(inf));
	json_object_put(o);
	return rc;
}

static int up_start(struct unplug_state *s, const struct pvusb_front_dev *d)
{
	struct ep_info in, out;
	if (find_ep(d, 0xff, 2, true, &in) || find_ep(d, 0xff, 2, false, &out))
		return 1;
	for (int i = 0; i < UP_URBS; i++) {
		bool is_in = i % 2 == 0; /* both directions in flight */
		uint8_t *buf = pvusb_front_alloc(s->f, SS_CHUNK);
		if (!is_in)
			for (size_t k = 0; k < SS_CHUNK; k++)
				buf[k] = ss_byte(k);
		s->urb[i] = (struct pvusb_urb){.port = d->port, .devaddr = d->addr, .type = USBIF_PIPE_TYPE_BULK,
					       .endpoint = (is_in ? in.addr : out.addr) & 15, .in = is_in,
					       .length = SS_CHUNK, .buffer = buf, .complete = up_complete,
					       .user = s, .id = -1};
		int rc = pvusb_front_submit(s->f, &s->urb[i]);
		if (rc < 0)
			return fail("submit: %s", strerror(-rc));
		s->submitted[i]++;
	}
	/* Flowing: a few hundred answers before the plug is pulled. */
	uint64_t end = now_ms() + TIMEOUT_MS;
	while (s->ok < 200 && !s->errors && now_ms() < end)
		pvusb_front_wait(s->f, 50);
	if (s->errors || s->ok < 200)
		return fail("stream before the unplug: %u done, %u errors (first %d)", s->ok, s->errors,
			    s->first_error);
	return 0;
}

static int up_after_unplug(struct unplug_state *s, unsigned inflight_at_unplug)
{
	uint64_t end = now_ms() + 10000;
	while ((up_inflight(s) || !s->saw_speed0) && now_ms() < end)
		pvusb_front_wait(s->f, 50);
	s->stop = true;
	pvusb_front_wait(s->f, 300); /* a late duplicate would arrive here */
	int rc = 0;
	if (up_inflight(s))
		rc = fail("%u of %u in-flight URBs never answered after the unplug", up_inflight(s),
			  inflight_at_unplug);
	for (int i = 0; i < UP_URBS; i++)
		if (s->completed[i] != s->submitted[i])
			rc = fail("URB %d: submitted %u times, answered %u times", i, s->submitted[i],
				  s->completed[i]);
	if (s->stray)
		rc = fail("%u responses for requests not in flight", s->stray);
	if (!s->errors)
		rc = fail("no URB failed although the device was unplugged under load");
	if (!s->saw_speed0 || pvusb_front_port_speed(s->f, s->port) != 0)
		rc = fail("the conn ring did not report speed 0 on port %u", s->port);
	if (pvusb_front_dead(s->f))
		rc = fail("the frontend saw a protocol violation");
	if (rc == 0)
		rc = daemon_counts_match();
	fprintf(stderr, "gadget_check: unplug: %u URBs in flight, %u answered with an error (first %d)\n",
		inflight_at_unplug, s->errors, s->first_error);
	return rc;
}

static int up_replug(struct unplug_state *s, unsigned port, const char *udc_file, const char *udc)
{
	if (write_file(udc_file, udc))
		return 1;
	if (!wait_port_speed(s->f, port, true, 15000))
		return fail("port %u: the device did not come back within 15 s of the replug", port);
	struct pvusb_front_dev d;
	int rc = pvusb_front_enumerate(s->f, port, (uint8_t)(port + 1), &d);
	if (rc < 0)
		return fail("port %u: enumeration after the replug failed: %s", port, strerror(-rc));
	return cmd_ss_in(s->f, &d, 256 * 1024);
}

static int cmd_unplug(struct pvusb_front *f, const struct pvusb_front_dev *d, const char *udc_file,
		      const char *udc)
{
	static struct unplug_state s; /* large; one per run */
	s.f = f;
	s.port = d->port;
	pvusb_front_on_raw_response(f, up_stray, &s);
	pvusb_front_on_port(f, up_port, &s);
	if (up_start(&s, d))
		return 1;
	unsigned inflight = up_inflight(&s);
	if (write_file(udc_file, ""))
		return 1;
	if (up_after_unplug(&s, inflight))
		return 1;
	return up_replug(&s, d->port, udc_file, udc);
}

/* ---- isochronous: QEMU's usb-audio (full speed, iso OUT on alt 1) ---- */

#define ISO_NP 12      /* packets per URB: 12 ms of audio at full speed */
#define ISO_URBS 24    /* URBs per stream */
#define ISO_INFLIGHT 4 /* in flight at once */
#define ISO_GAP 64     /* bytes left between packets in the gapped layout */

/* The first isochronous OUT endpoint and the interface/alt setting that has it. */
struct iso_ep {
	uint8_t ifnum, alt, addr, cfg;
	uint16_t mps;
};

static int find_iso_out(const struct pvusb_front_dev *d, struct iso_ep *ep)
{
	uint8_t ifnum = 0, alt = 0;
	for (unsigned off = 0; off + 2 <= d->config_len && d->config[off] >= 2; off += d->config[off]) {
		const uint8_t *p = d->config + off;
		if (p[1] == 4 && p[0] >= 9) {
			ifnum = p[2];
			alt = p[3];
		}
		if (p[1] == 5 && p[0] >= 7 && (p[3] & 3) == 1 && !(p[2] & 0x80)) {
			*ep = (struct iso_ep){.ifnum = ifnum, .alt = alt, .addr = p[2], .cfg = d->config[5],
					      .mps = le16(p + 4) & 0x7ff};
			return ep->mps && ep->mps * ISO_NP <= SS_CHUNK ? 0 : fail("iso OUT: odd wMaxPacketSize");
		}
	}
	return fail("no isochronous OUT endpoint in any alt setting");
}

/* The kernel's idea of the interface's alt setting: it only changes when
 * pvusbd's SET_INTERFACE went through libusb_set_interface_alt_setting (a
 * plain control transfer would leave it and the endpoint list alone). */
static int check_sysfs_alt(const char *devdir, const struct iso_ep *ep, unsigned want)
{
	char path[256], buf[16] = "";
	const char *busid = strrchr(devdir, '/') ? strrchr(devdir, '/') + 1 : devdir;
	snprintf(path, sizeof(path), "%s/%s:%u.%u/bAlternateSetting", devdir, busid, ep->cfg, ep->ifnum);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return fail("open %s: %s", path, strerror(errno));
	bool ok = fgets(buf, sizeof(buf), fp) != NULL;
	fclose(fp);
	unsigned long got = ok ? strtoul(buf, NULL, 10) : 9999; /* sysfs pads it: " 1\n" */
	if (got != want)
		return fail("%s says alt %lu, expected %u after SET_INTERFACE", path, got, want);
	return 0;
}

static int iso_set_alt(struct pvusb_front *f, const struct pvusb_front_dev *d, const struct iso_ep *ep,
		       unsigned alt, const char *devdir)
{
	int n = pvusb_front_control(f, d->port, d->addr, 0x01, 11 /* SET_INTERFACE */, (uint16_t)alt,
				    ep->ifnum, NULL, 0, TIMEOUT_MS);
	if (n != 0)
		return fail("SET_INTERFACE(interface %u, alt %u): %d", ep->ifnum, alt, n);
	return devdir ? check_sysfs_alt(devdir, ep, alt) : 0;
}

/* npackets packets of mps bytes, `stride` bytes apart, a sawtooth inside. */
static void iso_layout(struct pvusb_urb *u, struct usbif_iso_desc *iso, uint8_t *buf, const struct iso_ep *ep,
		       uint32_t np, uint32_t stride)
{
	memset(buf, 0xaa, np * stride); /* the gaps: whatever a device gets of them is noise */
	for (uint32_t k = 0; k < np; k++) {
		iso[k] = (struct usbif_iso_desc){.offset = k * stride, .length = ep->mps};
		for (uint32_t j = 0; j < ep->mps; j++)
			buf[k * stride + j] = (uint8_t)(k * 8 + j);
	}
	u->npackets = np;
	u->iso = iso;
	u->buffer = buf;
	u->length = np * stride;
}

/* Every packet sent in full with status 0; "" when so, else why not. */
static const char *iso_result_bad(const struct pvusb_urb *u, char *why, size_t len)
{
	uint32_t sum = 0;
	for (uint32_t k = 0; k < u->npackets; k++) {
		const struct usbif_iso_desc *p = &u->iso[k];
		if (p->status != 0 || p->actual_length != p->length) {
			snprintf(why, len, "packet %u: status %d, %u of %u bytes", k, p->status, p->actual_length,
				 p->length);
			return why;
		}
		sum += p->length;
	}
	if (u->status != 0 || u->error_count != 0 || u->actual_length != sum)
		snprintf(why, len, "status %d, error_count %d, actual_length %u of %u", u->status,
			 u->error_count, u->actual_length, sum);
	else
		why[0] = 0;
	return why;
}

struct iso_stream {
	struct pvusb_front *f;
	const struct iso_ep *ep;
	struct pvusb_urb urb[ISO_INFLIGHT];
	struct usbif_iso_desc iso[ISO_INFLIGHT][ISO_NP];
	unsigned submitted[ISO_INFLIGHT], completed[ISO_INFLIGHT];
	unsigned total, done, stray;
	uint16_t frame[ISO_URBS]; /* start_frame, in completion order */
	char bad[160];            /* the first bad completion */
};

static int iso_submit(struct iso_stream *s, int i)
{
	struct pvusb_urb *u = &s->urb[i];
	for (uint32_t k = 0; k < u->npackets; k++)
		u->iso[k].actual_length = 0, u->iso[k].status = -1; /* stale results must not pass */
	int rc = pvusb_front_submit(s->f, u);
	if (rc == 0) {
		s->submitted[i]++;
		s->total++;
	}
	return rc;
}

static void iso_complete(struct pvusb_urb *u)
{
	struct iso_stream *s = u->user;
	int i = (int)(u - s->urb);
	char why[128];
	s->completed[i]++;
	if (s->done < ISO_URBS)
		s->frame[s->done] = u->start_frame;
	if (*iso_result_bad(u, why, sizeof(why)) && !s->bad[0])
		snprintf(s->bad, sizeof(s->bad), "URB %u (slot %d): %s", s->done, i, why);
	s->done++;
	if (s->total < ISO_URBS && !s->bad[0] && iso_submit(s, i) < 0)
		snprintf(s->bad, sizeof(s->bad), "resubmit failed");
}

static void iso_stray(struct pvusb_front *f, const struct usbif_urb_response *rsp, void *arg)
{
	((struct iso_stream *)arg)->stray++;
}

/* start_frame is the host's 1 ms frame counter, 16 bits: in completion order
 * it never goes back, and the stream spans at least a frame and no more
 * frames than milliseconds passed. */
static int iso_check_frames(const struct iso_stream *s, uint64_t elapsed_ms)
{
	unsigned span = 0;
	for (unsigned k = 1; k < ISO_URBS; k++) {
		unsigned step = (uint16_t)(s->frame[k] - s->frame[k - 1]);
		if (step > 1000)
			return fail("start_frame went from %u to %u between URBs %u and %u", s->frame[k - 1],
				    s->frame[k], k - 1, k);
		span += step;
	}
	if (span == 0 || span > elapsed_ms + 20)
		return fail("start_frame spans %u frames over %llu ms of streaming", span,
			    (unsigned long long)elapsed_ms);
	return 0;
}

static int iso_stream_check(struct iso_stream *s, uint64_t elapsed_ms)
{
	int rc = 0;
	if (s->bad[0])
		rc = fail("%s", s->bad);
	for (int i = 0; i < ISO_INFLIGHT; i++)
		if (s->completed[i] != s->submitted[i] || s->urb[i].id >= 0)
			rc = fail("slot %d: submitted %u times, answered %u times", i, s->submitted[i],
				  s->completed[i]);
	if (s->done != ISO_URBS || s->stray)
		rc = fail("%u of %u URBs answered, %u stray responses", s->done, ISO_URBS, s->stray);
	if (rc == 0)
		rc = iso_check_frames(s, elapsed_ms);
	if (rc == 0)
		rc = daemon_counts_match();
	fprintf(stderr, "gadget_check: iso-out: %u URBs x %u packets x %u bytes in %llu ms, start_frame %u..%u\n",
		s->done, ISO_NP, s->ep->mps, (unsigned long long)elapsed_ms, s->frame[0],
		s->frame[ISO_URBS - 1]);
	return rc;
}

/* After alt 0 the endpoint is gone from the host's view: a URB to it fails. */
static int iso_check_refused(struct pvusb_front *f, const struct pvusb_front_dev *d, const struct iso_ep *ep)
{
	struct usbif_iso_desc iso[1];
	struct pvusb_urb u = {.port = d->port, .devaddr = d->addr, .type = USBIF_PIPE_TYPE_ISOC,
			      .endpoint = ep->addr & 15, .interval = 1, .id = -1};
	iso_layout(&u, iso, pvusb_front_alloc(f, ep->mps), ep, 1, ep->mps);
	int rc = pvusb_front_run(f, &u, TIMEOUT_MS);
	return rc == 0 ? fail("an isochronous URB after SET_INTERFACE alt 0 succeeded") : 0;
}

static int iso_begin(struct pvusb_front *f, const struct pvusb_front_dev *d, struct iso_ep *ep,
		     const char *devdir)
{
	if (find_iso_out(d, ep))
		return 1;
	return iso_set_alt(f, d, ep, ep->alt, devdir);
}

static int iso_end(struct pvusb_front *f, const struct pvusb_front_dev *d, const struct iso_ep *ep,
		   const char *devdir, int rc)
{
	if (iso_set_alt(f, d, ep, 0, devdir))
		return 1;
	return rc ? rc : iso_check_refused(f, d, ep);
}

static int cmd_iso_out(struct pvusb_front *f, const struct pvusb_front_dev *d, const char *devdir)
{
	static struct iso_stream s;
	struct iso_ep ep;
	if (iso_begin(f, d, &ep, devdir))
		return 1;
	s.f = f;
	s.ep = &ep;
	pvusb_front_on_raw_response(f, iso_stray, &s);
	uint64_t start = now_ms();
	int rc = 0;
	for (int i = 0; i < ISO_INFLIGHT && rc == 0; i++) {
		s.urb[i] = (struct pvusb_urb){.port = d->port, .devaddr = d->addr, .type = USBIF_PIPE_TYPE_ISOC,
					      .endpoint = ep.addr & 15, .interval = 1, .complete = iso_complete,
					      .user = &s, .id = -1};
		iso_layout(&s.urb[i], s.iso[i], pvusb_front_alloc(f, ISO_NP * ep.mps), &ep, ISO_NP, ep.mps);
		if ((rc = iso_submit(&s, i)) < 0)
			rc = fail("submit isochronous OUT: %s", strerror(-rc));
	}
	uint64_t end = start + 10000;
	while (rc == 0 && s.done < s.total && now_ms() < end)
		pvusb_front_wait(f, 50);
	uint64_t elapsed = now_ms() - start;
	pvusb_front_wait(f, 200); /* a late duplicate would arrive here */
	if (rc == 0)
		rc = iso_stream_check(&s, elapsed);
	return iso_end(f, d, &ep, devdir, rc);
}

/*
 * Unlink the first of four queued URBs, a long one that is still being sent:
 * it answers once, -ECONNRESET; the three behind it are answered once each,
 * in full; the endpoint streams again afterwards. (Not a later one: when
 * Linux stops the endpoint to drop a TD behind the running one, QEMU 7.2's
 * xHCI resumes one TRB past where it stopped, and the guest kernel then
 * waits forever for the TRB it skipped - an emulator bug, seen as "TRB DMA
 * ptr not part of current TD". Dropping the running TD moves the dequeue
 * pointer explicitly, which QEMU follows.)
 */
#define ISO_VICTIM_NP 96 /* 96 ms: still running when the unlink arrives */

static int iso_unlink_submit(struct iso_stream *s, const struct pvusb_front_dev *d, const struct iso_ep *ep,
			     struct usbif_iso_desc *victim_iso)
{
	for (int i = 0; i < ISO_INFLIGHT; i++) {
		uint32_t np = i == 0 ? ISO_VICTIM_NP : ISO_NP;
		s->urb[i] = (struct pvusb_urb){.port = d->port, .devaddr = d->addr, .type = USBIF_PIPE_TYPE_ISOC,
					       .endpoint = ep->addr & 15, .interval = 1, .user = s, .id = -1,
					       .complete = iso_complete};
		iso_layout(&s->urb[i], i == 0 ? victim_iso : s->iso[i], pvusb_front_alloc(s->f, np * ep->mps), ep,
			   np, ep->mps);
		if (pvusb_front_submit(s->f, &s->urb[i]) < 0)
			return fail("submit isochronous OUT %d", i);
		s->submitted[i]++;
	}
	return pvusb_front_unlink(s->f, &s->urb[0]) < 0 ? fail("unlink: the URB was no longer in flight") : 0;
}

static int cmd_iso_unlink(struct pvusb_front *f, const struct pvusb_front_dev *d, const char *devdir)
{
	static struct iso_stream s;
	static struct usbif_iso_desc victim_iso[ISO_VICTIM_NP];
	struct iso_ep ep;
	if (iso_begin(f, d, &ep, devdir))
		return 1;
	s.f = f;
	s.ep = &ep;
	s.total = ISO_URBS; /* iso_complete resubmits nothing */
	pvusb_front_on_raw_response(f, iso_stray, &s);
	int rc = iso_unlink_submit(&s, d, &ep, victim_iso);
	uint64_t end = now_ms() + TIMEOUT_MS;
	while (s.done < ISO_INFLIGHT && now_ms() < end)
		pvusb_front_wait(f, 50);
	pvusb_front_wait(f, 200); /* a late duplicate would arrive here */
	for (int i = 0; i < ISO_INFLIGHT; i++)
		if (s.completed[i] != 1)
			rc = fail("URB %d answered %u times", i, s.completed[i]);
	if (s.stray)
		rc = fail("%u stray responses", s.stray);
	struct pvusb_urb *victim = &s.urb[0];
	if (rc == 0 && victim->status != USBIF_STATUS_CONNRESET)
		rc = fail("unlinked URB: status %d, expected %d", victim->status, USBIF_STATUS_CONNRESET);
	char why[128];
	for (int i = 1; rc == 0 && i < ISO_INFLIGHT; i++)
		if (*iso_result_bad(&s.urb[i], why, sizeof(why)))
			rc = fail("URB %d, queued behind the unlinked one: %s", i, why);
	victim->complete = NULL;
	if (rc == 0 && (pvusb_front_run(f, victim, TIMEOUT_MS) != 0 || *iso_result_bad(victim, why, sizeof(why))))
		rc = fail("after the unlink the endpoint does not stream: status %d %s", victim->status, why);
	if (rc == 0)
		rc = daemon_counts_match();
	return iso_end(f, d, &ep, devdir, rc);
}

/* usbif lets packets sit anywhere in the buffer; libusb wants them back to
 * back, so the back-end gathers them. */
static int cmd_iso_gaps(struct pvusb_front *f, const struct pvusb_front_dev *d, const char *devdir)
{
	struct iso_ep ep;
	if (iso_begin(f, d, &ep, devdir))
		return 1;
	struct usbif_iso_desc iso[ISO_NP];
	uint32_t stride = ep.mps + ISO_GAP;
	struct pvusb_urb u = {.port = d->port, .devaddr = d->addr, .type = USBIF_PIPE_TYPE_ISOC,
			      .endpoint = ep.addr & 15, .interval = 1, .id = -1};
	uint8_t *buf = pvusb_front_alloc(f, ISO_NP * stride);
	char why[128] = "";
	int rc = 0;
	for (int round = 0; round < 3 && rc == 0; round++) {
		iso_layout(&u, iso, buf, &ep, ISO_NP, stride);
		for (uint32_t k = 0; k < ISO_NP; k++)
			iso[k].status = -1;
		int st = pvusb_front_run(f, &u, TIMEOUT_MS);
		if (st != 0 || *iso_result_bad(&u, why, sizeof(why)))
			rc = fail("packets %u bytes apart, round %d: status %d %s", stride, round, st, why);
		for (uint32_t k = 0; rc == 0 && k < ISO_NP; k++)
			if (iso[k].offset != k * stride)
				rc = fail("packet %u: offset came back as %u", k, iso[k].offset);
	}
	return iso_end(f, d, &ep, devdir, rc);
}

/* ---- main ---- */

static int usage(void)
{
	fprintf(stderr, "usage: gadget_check [-s SOCK] [-f FRONTEND] [-c CTRL] "
			"enum|ss-in|ss-out|ss-ctrl|storage|hid|acm|unplug|iso-out|iso-unlink|iso-gaps PORT [ARGS]\n");
	return 2;
}

static int run(const char *cmd, unsigned port, int argc, char **argv)
{
	struct pvusb_front *f = NULL;
	struct pvusb_front_dev d;
	if (connect_and_enumerate(port, &f, &d))
		return 1;
	int rc = 2;
	if (!strcmp(cmd, "enum") && argc == 1)
		rc = check_id(&d, argv[0], USBIF_SPEED_HIGH);
	else if (!strcmp(cmd, "enum") && argc == 2 && !strcmp(argv[1], "full"))
		rc = check_id(&d, argv[0], USBIF_SPEED_FULL);
	else if (!strcmp(cmd, "ss-in") && argc == 1)
		rc = cmd_ss_in(f, &d, strtoull(argv[0], NULL, 0));
	else if (!strcmp(cmd, "ss-out") && argc == 1)
		rc = cmd_ss_out(f, &d, strtoull(argv[0], NULL, 0));
	else if (!strcmp(cmd, "ss-ctrl") && argc == 0)
		rc = cmd_ss_ctrl(f, &d);
	else if (!strcmp(cmd, "storage") && argc == 1)
		rc = cmd_storage(f, &d, argv[0]);
	else if (!strcmp(cmd, "hid") && argc == 1)
		rc = cmd_hid(f, &d, argv[0]);
	else if (!strcmp(cmd, "acm") && argc == 1)
		rc = cmd_acm(f, &d, argv[0]);
	else if (!strcmp(cmd, "unplug") && argc == 2)
		rc = cmd_unplug(f, &d, argv[0], argv[1]);
	else if (!strcmp(cmd, "iso-out") && argc == 1)
		rc = cmd_iso_out(f, &d, argv[0]);
	else if (!strcmp(cmd, "iso-unlink") && argc == 1)
		rc = cmd_iso_unlink(f, &d, argv[0]);
	else if (!strcmp(cmd, "iso-gaps") && argc == 1)
		rc = cmd_iso_gaps(f, &d, argv[0]);
	pvusb_front_close(f);
	return rc == 2 ? usage() : rc;
}

int main(int argc, char **argv)
{
	if (getenv("PVUSB_SOCKET"))
		sock_path = getenv("PVUSB_SOCKET");
	int opt;
	while ((opt = getopt(argc, argv, "s:f:c:")) != -1) {
		switch (opt) {
		case 's': sock_path = optarg; break;
		case 'f': frontend = optarg; break;
		case 'c': ctrl_id = (unsigned)strtoul(optarg, NULL, 10); break;
		default: return usage();
		}
	}
	if (argc - optind < 2)
		return usage();
	unsigned port = (unsigned)strtoul(argv[optind + 1], NULL, 10);
	if (port < 1 || port > USBIF_MAX_PORTNR)
		return usage();
	setvbuf(stderr, NULL, _IOLBF, 0);
	return run(argv[optind], port, argc - optind - 2, argv + optind + 2);
}
