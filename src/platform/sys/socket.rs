//! What a TCP socket still holds of what we wrote, and dropping it.

use super::check;
use std::io;
use std::os::fd::AsRawFd;

/// Bytes in the socket's send queue that the peer has not acknowledged yet (`SIOCOUTQ`,
/// which Linux numbers as `TIOCOUTQ`): written minus this is what the client's side took.
pub fn unacked_bytes(socket: &impl AsRawFd) -> io::Result<u64> {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int through a valid pointer; a bad descriptor is an
    // error return, not undefined behaviour.
    check(unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) })?;
    Ok(u64::try_from(queued).unwrap_or(0))
}

/// Makes closing the socket a reset that discards its send queue (`SO_LINGER` with a zero
/// timeout). A plain close leaves queued bytes for the kernel to keep sending, so a
/// client cut for reading too slowly would still be fed megabytes.
pub fn reset_on_close(socket: &impl AsRawFd) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: SO_LINGER reads one `linger` struct of the size given, from a valid pointer.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn unread_bytes_stay_queued_until_the_peer_takes_them() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        assert_eq!(unacked_bytes(&client).unwrap(), 0);
        client.write_all(&[1u8; 1000]).unwrap();
        // Loopback acknowledges at once (the peer's kernel buffers the bytes).
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(unacked_bytes(&client).unwrap(), 0);
        let closed = std::fs::File::open("/dev/null").unwrap();
        assert!(unacked_bytes(&closed).is_err(), "not a socket");
    }

    #[test]
    fn a_reset_close_discards_what_is_queued() {
        use std::io::Read;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        // Fill both socket buffers: the client reads nothing yet.
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0;
        while let Ok(n) = server.write(&chunk) {
            written += n;
        }
        reset_on_close(&server).unwrap();
        drop(server);
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let reset = loop {
            match client.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => got += n,
                Err(_) => break true,
            }
        };
        assert!(reset, "the client sees a reset, not the end of the data");
        assert!(got < written, "{got} of {written} bytes arrived");
    }
}
