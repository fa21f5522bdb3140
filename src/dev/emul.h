/* SPDX-License-Identifier: MIT */
/*
 * The shared machinery of emulated devices: standard requests answered from
 * descriptor tables (GET_DESCRIPTOR, SET/GET_CONFIGURATION, SET/GET_INTERFACE,
 * GET_STATUS, SET/CLEAR_FEATURE with endpoint halt), endpoint checks, and a
 * lock. A device class supplies descriptors and a small table of hooks.
 */
#ifndef PVUSB_DEV_EMUL_H
#define PVUSB_DEV_EMUL_H

#include <pthread.h>

#include "pvusb/device.h"

#define EMUL_MAX_INTERFACES 8
#define EMUL_CTRL_MAX 4096 /* largest control data stage an emulated device takes */

struct emul_dev;

/* Hooks of one device class. Every hook is called with e->lock held, from
 * the controller's service thread, except where noted. */
struct emul_class_ops {
	/*
	 * control: a class or vendor request, or a standard GET_DESCRIPTOR of a
	 * type the framework does not know (HID report descriptor). For IN
	 * requests write at most `len` bytes into `data` and return the count;
	 * for OUT requests `data` holds the `len` bytes of the data stage and
	 * the return is 0. Return USBIF_STATUS_STALL to refuse the request.
	 */
	int (*control)(struct emul_dev *e, const uint8_t setup[8], uint8_t *data, uint16_t len);

	/*
	 * transfer: a bulk, interrupt or isochronous transfer on an endpoint
	 * of the active configuration that is not halted. Same contract as
	 * pvusb_dev_ops.submit: return 0 and complete the transfer exactly once
	 * (emul_complete() may be called here, with the lock held), or return
	 * a negative status without completing. A transfer that must wait (an
	 * interrupt IN with nothing to report) is kept by the class, which
	 * completes it later with emul_complete() from another thread.
	 */
	int (*transfer)(struct emul_dev *e, struct pvusb_xfer *x);

	/* cancel: end a transfer the class is keeping, with
	 * USBIF_STATUS_CONNRESET. Harmless when it is not kept. May be NULL
	 * when the class never keeps transfers. */
	void (*cancel)(struct emul_dev *e, struct pvusb_xfer *x);

	/* configured: the active configuration or an alternate setting
	 * changed (also called with config 0 on reset). May be NULL. */
	void (*configured)(struct emul_dev *e);

	/* halt_cleared: CLEAR_FEATURE(ENDPOINT_HALT) on endpoint address
	 * `ep` (bit 7 = IN). Mass storage uses it to leave a phase error.
	 * May be NULL. */
	void (*halt_cleared)(struct emul_dev *e, uint8_t ep);

	/* destroy: free the class's state (not `e` itself). Called without
	 * the lock, once, after every transfer has completed. */
	void (*destroy)(struct emul_dev *e);
};

struct emul_dev {
	struct pvusb_dev base; /* first: a struct pvusb_dev * is a struct emul_dev * */
	const struct emul_class_ops *cls;
	pthread_mutex_t lock;

	const uint8_t *dev_desc;    /* 18 bytes */
	const uint8_t *config_desc; /* the one configuration, wTotalLength bytes */
	const uint8_t *qualifier;   /* device qualifier (high-speed devices), or NULL */
	const char *const *strings; /* strings[0] is string index 1 */
	unsigned nstrings;

	uint8_t config;                     /* 0 = unconfigured */
	uint8_t alt[EMUL_MAX_INTERFACES];   /* current alternate setting per interface */
	uint32_t halted;                    /* bit (ep + (IN ? 16 : 0)) */
	bool remote_wakeup;

	void *cls_priv; /* the class's own state */
};

/* Fill the common fields and the pvusb_dev part from the descriptors; the
 * caller then sets cls, cls_priv, base.speed and base.name. */
void emul_init(struct emul_dev *e, const struct emul_class_ops *cls, const uint8_t *dev_desc,
	       const uint8_t *config_desc, const char *const *strings, unsigned nstrings);

/* The operations table every emulated device uses. */
extern const struct pvusb_dev_ops emul_dev_ops;

/* Endpoint descriptor of address `ep` (bit 7 = IN) in the active
 * configuration and alternate settings, or NULL. Lock held. */
const uint8_t *emul_find_endpoint(const struct emul_dev *e, uint8_t ep);
uint16_t emul_ep_maxpacket(const struct emul_dev *e, uint8_t ep);

/* Complete a transfer with a status and length. Callable with or without
 * e->lock held, from any thread: it ends in pvusb_xfer_complete(), which
 * never calls back into the device. */
void emul_complete(struct emul_dev *e, struct pvusb_xfer *x, int32_t status, uint32_t actual);

/* A microframe counter (125 us units) for isochronous start frames. */
uint32_t emul_frame_number(void);

/* Constructors, one per emulated device kind. `opts` is what followed the
 * first ':' in the device name, or NULL. Return 0 or a negative errno, with
 * a one-line reason in err (size errlen) for the user. */
int emul_sourcesink_open(const char *opts, struct pvusb_dev **out, char *err, size_t errlen);
int emul_tablet_open(const char *opts, struct pvusb_dev **out, char *err, size_t errlen);
int emul_keyboard_open(const char *opts, struct pvusb_dev **out, char *err, size_t errlen);
int emul_storage_open(const char *opts, struct pvusb_dev **out, char *err, size_t errlen);

/* HID input, for the demo, tests and the control socket. Thread-safe.
 * Tablet: absolute position 0..32767 on both axes, buttons bit 0..2,
 * wheel. Keyboard: a boot-protocol report (modifiers, up to 6 usages). */
int emul_tablet_input(struct pvusb_dev *d, uint16_t x, uint16_t y, uint8_t buttons, int8_t wheel);
int emul_keyboard_input(struct pvusb_dev *d, uint8_t modifiers, const uint8_t keys[6]);

#endif
