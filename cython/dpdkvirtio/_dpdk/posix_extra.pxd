# L0: POSIX and glibc declarations Cython's own libc/posix packages do not carry
# (names verbatim from the system headers).
from libc.stdint cimport uint32_t, uint64_t
from posix.time cimport timespec

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, const void *attr)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)

cdef extern from "<semaphore.h>" nogil:
    ctypedef struct sem_t:
        pass
    int sem_init(sem_t *sem, int pshared, unsigned int value)
    int sem_post(sem_t *sem)
    int sem_timedwait(sem_t *sem, const timespec *abs_timeout)
    int sem_destroy(sem_t *sem)

cdef extern from "<dirent.h>" nogil:
    ctypedef struct DIR:
        pass
    struct dirent:
        char d_name[256]
    DIR *opendir(const char *name)
    dirent *readdir(DIR *d)
    int closedir(DIR *d)
    int dirfd(DIR *d)

cdef extern from "<fcntl.h>" nogil:
    int fcntl(int fd, int cmd, ...)
    enum: F_GETFD
    enum: F_SETFD
    enum: FD_CLOEXEC

cdef extern from "<unistd.h>" nogil:
    ssize_t readlink(const char *path, char *buf, size_t size)

cdef extern from "<stdlib.h>" nogil:
    int atoi(const char *s)

cdef extern from "<sys/stat.h>" nogil:
    cdef struct stat:
        unsigned int st_mode
        long st_size
    int fstat(int fd, stat *buf)
    bint S_ISREG(unsigned int mode)

cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
              unsigned long arg5)
    enum: PR_SET_TIMERSLACK

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        int fd
        uint64_t u64
    cdef struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    enum: EPOLL_CLOEXEC
    enum: EPOLL_CTL_ADD
    enum: EPOLLIN
    enum: EPOLLET

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    enum: EFD_NONBLOCK
    enum: EFD_CLOEXEC

cdef extern from "<sched.h>" nogil:
    int sched_getcpu()
