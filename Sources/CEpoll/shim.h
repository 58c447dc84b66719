#ifndef EDGE_SYNC_CEPOLL_SHIM_H
#define EDGE_SYNC_CEPOLL_SHIM_H

// epoll, eventfd and accept4 for HTTPCore's event loop. The toolchain's Glibc module does not cover
// <sys/epoll.h> or <sys/eventfd.h>, and declares accept4 only under _GNU_SOURCE, which its
// prebuilt module was not compiled with. `struct epoll_event` is packed on x86_64, a layout Swift
// cannot import, so events are read through accessors here and Swift only sees a raw buffer.
//
// <sys/socket.h> is not included: it belongs to the Glibc module, and a second, textual copy of
// its declarations in this module hides them from Swift code that imports both (SOCK_NONBLOCK
// disappeared from HTTPCore's release build). accept4 is declared here instead.

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

struct sockaddr;
// glibc's prototype, declared in <sys/socket.h> only under __USE_GNU (socklen_t is unsigned int).
extern int accept4(int fd, struct sockaddr *address, unsigned int *length, int flags);

// SOCK_NONBLOCK and SOCK_CLOEXEC are O_NONBLOCK and O_CLOEXEC on Linux (x86_64, arm64).
enum { cepoll_socket_non_blocking = 04000, cepoll_socket_close_on_exec = 02000000 };

static const uint32_t cepoll_input = EPOLLIN;
static const uint32_t cepoll_output = EPOLLOUT;
static const uint32_t cepoll_error = EPOLLERR;
static const uint32_t cepoll_hang_up = EPOLLHUP;

static const int cepoll_add = EPOLL_CTL_ADD;
static const int cepoll_delete = EPOLL_CTL_DEL;
static const int cepoll_modify = EPOLL_CTL_MOD;

/// A close-on-exec epoll instance, or -1 with errno.
static inline int cepoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

/// Adds, modifies or deletes `fd`; `token` comes back in `data.u64` with each of its events.
static inline int cepoll_control(int epoll_fd, int operation, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event;
    event.events = events;
    event.data.u64 = token;
    return epoll_ctl(epoll_fd, operation, fd, &event);
}

/// Bytes per event in the buffer `cepoll_wait` fills.
static inline size_t cepoll_event_size(void) {
    return sizeof(struct epoll_event);
}

/// Waits for up to `capacity` events into `buffer` (room for `capacity * cepoll_event_size()` bytes).
static inline int cepoll_wait(int epoll_fd, void *buffer, int capacity, int timeout_milliseconds) {
    return epoll_wait(epoll_fd, (struct epoll_event *)buffer, capacity, timeout_milliseconds);
}

static inline uint32_t cepoll_event_flags(const void *buffer, int index) {
    return ((const struct epoll_event *)buffer)[index].events;
}

static inline uint64_t cepoll_event_token(const void *buffer, int index) {
    return ((const struct epoll_event *)buffer)[index].data.u64;
}

/// A non-blocking, close-on-exec eventfd starting at 0, or -1 with errno.
static inline int cepoll_make_event_fd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

/// accept4 with non-blocking and close-on-exec set atomically; -1 with errno when none is waiting.
static inline int cepoll_accept(int listener, void *address, unsigned int *length) {
    return accept4(
        listener, (struct sockaddr *)address, length, cepoll_socket_non_blocking | cepoll_socket_close_on_exec);
}

// glibc's malloc_trim (<malloc.h>, which the Glibc module does not cover): returns free heap
// memory, including free pages inside the heap, to the kernel. Declared rather than included, for
// the reason given for <sys/socket.h> above.
extern int malloc_trim(unsigned long pad);

/// Gives free heap memory back to the kernel after a large request; 1 when some was released.
static inline int cepoll_release_free_memory(void) {
    return malloc_trim(0);
}

extern int mallopt(int parameter, int value);

/// Serves every allocation of at least `bytes` with its own mapping, returned to the kernel when
/// freed. M_MMAP_THRESHOLD is -3 in glibc's <malloc.h>; setting it also stops glibc from raising
/// the threshold after each large free, which is what keeps memory in the heap otherwise.
static inline int cepoll_map_allocations_from(int bytes) {
    return mallopt(-3, bytes);
}

#endif
