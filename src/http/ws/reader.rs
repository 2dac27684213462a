//! Client frames in, whole messages out (RFC 6455 §5, §8.1). Every check runs as soon as the
//! bytes it needs are there: a bad header fails before its payload arrives, and a text
//! message fails on the first fragment that can't be UTF-8.

use super::frame::{Opcode, CONTROL_MAX};

/// A whole message or control frame received from a client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// Complete, valid UTF-8, kept as the bytes so there is no second copy.
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The close frame's code and reason (None: an empty close payload).
    Close(Option<(u16, String)>),
}

/// Why the connection must be closed, and with which close code (§7.4.1).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WsError {
    /// 1002: the peer broke the framing rules.
    Protocol(&'static str),
    /// 1009: a message (all its fragments together) over the limit.
    TooBig { limit: usize },
    /// 1007: a text message or close reason that isn't UTF-8.
    BadUtf8,
}

impl WsError {
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            WsError::Protocol(_) => 1002,
            WsError::TooBig { .. } => 1009,
            WsError::BadUtf8 => 1007,
        }
    }

    pub(crate) fn reason(&self) -> &'static str {
        match self {
            WsError::Protocol(reason) => reason,
            WsError::TooBig { .. } => "message too big",
            WsError::BadUtf8 => "invalid UTF-8",
        }
    }
}

/// A frame header, once all of it (through the masking key) has arrived.
struct Header {
    fin: bool,
    opcode: Opcode,
    mask: [u8; 4],
    /// Bytes of the header itself: 2, the extended length, the key.
    len: usize,
    payload_len: usize,
}

/// Reads client frames and assembles messages; control frames may arrive between the
/// fragments of a message and are returned at once.
pub(crate) struct Reader {
    max_message: usize,
    /// Text or Binary while a fragmented message is being assembled, None between messages.
    kind: Option<Opcode>,
    message: Vec<u8>,
    /// Length of the prefix of a text `message` known to be valid UTF-8; what follows it is
    /// at most the start of a code point the next fragment completes.
    checked: usize,
}

impl Reader {
    pub(crate) fn new(max_message: usize) -> Reader {
        Reader {
            max_message,
            kind: None,
            message: Vec::new(),
            checked: 0,
        }
    }

    /// Takes at most one frame from the front of `buf`: `(consumed, Some(message))` when the
    /// frame completed a message or is a control frame, `(consumed, None)` when it was a
    /// non-final fragment (consumed > 0) or `buf` holds no whole frame yet (consumed == 0).
    pub(crate) fn read(&mut self, buf: &[u8]) -> Result<(usize, Option<Received>), WsError> {
        let Some(header) = self.header(buf)? else {
            return Ok((0, None));
        };
        let end = header.len + header.payload_len;
        let Some(payload) = buf.get(header.len..end) else {
            return Ok((0, None));
        };
        let received = if header.opcode.is_control() {
            Some(control(&header, payload)?)
        } else {
            self.data(&header, payload)?
        };
        Ok((end, received))
    }

    /// Bytes of the message being assembled (memory held between frames).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.message.len()
    }

    /// The header at the front of `buf`, None while some of it is still to come. Each rule is
    /// checked as soon as the bytes it looks at are there.
    fn header(&self, buf: &[u8]) -> Result<Option<Header>, WsError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        if b0 & 0x70 != 0 {
            return Err(WsError::Protocol("reserved bits set"));
        }
        let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(WsError::Protocol("reserved opcode"))?;
        let fin = b0 & 0x80 != 0;
        if b1 & 0x80 == 0 {
            return Err(WsError::Protocol("client frame not masked"));
        }
        self.check_sequence(opcode, fin)?;
        let Some((payload_len, at)) = payload_len(buf, b1 & 0x7F)? else {
            return Ok(None);
        };
        let payload_len = self.check_length(opcode, payload_len)?;
        let Some(mask) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            len: at + 4,
            payload_len,
        }))
    }

    /// §5.4, §5.5: control frames are never fragmented; a continuation needs a message to
    /// continue, and a new message can't start inside one.
    fn check_sequence(&self, opcode: Opcode, fin: bool) -> Result<(), WsError> {
        let rule_broken = match opcode {
            _ if opcode.is_control() => (!fin).then_some("fragmented control frame"),
            Opcode::Continuation => self
                .kind
                .is_none()
                .then_some("continuation without a message to continue"),
            _ => self
                .kind
                .is_some()
                .then_some("new message inside a fragmented one"),
        };
        rule_broken.map_or(Ok(()), |reason| Err(WsError::Protocol(reason)))
    }

    /// The declared payload length, refused before any of the payload is waited for: a
    /// control frame over 125 bytes or a close payload of one byte (half a code), or a data
    /// frame that would take the message over the limit.
    fn check_length(&self, opcode: Opcode, len: u64) -> Result<usize, WsError> {
        if opcode.is_control() {
            if len > CONTROL_MAX as u64 {
                return Err(WsError::Protocol("control frame over 125 bytes"));
            }
            if opcode == Opcode::Close && len == 1 {
                return Err(WsError::Protocol("close payload of 1 byte"));
            }
        } else if (self.message.len() as u64).saturating_add(len) > self.max_message as u64 {
            return Err(WsError::TooBig {
                limit: self.max_message,
            });
        }
        // Below either limit, so it fits a usize.
        usize::try_from(len).map_err(|_| WsError::TooBig {
            limit: self.max_message,
        })
    }

    /// Appends a data frame's payload to the message; the message once this frame ends it.
    fn data(&mut self, header: &Header, payload: &[u8]) -> Result<Option<Received>, WsError> {
        let kind = *self.kind.get_or_insert(header.opcode);
        let start = self.message.len();
        self.message.extend_from_slice(payload);
        unmask(&mut self.message[start..], header.mask);
        if kind == Opcode::Text {
            self.check_utf8(header.fin)?;
        }
        if !header.fin {
            return Ok(None);
        }
        self.kind = None;
        self.checked = 0;
        // Taken, not cleared: an idle connection holds no buffer between messages.
        let message = std::mem::take(&mut self.message);
        Ok(Some(match kind {
            Opcode::Text => Received::Text(message),
            _ => Received::Binary(message),
        }))
    }

    /// Validates what the last fragment added; an incomplete code point may end a fragment
    /// but not the message.
    fn check_utf8(&mut self, fin: bool) -> Result<(), WsError> {
        match std::str::from_utf8(&self.message[self.checked..]) {
            Ok(_) => self.checked = self.message.len(),
            Err(e) if e.error_len().is_none() && !fin => self.checked += e.valid_up_to(),
            Err(_) => return Err(WsError::BadUtf8),
        }
        Ok(())
    }
}

/// The payload length of the 7-bit field `len7` and where the masking key starts; None
/// while the extended length is still to come.
fn payload_len(buf: &[u8], len7: u8) -> Result<Option<(u64, usize)>, WsError> {
    Ok(match len7 {
        126 => buf
            .get(2..4)
            .map(|b| (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)),
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(b);
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 {
                    return Err(WsError::Protocol("64-bit length with its top bit set"));
                }
                Some((len, 10))
            }
            None => None,
        },
        len => Some((u64::from(len), 2)),
    })
}

/// A Ping, Pong or Close frame as received.
fn control(header: &Header, payload: &[u8]) -> Result<Received, WsError> {
    let mut data = payload.to_vec();
    unmask(&mut data, header.mask);
    Ok(match header.opcode {
        Opcode::Ping => Received::Ping(data),
        Opcode::Pong => Received::Pong(data),
        _ => Received::Close(close_payload(data)?),
    })
}

/// §5.5.1: empty, or a code (§7.4) then a UTF-8 reason.
fn close_payload(data: Vec<u8>) -> Result<Option<(u16, String)>, WsError> {
    let Some((code, reason)) = data.split_first_chunk::<2>() else {
        return Ok(None);
    };
    let code = u16::from_be_bytes(*code);
    if !is_valid_close_code(code) {
        return Err(WsError::Protocol("invalid close code"));
    }
    let reason = std::str::from_utf8(reason).map_err(|_| WsError::BadUtf8)?;
    Ok(Some((code, reason.to_owned())))
}

/// §7.4: the codes a peer may send. 1004 is reserved, 1005, 1006 and 1015 are never sent on
/// the wire, 1012-1014 were registered with IANA since, 1016-2999 are unassigned, 3000-4999
/// belong to libraries and applications.
fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// XORs the payload with the client's key (§5.3). Index-based so the loop vectorises.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// Length encodings a client may choose.
    #[derive(Clone, Copy)]
    enum Len {
        Shortest,
        Bits16,
        Bits64,
    }

    /// A masked client frame: `b0` is FIN, RSV and opcode as sent.
    fn client_frame(b0: u8, payload: &[u8], len: Len) -> Vec<u8> {
        let mut out = vec![b0];
        match len {
            Len::Shortest if payload.len() <= 125 => out.push(0x80 | payload.len() as u8),
            Len::Shortest | Len::Bits16 if payload.len() <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        let start = out.len();
        out.extend_from_slice(payload);
        unmask(&mut out[start..], MASK);
        out
    }

    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        client_frame(b0, payload, Len::Shortest)
    }

    const FIN: u8 = 0x80;

    /// Everything `bytes` holds, fed at once: the messages, then the error if one came.
    fn read_all(limit: usize, bytes: &[u8]) -> (Vec<Received>, Option<WsError>) {
        let mut reader = Reader::new(limit);
        let mut buf = bytes;
        let mut out = Vec::new();
        loop {
            match reader.read(buf) {
                Ok((0, received)) => {
                    assert!(received.is_none());
                    return (out, None);
                }
                Ok((consumed, received)) => {
                    out.extend(received);
                    buf = &buf[consumed..];
                }
                Err(e) => return (out, Some(e)),
            }
        }
    }

    /// The same bytes arriving one at a time: the reader sees every split of every frame.
    fn read_bytewise(limit: usize, bytes: &[u8]) -> (Vec<Received>, Option<WsError>) {
        let mut reader = Reader::new(limit);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for &byte in bytes {
            buf.push(byte);
            loop {
                match reader.read(&buf) {
                    Ok((0, received)) => {
                        assert!(received.is_none());
                        break;
                    }
                    Ok((consumed, received)) => {
                        out.extend(received);
                        buf.drain(..consumed);
                    }
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    /// Both ways of feeding agree; their common result.
    fn read(limit: usize, bytes: &[u8]) -> (Vec<Received>, Option<WsError>) {
        let whole = read_all(limit, bytes);
        assert_eq!(whole, read_bytewise(limit, bytes));
        whole
    }

    fn error_of(bytes: &[u8]) -> WsError {
        read(1 << 20, bytes).1.expect("an error")
    }

    #[test]
    fn masked_hello_is_the_rfc_example() {
        // RFC 6455 §5.7, byte for byte.
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(hello[..], masked(FIN | 0x1, b"Hello"));
        let mut reader = Reader::new(100);
        assert_eq!(
            reader.read(&hello),
            Ok((11, Some(Received::Text(b"Hello".to_vec()))))
        );
        assert_eq!(reader.read(&hello[..10]), Ok((0, None)));
    }

    #[test]
    fn unmasked_rfc_examples_are_refused() {
        // RFC 6455 §5.7: server-to-client frames, which a client must not send.
        let unmasked = [
            &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f][..],
            &[0x01, 0x03, 0x48, 0x65, 0x6c],
            &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
        ];
        for frame in unmasked {
            assert_eq!(
                error_of(frame),
                WsError::Protocol("client frame not masked")
            );
        }
    }

    #[test]
    fn fragmented_hello_and_ping_of_the_rfc_masked() {
        // RFC 6455 §5.7's "Hel" + "lo" and ping "Hello", a ping between the fragments.
        let mut bytes = masked(0x1, b"Hel");
        bytes.extend(masked(FIN | 0x9, b"Hello"));
        bytes.extend(masked(FIN, b"lo"));
        bytes.extend(masked(FIN | 0xA, b"Hello"));
        let (received, error) = read(100, &bytes);
        assert_eq!(error, None);
        assert_eq!(
            received,
            [
                Received::Ping(b"Hello".to_vec()),
                Received::Text(b"Hello".to_vec()),
                Received::Pong(b"Hello".to_vec()),
            ]
        );
    }

    #[test]
    fn non_final_fragments_are_consumed_and_held_as_pending() {
        let mut reader = Reader::new(100);
        let first = masked(0x2, &[1, 2, 3]);
        assert_eq!(reader.read(&first), Ok((first.len(), None)));
        assert_eq!(reader.pending(), 3);
        let empty = masked(0x0, b"");
        assert_eq!(reader.read(&empty), Ok((6, None)));
        let last = masked(FIN, &[4]);
        assert_eq!(
            reader.read(&last),
            Ok((last.len(), Some(Received::Binary(vec![1, 2, 3, 4]))))
        );
        assert_eq!(reader.pending(), 0);
    }

    #[test]
    fn sixteen_and_sixty_four_bit_lengths_split_anywhere() {
        let medium: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let large: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let mut bytes = client_frame(FIN | 0x2, &medium, Len::Shortest);
        assert_eq!(bytes[1], 0x80 | 126);
        bytes.extend(client_frame(FIN | 0x2, &large, Len::Shortest));
        // Longer encodings than needed are accepted (§5.2 binds senders only).
        bytes.extend(client_frame(FIN | 0x1, b"short", Len::Bits16));
        bytes.extend(client_frame(FIN | 0x1, b"short", Len::Bits64));
        let (received, error) = read(1 << 20, &bytes);
        assert_eq!(error, None);
        assert_eq!(
            received,
            [
                Received::Binary(medium),
                Received::Binary(large),
                Received::Text(b"short".to_vec()),
                Received::Text(b"short".to_vec()),
            ]
        );
    }

    #[test]
    fn sixty_four_bit_length_with_top_bit_is_refused() {
        let mut bytes = vec![FIN | 0x2, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5];
        bytes.extend_from_slice(&MASK);
        assert_eq!(
            error_of(&bytes),
            WsError::Protocol("64-bit length with its top bit set")
        );
    }

    #[test]
    fn framing_violations_are_protocol_errors() {
        let continuation_alone = masked(FIN, b"x");
        let mut nested = masked(0x1, b"a");
        nested.extend(masked(FIN | 0x2, b"b"));
        let mut text_in_text = masked(0x1, b"a");
        text_in_text.extend(masked(0x1, b"b"));
        let cases = [
            (masked(FIN | 0x40 | 0x1, b"x"), "reserved bits set"),
            (masked(FIN | 0x20 | 0x1, b"x"), "reserved bits set"),
            (masked(FIN | 0x10 | 0x1, b"x"), "reserved bits set"),
            (masked(FIN | 0x3, b"x"), "reserved opcode"),
            (masked(FIN | 0xB, b"x"), "reserved opcode"),
            (masked(0x9, b"x"), "fragmented control frame"),
            (masked(0x8, b""), "fragmented control frame"),
            (masked(FIN | 0x9, &[0; 126]), "control frame over 125 bytes"),
            (masked(FIN | 0xA, &[0; 200]), "control frame over 125 bytes"),
            (masked(FIN | 0x8, b"x"), "close payload of 1 byte"),
            (
                continuation_alone,
                "continuation without a message to continue",
            ),
            (nested, "new message inside a fragmented one"),
            (text_in_text, "new message inside a fragmented one"),
        ];
        for (bytes, reason) in cases {
            let error = error_of(&bytes);
            assert_eq!(error, WsError::Protocol(reason), "{bytes:x?}");
            assert_eq!((error.close_code(), error.reason()), (1002, reason));
        }
    }

    #[test]
    fn protocol_errors_come_from_the_header_alone() {
        // Two bytes are enough for the reserved bits, the opcode, the mask bit, fragmented
        // control frames and their length.
        for b0 in [FIN | 0x41, FIN | 0x3, 0x9] {
            let mut reader = Reader::new(100);
            assert!(matches!(
                reader.read(&[b0, 0x80]),
                Err(WsError::Protocol(_))
            ));
        }
        let mut reader = Reader::new(100);
        assert!(reader.read(&[FIN | 0x1, 0x05]).is_err());
    }

    #[test]
    fn too_big_is_refused_from_the_header_before_the_payload() {
        // Only the header of a 1 MiB frame has arrived.
        let header = [FIN | 0x2, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0];
        let mut reader = Reader::new(1000);
        let error = reader.read(&header).expect_err("too big");
        assert_eq!(error, WsError::TooBig { limit: 1000 });
        assert_eq!(error.close_code(), 1009);
        assert_eq!(read(1000, &header), (Vec::new(), Some(error)));
        // The limit counts every fragment of the message: 600 held, 401 more declared.
        let mut reader = Reader::new(1000);
        let first = masked(0x1, &[b'a'; 600]);
        assert_eq!(reader.read(&first), Ok((first.len(), None)));
        let second = client_frame(FIN, &[b'a'; 401], Len::Shortest);
        assert_eq!(
            reader.read(&second[..4]),
            Err(WsError::TooBig { limit: 1000 })
        );
        // Exactly the limit is fine, and control frames don't count toward it.
        let mut bytes = masked(0x1, &[b'a'; 600]);
        bytes.extend(masked(FIN | 0x9, b"p"));
        bytes.extend(masked(FIN, &[b'a'; 400]));
        let (received, error) = read(1000, &bytes);
        assert_eq!(error, None);
        assert_eq!(received[1], Received::Text(vec![b'a'; 1000]));
    }

    #[test]
    fn invalid_utf8_fails_on_the_fragment_that_brings_it() {
        let mut reader = Reader::new(100);
        let first = masked(0x1, "héllo ".as_bytes());
        assert_eq!(reader.read(&first), Ok((first.len(), None)));
        // A non-final fragment with an invalid sequence: no need to wait for the end.
        let bad = masked(0x0, b"ok \xff more");
        let error = reader.read(&bad).expect_err("bad utf-8");
        assert_eq!(error, WsError::BadUtf8);
        assert_eq!(
            (error.close_code(), error.reason()),
            (1007, "invalid UTF-8")
        );
        // A sequence that no continuation can make valid (over U+10FFFF) fails at once.
        let mut reader = Reader::new(100);
        assert_eq!(
            reader.read(&masked(0x1, b"\xf4\x90")),
            Err(WsError::BadUtf8)
        );
        // Binary messages aren't checked.
        let (received, error) = read(100, &masked(FIN | 0x2, b"\xff"));
        assert_eq!(
            (received, error),
            (vec![Received::Binary(vec![0xff])], None)
        );
    }

    #[test]
    fn code_points_split_across_fragments_are_accepted() {
        // "aéb" with é split, then a 4-byte emoji split over three fragments.
        let mut bytes = masked(0x1, b"a\xc3");
        bytes.extend(masked(0x0, b"\xa9b"));
        bytes.extend(masked(FIN, b""));
        let emoji = "😀".as_bytes();
        bytes.extend(masked(0x1, &emoji[..1]));
        bytes.extend(masked(0x0, &emoji[1..3]));
        bytes.extend(masked(FIN, &emoji[3..]));
        let (received, error) = read(100, &bytes);
        assert_eq!(error, None);
        assert_eq!(
            received,
            [
                Received::Text("aéb".as_bytes().to_vec()),
                Received::Text(emoji.to_vec()),
            ]
        );
        // A code point still incomplete when the message ends is invalid.
        let mut bytes = masked(0x1, b"a");
        bytes.extend(masked(FIN, b"\xc3"));
        assert_eq!(read(100, &bytes).1, Some(WsError::BadUtf8));
    }

    fn close(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        masked(FIN | 0x8, &payload)
    }

    #[test]
    fn close_codes_valid_and_invalid() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1011, 1012, 1014, 3000, 4999,
        ];
        for code in valid {
            let (received, error) = read(100, &close(code, b"bye"));
            assert_eq!(error, None, "{code}");
            assert_eq!(received, [Received::Close(Some((code, "bye".into())))]);
        }
        let invalid = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ];
        for code in invalid {
            let error = error_of(&close(code, b""));
            assert_eq!(error, WsError::Protocol("invalid close code"), "{code}");
        }
    }

    #[test]
    fn close_payload_forms() {
        let (received, _) = read(100, &masked(FIN | 0x8, b""));
        assert_eq!(received, [Received::Close(None)]);
        let (received, _) = read(100, &close(1000, b""));
        assert_eq!(received, [Received::Close(Some((1000, String::new())))]);
        assert_eq!(error_of(&close(1000, b"\xc3")), WsError::BadUtf8);
        // A close between fragments comes out at once.
        let mut bytes = masked(0x1, b"half");
        bytes.extend(close(1001, b"away"));
        let (received, error) = read(100, &bytes);
        assert_eq!(error, None);
        assert_eq!(received, [Received::Close(Some((1001, "away".into())))]);
    }

    #[test]
    fn a_stream_of_everything_reads_the_same_bytewise() {
        // `read` already compares both feeds; this puts every kind of frame in one stream.
        let mut bytes = masked(0x1, "ça ".as_bytes());
        bytes.extend(masked(FIN | 0x9, b""));
        bytes.extend(client_frame(0x0, &[b'x'; 200], Len::Bits64));
        bytes.extend(masked(FIN, "va €".as_bytes()));
        bytes.extend(client_frame(FIN | 0x2, &[9; 1000], Len::Bits16));
        bytes.extend(close(1000, b"done"));
        let (received, error) = read(4096, &bytes);
        assert_eq!(error, None);
        let text = format!("ça {}va €", "x".repeat(200));
        assert_eq!(
            received,
            [
                Received::Ping(Vec::new()),
                Received::Text(text.into_bytes()),
                Received::Binary(vec![9; 1000]),
                Received::Close(Some((1000, "done".into()))),
            ]
        );
    }
}
