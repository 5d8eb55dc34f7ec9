/* A fixed-delay HTTP endpoint with a microsecond clock, for benchmarks/harness_overhead.py.
 *
 *   gcc -O2 -o delay_endpoint delay_endpoint.c && ./delay_endpoint PORT DELAY_US
 *
 * nginx's echo_sleep runs on nginx's millisecond clock, so its delay moves by up to a millisecond
 * with the pattern in which requests arrive; a load generator that spaces its requests differently
 * then sees a different server. This one answers /delay exactly DELAY_US after the request arrived
 * (CLOCK_MONOTONIC, one timerfd), /fast and anything else at once. One thread, epoll, keep-alive,
 * GET requests without bodies only, on 127.0.0.1 only.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_PENDING (1 << 16)
static const char ANSWER[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n";

/* Every request waits the same time, so answers fall due in arrival order: a ring, not a heap. */
static struct { int fd; int64_t due_ns; } pending[MAX_PENDING];
static unsigned head, tail;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void arm(int timer, int64_t due_ns) {
    struct itimerspec when = {{0, 0}, {due_ns / 1000000000, due_ns % 1000000000}};
    timerfd_settime(timer, TFD_TIMER_ABSTIME, &when, NULL);
}

static void answer(int fd) {
    if (write(fd, ANSWER, sizeof ANSWER - 1) < 0) close(fd);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s PORT DELAY_US\n", argv[0]); return 2; }
    int64_t delay_ns = atoll(argv[2]) * 1000;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 4096)) {
        perror("bind/listen");
        return 1;
    }
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), events = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(events, EPOLL_CTL_ADD, listener, &event);
    event.data.fd = timer;
    epoll_ctl(events, EPOLL_CTL_ADD, timer, &event);
    struct epoll_event ready[256];
    char buffer[8192];
    for (;;) {
        int n = epoll_wait(events, ready, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd == listener) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(events, EPOLL_CTL_ADD, client, &e);
                }
            } else if (fd == timer) {
                uint64_t expirations;
                if (read(timer, &expirations, sizeof expirations) < 0 && errno != EAGAIN) return 1;
                int64_t now = now_ns();
                while (head != tail && pending[head % MAX_PENDING].due_ns <= now) answer(pending[head++ % MAX_PENDING].fd);
                if (head != tail) arm(timer, pending[head % MAX_PENDING].due_ns);
            } else {
                ssize_t got = read(fd, buffer, sizeof buffer - 1);
                if (got <= 0) { close(fd); continue; }
                buffer[got] = 0;
                int64_t arrived = now_ns();
                /* one request per read: the load generators here never pipeline */
                if (strncmp(buffer, "GET /delay", 10) == 0 && tail - head < MAX_PENDING) {
                    if (head == tail) arm(timer, arrived + delay_ns);
                    pending[tail % MAX_PENDING].fd = fd;
                    pending[tail++ % MAX_PENDING].due_ns = arrived + delay_ns;
                } else {
                    answer(fd);
                }
            }
        }
    }
}
