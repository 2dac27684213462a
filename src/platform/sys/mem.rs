//! The allocator.

/// Hands the allocator's free memory back to the kernel. A deploy's extraction and blob
/// writing leave megabytes free in glibc's arenas that request traffic never reuses; run
/// after such rare bulk work, so resident memory returns to what the server holds.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; no pointer is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}
