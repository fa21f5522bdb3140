/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

int pvusb_log_threshold = PVUSB_LOG_INFO;

static const char *level_name(int level)
{
	switch (level) {
	case PVUSB_LOG_ERR: return "error";
	case PVUSB_LOG_WARN: return "warning";
	case PVUSB_LOG_INFO: return "info";
	default: return "debug";
	}
}

static void vlog(int level, const char *fmt, va_list ap)
{
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	/* "<N>" prefixes are what journald reads as the priority */
	fprintf(stderr, "<%d>pvusb %s: %s\n", level, level_name(level), line);
}

void pvusb_log(int level, const char *fmt, ...)
{
	if (level > pvusb_log_threshold)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

void pvusb_log_once(uint64_t *mask, unsigned key, int level, const char *fmt, ...)
{
	uint64_t bit = 1ull << (key & 63);
	if (__atomic_fetch_or(mask, bit, __ATOMIC_RELAXED) & bit)
		return;
	if (level > pvusb_log_threshold)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}
