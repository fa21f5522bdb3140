/* SPDX-License-Identifier: MIT */
/*
 * Emulated USB mass-storage device: Bulk-Only Transport (USB Mass Storage
 * Class BOT 1.0) carrying SCSI transparent commands (SPC/SBC subset) for
 * one LUN backed by an image file or block device.
 *
 *   interface 0: class 8, subclass 6, protocol 0x50; bulk IN 0x81, OUT 0x02
 *
 * The guest is hostile: every CBW field is checked, the data phase never
 * moves more than both sides announced, and the thirteen host/device cases
 * of BOT 6.7 are resolved before any data moves. Data goes straight between
 * the image and the transfer buffer (pread/pwrite or their vector forms);
 * nothing is allocated per transfer.
 *
 * Where the device has less data than the host asked for, the data ends
 * (short packet) and the bulk IN endpoint is halted, as BOT 6.7.2 requires
 * (send less, then STALL; or pad). The halt also makes any further IN
 * transfers the guest had queued for the data phase (Linux queues one per
 * scatter-gather entry) fail with STALL instead of swallowing the CSW.
 *
 * IN transfers that arrive before there is anything to send (a host may ask
 * for the data or the CSW before it sends the CBW) wait in a small queue, the
 * way a real device NAKs them, until there is data or a CSW for them.
 *
 * Options: "<path>" or "<path>,ro".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "emul.h"
#include "util/log.h"

_Static_assert(sizeof(off_t) == 8, "image offsets need a 64-bit off_t (_FILE_OFFSET_BITS=64)");

/* pid.codes 0x1209 product IDs: 0x7500 source/sink, 0x7501/2 HID, 0x7503 us. */
#define MS_VENDOR 0x1209
#define MS_PRODUCT 0x7503
#define MS_EP_IN 0x81
#define MS_EP_OUT 0x02
#define MS_MAXPACKET 512
#define MS_INTERFACE 0
#define MS_SERIAL "50565553420001" /* "PVUSB" in hex + 0001: Windows wants 12+ hex digits */

#define BLOCK_SIZE 512u
#define BLOCK_SHIFT 9

#define USB_CLASS_MASS_STORAGE 8
#define MS_SUBCLASS_SCSI 6
#define MS_PROTO_BOT 0x50

/* BOT 3.1, 3.2: class requests */
#define REQ_BOMS_RESET 0xff
#define REQ_GET_MAX_LUN 0xfe

/* BOT 5.1, 5.2: wrappers */
#define CBW_LEN 31
#define CSW_LEN 13
#define CBW_SIGNATURE 0x43425355u /* "USBC" */
#define CSW_SIGNATURE 0x53425355u /* "USBS" */
#define CBW_FLAG_IN 0x80
#define CSW_PASSED 0
#define CSW_FAILED 1
#define CSW_PHASE_ERROR 2

/* IN transfers waiting for something to send; no controller has more in
 * flight than its ring holds. */
#define PARK_MAX USB_URB_RING_SIZE

/* SCSI sense keys and additional sense codes (SPC-4 4.5.6, annex D) */
#define SK_NO_SENSE 0x00
#define SK_MEDIUM_ERROR 0x03
#define SK_ILLEGAL_REQUEST 0x05
#define SK_DATA_PROTECT 0x07
#define ASC_WRITE_ERROR 0x0c
#define ASC_UNRECOVERED_READ_ERROR 0x11
#define ASC_INVALID_OPCODE 0x20
#define ASC_LBA_OUT_OF_RANGE 0x21
#define ASC_INVALID_FIELD_IN_CDB 0x24
#define ASC_WRITE_PROTECTED 0x27
#define ASC_SAVING_NOT_SUPPORTED 0x39

/* mode pages */
#define MODE_PAGE_CACHING 0x08
#define MODE_PAGE_IEC 0x1c
#define MODE_PAGE_ALL 0x3f
#define MODE_SUBPAGE_ALL 0xff
#define MODE_PC_CHANGEABLE 1
#define MODE_PC_SAVED 3

/* pvusb_log_once keys */
enum ms_log_cause { LOG_BAD_CBW, LOG_READ_ERROR, LOG_WRITE_ERROR, LOG_SYNC_ERROR, LOG_PARK_FULL };

enum bot_state {
	BOT_CBW,      /* waiting for a command block on bulk OUT */
	BOT_DATA_IN,  /* sending the data phase */
	BOT_DATA_OUT, /* receiving the data phase */
	BOT_CSW,      /* the next IN transfer gets the status */
	BOT_STALLED,  /* invalid CBW: both endpoints stay halted until a BOMS reset */
};

/* What the device side of the data phase moves (the "D" of BOT 6.7). */
enum data_kind {
	DATA_NONE,
	DATA_BUF,   /* IN from resp[] */
	DATA_READ,  /* IN from the image */
	DATA_WRITE, /* OUT to the image */
	DATA_SINK,  /* OUT, accepted and ignored (MODE SELECT) */
};

/* One command from CBW to CSW. */
struct bot_cmd {
	uint32_t tag;
	uint32_t host_len;  /* dCBWDataTransferLength */
	bool host_in;
	enum data_kind kind;
	uint64_t dev_len;   /* bytes the command wants to move (may exceed 4 GiB) */
	uint32_t xfer_len;  /* bytes of the data phase that carry data: <= host_len */
	uint32_t done;      /* bytes the host has moved so far */
	uint32_t relevant;  /* bytes moved that count; residue = host_len - relevant */
	uint64_t file_off;  /* DATA_READ/DATA_WRITE: image offset of the first byte */
	bool fua;           /* WRITE with force unit access: sync before the CSW */
	uint8_t status;     /* bCSWStatus */
};

struct storage {
	struct emul_dev e; /* first: emul_close frees the whole struct */
	uint8_t qualifier[10];
	int fd;
	bool read_only;
	uint64_t nblocks;
	uint64_t log_mask;

	enum bot_state state;
	struct bot_cmd cmd;
	uint8_t sense_key, asc, ascq; /* from the last failed command */
	uint8_t resp[96];             /* DATA_BUF replies; the largest is 46 bytes */

	struct pvusb_xfer *parked[PARK_MAX]; /* IN transfers waiting, oldest first */
	unsigned nparked;
};

/* ---- descriptors ---- */

static const uint8_t ms_dev_desc[18] = {
	18, 1, 0x00, 0x02,           /* USB 2.0 */
	0, 0, 0, 64,                 /* class in the interface; ep0 64 bytes */
	MS_VENDOR & 0xff, MS_VENDOR >> 8, MS_PRODUCT & 0xff, MS_PRODUCT >> 8,
	0x00, 0x01,                  /* bcdDevice 1.00 */
	1, 2, 3,                     /* manufacturer, product, serial strings */
	1,
};

static const uint8_t ms_qualifier[10] = {10, 6, 0x00, 0x02, 0, 0, 0, 64, 1, 0};

static const uint8_t ms_config[9 + 9 + 7 + 7] = {
	9, 2, sizeof(ms_config), 0, 1, 1, 0, 0x80, 50, /* bus powered, 100 mA */
	9, 4, MS_INTERFACE, 0, 2, USB_CLASS_MASS_STORAGE, MS_SUBCLASS_SCSI, MS_PROTO_BOT, 0,
	7, 5, MS_EP_IN, 2, MS_MAXPACKET & 0xff, MS_MAXPACKET >> 8, 0,
	7, 5, MS_EP_OUT, 2, MS_MAXPACKET & 0xff, MS_MAXPACKET >> 8, 0,
};

static const char *const ms_strings[] = {"pvusb", "pvusb Mass Storage", MS_SERIAL};

/* ---- byte order ---- */

static uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }
static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}
static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}
static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }
static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint32_t halt_bit(uint8_t ep) { return 1u << ((ep & 0x0f) + ((ep & USB_DIR_IN) ? 16 : 0)); }
static struct storage *to_ms(struct emul_dev *e) { return e->cls_priv; }

/* ---- moving data between the image and a transfer ---- */

/* Describe `n` bytes of x's buffer from `off` as an iovec array. */
static int slice_iov(const struct pvusb_xfer *x, uint32_t off, uint32_t n, struct iovec *v)
{
	int cnt = 0;
	unsigned niov = x->niov;
	if (niov > USBIF_MAX_SEGMENTS_PER_REQUEST)
		niov = USBIF_MAX_SEGMENTS_PER_REQUEST;
	for (unsigned i = 0; i < niov && n > 0; i++) {
		uint32_t len = x->iov[i].len;
		if (off >= len) {
			off -= len;
			continue;
		}
		uint32_t k = min_u32(len - off, n);
		v[cnt].iov_base = x->iov[i].base + off;
		v[cnt].iov_len = k;
		cnt++;
		n -= k;
		off = 0;
	}
	return cnt;
}

/*
 * Move `n` bytes between the image at `file_off` and the start of x's
 * buffer, zero copy. Returns the bytes moved; on a shortfall *err is a
 * negative errno (-EIO for an image that ended early).
 */
static uint32_t image_io(struct storage *ms, struct pvusb_xfer *x, uint32_t n, uint64_t file_off,
			 bool write, int *err)
{
	uint32_t moved = 0;
	*err = 0;
	while (moved < n) {
		off_t off = (off_t)(file_off + moved);
		ssize_t r;
		if (x->contig) {
			r = write ? pwrite(ms->fd, x->contig + moved, n - moved, off)
				  : pread(ms->fd, x->contig + moved, n - moved, off);
		} else {
			struct iovec v[USBIF_MAX_SEGMENTS_PER_REQUEST];
			int cnt = slice_iov(x, moved, n - moved, v);
			if (cnt == 0) {
				*err = -EFAULT; /* the runs are shorter than x->length */
				break;
			}
			r = write ? pwritev(ms->fd, v, cnt, off) : preadv(ms->fd, v, cnt, off);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*err = r < 0 ? -errno : -EIO;
			break;
		}
		moved += (uint32_t)r;
	}
	return moved;
}

/* ---- SCSI: each command fills ms->cmd (kind, dev_len) or fails ---- */

static void set_sense(struct storage *ms, uint8_t key, uint8_t asc, uint8_t ascq)
{
	ms->sense_key = key;
	ms->asc = asc;
	ms->ascq = ascq;
}

/* CHECK CONDITION: the command moves no data. */
static void fail(struct storage *ms, uint8_t key, uint8_t asc)
{
	set_sense(ms, key, asc, 0);
	if (ms->cmd.status != CSW_PHASE_ERROR) /* a phase error outranks a failure */
		ms->cmd.status = CSW_FAILED;
	ms->cmd.kind = DATA_NONE;
	ms->cmd.dev_len = 0;
}

/* Reply with `len` bytes of resp[], cut to the allocation length. */
static void reply(struct storage *ms, uint32_t len, uint32_t alloc)
{
	ms->cmd.kind = DATA_BUF;
	ms->cmd.dev_len = min_u32(len, alloc);
}

static bool lba_range_ok(const struct storage *ms, uint64_t lba, uint64_t blocks)
{
	return lba <= ms->nblocks && blocks <= ms->nblocks - lba;
}

static void scsi_request_sense(struct storage *ms, const uint8_t *cdb)
{
	uint8_t *r = ms->resp;
	memset(r, 0, 18);
	r[0] = 0x70; /* current error, fixed format (we answer fixed even if DESC is set) */
	r[2] = ms->sense_key;
	r[7] = 10; /* additional sense length */
	r[12] = ms->asc;
	r[13] = ms->ascq;
	set_sense(ms, SK_NO_SENSE, 0, 0); /* reported once, as SPC-4 5.14 says */
	reply(ms, 18, cdb[4]);
}

static uint32_t inquiry_standard(uint8_t *r)
{
	memset(r, 0, 36);
	r[0] = 0x00; /* connected, direct-access block device */
	r[1] = 0x80; /* removable medium */
	r[2] = 0x05; /* SPC-3 */
	r[3] = 0x02; /* response data format 2 */
	r[4] = 36 - 5;
	memcpy(r + 8, "pvusb   ", 8);
	memcpy(r + 16, "Mass Storage    ", 16);
	memcpy(r + 32, "0001", 4);
	return 36;
}

/* Vital product data pages 0x00, 0x80, 0x83; 0 for a page we do not have. */
static uint32_t inquiry_vpd(uint8_t *r, uint8_t page)
{
	static const char t10_id[] = "pvusb   Mass Storage    " MS_SERIAL;
	uint32_t n;
	memset(r, 0, 4);
	r[1] = page;
	switch (page) {
	case 0x00:
		r[4] = 0x00;
		r[5] = 0x80;
		r[6] = 0x83;
		n = 3;
		break;
	case 0x80:
		n = sizeof(MS_SERIAL) - 1;
		memcpy(r + 4, MS_SERIAL, n);
		break;
	case 0x83: /* one T10 vendor ID designator, ASCII, for the LUN */
		n = sizeof(t10_id) - 1;
		r[4] = 0x02; /* code set: ASCII */
		r[5] = 0x01; /* association: LUN; type: T10 vendor ID */
		r[6] = 0;
		r[7] = (uint8_t)n;
		memcpy(r + 8, t10_id, n);
		n += 4;
		break;
	default:
		return 0;
	}
	put_be16(r + 2, (uint16_t)n);
	return n + 4;
}

static void scsi_inquiry(struct storage *ms, const uint8_t *cdb)
{
	bool evpd = cdb[1] & 0x01;
	uint16_t alloc = get_be16(cdb + 3);
	if ((cdb[1] & 0xfe) || (!evpd && cdb[2] != 0)) {
		fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		return;
	}
	uint32_t n = evpd ? inquiry_vpd(ms->resp, cdb[2]) : inquiry_standard(ms->resp);
	if (n == 0) {
		fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		return;
	}
	reply(ms, n, alloc);
}

static void scsi_read_capacity10(struct storage *ms, const uint8_t *cdb)
{
	uint64_t last = ms->nblocks - 1;
	put_be32(ms->resp, last > 0xfffffffeu ? 0xffffffffu : (uint32_t)last); /* ~0: use (16) */
	put_be32(ms->resp + 4, BLOCK_SIZE);
	reply(ms, 8, 8);
}

/* SERVICE ACTION IN(16): only READ CAPACITY(16). */
static void scsi_service_action_in16(struct storage *ms, const uint8_t *cdb)
{
	if ((cdb[1] & 0x1f) != 0x10) {
		fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		return;
	}
	memset(ms->resp, 0, 32);
	put_be64(ms->resp, ms->nblocks - 1);
	put_be32(ms->resp + 8, BLOCK_SIZE);
	reply(ms, 32, get_be32(cdb + 10));
}

static void scsi_read_format_capacities(struct storage *ms, const uint8_t *cdb)
{
	uint8_t *r = ms->resp;
	memset(r, 0, 12);
	r[3] = 8; /* capacity list length: one descriptor */
	put_be32(r + 4, ms->nblocks > 0xffffffffu ? 0xffffffffu : (uint32_t)ms->nblocks);
	r[8] = 0x02; /* formatted media */
	r[9] = (uint8_t)(BLOCK_SIZE >> 16);
	r[10] = (uint8_t)(BLOCK_SIZE >> 8);
	r[11] = (uint8_t)BLOCK_SIZE;
	reply(ms, 12, get_be16(cdb + 7));
}

static void scsi_report_luns(struct storage *ms, const uint8_t *cdb)
{
	uint32_t alloc = get_be32(cdb + 6);
	if (alloc < 16 || cdb[2] > 2) { /* SPC-4 6.33: at least 16 bytes */
		fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		return;
	}
	memset(ms->resp, 0, 16);
	put_be32(ms->resp, 8); /* one LUN, number 0 */
	reply(ms, 16, alloc);
}

/* ---- MODE SENSE: header with WP, pages 0x08 and 0x1c ---- */

static uint32_t mode_page_caching(uint8_t *p, bool changeable)
{
	memset(p, 0, 20);
	p[0] = MODE_PAGE_CACHING;
	p[1] = 0x12;
	/* WCE: writes sit in the host page cache until SYNCHRONIZE CACHE, so
	 * say so; the guest then flushes when it needs durability. */
	if (!changeable)
		p[2] = 0x04;
	return 20;
}

static uint32_t mode_page_iec(uint8_t *p, bool changeable)
{
	memset(p, 0, 12);
	p[0] = MODE_PAGE_IEC;
	p[1] = 0x0a;
	if (!changeable)
		p[2] = 0x08; /* DEXCPT: we never report failure predictions */
	return 12;
}

static void mode_sense(struct storage *ms, bool ten, uint8_t pc_page, uint8_t subpage,
		       uint32_t alloc)
{
	uint8_t pc = pc_page >> 6, page = pc_page & 0x3f;
	uint8_t *r = ms->resp;
	uint32_t hdr = ten ? 8 : 4, n = hdr;
	bool changeable = pc == MODE_PC_CHANGEABLE;

	if (pc == MODE_PC_SAVED) {
		fail(ms, SK_ILLEGAL_REQUEST, ASC_SAVING_NOT_SUPPORTED);
		return;
	}
	if (subpage != 0 && !(page == MODE_PAGE_ALL && subpage == MODE_SUBPAGE_ALL)) {
		fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		return;
	}
	memset(r, 0, hdr);
	if (page == MODE_PAGE_CACHING || page == MODE_PAGE_ALL)
		n += mode_page_caching(r + n, changeable);
	if (page == MODE_PAGE_IEC || page == MODE_PAGE_ALL)
		n += mode_page_iec(r + n, changeable);
	if (n == hdr) {
		fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		return;
	}
	/* no block descriptors: SPC-4 lets a device return none even with DBD 0 */
	uint8_t wp = ms->read_only ? 0x80 : 0;
	if (ten) {
		put_be16(r, (uint16_t)(n - 2));
		r[3] = wp;
	} else {
		r[0] = (uint8_t)(n - 1);
		r[2] = wp;
	}
	reply(ms, n, alloc);
}

static void scsi_mode_sense6(struct storage *ms, const uint8_t *cdb)
{
	mode_sense(ms, false, cdb[2], cdb[3], cdb[4]);
}

static void scsi_mode_sense10(struct storage *ms, const uint8_t *cdb)
{
	mode_sense(ms, true, cdb[2], cdb[3], get_be16(cdb + 7));
}

/* MODE SELECT: nothing is changeable; take the parameter list and drop it. */
static void mode_select(struct storage *ms, uint32_t param_len)
{
	ms->cmd.kind = DATA_SINK;
	ms->cmd.dev_len = param_len;
}

static void scsi_mode_select6(struct storage *ms, const uint8_t *cdb) { mode_select(ms, cdb[4]); }
static void scsi_mode_select10(struct storage *ms, const uint8_t *cdb)
{
	mode_select(ms, get_be16(cdb + 7));
}

/* ---- block commands ---- */

static void read_write(struct storage *ms, uint64_t lba, uint64_t blocks, bool write, uint8_t flags)
{
	if (flags & 0xe0) { /* RDPROTECT/WRPROTECT: no protection information here */
		fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		return;
	}
	if (!lba_range_ok(ms, lba, blocks)) {
		fail(ms, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
		return;
	}
	if (write && ms->read_only) {
		fail(ms, SK_DATA_PROTECT, ASC_WRITE_PROTECTED);
		return;
	}
	ms->cmd.kind = write ? DATA_WRITE : DATA_READ;
	ms->cmd.dev_len = blocks << BLOCK_SHIFT; /* blocks <= nblocks: no overflow */
	ms->cmd.file_off = lba << BLOCK_SHIFT;
	ms->cmd.fua = write && (flags & 0x08);
}

/* READ(6)/WRITE(6): 21-bit LBA, a length of 0 means 256 blocks. */
static void rw6(struct storage *ms, const uint8_t *cdb, bool write)
{
	uint32_t lba = (uint32_t)(cdb[1] & 0x1f) << 16 | get_be16(cdb + 2);
	read_write(ms, lba, cdb[4] ? cdb[4] : 256, write, 0);
}

static void scsi_read6(struct storage *ms, const uint8_t *cdb) { rw6(ms, cdb, false); }
static void scsi_write6(struct storage *ms, const uint8_t *cdb) { rw6(ms, cdb, true); }
static void scsi_read10(struct storage *ms, const uint8_t *cdb)
{
	read_write(ms, get_be32(cdb + 2), get_be16(cdb + 7), false, cdb[1]);
}
static void scsi_write10(struct storage *ms, const uint8_t *cdb)
{
	read_write(ms, get_be32(cdb + 2), get_be16(cdb + 7), true, cdb[1]);
}
static void scsi_read12(struct storage *ms, const uint8_t *cdb)
{
	read_write(ms, get_be32(cdb + 2), get_be32(cdb + 6), false, cdb[1]);
}
static void scsi_write12(struct storage *ms, const uint8_t *cdb)
{
	read_write(ms, get_be32(cdb + 2), get_be32(cdb + 6), true, cdb[1]);
}
static void scsi_read16(struct storage *ms, const uint8_t *cdb)
{
	read_write(ms, get_be64(cdb + 2), get_be32(cdb + 10), false, cdb[1]);
}
static void scsi_write16(struct storage *ms, const uint8_t *cdb)
{
	read_write(ms, get_be64(cdb + 2), get_be32(cdb + 10), true, cdb[1]);
}

/* VERIFY(10) without BYTCHK: the blocks are as readable as the file. */
static void scsi_verify10(struct storage *ms, const uint8_t *cdb)
{
	if (cdb[1] & 0x06) /* BYTCHK would carry data to compare; not offered */
		fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
	else if (!lba_range_ok(ms, get_be32(cdb + 2), get_be16(cdb + 7)))
		fail(ms, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
}

static void sync_cache(struct storage *ms, uint64_t lba)
{
	if (lba > ms->nblocks) {
		fail(ms, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
		return;
	}
	if (!ms->read_only && fdatasync(ms->fd) < 0) {
		pvusb_log_once(&ms->log_mask, LOG_SYNC_ERROR, PVUSB_LOG_WARN,
			       "storage: fdatasync of the image failed: %s (logged once)", strerror(errno));
		fail(ms, SK_MEDIUM_ERROR, ASC_WRITE_ERROR);
	}
}

static void scsi_sync_cache10(struct storage *ms, const uint8_t *cdb)
{
	sync_cache(ms, get_be32(cdb + 2));
}
static void scsi_sync_cache16(struct storage *ms, const uint8_t *cdb)
{
	sync_cache(ms, get_be64(cdb + 2));
}

/* TEST UNIT READY, PREVENT ALLOW MEDIUM REMOVAL, START STOP UNIT: the medium
 * is always there and cannot be ejected from under the guest. */
static void scsi_good(struct storage *ms, const uint8_t *cdb) { (void)ms, (void)cdb; }

struct scsi_op {
	uint8_t opcode;
	uint8_t cdb_len;
	void (*run)(struct storage *ms, const uint8_t *cdb);
};

static const struct scsi_op scsi_ops[] = {
	{0x00, 6, scsi_good},                   /* TEST UNIT READY */
	{0x03, 6, scsi_request_sense},
	{0x08, 6, scsi_read6},
	{0x0a, 6, scsi_write6},
	{0x12, 6, scsi_inquiry},
	{0x15, 6, scsi_mode_select6},
	{0x1a, 6, scsi_mode_sense6},
	{0x1b, 6, scsi_good},                   /* START STOP UNIT */
	{0x1e, 6, scsi_good},                   /* PREVENT ALLOW MEDIUM REMOVAL */
	{0x23, 10, scsi_read_format_capacities},
	{0x25, 10, scsi_read_capacity10},
	{0x28, 10, scsi_read10},
	{0x2a, 10, scsi_write10},
	{0x2f, 10, scsi_verify10},
	{0x35, 10, scsi_sync_cache10},
	{0x55, 10, scsi_mode_select10},
	{0x5a, 10, scsi_mode_sense10},
	{0x88, 16, scsi_read16},
	{0x8a, 16, scsi_write16},
	{0x91, 16, scsi_sync_cache16},
	{0x9e, 16, scsi_service_action_in16},   /* READ CAPACITY(16) */
	{0xa0, 12, scsi_report_luns},
	{0xa8, 12, scsi_read12},
	{0xaa, 12, scsi_write12},
};

/* Decide what a command does; data-less commands take effect here. */
static void scsi_run(struct storage *ms, const uint8_t cdb[16], uint8_t cdb_len)
{
	if (cdb[0] != 0x03) /* sense data lives until the next command reads it */
		set_sense(ms, SK_NO_SENSE, 0, 0);
	for (size_t i = 0; i < sizeof(scsi_ops) / sizeof(scsi_ops[0]); i++) {
		if (scsi_ops[i].opcode != cdb[0])
			continue;
		if (cdb_len < scsi_ops[i].cdb_len)
			fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB); /* truncated CDB */
		else
			scsi_ops[i].run(ms, cdb);
		return;
	}
	fail(ms, SK_ILLEGAL_REQUEST, ASC_INVALID_OPCODE);
}

/* ---- parked IN transfers ---- */

static void park_remove(struct storage *ms, unsigned i)
{
	memmove(&ms->parked[i], &ms->parked[i + 1], (ms->nparked - i - 1) * sizeof(ms->parked[0]));
	ms->nparked--;
}

/* Complete every waiting IN transfer with `status`. */
static void park_flush(struct storage *ms, int32_t status)
{
	while (ms->nparked > 0) {
		struct pvusb_xfer *x = ms->parked[0];
		park_remove(ms, 0);
		emul_complete(&ms->e, x, status, 0);
	}
}

/* Halt bulk IN; transfers waiting on it see the STALL. */
static void halt_in(struct storage *ms)
{
	ms->e.halted |= halt_bit(MS_EP_IN);
	park_flush(ms, USBIF_STATUS_STALL);
}

/* BOT 6.6.1: an invalid CBW halts both endpoints until reset recovery. */
static void stall_both(struct storage *ms, const char *why)
{
	pvusb_log_once(&ms->log_mask, LOG_BAD_CBW, PVUSB_LOG_WARN,
		       "storage: %s; bulk endpoints halted until reset recovery (logged once)", why);
	ms->state = BOT_STALLED;
	ms->e.halted |= halt_bit(MS_EP_OUT);
	halt_in(ms);
}

/* ---- BOT: the thirteen cases (BOT 6.7) ---- */

static void plan_data_phase(struct storage *ms)
{
	struct bot_cmd *c = &ms->cmd;
	bool dev_none = c->kind == DATA_NONE || c->dev_len == 0;
	bool dev_in = c->kind == DATA_BUF || c->kind == DATA_READ;

	if (dev_none)
		c->kind = DATA_NONE;
	if (c->host_len == 0) { /* cases 1-3 */
		if (!dev_none)
			c->status = CSW_PHASE_ERROR;
		ms->state = BOT_CSW;
		return;
	}
	if (c->host_in) {
		if (!dev_none && !dev_in) { /* case 8 */
			c->status = CSW_PHASE_ERROR;
			c->kind = DATA_NONE;
		} else if (c->dev_len > c->host_len) { /* case 7: send what was asked */
			c->status = CSW_PHASE_ERROR;
		}
		c->xfer_len = c->kind == DATA_NONE ? 0 : (uint32_t)min_u64(c->dev_len, c->host_len);
		if (c->xfer_len == 0) { /* case 4 (or 8): nothing to send */
			ms->state = BOT_CSW;
			halt_in(ms);
		} else {
			ms->state = BOT_DATA_IN; /* cases 5-7 */
		}
		return;
	}
	/* host sends: cases 9-13; surplus data is accepted and dropped */
	if (!dev_none && (dev_in || c->dev_len > c->host_len)) { /* cases 10, 13 */
		c->status = CSW_PHASE_ERROR;
		c->kind = DATA_NONE; /* write nothing of a command we cannot finish */
	}
	c->xfer_len = c->kind == DATA_NONE ? 0 : (uint32_t)c->dev_len;
	ms->state = BOT_DATA_OUT;
}

/* Check a CBW (BOT 6.2.1: valid and meaningful) and start its command. */
static void take_cbw(struct storage *ms, struct pvusb_xfer *x)
{
	uint8_t cbw[CBW_LEN];
	bool sized = x->length == CBW_LEN && pvusb_xfer_copy_from(x, 0, cbw, CBW_LEN) == CBW_LEN;
	emul_complete(&ms->e, x, USBIF_STATUS_OK, x->length); /* the packet was taken either way */

	if (!sized || get_le32(cbw) != CBW_SIGNATURE) {
		stall_both(ms, "CBW of the wrong size or signature");
		return;
	}
	uint8_t flags = cbw[12], lun = cbw[13], cb_len = cbw[14];
	if ((flags & ~CBW_FLAG_IN) || lun != 0 || cb_len < 1 || cb_len > 16) {
		stall_both(ms, "CBW with reserved bits, LUN other than 0 or a bad CB length");
		return;
	}
	memset(&ms->cmd, 0, sizeof(ms->cmd));
	ms->cmd.tag = get_le32(cbw + 4);
	ms->cmd.host_len = get_le32(cbw + 8);
	ms->cmd.host_in = flags & CBW_FLAG_IN;

	uint8_t cdb[16] = {0}; /* bytes past bCBWCBLength read as zero */
	memcpy(cdb, cbw + 15, cb_len);
	scsi_run(ms, cdb, cb_len);
	plan_data_phase(ms);
}

/* The last byte of an OUT data phase arrived. */
static void data_out_done(struct storage *ms)
{
	struct bot_cmd *c = &ms->cmd;
	ms->state = BOT_CSW;
	if (c->kind == DATA_WRITE && c->fua && c->status == CSW_PASSED && fdatasync(ms->fd) < 0) {
		pvusb_log_once(&ms->log_mask, LOG_SYNC_ERROR, PVUSB_LOG_WARN,
			       "storage: fdatasync of the image failed: %s (logged once)", strerror(errno));
		set_sense(ms, SK_MEDIUM_ERROR, ASC_WRITE_ERROR, 0);
		c->status = CSW_FAILED;
	}
}

/* Write the relevant part of an OUT transfer; count what landed. */
static void consume_out(struct storage *ms, struct pvusb_xfer *x, uint32_t rel)
{
	struct bot_cmd *c = &ms->cmd;
	if (c->kind == DATA_SINK || c->status != CSW_PASSED) {
		c->relevant += c->kind == DATA_SINK ? rel : 0;
		return;
	}
	int err;
	uint32_t moved = image_io(ms, x, rel, c->file_off + c->done, true, &err);
	c->relevant += moved;
	if (err < 0) {
		pvusb_log_once(&ms->log_mask, LOG_WRITE_ERROR, PVUSB_LOG_WARN,
			       "storage: writing the image failed: %s (logged once)", strerror(-err));
		fail(ms, SK_MEDIUM_ERROR, ASC_WRITE_ERROR); /* the rest of the phase is dropped */
	}
}

static void take_data(struct storage *ms, struct pvusb_xfer *x)
{
	struct bot_cmd *c = &ms->cmd;
	uint32_t n = min_u32(x->length, c->host_len - c->done);
	uint32_t rel = c->done < c->xfer_len ? min_u32(n, c->xfer_len - c->done) : 0;
	if (rel > 0)
		consume_out(ms, x, rel);
	c->done += n;
	emul_complete(&ms->e, x, USBIF_STATUS_OK, n);
	if (n < x->length)
		c->status = CSW_PHASE_ERROR; /* more than dCBWDataTransferLength */
	if (c->done == c->host_len)
		data_out_done(ms);
}

static void send_data(struct storage *ms, struct pvusb_xfer *x)
{
	struct bot_cmd *c = &ms->cmd;
	uint32_t want = min_u32(x->length, c->xfer_len - c->done);
	uint32_t sent;
	int err = 0;
	if (c->kind == DATA_BUF)
		sent = (uint32_t)pvusb_xfer_copy_to(x, 0, ms->resp + c->done, want);
	else
		sent = image_io(ms, x, want, c->file_off + c->done, false, &err);
	c->done += sent;
	c->relevant = c->done;

	if (err < 0 || sent < want) {
		/* BOT 6.7.2: end the data early with a STALL, fail in the CSW */
		pvusb_log_once(&ms->log_mask, LOG_READ_ERROR, PVUSB_LOG_WARN,
			       "storage: reading the image failed: %s (logged once)",
			       strerror(err < 0 ? -err : EIO));
		fail(ms, SK_MEDIUM_ERROR, ASC_UNRECOVERED_READ_ERROR);
		ms->state = BOT_CSW;
		emul_complete(&ms->e, x, USBIF_STATUS_STALL, sent);
		halt_in(ms);
		return;
	}
	emul_complete(&ms->e, x, USBIF_STATUS_OK, sent);
	if (c->done == c->xfer_len) {
		ms->state = BOT_CSW;
		if (c->done < c->host_len)
			halt_in(ms); /* case 5: less than asked, then STALL */
	}
}

static void send_csw(struct storage *ms, struct pvusb_xfer *x)
{
	uint8_t csw[CSW_LEN];
	put_le32(csw, CSW_SIGNATURE);
	put_le32(csw + 4, ms->cmd.tag);
	put_le32(csw + 8, ms->cmd.host_len - ms->cmd.relevant);
	csw[12] = ms->cmd.status;
	ms->state = BOT_CBW;
	if (x->length < CSW_LEN) { /* the 13-byte packet overflows the buffer */
		uint32_t n = (uint32_t)pvusb_xfer_copy_to(x, 0, csw, x->length);
		emul_complete(&ms->e, x, USBIF_STATUS_BABBLE, n);
		return;
	}
	emul_complete(&ms->e, x, USBIF_STATUS_OK, (uint32_t)pvusb_xfer_copy_to(x, 0, csw, CSW_LEN));
}

/* Serve waiting IN transfers, oldest first, while there is something to send. */
static void serve_parked(struct storage *ms)
{
	while (ms->nparked > 0) {
		if (ms->e.halted & halt_bit(MS_EP_IN)) {
			park_flush(ms, USBIF_STATUS_STALL);
			return;
		}
		if (ms->state != BOT_DATA_IN && ms->state != BOT_CSW)
			return; /* nothing to send yet: keep waiting (NAK) */
		/* off the queue before serving: serving may halt and flush it */
		struct pvusb_xfer *x = ms->parked[0];
		park_remove(ms, 0);
		if (ms->state == BOT_DATA_IN)
			send_data(ms, x);
		else
			send_csw(ms, x);
	}
}

/* ---- class hooks ---- */

static int ms_transfer(struct emul_dev *e, struct pvusb_xfer *x)
{
	struct storage *ms = to_ms(e);
	if (x->in) {
		if (ms->nparked == PARK_MAX) {
			pvusb_log_once(&ms->log_mask, LOG_PARK_FULL, PVUSB_LOG_WARN,
				       "storage: more than %u bulk IN transfers waiting (logged once)", PARK_MAX);
			return USBIF_STATUS_INVAL;
		}
		ms->parked[ms->nparked++] = x;
	} else {
		switch (ms->state) {
		case BOT_CBW:
			take_cbw(ms, x);
			break;
		case BOT_DATA_OUT:
			take_data(ms, x);
			break;
		default: /* a CBW before the CSW was read is not valid (BOT 6.2.1) */
			emul_complete(e, x, USBIF_STATUS_OK, x->length);
			stall_both(ms, "bulk OUT data outside a command's data phase");
			break;
		}
	}
	serve_parked(ms);
	return 0;
}

static void ms_cancel(struct emul_dev *e, struct pvusb_xfer *x)
{
	struct storage *ms = to_ms(e);
	for (unsigned i = 0; i < ms->nparked; i++) {
		if (ms->parked[i] == x) {
			park_remove(ms, i);
			emul_complete(e, x, USBIF_STATUS_CONNRESET, 0);
			return;
		}
	}
}

/* Back to waiting for a CBW, halts untouched (BOT 3.1). */
static void bot_reset(struct storage *ms)
{
	memset(&ms->cmd, 0, sizeof(ms->cmd));
	ms->state = BOT_CBW;
}

static int ms_control(struct emul_dev *e, const uint8_t setup[8], uint8_t *data, uint16_t len)
{
	struct storage *ms = to_ms(e);
	uint16_t value = usbif_le16(setup + 2), index = usbif_le16(setup + 4);
	uint16_t wlength = usbif_le16(setup + 6);
	if (e->config == 0 || value != 0 || index != MS_INTERFACE)
		return USBIF_STATUS_STALL;
	if (setup[0] == 0x21 && setup[1] == REQ_BOMS_RESET && wlength == 0) {
		bot_reset(ms);
		return 0;
	}
	if (setup[0] == 0xa1 && setup[1] == REQ_GET_MAX_LUN && len >= 1) {
		data[0] = 0; /* one LUN */
		return 1;
	}
	return USBIF_STATUS_STALL;
}

/* Configuration, alternate setting or port reset: endpoints start afresh. */
static void ms_configured(struct emul_dev *e)
{
	struct storage *ms = to_ms(e);
	park_flush(ms, USBIF_STATUS_SHUTDOWN);
	bot_reset(ms);
	set_sense(ms, SK_NO_SENSE, 0, 0);
}

/* BOT 6.6.1: the halts of an invalid CBW outlive CLEAR_FEATURE until the
 * Bulk-Only Mass Storage Reset; put the one just cleared back. */
static void ms_halt_cleared(struct emul_dev *e, uint8_t ep)
{
	struct storage *ms = to_ms(e);
	if (ms->state == BOT_STALLED)
		e->halted |= halt_bit(ep);
}

static void ms_destroy(struct emul_dev *e)
{
	struct storage *ms = to_ms(e);
	if (ms->fd >= 0)
		close(ms->fd);
	ms->fd = -1;
}

static const struct emul_class_ops ms_ops = {
	.control = ms_control,
	.transfer = ms_transfer,
	.cancel = ms_cancel,
	.configured = ms_configured,
	.halt_cleared = ms_halt_cleared,
	.destroy = ms_destroy,
};

/* ---- opening ---- */

/* Open the image read-write if allowed, else read-only (write protected). */
static int open_image(const char *path, bool *read_only, char *err, size_t errlen)
{
	int fd = -1;
	if (!*read_only) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
			log_warn("storage: %s is not writable (%s); the guest sees it write-protected",
				 path, strerror(errno));
			*read_only = true;
		}
	}
	if (fd < 0 && *read_only)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		snprintf(err, errlen, "storage: cannot open image %s: %s", path, strerror(errno));
		return rc;
	}
	/* Two writers on one image corrupt its file system: one device per
	 * image, shared only read-only. */
	if (flock(fd, (*read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, errlen, "storage: image %s is in use by another device (%s); "
			 "detach it there or add ,ro to both", path, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

/* The image size in bytes: a regular file or a block device. */
static int image_size(int fd, const char *path, uint64_t *size, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "storage: cannot stat image %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(err, errlen, "storage: %s is not a regular file or block device", path);
		return -EINVAL;
	}
	off_t end = S_ISREG(st.st_mode) ? st.st_size : lseek(fd, 0, SEEK_END);
	if (end <= 0 || end % BLOCK_SIZE != 0) {
		snprintf(err, errlen, "storage: image %s is %lld bytes; it must be a non-zero multiple "
			 "of %u (try: truncate -s 64M %s)", path, (long long)end, BLOCK_SIZE, path);
		return -EINVAL;
	}
	*size = (uint64_t)end;
	return 0;
}

/* Split "<path>[,ro]". */
static int parse_opts(const char *opts, char *path, size_t pathlen, bool *read_only, char *err,
		      size_t errlen)
{
	if (!opts || !*opts) {
		snprintf(err, errlen, "storage needs an image file: storage:<path>");
		return -EINVAL;
	}
	size_t n = strlen(opts);
	*read_only = n > 3 && strcmp(opts + n - 3, ",ro") == 0;
	if (*read_only)
		n -= 3;
	if (n >= pathlen) {
		snprintf(err, errlen, "storage: image path is too long (%zu bytes)", n);
		return -ENAMETOOLONG;
	}
	memcpy(path, opts, n);
	path[n] = '\0';
	return 0;
}

int emul_storage_open(const char *opts, struct pvusb_dev **out, char *err, size_t errlen)
{
	char path[PATH_MAX];
	bool read_only;
	uint64_t size = 0;
	int rc = parse_opts(opts, path, sizeof(path), &read_only, err, errlen);
	if (rc < 0)
		return rc;
	int fd = open_image(path, &read_only, err, errlen);
	if (fd < 0)
		return fd;
	rc = image_size(fd, path, &size, err, errlen);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	struct storage *ms = calloc(1, sizeof(*ms));
	if (!ms) {
		close(fd);
		snprintf(err, errlen, "storage: out of memory");
		return -ENOMEM;
	}
	ms->fd = fd;
	ms->read_only = read_only;
	ms->nblocks = size >> BLOCK_SHIFT;
	memcpy(ms->qualifier, ms_qualifier, sizeof(ms_qualifier));
	emul_init(&ms->e, &ms_ops, ms_dev_desc, ms_config, ms_strings,
		  sizeof(ms_strings) / sizeof(ms_strings[0]));
	ms->e.qualifier = ms->qualifier;
	ms->e.cls_priv = ms;
	ms->e.base.speed = USBIF_SPEED_HIGH;
	snprintf(ms->e.base.name, sizeof(ms->e.base.name), "storage");
	const char *base = strrchr(path, '/');
	snprintf(ms->e.base.desc, sizeof(ms->e.base.desc), "pvusb Mass Storage (%.64s, %llu MiB%s)",
		 base ? base + 1 : path, (unsigned long long)(size >> 20), read_only ? ", read-only" : "");
	*out = &ms->e.base;
	return 0;
}
