/*
 * Makes LeakSanitizer fail a Criterion test. LSan normally reports at process exit, after
 * Criterion has already counted the test as passed; this hook runs a leak check at the end
 * of each test, inside the test's own worker process, and aborts on a leak, which Criterion
 * then reports as a crash. Linked into every unit test binary; a no-op without ASan.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define DC_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DC_HAVE_LSAN 1
#endif
#endif

#ifdef DC_HAVE_LSAN
#include <sanitizer/lsan_interface.h>

ReportHook(POST_FINI)(struct criterion_test_stats *stats)
{
    (void)stats;
    if (__lsan_do_recoverable_leak_check())
        abort();
}
#endif
