//! How a process takes memory from the system.

/// Turns transparent huge pages off for this process (and the processes it starts).
///
/// mimalloc 3, every binary's allocator, asks Linux for huge pages on its arenas
/// (`MADV_HUGEPAGE`), which Linux grants where huge pages are given on request (the `madvise`
/// mode, the default of most distributions). Each first touch of a 2 MiB page then zeroes all
/// of it, and memory the allocator hands back and takes again is zeroed again 2 MiB at a time.
/// Under a burst of new connections those faults stalled requests for milliseconds: with them
/// off, one gateway's joins had a p99 of 4 ms instead of 7 ms and a longest wait of 9 ms
/// instead of 30 ms, and ran 6–9 % faster (BENCHMARKS.md). Call it first thing in `main`; it
/// holds for every page touched afterwards, including in memory mapped before.
///
/// # Errors
/// When the system refuses (a kernel without the setting); nothing changed then. Elsewhere
/// than on Linux it does nothing.
pub fn without_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

/// Says in the log, once telemetry is up, that [`without_huge_pages`] failed.
pub fn log_outcome(outcome: &std::io::Result<()>) {
    if let Err(error) = outcome {
        tracing::warn!(%error, "transparent huge pages stay on for this process");
    }
}

/// Whether [`without_huge_pages`] holds for this process (always `false` elsewhere than on
/// Linux).
///
/// # Errors
/// When the system cannot say.
pub fn huge_pages_are_off() -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    return Ok(rustix::thread::transparent_huge_pages_are_disabled()?);
    #[cfg(not(target_os = "linux"))]
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_are_off_for_the_process_once_asked() {
        without_huge_pages().expect("the setting exists on this kernel");
        assert!(huge_pages_are_off().expect("readable"));
        // For the whole process, not the calling thread alone.
        let elsewhere = std::thread::spawn(|| huge_pages_are_off().expect("readable"))
            .join()
            .expect("thread");
        assert!(elsewhere);
    }
}
