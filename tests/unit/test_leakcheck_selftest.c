/* Run only by hand: proves that leakcheck.c turns a leak into a failure under ASan.
 *   meson test -C build-san --setup san --suite selftest   (expected to FAIL) */
#include <criterion/criterion.h>
#include <stdlib.h>

Test(leakcheck, leaks_on_purpose)
{
    volatile char *p = malloc(100);
    p[0] = 1;
    p = NULL;
    cr_assert(1);
}
