/* SPDX-License-Identifier: MIT */
/* Opening a device by the name a user gives. Emulated kinds are built in;
 * host devices come from the libusb back-end when it is compiled in. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dev/emul.h"
#include "pvusb/core.h"

typedef int (*emul_open_fn)(const char *opts, struct pvusb_dev **out, char *err, size_t errlen);

static const struct {
	const char *kind;
	emul_open_fn open;
	const char *what;
} emulated[] = {
	{"sourcesink", emul_sourcesink_open, "source/sink test device"},
	{"tablet", emul_tablet_open, "HID tablet"},
	{"keyboard", emul_keyboard_open, "HID keyboard"},
	{"storage", emul_storage_open, "mass storage"},
};

#ifdef PVUSB_HAVE_LIBUSB
int pvusb_libusb_open(const char *name, struct pvusb_dev **out, char *err, size_t errlen);
#endif

int pvusb_dev_open(const char *name, struct pvusb_dev **out, char *err, size_t errlen)
{
	size_t klen = strcspn(name, ":");
	for (size_t i = 0; i < sizeof(emulated) / sizeof(emulated[0]); i++) {
		if (strlen(emulated[i].kind) != klen || strncmp(name, emulated[i].kind, klen) != 0)
			continue;
		const char *opts = name[klen] == ':' ? name + klen + 1 : NULL;
		int rc = emulated[i].open(opts, out, err, errlen);
		if (rc == 0) {
			snprintf((*out)->name, sizeof((*out)->name), "%s", name);
			if (!(*out)->desc[0])
				snprintf((*out)->desc, sizeof((*out)->desc), "pvusb %s", emulated[i].what);
		}
		return rc;
	}
#ifdef PVUSB_HAVE_LIBUSB
	return pvusb_libusb_open(name, out, err, errlen);
#else
	snprintf(err, errlen,
		 "unknown device '%s': expected sourcesink, tablet, keyboard or storage:<image> "
		 "(host devices need the libusb back-end)", name);
	return -ENOENT;
#endif
}
