//! Opcodes and the frames the server writes (RFC 6455 §5.2): always FIN, never masked.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The opcode of a frame's low nibble; None for the reserved ones (3-7, 0xB-0xF).
    pub(crate) fn from_bits(bits: u8) -> Option<Opcode> {
        match bits {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    pub(crate) fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong: at most 125 bytes, never fragmented (§5.5).
    pub(crate) fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// Largest payload of a control frame (§5.5).
pub(crate) const CONTROL_MAX: usize = 125;

/// A server frame (FIN set, unmasked) with this payload, ready for the socket.
pub(crate) fn frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode.bits());
    // The shortest length encoding (§5.2 says MUST for senders).
    match payload.len() {
        len @ 0..=125 => out.push(len as u8),
        len @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A close frame with this code and reason, the reason cut at a char boundary to fit the
/// 123 bytes a control frame leaves after the code.
pub(crate) fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(CONTROL_MAX - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(Opcode::Close, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip_and_reserved_ones_are_none() {
        for bits in 0..16u8 {
            match Opcode::from_bits(bits) {
                Some(opcode) => assert_eq!(opcode.bits(), bits),
                None => assert!(matches!(bits, 3..=7 | 0xB..=0xF), "{bits}"),
            }
        }
        assert!(Opcode::Ping.is_control() && !Opcode::Text.is_control());
    }

    #[test]
    fn unmasked_hello_and_pong_are_the_rfc_examples() {
        // RFC 6455 §5.7.
        assert_eq!(
            frame(Opcode::Text, b"Hello"),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(frame(Opcode::Pong, b"Hello")[..2], [0x8a, 0x05]);
    }

    #[test]
    fn lengths_use_the_shortest_encoding() {
        let out = frame(Opcode::Binary, &[7; 125]);
        assert_eq!((out[1], out.len()), (125, 127));
        let out = frame(Opcode::Binary, &[7; 256]);
        assert_eq!(out[..4], [0x82, 126, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);
        let out = frame(Opcode::Binary, &[7; 65536]);
        assert_eq!(out[..10], [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(out.len(), 10 + 65536);
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let out = close_frame(1000, "bye");
        assert_eq!(out, [0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
        // 62 two-byte chars: 124 bytes, one over; the cut may not split the last one.
        let reason = "é".repeat(62);
        let out = close_frame(1001, &reason);
        assert_eq!(out[1] as usize, 2 + 122);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
        let out = close_frame(1001, &"a".repeat(200));
        assert_eq!(out[1] as usize, CONTROL_MAX);
    }
}
