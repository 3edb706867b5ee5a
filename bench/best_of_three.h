/*
 * best_of_three - the measuring loop bench/dmime and bench/client share.
 *
 * MEASURE(result, min, body) runs body in three rounds of a third of `budget` seconds each
 * (at least min times a round) and keeps the best round's runs per second: the build
 * machine is shared, and the best round is the one least disturbed by other work, for the
 * measured code and its floor alike. The including file defines `static double budget` and
 * `static double now(void)` (its clock) before including this.
 */
#ifndef BENCH_BEST_OF_THREE_H
#define BENCH_BEST_OF_THREE_H

#define MEASURE(result, min, body)                                                            \
    do {                                                                                      \
        (result) = 0;                                                                         \
        for (int r_ = 0; r_ < 3; r_++) {                                                      \
            unsigned long n_ = 0;                                                             \
            double t0_ = now(), t_;                                                           \
            do {                                                                              \
                body;                                                                         \
                n_++;                                                                         \
            } while ((t_ = now() - t0_) < budget / 3 || n_ < (min));                          \
            if ((double)n_ / t_ > (result))                                                   \
                (result) = (double)n_ / t_;                                                   \
        }                                                                                     \
    } while (0)

#endif
