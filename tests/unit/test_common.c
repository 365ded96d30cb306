/*
 * test_common.c - the shared helpers of src/common/: the growable buffer,
 * the monotonic clock and the host memory figures.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/meminfo.h"
#include "harness.h"

TEST(buf_appends_and_stays_a_c_string)
{
    wisp_buf b = WISP_BUF_INIT;
    CHECK(b.data == NULL);
    /* An empty append still gives a valid empty string. */
    REQUIRE(wisp_buf_append(&b, "", 0) == 0);
    REQUIRE(b.data != NULL);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_STR(b.data, "");
    REQUIRE(wisp_buf_append_str(&b, "hello") == 0);
    REQUIRE(wisp_buf_append(&b, ", world!!", 7) == 0);
    CHECK_EQ_INT(b.len, 12);
    CHECK_EQ_STR(b.data, "hello, world");
    /* Growth across several doublings keeps every byte and the NUL. */
    char chunk[100];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 50; i++)
        REQUIRE(wisp_buf_append(&b, chunk, sizeof chunk) == 0);
    CHECK_EQ_INT(b.len, 12 + 5000);
    CHECK(b.cap > b.len);
    CHECK(b.data[b.len] == '\0');
    CHECK(memcmp(b.data, "hello, worldxxx", 15) == 0);
    wisp_buf_clear(&b);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_STR(b.data, "");
    wisp_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

TEST(buf_reserve_leaves_room_for_the_nul)
{
    wisp_buf b = WISP_BUF_INIT;
    REQUIRE(wisp_buf_reserve(&b, 256) == 0);
    CHECK(b.cap >= 257);
    size_t cap = b.cap;
    REQUIRE(wisp_buf_append(&b, NULL, 0) == 0);
    CHECK_EQ_INT(b.cap, cap);
    CHECK(wisp_buf_reserve(&b, (size_t)-1 / 2) == WISP_E_NOMEM);
    CHECK_EQ_INT(b.cap, cap);
    wisp_buf_free(&b);
}

TEST(clock_is_monotonic_milliseconds)
{
    double a = wisp_now_ms();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    double b = wisp_now_ms();
    CHECK(b >= a + 19.0);
    /* Not a wall clock: far from the epoch's 1.7e12 ms. */
    CHECK(b < 1e12);
}

TEST(meminfo_reports_the_machine)
{
    uint64_t total = wisp_mem_total(), avail = wisp_mem_available();
    CHECK(total > (uint64_t)64 << 20);
    CHECK(avail > 0);
    CHECK(avail <= total);
}
