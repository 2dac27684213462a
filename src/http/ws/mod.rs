//! WebSockets (RFC 6455): the upgrade handshake and the frame codec.
