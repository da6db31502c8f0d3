//! CPU priority of threads: work that must not slow requests runs nicer.

/// Gives the calling thread the nice value `nice` (on Linux, per thread): the scheduler then
/// serves the process's other threads first. 0 changes nothing. Raising a thread's priority
/// above the process's needs a privilege and fails.
///
/// # Errors
/// When the system refuses.
pub fn lower_this_thread(nice: i32) -> std::io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
        .map_err(std::io::Error::from)
}

/// The calling thread's nice value.
///
/// # Errors
/// When the system refuses.
pub fn of_this_thread() -> std::io::Result<i32> {
    rustix::process::getpriority_process(Some(rustix::thread::gettid()))
        .map_err(std::io::Error::from)
}
