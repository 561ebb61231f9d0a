//! Runtime driver probe (io_uring, else epoll) and CPU feature check.
