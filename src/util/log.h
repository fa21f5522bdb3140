/* SPDX-License-Identifier: MIT */
/* Leveled logging to stderr. Debug messages compile to nothing unless
 * PVUSB_DEBUG is defined, so the URB path pays nothing for them. */
#ifndef PVUSB_LOG_H
#define PVUSB_LOG_H

#include <stdint.h>

enum pvusb_log_level { PVUSB_LOG_ERR = 3, PVUSB_LOG_WARN = 4, PVUSB_LOG_INFO = 6, PVUSB_LOG_DEBUG = 7 };

extern int pvusb_log_threshold; /* messages above it are dropped; default INFO */

void pvusb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Log at most once per `key` bit set in *mask: for refused guest requests,
 * so a hostile guest cannot flood the log (once per cause and controller). */
void pvusb_log_once(uint64_t *mask, unsigned key, int level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_err(...) pvusb_log(PVUSB_LOG_ERR, __VA_ARGS__)
#define log_warn(...) pvusb_log(PVUSB_LOG_WARN, __VA_ARGS__)
#define log_info(...) pvusb_log(PVUSB_LOG_INFO, __VA_ARGS__)
#ifdef PVUSB_DEBUG
#define log_debug(...) pvusb_log(PVUSB_LOG_DEBUG, __VA_ARGS__)
#else
#define log_debug(...) ((void)0)
#endif

#endif
