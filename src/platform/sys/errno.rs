//! The one errno classifier.

use std::io;

/// What an I/O error means for the server, decided here and nowhere else: which errno
/// values are "the disk is full" (answer 507, stop bulk writes) and which are "out of
/// descriptors or kernel memory" (pause accepting instead of spinning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrnoClass {
    /// No space (ENOSPC) or the user's quota is used up (EDQUOT): freeing space or waiting
    /// helps. EFBIG is not here: a file over RLIMIT_FSIZE or the filesystem's largest file
    /// size fails the same way however much space is freed, so it is our fault (500).
    DiskFull,
    /// The process (EMFILE) or the system (ENFILE) is out of file descriptors.
    DescriptorsExhausted,
    /// The kernel could not allocate socket buffers or memory (ENOBUFS, ENOMEM). accept(2)
    /// reports these under load like EMFILE, and retrying at once fails the same way.
    KernelMemory,
    /// Anything else: about one operation, not the server's resources.
    Other,
}

impl ErrnoClass {
    pub(crate) fn of(error: &io::Error) -> ErrnoClass {
        match error.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => ErrnoClass::DiskFull,
            Some(libc::EMFILE | libc::ENFILE) => ErrnoClass::DescriptorsExhausted,
            Some(libc::ENOBUFS | libc::ENOMEM) => ErrnoClass::KernelMemory,
            Some(_) => ErrnoClass::Other,
            // Errors built from a kind (by std or a library) carry no errno.
            None if error.kind() == io::ErrorKind::StorageFull => ErrnoClass::DiskFull,
            None => ErrnoClass::Other,
        }
    }

    /// A resource of the whole process ran out: an accept loop must back off.
    pub(crate) fn is_resource_exhaustion(self) -> bool {
        matches!(
            self,
            ErrnoClass::DescriptorsExhausted | ErrnoClass::KernelMemory
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classes() {
        let class = |errno| ErrnoClass::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(class(libc::ENOSPC), ErrnoClass::DiskFull);
        assert_eq!(class(libc::EDQUOT), ErrnoClass::DiskFull);
        assert_eq!(class(libc::EFBIG), ErrnoClass::Other);
        assert_eq!(class(libc::EMFILE), ErrnoClass::DescriptorsExhausted);
        assert_eq!(class(libc::ENFILE), ErrnoClass::DescriptorsExhausted);
        assert_eq!(class(libc::ENOBUFS), ErrnoClass::KernelMemory);
        assert_eq!(class(libc::ENOMEM), ErrnoClass::KernelMemory);
        for other in [libc::EIO, libc::ECONNABORTED, libc::EACCES, libc::EROFS] {
            assert_eq!(class(other), ErrnoClass::Other, "errno {other}");
        }
        let kind_only = io::Error::from(io::ErrorKind::StorageFull);
        assert_eq!(ErrnoClass::of(&kind_only), ErrnoClass::DiskFull);
        assert_eq!(ErrnoClass::of(&io::Error::other("x")), ErrnoClass::Other);
    }

    #[test]
    fn only_process_resources_mean_backing_off() {
        assert!(ErrnoClass::DescriptorsExhausted.is_resource_exhaustion());
        assert!(ErrnoClass::KernelMemory.is_resource_exhaustion());
        assert!(!ErrnoClass::DiskFull.is_resource_exhaustion());
        assert!(!ErrnoClass::Other.is_resource_exhaustion());
    }
}
