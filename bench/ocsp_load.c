/* bench/ocsp_load.c: the OCSP load client of bench/ocsp.py (built and driven by bench/ocsp_load.py).
 *
 *   ocsp_load PORT BODIES CONCURRENCY close|keepalive OUT
 *
 * Sends every request of BODIES (records: 4-byte big-endian length, then that many bytes of
 * DER) exactly once, in file order, as HTTP/1.1 POSTs of application/ocsp-request to
 * 127.0.0.1:PORT, over CONCURRENCY connections at once, each sending its next request when
 * the answer to its last one has been read.  One epoll loop in one thread, so that the client
 * takes as little of the cores it shares with the responder as it can.
 *
 *   close      a new connection for every request, which says `Connection: close` (as
 *              `openssl ocsp` asks, and as openssl's responder answers: HTTP/1.0, then it
 *              closes); the latency runs from connect() to the answer's last byte.
 *   keepalive  HTTP/1.1 keep-alive: a connection is used again until the server closes it
 *              (then the next request opens a new one); the latency runs from the request's
 *              first byte written (or the connect, for a new connection) to the answer's last.
 *              A reused connection that the server closed before answering gets the request
 *              again on a new connection once (the usual client rule); the latency keeps
 *              counting from the first try.
 *
 * OUT gets, per request in the order the answers came: index, HTTP status (0: no answer:
 * connect, reset, timeout or a malformed HTTP answer), latency in microseconds, body length
 * (each a 4-byte big-endian number), then the body.  The last line on stdout is
 *
 *   RESULT requests=N errors=E connections=C elapsed_us=T
 *
 * with T from the first connect to the last answer.  Exit status 2 on bad arguments or files.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_US 30000000LL /* a request not answered in 30 s is an error */
#define MAX_ANSWER (1 << 20)

enum { IDLE, CONNECTING, WRITING, READING, DONE };

struct slot {
    int fd, state, req, retried, fresh;
    long long t0;
    size_t sent, rlen, rcap, header_len;
    long content_length; /* -1: until EOF */
    int status, server_closes;
    char *rbuf;
};

static char **reqs;     /* formatted HTTP requests */
static size_t *req_len;
static int n_reqs, next_req, keep_alive, epfd, errors, connections, finished;
static struct sockaddr_in addr;
static FILE *out;

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void put32(uint32_t v) {
    unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
    fwrite(b, 1, 4, out);
}

static void record(struct slot *s, int status, const char *body, size_t body_len) {
    long long latency = now_us() - s->t0;
    put32((uint32_t)s->req);
    put32((uint32_t)status);
    put32((uint32_t)(latency > 0xffffffffLL ? 0xffffffffLL : latency));
    put32((uint32_t)body_len);
    if (body_len) fwrite(body, 1, body_len, out);
    if (status == 0) errors++;
    finished++;
}

static void drop(struct slot *s) {
    if (s->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
}

static void watch(struct slot *s, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static int open_connection(struct slot *s) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connections++;
    s->fd = fd;
    s->fresh = 1;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) return -1;
    s->state = CONNECTING;
    return 0;
}

static void fail(struct slot *s);
static void on_writable(struct slot *s);

static void send_request(struct slot *s) {
    s->sent = s->rlen = s->header_len = 0;
    s->content_length = -1;
    s->status = 0;
    s->server_closes = 0;
    if (s->fd < 0) {
        if (open_connection(s) < 0) fail(s);
        return;
    }
    s->fresh = 0;
    s->state = WRITING;
    on_writable(s);
}

static void start_next(struct slot *s) {
    if (next_req >= n_reqs) {
        drop(s);
        s->state = DONE;
        return;
    }
    s->req = next_req++;
    s->retried = 0;
    s->t0 = now_us();
    send_request(s);
}

static void fail(struct slot *s) {
    /* a kept-alive connection closed by the server before any answer byte: once more on a new one */
    if (keep_alive && !s->fresh && !s->retried && s->rlen == 0) {
        drop(s);
        s->retried = 1;
        send_request(s);
        return;
    }
    drop(s);
    record(s, 0, NULL, 0);
    start_next(s);
}

static void on_writable(struct slot *s) {
    if (s->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            fail(s);
            return;
        }
        s->state = WRITING;
    }
    while (s->sent < req_len[s->req]) {
        ssize_t n = write(s->fd, reqs[s->req] + s->sent, req_len[s->req] - s->sent);
        if (n < 0) {
            if (errno == EAGAIN) {
                watch(s, EPOLLOUT);
                return;
            }
            fail(s);
            return;
        }
        s->sent += (size_t)n;
    }
    s->state = READING;
    watch(s, EPOLLIN | EPOLLRDHUP);
}

/* header value of `name` in the header block, or NULL */
static const char *header(const char *block, size_t len, const char *name, size_t *value_len) {
    size_t nl = strlen(name);
    const char *p = memchr(block, '\n', len);
    while (p && (size_t)(p - block) + 1 + nl < len) {
        const char *line = p + 1;
        const char *end = memchr(line, '\n', len - (size_t)(line - block));
        if (!end) break;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            const char *e = end;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ')) e--;
            *value_len = (size_t)(e - v);
            return v;
        }
        p = end;
    }
    return NULL;
}

static int parse_header(struct slot *s) {
    char *end = memmem(s->rbuf, s->rlen, "\r\n\r\n", 4);
    if (!end) return s->rlen > 65536 ? -1 : 0;
    s->header_len = (size_t)(end - s->rbuf) + 4;
    if (s->rlen < 12 || strncmp(s->rbuf, "HTTP/1.", 7) != 0) return -1;
    s->status = atoi(s->rbuf + 9);
    int http10 = s->rbuf[7] == '0';
    size_t vl;
    const char *v = header(s->rbuf, s->header_len, "content-length", &vl);
    s->content_length = v ? strtol(v, NULL, 10) : -1;
    if (s->content_length > MAX_ANSWER) return -1;
    v = header(s->rbuf, s->header_len, "connection", &vl);
    if (v && vl == 5 && strncasecmp(v, "close", 5) == 0) s->server_closes = 1;
    else if (http10 && !(v && vl == 10 && strncasecmp(v, "keep-alive", 10) == 0)) s->server_closes = 1;
    if (s->content_length < 0) s->server_closes = 1;
    return 1;
}

static void complete(struct slot *s) {
    record(s, s->status ? s->status : 0, s->rbuf + s->header_len, s->rlen - s->header_len);
    if (!keep_alive || s->server_closes) drop(s);
    start_next(s);
}

static void on_readable(struct slot *s) {
    for (;;) {
        if (s->rcap - s->rlen < 16384) {
            s->rcap *= 2;
            if (s->rcap > 2 * MAX_ANSWER || !(s->rbuf = realloc(s->rbuf, s->rcap))) {
                fprintf(stderr, "answer too large\n");
                exit(2);
            }
        }
        ssize_t n = read(s->fd, s->rbuf + s->rlen, s->rcap - s->rlen);
        if (n < 0) {
            if (errno == EAGAIN) return;
            fail(s);
            return;
        }
        if (n == 0) { /* EOF */
            if (s->header_len && s->content_length < 0) complete(s);
            else fail(s);
            return;
        }
        s->rlen += (size_t)n;
        if (!s->header_len) {
            int h = parse_header(s);
            if (h < 0) {
                fail(s);
                return;
            }
            if (h == 0) continue;
        }
        if (s->content_length >= 0 && s->rlen >= s->header_len + (size_t)s->content_length) {
            s->rlen = s->header_len + (size_t)s->content_length;
            complete(s);
            return;
        }
    }
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    fstat(fileno(f), &st);
    unsigned char *data = malloc((size_t)st.st_size + 1);
    *len = fread(data, 1, (size_t)st.st_size, f);
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s PORT BODIES CONCURRENCY close|keepalive OUT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), concurrency = atoi(argv[3]);
    keep_alive = strcmp(argv[4], "keepalive") == 0;
    if (port <= 0 || concurrency <= 0 || (!keep_alive && strcmp(argv[4], "close") != 0)) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    size_t len;
    unsigned char *data = read_file(argv[2], &len);
    if (!data) {
        perror(argv[2]);
        return 2;
    }
    size_t cap = 1024;
    reqs = malloc(cap * sizeof *reqs);
    req_len = malloc(cap * sizeof *req_len);
    for (size_t pos = 0; pos + 4 <= len;) {
        size_t n = (size_t)data[pos] << 24 | (size_t)data[pos + 1] << 16 | (size_t)data[pos + 2] << 8 | data[pos + 3];
        pos += 4;
        if (pos + n > len) {
            fprintf(stderr, "%s: truncated record\n", argv[2]);
            return 2;
        }
        if ((size_t)n_reqs == cap) {
            cap *= 2;
            reqs = realloc(reqs, cap * sizeof *reqs);
            req_len = realloc(req_len, cap * sizeof *req_len);
        }
        char head[256];
        int h = snprintf(head, sizeof head,
                         "POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/ocsp-request\r\n"
                         "Content-Length: %zu\r\n%s\r\n",
                         port, n, keep_alive ? "" : "Connection: close\r\n");
        reqs[n_reqs] = malloc((size_t)h + n);
        memcpy(reqs[n_reqs], head, (size_t)h);
        memcpy(reqs[n_reqs] + h, data + pos, n);
        req_len[n_reqs++] = (size_t)h + n;
        pos += n;
    }
    free(data);
    out = fopen(argv[5], "wb");
    if (!out) {
        perror(argv[5]);
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (concurrency > n_reqs) concurrency = n_reqs ? n_reqs : 1;
    struct slot *slots = calloc((size_t)concurrency, sizeof *slots);
    long long start = now_us();
    for (int i = 0; i < concurrency; i++) {
        slots[i].fd = -1;
        slots[i].rcap = 65536;
        slots[i].rbuf = malloc(slots[i].rcap);
        start_next(&slots[i]);
    }
    struct epoll_event events[256];
    while (finished < n_reqs) {
        int n = epoll_wait(epfd, events, 256, 1000);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 2;
        }
        for (int i = 0; i < n; i++) {
            struct slot *s = events[i].data.ptr;
            if (s->state == CONNECTING || s->state == WRITING) {
                if (events[i].events & (EPOLLERR | EPOLLHUP) && s->state == CONNECTING) fail(s);
                else on_writable(s);
            } else if (s->state == READING) {
                on_readable(s);
            }
        }
        long long t = now_us();
        for (int i = 0; i < concurrency; i++)
            if (slots[i].state != DONE && slots[i].state != IDLE && t - slots[i].t0 > TIMEOUT_US) {
                slots[i].retried = 1;
                fail(&slots[i]);
            }
    }
    long long elapsed = now_us() - start;
    fclose(out);
    printf("RESULT requests=%d errors=%d connections=%d elapsed_us=%lld\n", finished, errors, connections, elapsed);
    return 0;
}
