/* SPDX-License-Identifier: MIT */
/* The unit tests' checks: count, and say where a failed one stands. Each
 * test prints "<name>: N passed, M failed" last (scripts/test.sh sums it). */
#ifndef PVUSB_TEST_CHECK_H
#define PVUSB_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int passed, failed;

static inline void check_report(bool ok, const char *file, int line, const char *what)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
}

/* CHECK(cond) or CHECK(cond, "what it means") */
#define CHECK(...) check_report(CHECK_COND_(__VA_ARGS__, 0), __FILE__, __LINE__, #__VA_ARGS__)
#define CHECK_COND_(c, ...) ((c) ? true : false)

#define CHECK_EQ(a, b)                                                                   \
	do {                                                                             \
		long long a_ = (long long)(a), b_ = (long long)(b);                      \
		if (a_ == b_) {                                                          \
			passed++;                                                        \
		} else {                                                                 \
			failed++;                                                        \
			fprintf(stderr, "%s:%d: FAILED: %s == %s (%lld != %lld)\n", __FILE__, \
				__LINE__, #a, #b, a_, b_);                               \
		}                                                                        \
	} while (0)

#define CHECK_STR(a, b)                                                                  \
	do {                                                                             \
		if (strcmp((a), (b)) == 0) {                                             \
			passed++;                                                        \
		} else {                                                                 \
			failed++;                                                        \
			fprintf(stderr, "%s:%d: FAILED: \"%s\" == \"%s\"\n", __FILE__, __LINE__, \
				(a), (b));                                               \
		}                                                                        \
	} while (0)

#endif
