//! What a process that holds many sockets asks of the system: the server (one per viewer,
//! buyer and publisher) and the load generators (one per simulated client).

/// Raises the soft limit on open files to the hard limit (a no-op where it already is).
pub fn raise_fd_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Makes the calling thread yield the CPU to everything else (nice 10), for heavy work that
/// must not delay answers: decoding an uploaded photo. For a thread of its own; a thread
/// cannot take its priority back without privilege.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no arguments; setpriority only reads its integer arguments.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// The soft limit on open files (after [`raise_fd_limit`], the hard one), when known.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    // SAFETY: getrlimit only writes the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
            return Some(limit.rlim_cur as u64);
        }
    }
    None
}
