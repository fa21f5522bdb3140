/* SPDX-License-Identifier: MIT */
/*
 * The emulated mass-storage device, driven through emul_dev_ops as the core
 * drives it: Bulk-Only Transport transactions built by hand over a temporary
 * image file. Links only the device code, so the core's completion and
 * buffer helpers are stood in for here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dev/emul.h"

#include "check.h"

#define IMAGE_BYTES (4u << 20)
#define IMAGE_BLOCKS (IMAGE_BYTES / 512)
#define EP_IN 0x81
#define EP_OUT 0x02
#define HALT_IN (1u << (1 + 16))
#define HALT_OUT (1u << 2)

/* ---- stand-ins for the core (src/core/hc.c) ---- */

#define LOG_MAX 64
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pvusb_xfer *completed[LOG_MAX];
static unsigned ncompleted;

void pvusb_xfer_complete(struct pvusb_xfer *x)
{
	pthread_mutex_lock(&log_lock);
	if (ncompleted < LOG_MAX)
		completed[ncompleted] = x;
	ncompleted++;
	pthread_mutex_unlock(&log_lock);
}

/* Walk the runs; `to` copies into the transfer. */
static size_t iov_walk(const struct pvusb_xfer *x, size_t off, uint8_t *flat, size_t n, bool to)
{
	size_t done = 0;
	for (unsigned i = 0; i < x->niov && done < n; i++) {
		size_t len = x->iov[i].len;
		if (off >= len) {
			off -= len;
			continue;
		}
		size_t k = len - off < n - done ? len - off : n - done;
		if (to)
			memcpy(x->iov[i].base + off, flat + done, k);
		else
			memcpy(flat + done, x->iov[i].base + off, k);
		done += k;
		off = 0;
	}
	return done;
}

size_t pvusb_xfer_copy_to(struct pvusb_xfer *x, size_t off, const void *src, size_t n)
{
	return iov_walk(x, off, (uint8_t *)src, n, true);
}

size_t pvusb_xfer_copy_from(const struct pvusb_xfer *x, size_t off, void *dst, size_t n)
{
	return iov_walk(x, off, dst, n, false);
}

static unsigned times_completed(const struct pvusb_xfer *x)
{
	unsigned n = 0;
	pthread_mutex_lock(&log_lock);
	for (unsigned i = 0; i < ncompleted && i < LOG_MAX; i++)
		n += completed[i] == x;
	pthread_mutex_unlock(&log_lock);
	return n;
}

static void clear_log(void)
{
	pthread_mutex_lock(&log_lock);
	ncompleted = 0;
	pthread_mutex_unlock(&log_lock);
}

/* ---- transfers ---- */

static struct pvusb_dev *dev;
static struct emul_dev *edev; /* to look at the halt bits */

/* Scattered runs live here, 64 bytes apart, so nothing is adjacent. */
static uint8_t arena[(1u << 16) + 64 * USBIF_MAX_SEGMENTS_PER_REQUEST];

struct result {
	int rc;
	int32_t status;
	uint32_t actual;
};

/* A bulk transfer over `buf`: contiguous when nruns is 1, else cut into
 * nruns runs in the arena (contig NULL), gathered back after an IN. */
static struct result bulk(bool in, void *buf, uint32_t len, unsigned nruns)
{
	struct pvusb_xfer x;
	memset(&x, 0, sizeof(x));
	x.dev = dev;
	x.type = USBIF_PIPE_TYPE_BULK;
	x.endpoint = in ? (EP_IN & 0x0f) : EP_OUT;
	x.in = in;
	x.length = len;
	if (nruns <= 1) {
		x.contig = buf;
		x.niov = 1;
		x.iov[0] = (struct pvusb_iov){buf, len};
	} else {
		memset(arena, 0xee, sizeof(arena));
		uint8_t *p = arena;
		uint32_t off = 0, per = len / nruns;
		for (unsigned i = 0; i < nruns; i++) {
			uint32_t run = i == nruns - 1 ? len - off : per;
			x.iov[i] = (struct pvusb_iov){p, run};
			if (!in)
				memcpy(p, (uint8_t *)buf + off, run);
			p += run + 64;
			off += run;
		}
		x.niov = nruns;
	}
	clear_log();
	struct result r = {emul_dev_ops.submit(dev, &x), 0, 0};
	if (r.rc == 0) {
		CHECK_EQ(times_completed(&x), 1);
		r.status = x.status;
		r.actual = x.actual_length;
	}
	if (in && nruns > 1)
		pvusb_xfer_copy_from(&x, 0, buf, len);
	return r;
}

static struct result control(uint8_t rt, uint8_t req, uint16_t value, uint16_t index,
			     uint16_t length, uint8_t *buf)
{
	struct pvusb_xfer x;
	memset(&x, 0, sizeof(x));
	uint8_t setup[8] = {rt, req, value & 0xff, value >> 8, index & 0xff, index >> 8,
			    length & 0xff, length >> 8};
	memcpy(x.setup, setup, 8);
	x.dev = dev;
	x.type = USBIF_PIPE_TYPE_CTRL;
	x.in = rt & USB_DIR_IN;
	x.length = length;
	x.contig = buf;
	x.niov = 1;
	x.iov[0] = (struct pvusb_iov){buf, length};
	clear_log();
	struct result r = {emul_dev_ops.submit(dev, &x), 0, 0};
	CHECK_EQ(r.rc, 0);
	CHECK_EQ(times_completed(&x), 1);
	r.status = x.status;
	r.actual = x.actual_length;
	return r;
}

static void clear_halt(uint8_t ep)
{
	uint8_t none[1];
	CHECK_EQ(control(0x02, USB_REQ_CLEAR_FEATURE, USB_ENDPOINT_HALT, ep, 0, none).status, 0);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- Bulk-Only Transport ---- */

static uint32_t next_tag = 0x1000;

static void make_cbw(uint8_t cbw[31], uint32_t tag, uint32_t host_len, bool in, const uint8_t *cdb,
		     uint8_t cdb_len)
{
	memset(cbw, 0, 31);
	put_le32(cbw, 0x43425355);
	put_le32(cbw + 4, tag);
	put_le32(cbw + 8, host_len);
	cbw[12] = in ? 0x80 : 0;
	cbw[14] = cdb_len;
	memcpy(cbw + 15, cdb, cdb_len);
}

struct csw {
	uint32_t tag, residue;
	uint8_t status;
	bool stalled_first; /* the first CSW read met a STALL */
};

/* Read the CSW as hosts do: on a STALL clear the halt and read again. */
static struct csw read_csw(void)
{
	uint8_t b[13];
	struct csw c = {0, 0, 0xff, false};
	struct result r = bulk(true, b, sizeof(b), 1);
	if (r.rc == 0 && r.status == USBIF_STATUS_STALL) {
		c.stalled_first = true;
		clear_halt(EP_IN);
		r = bulk(true, b, sizeof(b), 1);
	}
	CHECK_EQ(r.rc, 0);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(r.actual, 13);
	CHECK_EQ(get_le32(b), 0x53425355);
	c.tag = get_le32(b + 4);
	c.residue = get_le32(b + 8);
	c.status = b[12];
	return c;
}

static void send_cbw(uint32_t tag, uint32_t host_len, bool in, const uint8_t *cdb, uint8_t cdb_len)
{
	uint8_t cbw[31];
	make_cbw(cbw, tag, host_len, in, cdb, cdb_len);
	struct result r = bulk(false, cbw, sizeof(cbw), 1);
	CHECK_EQ(r.rc, 0);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(r.actual, 31);
}

/* A command with an IN data phase (or none) in IN transfers of at most
 * `chunk` bytes. *got is the data received; a data-phase STALL is cleared. */
static struct csw scsi_in(const uint8_t *cdb, uint8_t cdb_len, uint32_t host_len, uint8_t *buf,
			  uint32_t chunk, unsigned nruns, uint32_t *got)
{
	uint32_t tag = next_tag++, done = 0;
	send_cbw(tag, host_len, true, cdb, cdb_len);
	while (done < host_len) {
		uint32_t n = host_len - done < chunk ? host_len - done : chunk;
		struct result r = bulk(true, buf + done, n, nruns);
		CHECK_EQ(r.rc, 0);
		done += r.actual;
		if (r.status == USBIF_STATUS_STALL) {
			clear_halt(EP_IN);
			break;
		}
		CHECK_EQ(r.status, 0);
		if (r.actual < n)
			break; /* short packet: the data phase is over */
	}
	if (got)
		*got = done;
	struct csw c = read_csw();
	CHECK_EQ(c.tag, tag);
	return c;
}

/* A command with an OUT data phase in transfers of at most `chunk` bytes. */
static struct csw scsi_out(const uint8_t *cdb, uint8_t cdb_len, uint32_t host_len,
			   const uint8_t *buf, uint32_t chunk, unsigned nruns)
{
	uint32_t tag = next_tag++, done = 0;
	send_cbw(tag, host_len, false, cdb, cdb_len);
	while (done < host_len) {
		uint32_t n = host_len - done < chunk ? host_len - done : chunk;
		struct result r = bulk(false, (void *)(buf + done), n, nruns);
		CHECK_EQ(r.rc, 0);
		CHECK_EQ(r.status, 0);
		CHECK_EQ(r.actual, n);
		done += n;
	}
	struct csw c = read_csw();
	CHECK_EQ(c.tag, tag);
	return c;
}

static void check_sense(uint8_t key, uint8_t asc)
{
	const uint8_t cdb[6] = {0x03, 0, 0, 0, 18, 0};
	uint8_t s[18];
	uint32_t got;
	struct csw c = scsi_in(cdb, 6, 18, s, 18, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 18);
	CHECK_EQ(s[0], 0x70);
	CHECK_EQ(s[2] & 0x0f, key);
	CHECK_EQ(s[7], 10);
	CHECK_EQ(s[12], asc);
	CHECK_EQ(s[13], 0);
}

static void cdb10(uint8_t cdb[10], uint8_t op, uint32_t lba, uint16_t blocks)
{
	const uint8_t c[10] = {op,  0, lba >> 24, lba >> 16,   lba >> 8,
			       lba, 0, blocks >> 8, blocks & 0xff, 0};
	memcpy(cdb, c, 10);
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* ---- the image ---- */

static char image_path[64];
static int image_fd = -1;

static void make_image(void)
{
	snprintf(image_path, sizeof(image_path), "/tmp/pvusb-test-storage-XXXXXX");
	image_fd = mkstemp(image_path);
	if (image_fd < 0 || ftruncate(image_fd, IMAGE_BYTES) < 0) {
		perror("test_storage: image");
		exit(1);
	}
}

static void open_device(const char *suffix)
{
	char opts[96], err[256] = "";
	snprintf(opts, sizeof(opts), "%s%s", image_path, suffix);
	int rc = emul_storage_open(opts, &dev, err, sizeof(err));
	CHECK_EQ(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "test_storage: open: %s\n", err);
		exit(1);
	}
	edev = (struct emul_dev *)dev;
	uint8_t none[1];
	CHECK_EQ(control(0x00, USB_REQ_SET_CONFIGURATION, 1, 0, 0, none).status, 0);
}

static void close_device(void)
{
	emul_dev_ops.close(dev);
	dev = NULL;
	edev = NULL;
}

/* ---- tests ---- */

static void test_open_errors(void)
{
	char err[256] = "";
	struct pvusb_dev *d = NULL;
	CHECK_EQ(emul_storage_open(NULL, &d, err, sizeof(err)), -EINVAL);
	CHECK(strcmp(err, "storage needs an image file: storage:<path>") == 0);
	CHECK_EQ(emul_storage_open("", &d, err, sizeof(err)), -EINVAL);
	CHECK_EQ(emul_storage_open("/nonexistent/pvusb.img", &d, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "/nonexistent/pvusb.img") != NULL);

	char odd[64];
	snprintf(odd, sizeof(odd), "/tmp/pvusb-test-odd-XXXXXX");
	int fd = mkstemp(odd);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, 1000), 0);
	err[0] = '\0';
	CHECK_EQ(emul_storage_open(odd, &d, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "multiple of 512") != NULL);
	CHECK_EQ(ftruncate(fd, 0), 0);
	CHECK_EQ(emul_storage_open(odd, &d, err, sizeof(err)), -EINVAL);
	close(fd);
	unlink(odd);
	CHECK_EQ(emul_storage_open("/tmp", &d, err, sizeof(err)) < 0, 1);
}

static void test_descriptors(void)
{
	uint8_t b[64];
	CHECK_EQ(dev->speed, USBIF_SPEED_HIGH);
	CHECK_EQ(dev->vendor, 0x1209);
	CHECK_EQ(dev->product, 0x7503);
	struct result r = control(0x80, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 64, b);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(r.actual, 32);
	CHECK_EQ(b[9 + 5], 8);    /* mass storage */
	CHECK_EQ(b[9 + 6], 6);    /* SCSI transparent */
	CHECK_EQ(b[9 + 7], 0x50); /* bulk-only */
	CHECK_EQ(b[18 + 2], EP_IN);
	CHECK_EQ(b[18 + 3], 2);
	CHECK_EQ(usbif_le16(b + 18 + 4), 512);
	CHECK_EQ(b[25 + 2], EP_OUT);
	CHECK_EQ(usbif_le16(b + 25 + 4), 512);
	r = control(0x80, USB_REQ_GET_DESCRIPTOR, 0x0600, 0, 10, b);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(r.actual, 10);
	CHECK_EQ(b[1], 6);
	r = control(0x80, USB_REQ_GET_DESCRIPTOR, 0x0303, 0x0409, 64, b);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(r.actual, 2 + 2 * 14); /* "50565553420001" */
}

static void test_class_requests(void)
{
	uint8_t b[4] = {0xee, 0xee, 0xee, 0xee};
	struct result r = control(0xa1, 0xfe, 0, 0, 1, b);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(r.actual, 1);
	CHECK_EQ(b[0], 0);
	CHECK_EQ(control(0xa1, 0xfe, 0, 1, 1, b).status, USBIF_STATUS_STALL); /* no interface 1 */
	CHECK_EQ(control(0x21, 0xff, 0, 0, 0, b).status, 0);
	CHECK_EQ(control(0x21, 0xff, 1, 0, 0, b).status, USBIF_STATUS_STALL);
	CHECK_EQ(control(0x21, 0x42, 0, 0, 0, b).status, USBIF_STATUS_STALL);
}

static void test_inquiry(void)
{
	uint8_t cdb[6] = {0x12, 0, 0, 0, 36, 0}, b[1024];
	uint32_t got;
	memset(b, 0xee, sizeof(b));
	struct csw c = scsi_in(cdb, 6, 36, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(c.residue, 0);
	CHECK(!c.stalled_first);
	CHECK_EQ(got, 36);
	CHECK_EQ(b[0], 0x00);
	CHECK_EQ(b[1], 0x80);
	CHECK_EQ(b[4], 31);
	CHECK(memcmp(b + 8, "pvusb   ", 8) == 0);
	CHECK(memcmp(b + 16, "Mass Storage    ", 16) == 0);
	CHECK(memcmp(b + 32, "0001", 4) == 0);

	/* the host asks for more than there is: short packet, STALL, residue */
	cdb[4] = 96;
	memset(b, 0xee, sizeof(b));
	c = scsi_in(cdb, 6, 96, b, 512, 1, &got);
	CHECK_EQ(got, 36);
	CHECK(c.stalled_first);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(c.residue, 60);
	CHECK_EQ(b[36], 0xee);

	/* the data phase in two transfers, as a host with one URB per
	 * scatter-gather entry sends it: the second never takes the CSW */
	uint32_t tag = next_tag++;
	send_cbw(tag, 1024, true, cdb, 6);
	struct result r = bulk(true, b, 512, 1);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(r.actual, 36);
	r = bulk(true, b + 512, 512, 1);
	CHECK_EQ(r.status, USBIF_STATUS_STALL);
	clear_halt(EP_IN);
	c = read_csw();
	CHECK_EQ(c.tag, tag);
	CHECK_EQ(c.residue, 1024 - 36);

	/* a CSW read into less than 13 bytes overflows */
	const uint8_t tur[6] = {0};
	send_cbw(next_tag++, 0, false, tur, 6);
	r = bulk(true, b, 8, 1);
	CHECK_EQ(r.status, USBIF_STATUS_BABBLE);
	CHECK_EQ(r.actual, 8);

	/* VPD: the page list, the serial number, the device id */
	const uint8_t vpd0[6] = {0x12, 1, 0x00, 0, 64, 0};
	c = scsi_in(vpd0, 6, 7, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 7);
	CHECK_EQ(b[1], 0x00);
	CHECK_EQ(b[3], 3);
	CHECK(b[4] == 0x00 && b[5] == 0x80 && b[6] == 0x83);
	const uint8_t vpd80[6] = {0x12, 1, 0x80, 0, 18, 0};
	c = scsi_in(vpd80, 6, 18, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 18);
	CHECK_EQ(b[3], 14);
	CHECK(memcmp(b + 4, "50565553420001", 14) == 0);
	const uint8_t vpd83[6] = {0x12, 1, 0x83, 0, 255, 0};
	c = scsi_in(vpd83, 6, 255, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 4 + 4 + 38);
	CHECK_EQ(c.residue, 255 - 46);
	CHECK_EQ(b[5] & 0x0f, 1); /* T10 vendor id */

	/* a page we do not have: CHECK CONDITION, INVALID FIELD IN CDB */
	const uint8_t vpd99[6] = {0x12, 1, 0x99, 0, 64, 0};
	c = scsi_in(vpd99, 6, 64, b, 512, 1, &got);
	CHECK_EQ(c.status, 1);
	CHECK_EQ(got, 0);
	CHECK_EQ(c.residue, 64);
	check_sense(0x05, 0x24);
}

static void test_capacity(void)
{
	uint8_t cdb[16] = {0x25}, b[64];
	uint32_t got;
	struct csw c = scsi_in(cdb, 10, 8, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 8);
	CHECK_EQ((uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3], IMAGE_BLOCKS - 1);
	CHECK_EQ(b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7], 512);

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x9e;
	cdb[1] = 0x10;
	cdb[13] = 32;
	c = scsi_in(cdb, 16, 32, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 32);
	uint64_t last = 0;
	for (int i = 0; i < 8; i++)
		last = last << 8 | b[i];
	CHECK_EQ(last, IMAGE_BLOCKS - 1);
	CHECK_EQ(b[10] << 8 | b[11], 512);

	const uint8_t rfc[10] = {0x23, 0, 0, 0, 0, 0, 0, 0, 252, 0};
	c = scsi_in(rfc, 10, 252, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 12);
	CHECK_EQ(c.residue, 240);
	CHECK_EQ((uint32_t)b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7], IMAGE_BLOCKS);
	CHECK_EQ(b[8], 2);

	const uint8_t luns[12] = {0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0};
	c = scsi_in(luns, 12, 16, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 16);
	CHECK_EQ(b[3], 8);
}

static void test_write_read(void)
{
	enum { LBA = 100, BLOCKS = 8, BYTES = BLOCKS * 512 };
	uint8_t cdb[10], pattern[BYTES], back[BYTES], file[BYTES];
	fill_pattern(pattern, BYTES, 7);

	/* WRITE(10): a contiguous transfer, then one in 5 scattered runs */
	cdb10(cdb, 0x2a, LBA, BLOCKS);
	uint32_t tag = next_tag++;
	send_cbw(tag, BYTES, false, cdb, 10);
	struct result r = bulk(false, pattern, 1024, 1);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(r.actual, 1024);
	r = bulk(false, pattern + 1024, BYTES - 1024, 5);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(r.actual, BYTES - 1024);
	struct csw c = read_csw();
	CHECK_EQ(c.tag, tag);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(c.residue, 0);
	CHECK_EQ(pread(image_fd, file, BYTES, LBA * 512), BYTES);
	CHECK(memcmp(file, pattern, BYTES) == 0);

	/* READ(10) back: scattered runs, then contiguous */
	cdb10(cdb, 0x28, LBA, BLOCKS);
	memset(back, 0, sizeof(back));
	uint32_t got;
	c = scsi_in(cdb, 10, BYTES, back, 2048, 7, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(c.residue, 0);
	CHECK_EQ(got, BYTES);
	CHECK(memcmp(back, pattern, BYTES) == 0);
	memset(back, 0, sizeof(back));
	c = scsi_in(cdb, 10, BYTES, back, BYTES, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK(memcmp(back, pattern, BYTES) == 0);

	/* READ(16) and WRITE(12) reach the same blocks */
	const uint8_t r16[16] = {0x88, 0, 0, 0, 0, 0, 0, 0, 0, LBA, 0, 0, 0, 1, 0, 0};
	c = scsi_in(r16, 16, 512, back, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK(memcmp(back, pattern, 512) == 0);
	const uint8_t w12[12] = {0xaa, 0, 0, 0, 0, 10, 0, 0, 0, 1, 0, 0};
	c = scsi_out(w12, 12, 512, pattern, 512, 3);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(pread(image_fd, file, 512, 10 * 512), 512);
	CHECK(memcmp(file, pattern, 512) == 0);

	const uint8_t sync[10] = {0x35};
	c = scsi_in(sync, 10, 0, NULL, 512, 1, NULL);
	CHECK_EQ(c.status, 0);
}

/* 1 MiB in one READ(10), as 16 IN transfers of 64 KiB, alternately
 * contiguous and in 16 runs: the command keeps its place across them. */
static void test_big_read(void)
{
	enum { BYTES = 1 << 20 };
	static uint8_t want[BYTES], got_buf[BYTES];
	fill_pattern(want, BYTES, 99);
	CHECK_EQ(pwrite(image_fd, want, BYTES, 512 * 1024), BYTES);
	uint8_t cdb[10];
	cdb10(cdb, 0x28, 1024, BYTES / 512);
	uint32_t tag = next_tag++;
	send_cbw(tag, BYTES, true, cdb, 10);
	for (unsigned k = 0; k < 16; k++) {
		struct result r = bulk(true, got_buf + k * 65536, 65536, (k & 1) ? 16 : 1);
		CHECK_EQ(r.status, 0);
		CHECK_EQ(r.actual, 65536);
	}
	struct csw c = read_csw();
	CHECK_EQ(c.tag, tag);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(c.residue, 0);
	CHECK(!c.stalled_first);
	CHECK(memcmp(want, got_buf, BYTES) == 0);
}

static void test_errors(void)
{
	uint8_t cdb[16], b[4096];
	uint32_t got;

	/* READ past the end: no data, bulk IN halted, CHECK CONDITION */
	cdb10(cdb, 0x28, IMAGE_BLOCKS - 2, 4);
	uint32_t tag = next_tag++;
	send_cbw(tag, 2048, true, cdb, 10);
	CHECK(edev->halted & HALT_IN);
	struct result r = bulk(true, b, 2048, 1);
	CHECK_EQ(r.status, USBIF_STATUS_STALL);
	CHECK_EQ(r.actual, 0);
	clear_halt(EP_IN);
	CHECK(!(edev->halted & HALT_IN));
	struct csw c = read_csw();
	CHECK_EQ(c.tag, tag);
	CHECK_EQ(c.status, 1);
	CHECK_EQ(c.residue, 2048);
	check_sense(0x05, 0x21);
	/* the sense was reported once */
	check_sense(0x00, 0x00);

	/* the last blocks themselves are fine */
	cdb10(cdb, 0x28, IMAGE_BLOCKS - 2, 2);
	c = scsi_in(cdb, 10, 1024, b, 1024, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 1024);

	/* WRITE past the end, huge LBA in WRITE(16): out of range */
	const uint8_t w16[16] = {0x8a, 0,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				 0xff, 0xff, 0,    0,    0,    1,    0,    0};
	memset(b, 0x5a, 512);
	c = scsi_out(w16, 16, 512, b, 512, 1);
	CHECK_EQ(c.status, 1);
	CHECK_EQ(c.residue, 512);
	check_sense(0x05, 0x21);

	/* an unknown opcode */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0xc7;
	c = scsi_in(cdb, 10, 0, NULL, 512, 1, NULL);
	CHECK_EQ(c.status, 1);
	check_sense(0x05, 0x20);

	/* sense belongs to the command after the failure only: a good
	 * command in between leaves NO SENSE */
	c = scsi_in(cdb, 10, 0, NULL, 512, 1, NULL);
	CHECK_EQ(c.status, 1);
	const uint8_t tur[6] = {0};
	c = scsi_in(tur, 6, 0, NULL, 512, 1, NULL);
	CHECK_EQ(c.status, 0);
	check_sense(0x00, 0x00);

	/* a CDB shorter than its opcode needs */
	cdb10(cdb, 0x28, 0, 1);
	c = scsi_in(cdb, 6, 512, b, 512, 1, &got);
	CHECK_EQ(c.status, 1);
	check_sense(0x05, 0x24);
}

static void test_thirteen_cases(void)
{
	uint8_t cdb[10], b[4096];
	uint32_t got;

	/* case 1: TEST UNIT READY with no data */
	const uint8_t tur[6] = {0};
	struct csw c = scsi_in(tur, 6, 0, NULL, 512, 1, NULL);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(c.residue, 0);

	/* case 2: the device has data, the host expects none */
	const uint8_t rc10[10] = {0x25};
	c = scsi_in(rc10, 10, 0, NULL, 512, 1, NULL);
	CHECK_EQ(c.status, 2);

	/* case 3: the device wants data, the host sends none; nothing written */
	cdb10(cdb, 0x2a, 0, 1);
	c = scsi_in(cdb, 10, 0, NULL, 512, 1, NULL);
	CHECK_EQ(c.status, 2);

	/* case 4: the host expects data, the device has none */
	c = scsi_in(tur, 6, 512, b, 512, 1, &got);
	CHECK_EQ(got, 0);
	CHECK(c.status == 0);
	CHECK_EQ(c.residue, 512);

	/* case 7: the device has more than the host wants */
	cdb10(cdb, 0x28, 0, 2);
	c = scsi_in(cdb, 10, 512, b, 512, 1, &got);
	CHECK_EQ(got, 512);
	CHECK_EQ(c.status, 2);

	/* case 8: the host expects IN, the command writes */
	cdb10(cdb, 0x2a, 0, 1);
	c = scsi_in(cdb, 10, 512, b, 512, 1, &got);
	CHECK_EQ(got, 0);
	CHECK_EQ(c.status, 2);

	/* case 9: the host sends data to a command that takes none */
	memset(b, 0, 512);
	c = scsi_out(tur, 6, 512, b, 512, 1);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(c.residue, 512);

	/* case 10: the host sends, the command reads; nothing is written */
	uint8_t before[512], after[512];
	CHECK_EQ(pread(image_fd, before, 512, 0), 512);
	cdb10(cdb, 0x28, 0, 1);
	memset(b, 0x77, 512);
	c = scsi_out(cdb, 10, 512, b, 512, 1);
	CHECK_EQ(c.status, 2);

	/* case 11: the host sends more than the command takes */
	uint8_t pat[1024];
	fill_pattern(pat, sizeof(pat), 11);
	cdb10(cdb, 0x2a, 20, 1);
	c = scsi_out(cdb, 10, 1024, pat, 512, 1);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(c.residue, 512);
	CHECK_EQ(pread(image_fd, after, 512, 20 * 512), 512);
	CHECK(memcmp(after, pat, 512) == 0);

	/* case 13: the host sends less than the command needs; no partial write */
	cdb10(cdb, 0x2a, 0, 2);
	c = scsi_out(cdb, 10, 512, b, 512, 1);
	CHECK_EQ(c.status, 2);
	CHECK_EQ(pread(image_fd, after, 512, 0), 512);
	CHECK(memcmp(before, after, 512) == 0);

	/* MODE SELECT(6): the parameter list is taken and ignored */
	const uint8_t ms6[6] = {0x15, 0x10, 0, 0, 12, 0};
	memset(b, 0, 12);
	c = scsi_out(ms6, 6, 12, b, 512, 1);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(c.residue, 0);
}

static void test_mode_sense(bool want_wp)
{
	uint8_t b[256];
	uint32_t got;
	const uint8_t all6[6] = {0x1a, 0, 0x3f, 0, 192, 0};
	struct csw c = scsi_in(all6, 6, 192, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 4 + 20 + 12);
	CHECK_EQ(b[0], got - 1);
	CHECK_EQ(b[2] & 0x80, want_wp ? 0x80 : 0);
	CHECK_EQ(b[4], 0x08);
	CHECK_EQ(b[24], 0x1c);
	const uint8_t cache10[10] = {0x5a, 0, 0x08, 0, 0, 0, 0, 0, 64, 0};
	c = scsi_in(cache10, 10, 64, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 8 + 20);
	CHECK_EQ(b[0] << 8 | b[1], 8 + 20 - 2);
	CHECK_EQ(b[3] & 0x80, want_wp ? 0x80 : 0);
	CHECK_EQ(b[8], 0x08);
	/* the 4-byte header alone, as Linux asks first: exactly what was asked */
	const uint8_t hdr6[6] = {0x1a, 0, 0x3f, 0, 4, 0};
	c = scsi_in(hdr6, 6, 4, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK_EQ(got, 4);
	CHECK(!c.stalled_first);
	const uint8_t bad[6] = {0x1a, 0, 0x2a, 0, 64, 0};
	c = scsi_in(bad, 6, 64, b, 512, 1, &got);
	CHECK_EQ(c.status, 1);
	check_sense(0x05, 0x24);
}

/* An invalid CBW halts both bulk endpoints until reset recovery. */
static void test_invalid_cbw(void)
{
	uint8_t cbw[31], b[13];
	const uint8_t tur[6] = {0};
	make_cbw(cbw, 1, 0, false, tur, 6);
	cbw[0] ^= 0xff; /* bad signature */
	struct result r = bulk(false, cbw, 31, 1);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(edev->halted & (HALT_IN | HALT_OUT), HALT_IN | HALT_OUT);
	r = bulk(true, b, 13, 1);
	CHECK_EQ(r.status, USBIF_STATUS_STALL);
	/* clearing the halts alone is not enough */
	clear_halt(EP_IN);
	clear_halt(EP_OUT);
	CHECK_EQ(edev->halted & (HALT_IN | HALT_OUT), HALT_IN | HALT_OUT);
	/* reset recovery: BOMS reset, then clear both */
	uint8_t none[1];
	CHECK_EQ(control(0x21, 0xff, 0, 0, 0, none).status, 0);
	CHECK_EQ(edev->halted & (HALT_IN | HALT_OUT), HALT_IN | HALT_OUT);
	clear_halt(EP_IN);
	clear_halt(EP_OUT);
	CHECK_EQ(edev->halted & (HALT_IN | HALT_OUT), 0);
	struct csw c = scsi_in(tur, 6, 0, NULL, 512, 1, NULL);
	CHECK_EQ(c.status, 0);

	/* LUN 1, a CB length of 0 or 17, a wrong size: all invalid */
	const uint8_t bad_lun = 13, bad_len = 14;
	for (int k = 0; k < 4; k++) {
		make_cbw(cbw, 2, 0, false, tur, 6);
		if (k == 0)
			cbw[bad_lun] = 1;
		else
			cbw[bad_len] = k == 1 ? 0 : 17;
		r = bulk(false, cbw, k == 3 ? 30 : 31, 1);
		CHECK_EQ(r.status, 0);
		CHECK_EQ(edev->halted & (HALT_IN | HALT_OUT), HALT_IN | HALT_OUT);
		CHECK_EQ(control(0x21, 0xff, 0, 0, 0, none).status, 0);
		clear_halt(EP_IN);
		clear_halt(EP_OUT);
	}
	c = scsi_in(tur, 6, 0, NULL, 512, 1, NULL);
	CHECK_EQ(c.status, 0);
}

/* An IN transfer sent before the CBW waits, and gets the CSW; a waiting
 * transfer can be cancelled. */
static void test_early_in(void)
{
	struct pvusb_xfer x;
	uint8_t b[13];
	memset(&x, 0, sizeof(x));
	x.dev = dev;
	x.type = USBIF_PIPE_TYPE_BULK;
	x.endpoint = 1;
	x.in = true;
	x.length = 13;
	x.contig = b;
	x.niov = 1;
	x.iov[0] = (struct pvusb_iov){b, 13};
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(dev, &x), 0);
	CHECK_EQ(times_completed(&x), 0);
	const uint8_t tur[6] = {0};
	uint8_t cbw[31];
	make_cbw(cbw, 0x4242, 0, true, tur, 6);
	struct result r = bulk(false, cbw, 31, 1);
	CHECK_EQ(r.status, 0);
	CHECK_EQ(x.status, 0);
	CHECK_EQ(x.actual_length, 13);
	CHECK_EQ(get_le32(b + 4), 0x4242);
	CHECK_EQ(b[12], 0);

	memset(&x, 0, sizeof(x));
	x.dev = dev;
	x.type = USBIF_PIPE_TYPE_BULK;
	x.endpoint = 1;
	x.in = true;
	x.length = 13;
	x.contig = b;
	x.niov = 1;
	x.iov[0] = (struct pvusb_iov){b, 13};
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(dev, &x), 0);
	CHECK_EQ(times_completed(&x), 0);
	emul_dev_ops.cancel(dev, &x);
	CHECK_EQ(times_completed(&x), 1);
	CHECK_EQ(x.status, USBIF_STATUS_CONNRESET);
	emul_dev_ops.cancel(dev, &x);
	CHECK_EQ(times_completed(&x), 1);
}

static void test_read_only(void)
{
	uint8_t cdb[10], b[512], before[512], after[512];
	open_device(",ro");
	test_mode_sense(true);
	CHECK_EQ(pread(image_fd, before, 512, 30 * 512), 512);
	cdb10(cdb, 0x2a, 30, 1);
	memset(b, 0xa5, sizeof(b));
	struct csw c = scsi_out(cdb, 10, 512, b, 512, 2);
	CHECK_EQ(c.status, 1);
	CHECK_EQ(c.residue, 512);
	check_sense(0x07, 0x27);
	CHECK_EQ(pread(image_fd, after, 512, 30 * 512), 512);
	CHECK(memcmp(before, after, 512) == 0);
	/* reads still work */
	uint32_t got;
	cdb10(cdb, 0x28, 30, 1);
	c = scsi_in(cdb, 10, 512, b, 512, 1, &got);
	CHECK_EQ(c.status, 0);
	CHECK(memcmp(b, before, 512) == 0);
	close_device();

	/* a file we may not write is opened write-protected (root may write anyway) */
	if (geteuid() != 0) {
		CHECK_EQ(fchmod(image_fd, 0444), 0);
		open_device("");
		test_mode_sense(true);
		close_device();
		CHECK_EQ(fchmod(image_fd, 0600), 0);
	}
}

static void test_exclusive(void)
{
	char err[256] = "";
	struct pvusb_dev *second = NULL;
	CHECK_EQ(emul_storage_open(image_path, &second, err, sizeof(err)), -EBUSY);
	CHECK(strstr(err, "in use") != NULL);
}

int main(void)
{
	make_image();
	test_open_errors();
	open_device("");
	test_descriptors();
	test_class_requests();
	test_inquiry();
	test_capacity();
	test_write_read();
	test_big_read();
	test_errors();
	test_thirteen_cases();
	test_mode_sense(false);
	test_invalid_cbw();
	test_early_in();
	test_exclusive();
	close_device();
	test_read_only();

	close(image_fd);
	unlink(image_path);
	printf("test_storage: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
