/* SPDX-License-Identifier: MIT */
/*
 * The ring journal: how far a controller's urb ring got, kept where it
 * outlives the process (a small file mapped MAP_SHARED: the page cache
 * survives kill -9), so that a restarted backend can take over a frontend's
 * rings and answer every request exactly once (design.md 1, invariant).
 *
 * Why the ring alone cannot tell: responses complete out of order and each
 * is written into the slot of the oldest unanswered request index, so the
 * requests a dead process had taken but not answered are overwritten, and
 * the ids still in flight are unknowable from the shared page.
 *
 * The record holds:
 *  - one 64-bit word packing Q (responses written into the ring, published
 *    or not; equals the core's rsp_prod_pvt) and C (requests accounted for:
 *    taken into a slot or answered at once; equals req_cons), changed only
 *    by atomic compare-and-swap, so the pair is always consistent;
 *  - one 64-bit entry per core slot (USB_URB_RING_SIZE): FREE, TAKING or
 *    TAKEN {id, request index}, or ANSWERED {id, response index}, each
 *    written with one atomic store. TAKING and ANSWERED last only across one
 *    operation, so their index is within one of C or Q; a TAKEN request may
 *    stay in flight for ever (an interrupt URB), so its index says nothing.
 * Every operation below is a fixed order of such stores, chosen so that a
 * crash between any two of them leaves a record pvusb_journal_takeover()
 * repairs: see the comment above each. Hot-path cost: one or two atomic
 * stores and one CAS into the mapped page, no syscall, no fsync.
 *
 * Only the xen side of pvusbd uses it (a local frontend dies with its
 * connection); a controller without one (NULL) behaves as before.
 *
 * Threads: take runs on the controller's service thread (the only one that
 * advances C); answered and answer_now run under the controller's rsp_lock
 * (the only place Q advances). create/open/takeover/close run while the
 * record is attached to no controller.
 */
#ifndef PVUSB_CORE_JOURNAL_H
#define PVUSB_CORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pvusb_ring_journal;

/* Which rings a record describes. A takeover trusts only a record of the
 * very same rings: same frontend domain and controller, same ring grants
 * and the frontend's same event-channel port, and the same ring page: a
 * frontend that reconnects (xen-hcd reloaded while no pvusbd ran) often gets
 * the same grant references and port again, so a random tag is also written
 * into the urb ring page's header padding (bytes 56-63, which the frontend
 * zeroes when it sets a ring up and never reads). */
struct pvusb_journal_ident {
	uint32_t domid, devid, urb_ref, conn_ref, evtchn;
};

/*
 * A new record for the urb ring page `urb_ring` just connected (or taken
 * over with nothing unanswered), replacing any record at `path` (its
 * directory is created 0700 when missing; the file is 0600). Both positions
 * start at the ring's rsp_prod (0 on fresh rings); the ring page gets the
 * record's tag. The record is complete before its magic is written, so a
 * crash here leaves either no file or one open() rejects. err says why on
 * failure.
 */
int pvusb_journal_create(const char *path, const struct pvusb_journal_ident *id, void *urb_ring,
			 struct pvusb_ring_journal **out, char *err, size_t errlen);

/*
 * The record an earlier process left at `path`: -ENOENT none, -ESTALE a
 * record of other rings (or another controller), -EPROTO a file that is not
 * a complete record of this version; 0 and *out otherwise. The contents are
 * checked only by pvusb_journal_takeover().
 */
int pvusb_journal_open(const char *path, const struct pvusb_journal_ident *id,
		       struct pvusb_ring_journal **out, char *err, size_t errlen);

struct pvusb_journal_result {
	unsigned answered;  /* requests in flight in the dead process, now answered -ESHUTDOWN */
	unsigned completed; /* a response written but not yet counted when it died (0 or 1) */
	unsigned published; /* responses made visible to the frontend (rsp_prod moved by) */
	bool notify;        /* the frontend asked for an event (A.4) */
};

/*
 * Take over the urb ring page `urb_ring` of the rings the record describes.
 * -ESTALE, nothing written, when the page does not carry the record's tag
 * (the frontend set its rings up afresh since). Otherwise reads the record
 * and the ring's req_prod/rsp_prod once each and checks
 * all of it before writing anything: a value that cannot be right (the
 * record marked broken, positions out of their windows, an entry that is
 * not one of the three states, duplicate ids in flight, rsp_prod not within
 * N below Q, req_prod not within [C, Q + N]) gives -EPROTO and changes
 * nothing; the rings are then to be abandoned. Otherwise:
 *  - a response written but not counted (ANSWERED at index Q) is counted;
 *  - a slot taken but not counted (TAKING at index C) is dropped: request C
 *    is still intact in the ring and is taken again;
 *  - every request in flight (TAKEN, or TAKING at C - 1) is answered
 *    USBIF_STATUS_SHUTDOWN,
 *    its usbfs/device transfer and grant maps having died with the process,
 *    through the same store order as a completion, so a crash during the
 *    takeover is itself taken over;
 *  - rsp_prod is published as Q: responses written before the crash are
 *    complete in the ring.
 * Afterwards Q == C, every entry is FREE and the core carries on from
 * pvusb_journal_positions(). Requests in [C, req_prod) are still intact in
 * the ring (the frontend cannot reuse a slot before consuming its
 * response), so nothing the frontend asked for is lost.
 */
int pvusb_journal_takeover(struct pvusb_ring_journal *j, void *urb_ring,
			   struct pvusb_journal_result *res, char *err, size_t errlen);

/* Q (rsp_prod_pvt) and C (req_cons) to carry on from. */
void pvusb_journal_positions(const struct pvusb_ring_journal *j, uint32_t *rsp, uint32_t *req);

/* Unmap and close; with `remove`, delete the file too (a normal disconnect:
 * nobody will take these rings over). */
void pvusb_journal_close(struct pvusb_ring_journal *j, bool remove);

/* The record: one page, the layout below (the unit test reads and breaks
 * it). Entries: bits 0-15 the request id, 16-23 the state, 24-31 zero,
 * 32-63 a ring index (the request's while TAKING/TAKEN, the response's
 * once ANSWERED); FREE is all zero. */
#define PVUSB_JOURNAL_MAGIC 0x314a52425355565bull /* "[VUSBRJ1", written last */
#define PVUSB_JOURNAL_VERSION 1u
#define PVUSB_JOURNAL_BYTES 4096u
#define PVUSB_JOURNAL_BROKEN 1u /* flags: never take these rings over */
#define PVUSB_JOURNAL_SLOTS 16u /* USB_URB_RING_SIZE */
enum { PVUSB_JE_FREE = 0, PVUSB_JE_TAKEN = 1, PVUSB_JE_ANSWERED = 2, PVUSB_JE_TAKING = 3 };

struct pvusb_ring_record {
	uint64_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_slots;
	struct pvusb_journal_ident id;
	uint64_t pos; /* Q << 32 | C */
	uint64_t entry[PVUSB_JOURNAL_SLOTS];
	uint64_t ring_tag; /* also in the urb ring header at PVUSB_JOURNAL_TAG_OFFSET */
};
#define PVUSB_JOURNAL_TAG_OFFSET 56u

/* ---- the hot path (src/core/urb.c) ---- */

/*
 * Request `req_idx` was taken into core slot `slot` with id `id`.
 * Stores: entry = TAKING{id, req_idx}; C += 1; entry = TAKEN{id, req_idx}.
 * Crash before C moved: TAKING at index C, not counted: the takeover drops
 * the entry and takes request C again from the ring (its slot is intact:
 * responses are only written at indexes below C). After: TAKING at C - 1
 * or TAKEN: in flight.
 */
void pvusb_journal_take(struct pvusb_ring_journal *j, unsigned slot, uint16_t id, uint32_t req_idx);

/*
 * Slot `slot`'s response was written into the ring at index `rsp_idx` (== Q).
 * Call after the response's content is in the ring. Stores: entry =
 * ANSWERED{id, rsp_idx}; Q += 1; entry = FREE.
 * Crash before the first: still TAKEN: answered -ESHUTDOWN at the takeover,
 * at index Q, over the half-written response. Between the first two:
 * ANSWERED at index Q: the response is complete, the takeover counts it.
 * After the second: ANSWERED below Q: counted already, just freed.
 */
void pvusb_journal_answered(struct pvusb_ring_journal *j, unsigned slot, uint32_t rsp_idx);

/*
 * Request `req_idx` (== C) was answered at once (refused, unlink,
 * SET_ADDRESS) at ring index `rsp_idx` (== Q), its content already written.
 * Store: Q += 1 and C += 1 in one CAS.
 * Crash before: the request is taken again at the takeover and answered
 * again, at the same index, over the uncounted response: still one answer.
 * (When Q == C the response overwrote the request's own slot; read again,
 * it is refused as malformed with the same id: still one answer.)
 */
void pvusb_journal_answer_now(struct pvusb_ring_journal *j, uint32_t req_idx, uint32_t rsp_idx);

/* The frontend broke the protocol and the rings are abandoned: no takeover
 * may trust this record any more. Also set by the operations above when an
 * index is not what the record expects (a bug: logged once). */
void pvusb_journal_set_broken(struct pvusb_ring_journal *j);

#ifdef PVUSB_JOURNAL_TEST
/* Unit tests only (tests/unit/test_journal.c builds journal.c with
 * PVUSB_JOURNAL_TEST): called between every two stores to the record or
 * the ring, where a kill -9 could fall; and the mapped record page. */
extern void (*pvusb_journal_test_step)(void);
struct pvusb_ring_record *pvusb_journal_test_record(struct pvusb_ring_journal *j);
#endif

#endif
